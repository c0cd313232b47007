"""Truncation: the shared rule (trainer = audit), the analyzer on planted pairs, and hh-rlhf at 256 tokens."""

from __future__ import annotations

import polars as pl
import pytest

from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.truncation import TinyTokenizer, TruncationAnalyzer, load_tokenizer
from prefaudit.data.preference_set import PreferenceSet
from prefaudit.train import tokenize_pairs, train, train_tokenizer, truncate_pair
from prefaudit.train.presets import preset_texts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_keep_start_rule():
    t = truncate_pair([1, 2, 3], [4, 5, 6, 7], [4, 5, 8], 5, "keep_start")
    assert (t.prompt, t.chosen, t.rejected) == ([1, 2, 3], [4, 5], [4, 5])
    assert (t.lost_prompt, t.lost_chosen, t.lost_rejected) == (0, 2, 1)
    assert t.truncated and t.damaged and not t.empty
    long_prompt = truncate_pair(list(range(10)), [1], [2], 6, "keep_start")
    assert long_prompt.prompt == list(range(6)) and long_prompt.empty and long_prompt.damaged
    fits = truncate_pair([1], [2, 3], [4], 3, "keep_start")
    assert not fits.truncated and not fits.damaged


def test_keep_end_prompt_rule():
    # prompt cut from its start, only as much as needed, never below max_prompt_length
    t = truncate_pair(list(range(10)), [20, 21], [30], 8, "keep_end_prompt")
    assert t.prompt == list(range(4, 10)) and t.chosen == [20, 21] and t.rejected == [30]
    t = truncate_pair(list(range(10)), list(range(20, 30)), [30], 8, "keep_end_prompt")
    assert t.prompt == [6, 7, 8, 9] and t.chosen == [20, 21, 22, 23]  # floor: 8 // 2 tokens of prompt
    t = truncate_pair(list(range(10)), list(range(20, 30)), [30], 8, "keep_end_prompt", max_prompt_length=2)
    assert t.prompt == [8, 9] and len(t.chosen) == 6
    short_prompt = truncate_pair([1, 2], list(range(20, 30)), [3], 8, "keep_end_prompt")
    assert short_prompt.prompt == [1, 2] and len(short_prompt.chosen) == 6
    identical = truncate_pair([1], [2, 3], [2, 3], 2, "keep_end_prompt")
    assert not identical.damaged  # identical before truncation: hygiene's business, not truncation's
    with pytest.raises(ValueError, match="truncation mode"):
        truncate_pair([1], [2], [3], 4, "middle")


@pytest.fixture(scope="module")
def tok():
    texts = ["Human: hello there, how are you?\n\nAssistant: I am fine, thanks for asking."] * 5
    return train_tokenizer(texts + [" ".join(f"word{i}" for i in range(200))], vocab_size=400, min_frequency=1)


def test_tokenize_pairs_like_trl(tok):
    prompts, chosen, rejected = ["Human: hi\n\nAssistant:"], [" hello"], [" go away" + tok.eos_token]
    (p,) = tokenize_pairs(tok, prompts, chosen, rejected)
    assert p.prompt + p.chosen == tok(prompts[0] + chosen[0] + tok.eos_token)["input_ids"]
    assert p.prompt + p.rejected == tok(prompts[0] + rejected[0])["input_ids"]  # EOS not doubled
    assert p.chosen[-1] == p.rejected[-1] == tok.eos_token_id
    assert p.prompt == tok(prompts[0])["input_ids"]


def planted() -> PreferenceSet:
    shared = " ".join(f"word{i}" for i in range(60))
    rows = [
        ("short", "Human: hi\n\nAssistant:", " hello", " bye"),
        ("late_difference", "Human: hi\n\nAssistant:", f" {shared} good", f" {shared} bad"),
        ("long_prompt", "Human: " + " ".join(f"word{i}" for i in range(100, 160)) + "\n\nAssistant:", " yes", " no"),
        ("identical", "Human: hi\n\nAssistant:", " same", " same"),
    ]
    return PreferenceSet(pl.DataFrame([dict(zip(("pair_id", "prompt", "chosen", "rejected"), r, strict=True))
                                       for r in rows]))


@pytest.mark.parametrize(("mode", "damaged"), [("keep_start", {"late_difference", "long_prompt"}),
                                               ("keep_end_prompt", {"late_difference"})])
def test_analyzer_on_planted_pairs(tok, mode, damaged):
    data = planted()
    res = TruncationAnalyzer(mode=mode).run(data, AuditContext(tokenizer=tok, max_length=40))
    p = {r["pair_id"]: r for r in res.pairs.to_dicts()}
    assert {k for k, r in p.items() if r["truncation_flag"]} == damaged
    assert p["short"]["truncation_score"] == 1.0 and not p["short"]["truncation_truncated"]
    assert all(p[k]["truncation_score"] == 0.0 for k in damaged)
    assert p["identical"]["truncation_flag"] is False
    m = res.metrics
    assert m["truncation.damaged_share"].value == pytest.approx(len(damaged) / 4)
    assert m["truncation.truncated_share"].value == pytest.approx(2 / 4)
    assert m["truncation.damaged_share"].ci is not None and m["truncation.damaged_share"].n == 4
    if mode == "keep_end_prompt":
        assert 0 < p["long_prompt"]["truncation_score"] <= 1 and p["long_prompt"]["truncation_kept_chosen"] > 0
    # the budget sweep agrees with the direct computation at the audited budget
    row = res.details["by_max_length"].filter(pl.col("max_length") == 40).row(0, named=True)
    assert row["damaged_share"] == m["truncation.damaged_share"].value
    assert row["truncated_share"] == m["truncation.truncated_share"].value
    assert set(res.details["examples"]["pair_id"]) == damaged


