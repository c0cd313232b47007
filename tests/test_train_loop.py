"""The training loop: step-0 loss, files, determinism, accumulation, kill + resume, SFT warm-up, LoRA,
local HF folders, device/precision logic, the batch schedule, generation, and learning on synthetic data."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from prefaudit.data.preference_set import PreferenceSet
from prefaudit.errors import ConfigError
from prefaudit.train import build_tiny, generate, load_model, train
from prefaudit.train.batching import batch_schedule
from prefaudit.train.logps import autocast, select_device
from prefaudit.train.loop import TIMING_KEYS
from prefaudit.train.presets import preset_texts

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["apple", "banana", "cherry", "dog", "elephant", "fish", "grape", "house", "island", "jungle", "kite", "lemon", "mango"]
SMALL = {"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 300}
OPTS = {"batch_size": 4, "max_length": 64, "lr": 1e-3, "save_model": False}


def toy(n: int, seed: int = 0) -> PreferenceSet:
    """Prompts asking to sort words; chosen sorts them, rejected says no and rambles."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        rows.append({"pair_id": f"t{seed}-{i}", "prompt": f"Human: sort {q}\nAssistant:",
                     "chosen": " Yes: " + " ".join(sorted(q.split())) + ".",
                     "rejected": " No. " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))})
    return PreferenceSet(pl.DataFrame(rows))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def deterministic(metrics):
    return [{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in metrics]


@pytest.fixture(scope="module")
def data():
    return toy(48)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data):
    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", preset_texts(data), seed=0, **SMALL)


def test_step0_loss_is_ln2_files_and_learning(tmp_path, data, model_dir):
    held_out = toy(16, seed=1)
    res = train(data, held_out, model=str(model_dir), steps=12, out=tmp_path, **OPTS)
    first = res.metrics[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)  # policy == reference at step 0
    assert first["rewards/chosen"] == pytest.approx(0, abs=1e-6)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 13))
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                "logps/chosen", "logps/rejected", "grad_norm", "lr", "tokens_per_s"):
        assert all(math.isfinite(r[key]) for r in lines), key
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("steps", "wall_s", "steps_per_s", "tokens_per_s", "final_loss", "eval"):
        assert summary[key] is not None, key
    assert summary["steps"] == 12 and summary["final_loss"] == lines[-1]["loss"] < math.log(2)
    ev = summary["eval"]
    assert ev["n"] == 16 and ev["preference_accuracy"] > 0.5 and ev["mean_margin"] > 0
    per_pair = pl.read_parquet(tmp_path / "eval_pairs.parquet")
    assert per_pair["correct"].mean() == pytest.approx(ev["preference_accuracy"])
    assert sorted(per_pair["pair_id"]) == sorted(held_out.pair_ids)
    # warmup then cosine decay
    lrs = [r["lr"] for r in lines]
    assert lrs[0] < lrs[1] and lrs[-1] < max(lrs)


def test_fixed_seed_gives_identical_runs(data, model_dir):
    a = train(data, model=str(model_dir), steps=5, seed=3, **OPTS)
    b = train(data, model=str(model_dir), steps=5, seed=3, **OPTS)
    c = train(data, model=str(model_dir), steps=5, seed=4, **OPTS)
    assert deterministic(a.metrics) == deterministic(b.metrics)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert deterministic(a.metrics) != deterministic(c.metrics)


def test_grad_accumulation_matches_one_batch(data, model_dir):
    one = train(data, model=str(model_dir), steps=3, **OPTS)
    acc = train(data, model=str(model_dir), steps=3, grad_accum=2, **OPTS)
    for x, y in zip(one.metrics, acc.metrics, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-5)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)


RUN_SCRIPT = textwrap.dedent("""
    import sys
    import polars as pl
    from prefaudit.data.preference_set import PreferenceSet
    from prefaudit.train import train
    data = PreferenceSet(pl.read_parquet(sys.argv[1]))
    train(data, model=sys.argv[2], out=sys.argv[3], steps=int(sys.argv[4]), save_every=3, batch_size=4,
          max_length=64, lr=1e-3, save_model=False)
""")
RESUME_OPTS = {"save_every": 3, "batch_size": 4, "max_length": 64, "lr": 1e-3, "save_model": False}


