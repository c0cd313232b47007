"""Hygiene: every check has planted cases (and clean controls), checked against the planted truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.hygiene import (
    HygieneAnalyzer,
    contradiction_groups,
    duplicate_table,
    eval_leakage,
    hygiene_table,
    near_duplicate_prompts,
    normalize_expr,
    truncated_expr,
)
from prefaudit.data.preference_set import PreferenceSet

LONG = ("I am planning a two week trip through the mountains of northern Italy next spring and would like "
        "advice on which small villages to stay in, how to get between them by train or bus, and what to pack")


def _df(rows: list[tuple[str, str, str]], ties: list[bool] | None = None) -> pl.DataFrame:
    return pl.DataFrame({
        "pair_id": [f"p{i}" for i in range(len(rows))],
        "prompt": [r[0] for r in rows], "chosen": [r[1] for r in rows], "rejected": [r[2] for r in rows],
        "tie": ties or [False] * len(rows)})


def _ids(t: pl.DataFrame, col: str) -> set[str]:
    return set(t.filter(pl.col(col))["pair_id"].to_list())


def test_normalize_expr() -> None:
    s = pl.DataFrame({"t": ["  Hello,   World!! ", "hello world", "HELLO\nworld.", "hello-world", "hello\u00a0\tworld",
                            "héllo"]})
    out = s.select(normalize_expr("t"))["t"].to_list()
    assert out[:5] == ["hello world"] * 5
    assert out[5] == "héllo"


def test_contradiction_groups_planted() -> None:
    df = _df([
        ("What is 2+2?", "4", "5"),        # p0 \
        ("what is 2+2", "5", "4."),        # p1  > group 0 (normalised prompt, swapped)
        ("What is 2+2?", "4", "5"),        # p2 / same orientation as p0: still in the group
        ("Capital of France?", "Paris", "Lyon"),   # p3: consistent duplicate, not a contradiction
        ("Capital of France?", "Paris", "Lyon"),   # p4
        ("Other prompt", "5", "4"),        # p5: same responses, different prompt -> no
        ("Tie prompt", "x", "y"),          # p6 \ a tie never contradicts
        ("Tie prompt", "y", "x"),          # p7 /
        ("Second", "alpha", "beta"),       # p8 \ group 1
        ("Second", "beta", "alpha"),       # p9 /
        ("Same", "z", "z"),                # p10 identical responses: never a contradiction
        ("Same", "z", "z"),
    ], ties=[False] * 6 + [True, False] + [False] * 4)
    g = contradiction_groups(df)
    assert g.columns == ["pair_id", "contradiction_group"]
    got = dict(zip(g["pair_id"].to_list(), g["contradiction_group"].to_list(), strict=True))
    assert got == {"p0": 0, "p1": 0, "p2": 0, "p8": 1, "p9": 1}


def test_contradiction_groups_none() -> None:
    g = contradiction_groups(_df([("a", "b", "c"), ("a", "b", "c"), ("a", "b", "d")]))
    assert g.height == 0 and g.schema["contradiction_group"] == pl.Int64


def test_duplicates_planted() -> None:
    df = _df([
        ("Q one", "Answer A.", "Answer B."),    # p0 first copy
        ("Q one", "Answer A.", "Answer B."),    # p1 exact copy of p0
        ("q  ONE", "answer a", "answer b!"),    # p2 normalised copy of p0
        ("Q one", "Answer B.", "Answer A."),    # p3 swapped: not a duplicate (a contradiction)
        ("Q two", "Answer A.", "Answer B."),    # p4 other prompt
        ("Q two", "Answer A.", "Answer B."),    # p5 exact copy of p4
    ])
    t = duplicate_table(df)
    assert _ids(t, "exact_duplicate") == {"p1", "p5"}
    assert _ids(t, "normalized_duplicate") == {"p1", "p2", "p5"}
    assert t["duplicate_of"].to_list() == [None, "p0", "p0", None, None, "p4"]
    assert t["duplicate_group"].to_list() == [0, 0, 0, None, 1, 1]


def test_truncated_expr_planted() -> None:
    cut = [
        "The best way to store fresh basil is to keep the stems in a glass of water and",
        "There are several reasons why the sky looks blue during the day, the main one being",
        "Here is a function that does it:\n```python\ndef f(x):\n    return x",   # unclosed fence
        "You could try several things to fix the leak, such as replacing the washer, tightening the nut,",
    ]
    fine = [
        "Paris", "Yes", "It depends on the model.",  # short answers are never flagged
        "The best way to store fresh basil is to keep the stems in a glass of water.",
        "Is there anything else you would like to know about the trip?",
        "Some options you could consider for the weekend trip:\n- hiking the ridge\n- visiting the lake",
        "Run this:\n```bash\nls -la\n```",
        "I am not sure about that, and I would rather not guess about it...",
        "You can read more about the topic on the official site at https://example.org/docs/page",
        "Indent the body of the function by four spaces, like this:\n\ndef f(x):\n    return x",
        "The options that work best for a small flat with little light are:\n1. a snake plant",
    ]
    s = pl.DataFrame({"t": cut + fine})
    got = s.select(truncated_expr("t"))["t"].to_list()
    assert got == [True] * len(cut) + [False] * len(fine)


def test_near_duplicate_prompts_minhash() -> None:
    variant = LONG.replace("northern Italy", "northern italy,").replace("what to pack", "what to bring")
    other = ("Write a short poem about the ocean at night, with the moon reflecting on the waves and a "
             "lighthouse blinking in the distance while sailors sleep below deck")
    df = _df([(LONG, "a", "b"), (LONG, "c", "d"), (variant, "a", "b"), (other, "a", "b"),
              ("hi", "a", "b"), ("hello", "a", "b")])
    t = near_duplicate_prompts(df)
    assert _ids(t, "near_duplicate_prompt") == {"p0", "p1", "p2"}  # same-prompt p0/p1 only via p2
    assert t["near_duplicate_of"].to_list()[:3] == ["p2", "p2", "p0"]


class _PlantedEmbedder:
    """Stand-in embedder: texts map to planted unit vectors (to test the cosine path alone)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        x = np.stack([self.vectors[t] for t in texts]).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_near_duplicate_prompts_embeddings() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 16))
    vecs = {"A": base[0], "A2": base[0] + 0.05 * rng.normal(size=16), "B": base[1], "C": base[2],
            "C2": base[2] * 0.8 + base[3] * 0.6}  # cosine ~0.8 with C: below 0.95
    emb = _PlantedEmbedder(vecs)
    df = _df([("A", "x", "y"), ("A2", "x", "y"), ("B", "x", "y"), ("C", "x", "y"), ("C2", "x", "y")])
    t = near_duplicate_prompts(df, embedder=emb, cosine_threshold=0.95)
    assert _ids(t, "near_duplicate_prompt") == {"p0", "p1"}


