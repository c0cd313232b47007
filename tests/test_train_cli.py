"""``prefaudit train``: files written, summary keys (DESIGN.md), resume flag, exit code 2 on bad options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from prefaudit.cli import main
from prefaudit.train import build_tiny
from prefaudit.train.presets import preset_texts

sys.path.insert(0, str(Path(__file__).parent))
from test_train_loop import SMALL, toy  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, held_out = toy(24), toy(8, seed=1)
    data.write(root / "pairs.jsonl")
    held_out.write(root / "eval.jsonl")
    model = build_tiny(root / "model", preset_texts(data), seed=0, **SMALL)
    return root, model


def test_train_command_writes_metrics_summary_and_model(files, capsys):
    root, model = files
    out = root / "run"
    code = run(["train", str(root / "pairs.jsonl"), "--model", str(model), "--loss", "ipo", "--beta", "0.5",
                "--batch-size", "4", "--max-length", "64", "--steps", "4", "--lr", "1e-3", "--out", str(out),
                "--eval", str(root / "eval.jsonl"), "--seed", "2", "--save-every", "2"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"steps", "wall_s", "steps_per_s", "tokens_per_s", "final_loss", "eval"} <= set(summary)
    assert summary["steps"] == 4 and summary["config"]["loss"] == "ipo" and summary["config"]["seed"] == 2
    assert {"preference_accuracy", "mean_margin"} <= set(summary["eval"]) and summary["eval"]["n"] == 8
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4
    assert (out / "model" / "config.json").is_file() and (out / "eval_pairs.parquet").is_file()
    assert "final loss" in capsys.readouterr().out
    # --resume on a finished run (no checkpoint left) starts over and gives the same run
    assert run(["train", str(root / "pairs.jsonl"), "--model", str(model), "--loss", "ipo", "--beta", "0.5",
                "--batch-size", "4", "--max-length", "64", "--steps", "4", "--lr", "1e-3", "--out", str(out),
                "--seed", "2", "--resume", "-q"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["final_loss"] == summary["final_loss"] and again["resumed_from"] is None


@pytest.mark.parametrize(("extra", "message"), [
    (["--loss", "dpo++"], "--loss dpo++"),
    (["--model", "no/such/folder"], "no such folder"),
    (["--batch-size", "3", "--grad-accum", "2"], "multiple of"),
])
def test_bad_options_exit_2(files, capsys, extra, message):
    root, model = files
    args = ["train", str(root / "pairs.jsonl"), "--model", str(model), "--steps", "1", "--out", str(root / "bad")]
    assert run(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