def test_resume_after_kill_continues_the_same_run(tmp_path, data, model_dir):
    pairs = tmp_path / "pairs.parquet"
    data.df.write_parquet(pairs)
    steps, killed = 60, tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(pairs), str(model_dir), str(killed), str(steps)],
                            env=env, cwd=ROOT)
    state = killed / "checkpoint" / "state.pt"
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and not (killed / "summary.json").exists(), "the run was not killed mid-way"
    assert len((killed / "metrics.jsonl").read_text().splitlines()) < steps
    with pytest.raises(ConfigError, match="other data or options"):
        train(data, model=str(model_dir), out=killed, resume=True, steps=steps, **{**RESUME_OPTS, "lr": 5e-4})
    resumed = train(data, model=str(model_dir), out=killed, resume=True, steps=steps, **RESUME_OPTS)
    baseline = train(data, model=str(model_dir), out=tmp_path / "full", steps=steps, **RESUME_OPTS)
    from_file = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in from_file] == list(range(1, steps + 1))
    assert resumed.summary["resumed_from"] >= 3
    assert deterministic(from_file) == deterministic(baseline.metrics) == deterministic(resumed.metrics)
    assert resumed.summary["final_loss"] == baseline.summary["final_loss"]
    assert not (killed / "checkpoint").exists()


def test_sft_warmup_makes_chosen_likelier_and_becomes_the_reference(data, model_dir):
    plain = train(data, model=str(model_dir), steps=1, **{**OPTS, "lr": 0.0})
    warmed = train(data, model=str(model_dir), steps=1, sft_steps=12, sft_lr=3e-3, **{**OPTS, "lr": 0.0})
    sft = [m for m in warmed.metrics if m["kind"] == "sft"]
    assert len(sft) == 12 and sft[-1]["nll"] < 0.8 * sft[0]["nll"]
    step1 = [m for m in warmed.metrics if m["kind"] == "train"][0]
    assert step1["loss"] == pytest.approx(math.log(2), abs=1e-5)  # the warmed model is the reference
    assert step1["logps/chosen"] > plain.metrics[0]["logps/chosen"] + 5


