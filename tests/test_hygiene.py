"""Hygiene: every check has planted cases (and a clean control)."""

from __future__ import annotations

import polars as pl

from prefaudit.analyzers.hygiene import contradiction_groups


def _df(rows: list[tuple[str, str, str]], ties: list[bool] | None = None) -> pl.DataFrame:
    return pl.DataFrame({
        "pair_id": [f"p{i}" for i in range(len(rows))],
        "prompt": [r[0] for r in rows], "chosen": [r[1] for r in rows], "rejected": [r[2] for r in rows],
        "tie": ties or [False] * len(rows)})


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
