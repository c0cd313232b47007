"""Coverage benchmark: choose the gap-cluster defaults R (gap_ratio) and m (gap_min_train) and the
k-selection floor (k_min) from synthetic data with a withheld topic, checked on real prompts.

Synthetic: ``prefaudit.synth.make`` with generator defaults (2,000 pairs, 400 target prompts of which
25% from the withheld topic) over several seeds, each withholding a different topic. Real: 1,000
hh-rlhf prompts as training data against a target of 200 held-out hh prompts and 200 LLMBar
instructions (LLMBar plays the withheld "topic"). For every setting: recall (share of the withheld
target prompts that land in gap clusters), false gaps (share of in-distribution target prompts in gap
clusters), OOD flag rates, and the number of clusters chosen.

    nice .venv/bin/python benchmarks/bench_coverage.py [--seeds 5] [--skip-real]

Embeddings are cached (PREFAUDIT_CACHE_DIR, default ~/.cache/prefaudit), so a second run is fast.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import time
from pathlib import Path

import numpy as np
import polars as pl

from prefaudit import synth
from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.coverage import CoverageAnalyzer, gap_mask
from prefaudit.data.load import load
from prefaudit.data.preference_set import PreferenceSet
from prefaudit.embed import Embedder

RATIOS = (1.5, 2.0, 3.0, 4.0)
MIN_TRAIN = (1, 3, 5, 10, 20)
K_MINS = (2, 4, 6)
SHARED = Path(os.environ.get("PREFAUDIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def scenarios(n_seeds: int, real: bool) -> list[tuple[str, PreferenceSet, pl.DataFrame, np.ndarray]]:
    """(name, training pairs, target frame, is-withheld mask of the target rows)."""
    out = []
    topics = synth.TOPIC_NAMES
    for seed in range(n_seeds):
        withheld = topics[(3 * seed + 7) % len(topics)] if seed else synth.DEFAULT_WITHHELD[0]
        s = synth.make(seed=seed, withheld_topics=(withheld,))
        out.append((f"synth seed={seed} withheld={withheld}", s.pairs, s.target, s.target["withheld"].to_numpy()))
    if real and SHARED.exists():
        hh = load(SHARED / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz").df
        lb = pl.concat([load(p).df.select("prompt") for p in sorted(glob.glob(str(SHARED / "llmbar" / "LLMBar_*.json")))])
        lb = lb["prompt"].unique(maintain_order=True)
        for seed in range(min(n_seeds, 3)):
            df = hh.sample(fraction=1.0, shuffle=True, seed=seed)
            held = df.slice(1000, 200)["prompt"]
            other = lb.sample(200, seed=seed)
            target = pl.DataFrame({"prompt": pl.concat([held, other])})
            mask = np.r_[np.zeros(held.len(), bool), np.ones(other.len(), bool)]
            out.append((f"real hh vs LLMBar split={seed}", PreferenceSet(df.head(1000)), target, mask))
    return out


def evaluate(res, withheld: np.ndarray) -> dict[str, float]:
    t = res.details["target"]
    cl = res.details["clusters"]
    lab = t["cluster"].to_numpy()
    ood = t["ood_flag"].to_numpy()
    row = {"k": cl.height, "ood_withheld": ood[withheld].mean(), "ood_in": ood[~withheld].mean()}
    for r, m in itertools.product(RATIOS, MIN_TRAIN):
        gap = gap_mask(cl["n_train"].to_numpy(), cl["n_train_prompts"].to_numpy(), cl["n_target"].to_numpy(),
                       ratio=r, min_train=m)
        in_gap = gap[lab]
        row[f"recall R={r:g} m={m}"] = in_gap[withheld].mean()
        row[f"false R={r:g} m={m}"] = in_gap[~withheld].mean()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    emb = Embedder()
    rows = []
    for name, pairs, target, withheld in scenarios(args.seeds, not args.skip_real):
        emb.encode(pairs.df["prompt"].unique().to_list())
        emb.encode(target["prompt"].unique().to_list())
        for k_min in K_MINS:
            t0 = time.perf_counter()
            res = CoverageAnalyzer(k_min=k_min).run(pairs, AuditContext(embedder=emb, target=target))
            rows.append({"scenario": name, "k_min": k_min, "seconds": time.perf_counter() - t0,
                         **evaluate(res, withheld)})
            print(f"{name:45s} k_min={k_min} k={rows[-1]['k']:3d} ood withheld={rows[-1]['ood_withheld']:.3f} "
                  f"in={rows[-1]['ood_in']:.3f} recall(2,5)={rows[-1]['recall R=2 m=5']:.3f} "
                  f"false(2,5)={rows[-1]['false R=2 m=5']:.3f} {rows[-1]['seconds']:.1f}s", flush=True)
    df = pl.DataFrame(rows)
    df = df.with_columns(pl.col("scenario").str.starts_with("synth").alias("synthetic"))
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(10)
    grid = []
    for (synthetic, k_min), g in df.group_by(["synthetic", "k_min"], maintain_order=True):
        for r, m in itertools.product(RATIOS, MIN_TRAIN):
            rec, fal = g[f"recall R={r:g} m={m}"], g[f"false R={r:g} m={m}"]
            grid.append({"data": "synthetic" if synthetic else "real", "k_min": k_min, "R": r, "m": m,
                         "recall_mean": rec.mean(), "recall_min": rec.min(), "false_mean": fal.mean(),
                         "false_max": fal.max()})
    grid = pl.DataFrame(grid)
    print("\nGap rule grid (recall = withheld target prompts in gap clusters; false = in-distribution ones)")
    print(grid.sort("data", "k_min", "R", "m"))
    print("\nPer scenario (k, OOD rates)")
    print(df.group_by("synthetic", "k_min").agg(pl.col("k").mean().alias("k_mean"), pl.col("k").min().alias("k_min_seen"),
                                                pl.col("k").max().alias("k_max_seen"),
                                                pl.col("ood_withheld").min(), pl.col("ood_in").max(),
                                                pl.col("seconds").mean()).sort("synthetic", "k_min"))


if __name__ == "__main__":
    main()
