"""Hygiene's shortcuts at scale give exactly what the plain definitions give.

The reference is computed on the normalised strings themselves (Python grouping, no hashes, no
pruning), on random pairs built to collide: a tiny vocabulary, case, punctuation and spacing variants,
shared prompts, swapped responses, long shared openings (past :data:`PREFIX_CHARS`) and code fences.
"""

from __future__ import annotations

import random

import polars as pl
import pytest

from prefaudit.analyzers.hygiene import (
    PREFIX_CHARS,
    contradiction_groups,
    duplicate_table,
    hygiene_table,
    normalize_expr,
    truncated_expr,
    truncated_looking,
)

WORDS = ["the", "cat", "Sat", "on", "MAT", "a", "dog", "ran", "1.", "-", "http://x.io", "```", "é", "#"]
OPENING = "This is a long shared opening that runs past the prefix the fast path normalises first " * 2


def _text(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, 12))]
    seps = [rng.choice([" ", "  ", ", ", "! ", "\n", "\t", " - ", "\n    "]) for _ in words]
    body = "".join(w + s for w, s in zip(words, seps, strict=True))
    body = rng.choice([body, body.upper(), body.title(), f"  {body}. "])
    return (OPENING + body) if rng.random() < 0.3 else body


def _pairs(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    prompts = [_text(rng) for _ in range(max(2, n // 4))]
    rows = []
    for _ in range(n):
        c, r = _text(rng), _text(rng)
        roll = rng.random()
        if roll < 0.15 and rows:  # a (variant) copy or a swapped copy of an earlier pair
            p0, c0, r0 = rng.choice(rows)
            c, r = (c0, r0) if rng.random() < 0.5 else (r0, c0)
            c = c.upper() if rng.random() < 0.5 else c + "!"
            rows.append((p0.lower(), c, r))
            continue
        if roll < 0.3:
            r = c.replace(" ", "  ").upper() + "?"  # the same response after normalisation
        rows.append((rng.choice(prompts), c, r))
    return pl.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "prompt": [x[0] for x in rows],
                         "chosen": [x[1] for x in rows], "rejected": [x[2] for x in rows],
                         "tie": [False] * n})


def _normalised(df: pl.DataFrame) -> list[tuple[str, str, str]]:
    t = df.select(normalize_expr("prompt").alias("p"), normalize_expr("chosen").alias("c"),
                  normalize_expr("rejected").alias("r"))
    return list(t.iter_rows())


@pytest.mark.parametrize("seed", range(4))
def test_identical_duplicates_and_contradictions_match_the_definitions(seed: int) -> None:
    df = _pairs(400, seed)
    norm = _normalised(df)
    raw = list(zip(df["prompt"], df["chosen"], df["rejected"], strict=True))
    seen_raw: set[tuple[str, str, str]] = set()
    seen_norm: set[tuple[str, str, str]] = set()
    exact, normalized = [], []
    for k, n in zip(raw, norm, strict=True):
        exact.append(k in seen_raw)
        normalized.append(n in seen_norm)
        seen_raw.add(k)
        seen_norm.add(n)
    first: dict[tuple[str, str, str], int] = {}
    for i, n in enumerate(norm):
        first.setdefault(n, i)
    copies = {n for n in norm if norm.count(n) > 1}
    group_of = {n: g for g, n in enumerate(sorted(copies, key=first.__getitem__))}
    ids = df["pair_id"].to_list()
    orient: dict[tuple[str, str, str], set[bool]] = {}
    for p, c, r in norm:
        if c != r:
            orient.setdefault((p, min(c, r), max(c, r)), set()).add(c < r)
    contradiction = [c != r and len(orient[(p, min(c, r), max(c, r))]) == 2 for p, c, r in norm]

    t = hygiene_table(df, near_duplicates=False)
    assert t["identical_pair"].to_list() == [c == r for _, c, r in norm]
    assert sum(c == r for _, c, r in norm) > 20  # the data does exercise the test
    d = duplicate_table(df)
    assert d["exact_duplicate"].to_list() == exact
    assert d["normalized_duplicate"].to_list() == normalized
    assert sum(normalized) > sum(exact) > 0
    assert d["duplicate_group"].to_list() == [group_of.get(n) for n in norm]
    assert d["duplicate_of"].to_list() == [ids[first[n]] if first[n] != i else None for i, n in enumerate(norm)]
    got = set(contradiction_groups(df)["pair_id"].to_list())
    assert got == {pid for pid, flag in zip(df["pair_id"], contradiction, strict=True) if flag}
    assert got


def test_identical_responses_sharing_a_long_opening() -> None:
    """Responses equal in their first PREFIX_CHARS characters but not after: only the truly equal pair."""
    c = "x" * PREFIX_CHARS + " and then something"
    df = pl.DataFrame({"pair_id": ["a", "b"], "prompt": ["p", "q"], "chosen": [c, c],
                       "rejected": [c.upper() + "!", c + " else"], "tie": [False, False]})
    assert hygiene_table(df, near_duplicates=False)["identical_pair"].to_list() == [True, False]


@pytest.mark.parametrize("seed", range(3))
def test_truncated_looking_equals_truncated_expr(seed: int) -> None:
    rng = random.Random(seed)
    texts = [_text(rng) for _ in range(600)] + [None, "", "word " * 9, "word " * 9 + "\n- item", "```"]
    df = pl.DataFrame({"t": texts}, schema={"t": pl.Utf8})
    want = df.select(truncated_expr("t"))["t"].to_list()
    assert truncated_looking(df, "t").to_list() == want
    assert 0 < sum(want) < len(want)