def test_eval_leakage_exact_and_near() -> None:
    variant = LONG.replace("two week", "three week")
    df = _df([("What is the capital of France?", "a", "b"), (variant, "a", "b"),
              ("Tell me a joke about cats", "a", "b"), ("tell me a joke about cats!", "c", "d")])
    evp = ["what is the capital of FRANCE", LONG, "Something else entirely, nothing like the rest"]
    t, n_leaked = eval_leakage(df, evp)
    assert t["leak_kind"].to_list() == ["exact", "near", None, None]
    assert n_leaked == 2


def test_hygiene_analyzer_planted_metrics_and_scores() -> None:
    rows = [
        ("Q0", "Good answer.", "Bad answer."),          # p0 clean
        ("Q0", "Good answer.", "Bad answer."),          # p1 exact duplicate
        ("q0", "good answer", "bad answer"),            # p2 normalised duplicate
        ("Q3", "Same text.", "same text"),              # p3 identical pair
        ("Q4", "", "Something."),                       # p4 empty response
        ("Q5", "One.", "Two."),                         # p5 \ contradiction
        ("Q5", "Two.", "One."),                         # p6 /
        ("Q7", "The answer to your question about the garden is that you should water the", "No."),
        ("What is the capital of France?", "Paris.", "Lyon."),  # p8 eval leak
        ("Q9", "Fine.", "Also fine."),                  # p9 clean
    ]
    data = PreferenceSet(_df(rows))
    ctx = AuditContext(eval=PreferenceSet(_df([("what is the capital of france", "x", "y")])))
    res = HygieneAnalyzer().run(data, ctx)
    m = res.metrics
    n = len(rows)
    assert m["hygiene.exact_duplicate_share"].value == pytest.approx(1 / n)
    assert m["hygiene.normalized_duplicate_share"].value == pytest.approx(2 / n)
    assert m["hygiene.identical_pair_share"].value == pytest.approx(1 / n)
    assert m["hygiene.empty_response_share"].value == pytest.approx(1 / n)
    assert m["hygiene.contradiction_share"].value == pytest.approx(2 / n)
    assert m["hygiene.truncated_response_share"].value == pytest.approx(1 / n)
    assert m["hygiene.eval_leakage_share"].value == pytest.approx(1 / n)
    assert m["hygiene.eval_prompts_leaked_share"].value == 1.0
    assert m["hygiene.near_duplicate_prompt_share"].value == 0.0
    lo, hi = m["hygiene.exact_duplicate_share"].ci
    assert lo < 0.1 < hi and m["hygiene.exact_duplicate_share"].n == n
    p = res.pairs
    assert p.columns[:3] == ["pair_id", "hygiene_score", "hygiene_flag"]
    assert p["hygiene_flag"].to_list() == [False] + [True] * 8 + [False]
    assert p["hygiene_score"][0] == 1.0 and p["hygiene_score"][9] == 1.0
    assert p["hygiene_score"][7] == 0.5  # truncated-looking only
    assert p["hygiene_reasons"][1] == "exact_duplicate;normalized_duplicate"
    assert p["hygiene_reasons"][5] == "contradiction" and p["hygiene_reasons"][0] == ""
    assert p["hygiene_contradiction_group"].to_list()[5:7] == [0, 0]
    assert p["hygiene_duplicate_of"].to_list()[:3] == [None, "p0", "p0"]
    assert p["hygiene_eval_leakage"].to_list() == [False] * 8 + [True, False]
    ex = res.details["examples"]
    assert set(ex["reason"].to_list()) >= {"exact_duplicate", "contradiction", "eval_leakage"}
    # without an eval set the leakage metric is undefined, not zero
    m2 = HygieneAnalyzer().run(data).metrics
    assert m2["hygiene.eval_leakage_share"].value is None and "eval" in m2["hygiene.eval_leakage_share"].note


