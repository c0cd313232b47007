"""Ablation benchmark: does cleaning beat raw data and a size-matched random drop? (issue 8)

Synthetic recipe (default): generator defaults with ~30% corrupted preferences — 20% random flips
plus a length-biased annotator (``length_bias=0.8`` on the default ``biased_share``) -> audit ->
clean (default policy) -> ablate (raw, cleaned, random_drop, robust, length_debiased) on the tiny
preset (2 layers, 64 wide), 3 seeds, with generation-based evaluation by the synthetic gold scorer.
Every arm of a seed starts from the same model: 1,500 label-free SFT steps (``prefaudit.train.sft``
on chosen and rejected responses alike) so that samples are coherent and end on eos; then 200 DPO
steps at the trainer's default lr (1e-4) and beta (0.1). Sequences fit whole (max length 256 > prompt
+ longest response) and samples may run to 256 new tokens, about 3x the responses' typical ~85
tokens, so eos, not the cap, sets their length (the share that hit the cap is printed).

    python benchmarks/bench_ablation.py                 # synthetic, the recipe above
    python benchmarks/bench_ablation.py --data hh       # hh-rlhf harmless test, eval split by rule

Prints a table of arms (mean and 95% CI per metric), the paired differences, per-seed figures, the
start model's own samples, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["synthetic", "hh"], default="synthetic")
    ap.add_argument("--n", type=int, default=2000, help="synthetic pairs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1, help="first training seed (the settings were piloted on seed 0)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--sft-steps", type=int, default=1500, help="label-free SFT warm-up of the shared start model")
    ap.add_argument("--sft-lr", type=float, default=1e-3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--max-length", type=int, default=256, help="above prompt + longest synthetic response")
    ap.add_argument("--generate", type=int, default=300, help="eval prompts to sample a response for")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="well above the responses' ~85 tokens")
    ap.add_argument("--length-debias", choices=["resample", "rdpo"], default="resample")
    ap.add_argument("--arms", default="raw,cleaned,random_drop,robust,length_debiased")
    ap.add_argument("--preset", default="n_layer=2,n_embd=64,n_head=2,vocab_size=2048")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "ablation")
    ap.add_argument("--fresh", action="store_true", help="ignore finished runs in --out")
    args = ap.parse_args()
    os.environ.setdefault("PREFAUDIT_CACHE_DIR", str(ROOT / ".prefaudit_cache"))

    from prefaudit import synth
    from prefaudit.ablate import ablate
    from prefaudit.data.load import load

    preset = {k: int(v) for k, v in (kv.split("=") for kv in args.preset.split(","))}
    out = args.out / args.data
    if args.fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    t0 = time.perf_counter()
    kw = dict(out=out, seeds=args.seeds, seed=args.seed, steps=args.steps, lr=args.lr, beta=args.beta, max_length=args.max_length,
              preset=preset, sft_steps=args.sft_steps, sft_lr=args.sft_lr, batch_size=8,
              length_debias=args.length_debias, arms=tuple(args.arms.split(",")))
    if args.data == "synthetic":
        s = synth.make(n_pairs=args.n, flip_rate=0.2, length_bias=0.8, seed=0)
        print(f"synthetic: {len(s.pairs)} pairs, wrong labels {s.noise_rate}, eval {len(s.eval)} pairs")
        res = ablate(s.pairs, s.eval, gold=synth.gold_scores, generate=args.generate,
                     max_new_tokens=args.max_new_tokens, **kw)
    else:
        res = ablate(load(HH), None, **kw)
    wall = time.perf_counter() - t0
    d = res.summary
    print(f"\nwall time: {wall:.0f} s; steps per run {d['config']['steps']}; eval pairs {d['eval']['n_pairs']}; "
          f"cleaning {d['cleaning']}")
    metrics = [m for m in ("preference_accuracy", "mean_margin", "gold_win_rate", "mean_length")
               if m in next(iter(d["arms"].values()))["mean"]]
    print("\n| arm | pairs | " + " | ".join(metrics) + " |")
    print("|---|---:|" + "---:|" * len(metrics))
    for arm, a in d["arms"].items():
        cells = [f"{a['mean'][m]:.3f} [{a['ci'][m][0]:.3f}, {a['ci'][m][1]:.3f}]" for m in metrics]
        print(f"| {arm} | {a['n_pairs']} | " + " | ".join(cells) + " |")
    print("\n| difference | metric | value | 95% CI |")
    print("|---|---|---:|---|")
    for x in d["differences"]:
        ci = "" if not x["ci"] else f"[{x['ci'][0]:+.3f}, {x['ci'][1]:+.3f}]"
        print(f"| {x['arm']} - {x['baseline']} | {x['metric']} | {x['value']:+.3f} | {ci} |")
    for r in d.get("reference_generations", []):
        print(f"reference (start model) seed {r['seed']}: mean length {r['mean_length']:.1f} words, "
              f"mean gold {r['mean_gold']:+.3f}, capped {r['capped_share']:.1%}")
    for arm, a in d["arms"].items():
        for r in a["per_seed"]:
            extra = "" if "mean_length" not in r else \
                f" length {r['mean_length']:.1f} gold {r['mean_gold']:+.3f} capped {r['capped_share']:.1%}"
            print(f"{arm} seed {r['seed']}: acc {r['preference_accuracy']:.3f} margin {r['mean_margin']:.3f}{extra}")
    (out / "bench_summary.json").write_text(json.dumps({"wall_s": wall, "args": vars(args)}, default=str))


if __name__ == "__main__":
    main()
