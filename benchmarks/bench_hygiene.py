"""Hygiene and bias on the ``--no-embeddings`` fast path at scale (issue 4).

Times :class:`HygieneAnalyzer` (exact/normalised duplicates, contradictions, identical/empty/truncated
responses, MinHash near-duplicate prompts) and :class:`BiasAnalyzer` (lengths, surface features,
logistic regression, cross-validated shortcut model with bootstrap) on N pairs, against an anchor
measured in the same run: ``polars.read_ndjson`` of the same file. Planted defects (duplicates,
swapped copies, identical and empty responses) are added so that every check has work to do, and the
counts found are checked against the planted numbers.

    nice .venv/bin/python benchmarks/bench_hygiene.py [--n 1000000]

Uses the loader benchmark's file ``benchmarks/_work/pairs_<n>.jsonl`` (generated when absent).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_audit import data_file

    from prefaudit.analyzers.bias import BiasAnalyzer
    from prefaudit.analyzers.hygiene import HygieneAnalyzer
    from prefaudit.data.preference_set import PreferenceSet

    path = data_file(args.n)
    t, c = time.perf_counter(), time.process_time()
    raw = pl.read_ndjson(path)
    anchor, anchor_cpu = time.perf_counter() - t, time.process_time() - c
    df = raw.select(pl.col("prompt").cast(pl.Utf8), pl.col("chosen").cast(pl.Utf8), pl.col("rejected").cast(pl.Utf8))
    k = max(10, args.n // 1000)  # planted: k exact copies, k swapped copies, k identical, k empty
    head = df.head(k)
    planted = pl.concat([
        head,
        head.select("prompt", pl.col("rejected").alias("chosen"), pl.col("chosen").alias("rejected")),
        df.slice(k, k).with_columns(pl.col("chosen").alias("rejected")),
        df.slice(2 * k, k).with_columns(pl.lit("").alias("chosen")),
    ])
    df = pl.concat([df, planted]).with_row_index("i").select(
        pl.format("p{}", pl.col("i")).alias("pair_id"), "prompt", "chosen", "rejected")
    data = PreferenceSet(df)
    rows = []
    for name, analyzer in (("hygiene", HygieneAnalyzer()), ("bias", BiasAnalyzer())):
        t, c = time.perf_counter(), time.process_time()
        res = analyzer.run(data)
        rows.append((name, time.perf_counter() - t, time.process_time() - c, res))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"pairs: {data.df.height:,} (planted per defect: {k:,})")
    print(f"anchor polars.read_ndjson: wall {anchor:.1f} s, CPU {anchor_cpu:.1f} s")
    for name, sec, cpu, _ in rows:
        print(f"{name:8s} wall {sec:7.1f} s = {sec / anchor:5.2f} x anchor ({data.df.height / sec:,.0f} pairs/s); "
              f"CPU {cpu:6.1f} s = {cpu / anchor_cpu:5.2f} x anchor")
    h = rows[0][3].metrics
    for m in ("hygiene.exact_duplicate_share", "hygiene.contradiction_share", "hygiene.identical_pair_share",
              "hygiene.empty_response_share", "hygiene.near_duplicate_prompt_share",
              "hygiene.truncated_response_share"):
        print(f"  {m:40s} {h[m]}  (count {round(h[m].value * h[m].n):,})")
    b = rows[1][3].metrics
    for m in ("length.chosen_longer_rate", "length.log_ratio_coef", "shortcut.auroc"):
        print(f"  {m:40s} {b[m]}")
    print(f"peak RSS: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