def test_lora_trains_only_adapters(tmp_path, data, model_dir):
    init, _ = load_model(model_dir)
    res = train(data, model=str(model_dir), steps=6, lora_r=4, out=tmp_path, **{**OPTS, "lr": 1e-2,
                                                                                 "save_model": True})
    assert res.metrics[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert res.metrics[-1]["loss"] < math.log(2)
    trained, _ = load_model(tmp_path / "model")  # merged adapters, a plain HF folder
    a, b = init.state_dict(), trained.state_dict()
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and all("c_attn.weight" in k for k in changed)  # peft's GPT-2 default target


def test_local_hf_folder_loading(tmp_path, data, model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, PreTrainedTokenizerFast

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert isinstance(model, GPT2LMHeadModel) and model.config.n_layer == 2
    assert isinstance(AutoTokenizer.from_pretrained(model_dir), PreTrainedTokenizerFast)
    res = train(data, model=str(model_dir), steps=2, out=tmp_path, **{**OPTS, "save_model": True})
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in res.model.state_dict().items())
    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(path, **kw):
        seen.update(kw)
        return real(path, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    load_model(model_dir)
    assert seen["trust_remote_code"] is False
    with pytest.raises(ConfigError, match="no such folder"):
        train(data, model=str(tmp_path / "nope"), steps=1, **OPTS)


def test_device_and_precision_selection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device() == (torch.device("cpu"), None)
    assert select_device(precision="bf16") == (torch.device("cpu"), torch.bfloat16)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert select_device() == (torch.device("cuda", 0), torch.bfloat16)
    assert select_device(local_rank=1) == (torch.device("cuda", 1), torch.bfloat16)
    assert select_device(precision="fp32") == (torch.device("cuda", 0), None)
    assert select_device("cpu") == (torch.device("cpu"), None)
    ctx = autocast(torch.device("cuda", 0), torch.bfloat16)
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert select_device() == (torch.device("cuda", 0), None)
    assert not isinstance(autocast(torch.device("cpu"), None), torch.autocast)


def test_bf16_autocast_path_runs_on_cpu(data, model_dir):
    res = train(data, model=str(model_dir), steps=2, precision="bf16", **OPTS)
    assert res.summary["autocast"] == "bfloat16" and res.summary["device"] == "cpu"
    assert res.metrics[0]["loss"] == pytest.approx(math.log(2), abs=0.05)
    assert all(math.isfinite(m["loss"]) for m in res.metrics)


def test_batch_schedule_buckets_and_covers_each_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, size=256)
    sched = batch_schedule(lengths, 8, 64, seed=1, bucket_batches=32)
    assert sched == batch_schedule(lengths, 8, 64, seed=1, bucket_batches=32)
    assert sched != batch_schedule(lengths, 8, 64, seed=2, bucket_batches=32)
    for epoch in (sched[:32], sched[32:]):
        assert sorted(i for b in epoch for i in b) == list(range(256))
    random_batches = batch_schedule(lengths, 8, 64, seed=1, bucket_batches=1)
    padded = lambda s: sum(len(b) * max(lengths[b]) for b in s)  # noqa: E731
    assert padded(sched) < 0.8 * padded(random_batches)


def test_generate_is_reproducible(data, model_dir):
    prompts = data.df["prompt"].to_list()[:5]
    a = generate(model_dir, prompts, max_new_tokens=8, seed=1)
    b = generate(model_dir, prompts, max_new_tokens=8, seed=1)
    c = generate(model_dir, prompts, max_new_tokens=8, seed=2)
    assert a == b and a != c and len(a) == 5
    model, tok = load_model(model_dir)
    greedy = generate(model, prompts, tokenizer=tok, max_new_tokens=6, do_sample=False, batch_size=3)
    for prompt, text in zip(prompts, greedy, strict=True):  # left-padded batches = one prompt at a time
        ids = tok(prompt, return_tensors="pt")["input_ids"]
        one = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        assert one.shape[1] - ids.shape[1] <= 6
        assert text == tok.decode(one[0, ids.shape[1]:], skip_special_tokens=True)


def test_tiny_preset_learns_synthetic_preferences():
    synth = pytest.importorskip("prefaudit.synth")
    s = synth.make(seed=0)  # generator defaults
    res = train(s.pairs, s.eval.sample(150, seed=0), steps=40, batch_size=8, lr=1e-3, max_length=160,
                preset={"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 2048}, save_model=False)
    ev = res.summary["eval"]
    assert ev["preference_accuracy"] > 0.7 and ev["preference_accuracy_ci"][0] > 0.6
    assert ev["mean_margin"] > 0


def test_public_api_train_is_callable(data, model_dir):
    import prefaudit
    import prefaudit.train as package

    assert callable(prefaudit.train) and callable(package)
    res = prefaudit.train(data, model=str(model_dir), steps=1, **OPTS)
    assert res.summary["steps"] == 1


def test_packed_forward_equals_plain_forward_and_gradients(data, model_dir):
    from prefaudit.train import prepare_pairs
    from prefaudit.train.batching import collate_pairs
    from prefaudit.train.logps import ResponseLogps, batch_logps

    model, tok = load_model(model_dir)
    df = data.df.head(6)
    pairs = prepare_pairs(tok, df["prompt"].to_list(), df["chosen"].to_list(), df["rejected"].to_list(), 64)
    assert len({len(p.prompt) for p in pairs}) > 1 and len({len(p.chosen) for p in pairs}) > 1
    batch = collate_pairs(pairs, tok.pad_token_id)
    assert batch.packed_ids is not None and batch.packed_ids.shape[0] == 6  # one row per pair
    results = []
    for share in (True, False):
        module = ResponseLogps(model, share_prompt=share)
        assert module.shared is share
        model.zero_grad()
        total, shared = batch_logps(module, batch, torch.device("cpu"), None)
        (total.sum() + 0.5 * shared.sum()).backward()
        results.append((total.detach(), shared.detach(), [p.grad.clone() for p in model.parameters()]))
    (t1, s1, g1), (t2, s2, g2) = results
    assert torch.allclose(t1, t2, atol=1e-4) and torch.allclose(s1, s2, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g1, g2, strict=True))
    eager = ResponseLogps(load_model(model_dir)[0].to(torch.float32), share_prompt=True)
    eager.model.config._attn_implementation = "eager"  # the additive-mask path
    eager._mask_float = True
    t3, _ = batch_logps(eager, batch, torch.device("cpu"), None)
    assert torch.allclose(t3.detach(), t2, atol=1e-4)


@pytest.mark.realdata
def test_tiny_preset_learns_hh_rlhf_preferences(hh_path):
    """Real-data counterpart: trained on 2,000 hh-rlhf harmless pairs, the policy's implicit reward
    prefers the chosen response on the 312 held-out pairs more often than chance."""
    from prefaudit.data.load import load

    data = load(hh_path)
    ids = data.pair_ids
    res = train(data.select(ids[:2000]), data.select(ids[2000:]), steps=60, batch_size=8, lr=1e-3, max_length=256,
                preset={"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 2048}, save_model=False)
    ev = res.summary["eval"]
    assert ev["n"] == 312 and ev["preference_accuracy_ci"][0] > 0.5 and ev["mean_margin"] > 0
