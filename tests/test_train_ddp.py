"""DDP on CPU (gloo, 2 processes under torchrun): the same losses as one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from prefaudit.train import build_tiny, train
from prefaudit.train.presets import preset_texts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_train_loop import SMALL, toy  # noqa: E402

SCRIPT = textwrap.dedent("""
    import sys
    import polars as pl
    import torch.distributed as dist
    from prefaudit.data.preference_set import PreferenceSet
    from prefaudit.train import train
    data = PreferenceSet(pl.read_parquet(sys.argv[1]))
    res = train(data, PreferenceSet(pl.read_parquet(sys.argv[2])), model=sys.argv[3], out=sys.argv[4], steps=5,
                batch_size=8, max_length=64, lr=1e-3, save_model=False)
""")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_two_gloo_processes_match_one(tmp_path):
    data, held_out = toy(40), toy(12, seed=1)
    model_dir = build_tiny(tmp_path / "model", preset_texts(data), seed=0, **SMALL)
    data.df.write_parquet(tmp_path / "train.parquet")
    held_out.df.write_parquet(tmp_path / "eval.parquet")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path / "train.parquet"), str(tmp_path / "eval.parquet"), str(model_dir), str(tmp_path / "ddp")]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2
    single = train(data, held_out, model=str(model_dir), steps=5, batch_size=8, max_length=64, lr=1e-3,
                   save_model=False)
    assert len(ddp) == 5
    for a, b in zip(ddp, single.metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], abs=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
        assert a["tokens"] == b["tokens"]
    assert ddp[-1]["loss"] < ddp[0]["loss"]  # it trained
    ev, ev1 = summary["eval"], single.summary["eval"]
    assert ev["n"] == ev1["n"] == 12
    assert ev["mean_margin"] == pytest.approx(ev1["mean_margin"], abs=1e-4)