def test_hygiene_clean_set_is_clean() -> None:
    rows = [(f"Question number {i} about topic {i * 7}?", f"Answer {i} is right.", f"Answer {i} is wrong.")
            for i in range(50)]
    t = hygiene_table(_df(rows))
    assert not t["flag"].any() and (t["score"] == 1.0).all()


def test_hygiene_plot() -> None:
    res = HygieneAnalyzer().run(PreferenceSet(_df([("a", "b", "b"), ("a", "b", "c")])))
    fig = res.plot()
    assert fig.axes and fig.axes[0].get_title() == "hygiene"


def test_hygiene_real_hh_exact_duplicates_against_direct_count(hh_path) -> None:
    """On hh-rlhf, exact duplicate and identical-pair counts equal a direct Python count."""
    import gzip
    import json

    with gzip.open(hh_path, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for line in f]
    marker = "\n\nAssistant:"
    rows = []
    for r in raw:
        cut = r["chosen"].rfind(marker)
        cut_r = r["rejected"].rfind(marker)
        rows.append((r["chosen"][:cut], r["chosen"][cut + len(marker):].strip(),
                     r["rejected"][cut_r + len(marker):].strip()))
    seen: set[tuple[str, str, str]] = set()
    n_dup = 0
    for row in rows:
        n_dup += row in seen
        seen.add(row)
    n_ident = sum(c.strip() == r.strip() for _, c, r in rows)
    t = hygiene_table(_df(rows), near_duplicates=False)
    assert int(t["exact_duplicate"].sum()) == n_dup
    assert int(t["identical_pair"].sum()) >= n_ident  # normalised equality includes exact equality
    share = t["truncated_looking"].mean()
    assert 0.02 < share < 0.2  # hh-rlhf holds responses cut at a length limit


def test_minhash_near_duplicates_against_python_reference() -> None:
    """LSH finds every planted near duplicate; the reported Jaccard equals a direct set computation."""
    from prefaudit.analyzers.minhash import near_duplicate_pairs

    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(12, 60)))) for _ in range(3000)]
    planted = {}
    for k in range(100):
        words = texts[k].split()
        words[len(words) // 2] = "changed"
        texts.append(" ".join(words))
        planted[(k, len(texts) - 1)] = True

    def jac(a: str, b: str) -> float:
        def sh(x: str) -> set:
            w = x.split()
            return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}
        sa, sb = sh(a), sh(b)
        return len(sa & sb) / len(sa | sb)

    truth = {p for p in planted if jac(texts[p[0]], texts[p[1]]) >= 0.8}
    assert len(truth) > 50
    r = near_duplicate_pairs(texts, threshold=0.8)
    found = {(i, j): v for i, j, v in r.iter_rows()}
    assert truth <= set(found)
    assert set(found) <= set(planted)  # no random text pair is that similar
    for (i, j), v in found.items():
        assert v == pytest.approx(jac(texts[i], texts[j]))


def test_eval_leakage_with_embeddings() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(4, 16))
    vecs = {"train paraphrase": base[0] + 0.02 * rng.normal(size=16), "train other": base[1],
            "train exact": base[2], "eval original": base[0], "Train exact!": base[2], "eval far": base[3]}
    df = _df([("train paraphrase", "a", "b"), ("train other", "a", "b"), ("train exact", "a", "b")])
    t, n_leaked = eval_leakage(df, ["eval original", "Train exact!", "eval far"], embedder=_PlantedEmbedder(vecs))
    assert t["leak_kind"].to_list() == ["near", None, "exact"]
    assert n_leaked == 2
