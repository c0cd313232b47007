"""Trainer speed against trl, same model, same pairs, same number of steps, same run.

    nice .venv/bin/python benchmarks/bench_train.py [--pairs 192] [--threads N]

The tiny GPT-2-style preset (4 layers, 256 wide, 4k byte-level BPE vocabulary trained on the data),
hh-rlhf harmless-base test pairs, batch 8, max length 256, sigmoid DPO, beta 0.1, lr 1e-4, one epoch
over ``--pairs`` pairs (``--pairs / 8`` steps). Pairs whose prompt alone fills 256 tokens are left out
beforehand, so that trl (which drops them) and prefaudit train on exactly the same pairs, truncated
the same way (trl >= 1.0's ``keep_start``).

Rows: prefaudit (defaults: fp32 on CPU); trl ``DPOTrainer`` with its defaults otherwise (bf16
autocast, gradient checkpointing, reference forward every step); trl with
``precompute_ref_log_probs=True``. Seconds per step are end to end (set-up, tokenization and
reference log-probs included, divided by the steps) and for the optimisation loop alone. The
final loss is the last step's batch (8 pairs, noisy); the mean loss is over all steps. The batches
differ (prefaudit groups pairs by length), so the losses agree only in level, not step by step.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz"
BATCH, MAX_LENGTH, BETA, LR = 8, 256, 0.1, 1e-4


def pick_pairs(data, tok, n):
    """The first ``n`` pairs (in file order) whose prompt leaves room for a response at MAX_LENGTH."""
    from prefaudit.train import prepare_pairs

    df = data.df
    prepared = prepare_pairs(tok, df["prompt"].to_list(), df["chosen"].to_list(), df["rejected"].to_list(),
                             MAX_LENGTH, "keep_start")
    keep = [i for i, p in enumerate(prepared) if not p.empty][:n]
    return data.select([df["pair_id"][i] for i in keep])


def run_prefaudit(data, model_dir, steps, **kw):
    from prefaudit.train import train

    t = time.perf_counter()
    res = train(data, model=str(model_dir), loss="sigmoid", beta=BETA, batch_size=BATCH, max_length=MAX_LENGTH,
                truncation="keep_start", steps=steps, lr=LR, save_model=False, progress=False, **kw)
    wall = time.perf_counter() - t
    s = res.summary
    losses = [m["loss"] for m in res.metrics if m["kind"] == "train"]
    return {"wall_s": wall, "loop_s": s["loop_s"], "steps": s["steps"], "final_loss": s["final_loss"],
            "mean_loss": sum(losses) / len(losses), "tokens": s["tokens"], "reference_s": s["reference_s"]}


def run_trl(data, model_dir, steps, out, **kw):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    t = time.perf_counter()
    cfg = DPOConfig(output_dir=str(out), per_device_train_batch_size=BATCH, max_length=MAX_LENGTH, beta=BETA,
                    learning_rate=LR, max_steps=steps, logging_steps=1, save_strategy="no", report_to=[],
                    use_cpu=True, disable_tqdm=True, seed=0, **kw)
    records = data.df.select("prompt", "chosen", "rejected").to_dicts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), args=cfg,
                             train_dataset=Dataset.from_list(records),
                             processing_class=AutoTokenizer.from_pretrained(model_dir))
        assert len(trainer.train_dataset) == len(records), "trl dropped pairs: the runs would differ"
        t_loop = time.perf_counter()
        out_metrics = trainer.train()
    loop = time.perf_counter() - t_loop
    wall = time.perf_counter() - t
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"wall_s": wall, "loop_s": loop, "steps": out_metrics.global_step, "final_loss": losses[-1],
            "mean_loss": sum(losses) / len(losses), "train_runtime": out_metrics.metrics.get("train_runtime")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=192)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--skip-bf16", action="store_true", help="leave out the prefaudit bf16 row")
    ap.add_argument("--plain-row", action="store_true", help="add prefaudit without the shared-prompt forward")
    ap.add_argument("--repeats", type=int, default=1, help="runs per row, alternating rows; the fastest counts")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not HH.exists():
        sys.exit(f"hh-rlhf data not found at {HH}")
    from transformers.utils import logging as hf_logging

    from prefaudit.data.load import load
    from prefaudit.train import build_tiny, load_model
    from prefaudit.train.presets import preset_texts

    hf_logging.set_verbosity_error()
    data = load(HH)
    steps = args.pairs // BATCH
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        t = time.perf_counter()
        model_dir = build_tiny(Path(tmp) / "tiny", preset_texts(data.trainable()), seed=0)
        build_s = time.perf_counter() - t
        _, tok = load_model(model_dir)
        subset = pick_pairs(data.trainable(), tok, steps * BATCH)
        n_params = sum(p.numel() for p in load_model(model_dir)[0].parameters())
        print(f"tiny preset: 4 layers, 256 wide, vocab {len(tok)}, {n_params / 1e6:.2f}M parameters "
              f"(built in {build_s:.1f}s); {len(subset)} hh-rlhf pairs, {steps} steps of {BATCH}, "
              f"max_length {MAX_LENGTH}; torch threads {torch.get_num_threads()}; {platform.processor() or ''}")
        rows = [
            ("prefaudit train (fp32)", lambda: run_prefaudit(subset, model_dir, steps)),
            ("trl DPOTrainer (defaults)", lambda: run_trl(subset, model_dir, steps, Path(tmp) / "trl1")),
            ("trl DPOTrainer (precompute_ref_log_probs)",
             lambda: run_trl(subset, model_dir, steps, Path(tmp) / "trl2", precompute_ref_log_probs=True)),
        ]
        if args.plain_row:
            rows.insert(1, ("prefaudit train (fp32, share_prompt=False)",
                            lambda: run_prefaudit(subset, model_dir, steps, share_prompt=False)))
        if not args.skip_bf16:
            rows.append(("prefaudit train (bf16 autocast on CPU)",
                         lambda: run_prefaudit(subset, model_dir, steps, precision="bf16")))
        results: dict[str, dict] = {}
        for rep in range(args.repeats):
            for name, fn in rows:
                r = fn()
                print(f"  run {rep + 1}: {name}: {r['wall_s']:.1f}s (loop {r['loop_s']:.1f}s)", flush=True)
                if name not in results or r["wall_s"] < results[name]["wall_s"]:
                    results[name] = r
    base = results["prefaudit train (fp32)"]
    print()
    print("| run | steps | wall s | s/step end to end | s/step loop | final loss | mean loss | "
          "prefaudit fp32 speed-up: end to end | loop |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        e2e, loop = r["wall_s"] / r["steps"], r["loop_s"] / r["steps"]
        print(f"| {name} | {r['steps']} | {r['wall_s']:.1f} | {e2e:.3f} | {loop:.3f} | {r['final_loss']:.4f} | {r['mean_loss']:.4f} | "
              f"{r['wall_s'] / base['wall_s']:.2f}x | {r['loop_s'] / base['loop_s']:.2f}x |")
    print(f"\nprefaudit fp32: reference pass {base['reference_s']:.1f}s of {base['wall_s']:.1f}s; "
          f"{base['tokens'] / base['loop_s']:.0f} tokens/s in the loop")

if __name__ == "__main__":
    main()
