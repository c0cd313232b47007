"""prefaudit.train.sft: the recorded loss is the token-mean NLL of the responses (checked against an
independent Hugging Face forward with the prompt masked), it goes down, and label-free targets."""

from __future__ import annotations

import pytest
import torch

from prefaudit import synth
from prefaudit.errors import ConfigError
from prefaudit.train import sft
from prefaudit.train.warmup import sft_targets

TINY = {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 512}


@pytest.fixture(scope="module")
def pairs():
    return synth.make(n_pairs=48, n_eval=0, n_target=0, seed=5).pairs


def _direct_nll(model, tok, data, responses: str = "chosen") -> float:
    """Token-mean NLL of prompt -> response + eos over ``data``, from the model's own loss (labels)."""
    model.eval()
    total, count = 0.0, 0
    df = sft_targets(data, responses).df
    with torch.no_grad():
        for prompt, response in zip(df["prompt"], df["chosen"], strict=True):
            p_ids = tok(prompt)["input_ids"]
            ids = tok(prompt + response + tok.eos_token)["input_ids"]
            assert ids[:len(p_ids)] == p_ids  # the synthetic prompts end on a token boundary
            labels = torch.tensor([-100] * len(p_ids) + ids[len(p_ids):])
            out = model(input_ids=torch.tensor([ids]), labels=labels[None])
            n = len(ids) - len(p_ids)
            total, count = total + float(out.loss) * n, count + n
    return total / count


def test_first_record_is_the_direct_nll_and_training_lowers_it(pairs, tmp_path):
    from prefaudit.train import load_model

    # One step over every response at once: the recorded NLL is the start model's, on all of them.
    one = sft(pairs, model="tiny", out=tmp_path / "a", steps=1, lr=0.0, batch_size=len(pairs), max_length=512,
              preset=TINY)
    init, tok = load_model(tmp_path / "a" / "init_model")
    before = _direct_nll(init, tok, pairs)
    assert one.metrics[0]["kind"] == "sft"
    assert one.metrics[0]["nll"] == pytest.approx(before, rel=1e-4)
    assert _direct_nll(one.model, tok, pairs) == pytest.approx(before, rel=1e-5)  # lr 0 changes nothing

    res = sft(pairs, model=str(tmp_path / "a" / "init_model"), out=tmp_path / "b", steps=40, lr=3e-3,
              batch_size=8, max_length=512)
    after = _direct_nll(res.model, res.tokenizer, pairs)
    assert after < before - 1.0, (before, after)
    reloaded, _ = load_model(res.model_dir)
    assert _direct_nll(reloaded, tok, pairs) == pytest.approx(after, rel=1e-5)
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 40


def test_label_free_targets_hold_both_responses(pairs):
    both = sft_targets(pairs, "both").df
    trainable = pairs.trainable().df
    assert both.height == 2 * trainable.height
    assert sorted(both["chosen"].to_list()) == sorted(trainable["chosen"].to_list() + trainable["rejected"].to_list())
    with pytest.raises(ConfigError):
        sft_targets(pairs, "rejected")
    with pytest.raises(ConfigError):
        sft(pairs, model="tiny", out=None, steps=1)