def test_analyzer_skips_without_tokenizer():
    res = TruncationAnalyzer().run(planted(), AuditContext())
    assert res.skipped and "tokenizer" in res.skipped and res.pairs is None


def test_trainer_drops_and_counts_what_the_audit_flags(tmp_path, tok):
    data = planted()
    folder = tmp_path / "m"
    from prefaudit.train import build_tiny

    build_tiny(folder, [], tokenizer=tok, n_layer=1, n_embd=32, n_head=2)
    audit = TruncationAnalyzer(mode="keep_start").run(data, AuditContext(tokenizer=tok, max_length=40))
    res = train(data, model=str(folder), steps=1, batch_size=3, max_length=40, truncation="keep_start",
                save_model=False)
    assert res.summary["pairs_dropped_no_response"] == int(audit.pairs["truncation_empty"].sum()) == 1
    kept = audit.pairs.filter(~pl.col("truncation_empty"))
    assert res.summary["pairs_damaged_by_truncation"] == int(kept["truncation_flag"].sum()) == 1


def test_tiny_tokenizer_is_the_trainers(tmp_path):
    data = planted()
    assert isinstance(load_tokenizer("tiny"), TinyTokenizer)
    with pytest.raises(Exception, match="no such folder"):
        load_tokenizer(tmp_path / "missing")
    train(data, steps=1, batch_size=2, max_length=40, out=tmp_path, save_model=False,
          preset={"n_layer": 1, "n_embd": 32, "n_head": 2})
    trainer_tok = load_tokenizer(tmp_path / "init_model")
    assert TinyTokenizer().build(data).get_vocab() == trainer_tok.get_vocab()


def _direct_counts(tok, df: pl.DataFrame, max_length: int) -> dict[str, int]:
    """Count truncated / damaged pairs with plain tokenizer calls, for both modes."""
    eos = tok.eos_token
    counts = {"truncated": 0, "keep_start_damaged": 0, "keep_start_empty": 0, "keep_end_prompt_damaged": 0}
    prompts, chosen, rejected = (df[k].to_list() for k in ("prompt", "chosen", "rejected"))
    enc_p = tok(prompts)["input_ids"]
    enc_c = tok([p + c + eos for p, c in zip(prompts, chosen, strict=True)])["input_ids"]
    enc_r = tok([p + r + eos for p, r in zip(prompts, rejected, strict=True)])["input_ids"]
    for p, c, r in zip(enc_p, enc_c, enc_r, strict=True):
        n = 0
        while n < min(len(p), len(c), len(r)) and p[n] == c[n] == r[n]:
            n += 1
        counts["truncated"] += max(len(c), len(r)) > max_length
        counts["keep_start_damaged"] += c != r and c[:max_length] == r[:max_length]
        counts["keep_start_empty"] += n >= max_length
        longest = max(len(c), len(r)) - n
        keep = n if n + longest <= max_length else max(max_length - longest, min(n, max_length // 2))
        budget = max_length - keep
        counts["keep_end_prompt_damaged"] += c != r and c[n:][:budget] == r[n:][:budget]
    return counts


@pytest.mark.realdata
def test_hh_rlhf_at_256_tokens(hh_path):
    from prefaudit.data.load import load

    data = load(hh_path)
    tok = train_tokenizer(preset_texts(data.trainable()))  # the tiny preset's tokenizer, built here
    direct = _direct_counts(tok, data.df, 256)
    n = len(data)
    start = TruncationAnalyzer(mode="keep_start").run(data, AuditContext(tokenizer=tok, max_length=256)).metrics
    end = TruncationAnalyzer().run(data, AuditContext(tokenizer=tok, max_length=256)).metrics
    shares = {"truncated": start["truncation.truncated_share"].value,
              "damaged (keep_start)": start["truncation.damaged_share"].value,
              "damaged (keep_end_prompt)": end["truncation.damaged_share"].value}
    print(f"hh-rlhf harmless test, {n} pairs, max_length 256: {shares}")
    assert start["truncation.truncated_share"].value == end["truncation.truncated_share"].value \
        == pytest.approx(direct["truncated"] / n)
    assert start["truncation.damaged_share"].value == pytest.approx(direct["keep_start_damaged"] / n)
    assert start["truncation.empty_share"].value == pytest.approx(direct["keep_start_empty"] / n)
    assert end["truncation.damaged_share"].value == pytest.approx(direct["keep_end_prompt_damaged"] / n)
    # what the numbers say: a quarter of the pairs are cut at 256 tokens; trl's keep_start rule leaves
    # about one pair in seven with no response token, keeping the end of the prompt leaves (almost) none
    assert 0.15 < shares["truncated"] < 0.4
    assert 0.05 < shares["damaged (keep_start)"] < 0.25
    assert shares["damaged (keep_end_prompt)"] < 0.01
