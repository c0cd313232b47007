"""Hygiene and bias on the ``--no-embeddings`` fast path at scale (issue 4).

Times :class:`HygieneAnalyzer` (exact/normalised duplicates, contradictions, identical/empty/truncated
responses, MinHash near-duplicate prompts) and :class:`BiasAnalyzer` (lengths, surface features,
logistic regression, cross-validated shortcut model with bootstrap) on N pairs, against an anchor
measured in the same run: ``polars.read_ndjson`` of the same file. Planted defects (duplicates,
swapped copies, identical and empty responses) are added so that every check has work to do, and the
counts found are checked against the planted numbers.

    nice .venv/bin/python benchmarks/bench_hygiene.py [--n 1000000]

``--minhash`` times only the near-duplicate prompt search
(:func:`prefaudit.analyzers.minhash.near_duplicate_pairs`) on the distinct normalised prompts, as
is and with 20% edited copies added (one word replaced, dropped or inserted: many LSH candidates),
split into shingle hashing, signatures + LSH, and exact Jaccard of the candidates. With
``--baseline REV`` the module as of git revision REV runs on the same inputs in the same process,
and its output is checked to be identical:

    nice .venv/bin/python benchmarks/bench_hygiene.py --minhash --baseline ec51c0e

Uses the loader benchmark's file ``benchmarks/_work/pairs_<n>.jsonl`` (generated when absent).
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--minhash", action="store_true", help="time only the MinHash near-duplicate search")
    ap.add_argument("--baseline", help="git revision whose minhash.py to time alongside (with --minhash)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_audit import data_file

    if args.minhash:
        minhash_bench(data_file(args.n), args.baseline)
        return

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


def _module_at(rev: str) -> ModuleType:
    """prefaudit/analyzers/minhash.py as of git revision ``rev``, imported under another name."""
    src = subprocess.run(["git", "show", f"{rev}:prefaudit/analyzers/minhash.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "minhash_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("minhash_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _edited_copies(texts: pl.Series, share: float, seed: int = 0) -> pl.Series:
    """``texts`` plus edited copies of a ``share`` of them (one word replaced, dropped or inserted)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in texts.sample(fraction=share, seed=seed).to_list():
        w = t.split(" ")
        op, at = int(rng.integers(3)), int(rng.integers(len(w)))
        if op == 0:
            w[at] = "edited"
        elif op == 1 and len(w) > 1:
            del w[at]
        else:
            w.insert(at, "inserted")
        out.append(" ".join(w))
    return pl.concat([texts, pl.Series("t", out, dtype=pl.Utf8)]).sample(fraction=1.0, shuffle=True, seed=seed)


def _time_stages(mod: ModuleType, texts: pl.Series) -> tuple[dict[str, float], pl.DataFrame]:
    """Wall seconds of near_duplicate_pairs and of its shingle and Jaccard stages (run apart)."""
    t = time.perf_counter()
    out = mod.near_duplicate_pairs(texts)
    total = time.perf_counter() - t
    t = time.perf_counter()
    rows, hashes = mod.shingle_hashes(texts)
    shingles = time.perf_counter() - t
    cand = mod.candidate_pairs(mod.signatures_from_shingles(rows, hashes, texts.len()))
    t = time.perf_counter()
    mod.exact_jaccard(rows, hashes, cand)
    jac = time.perf_counter() - t
    return {"total": total, "shingles": shingles, "sig+LSH": total - shingles - jac, "jaccard": jac,
            "candidates": len(cand)}, out


def minhash_bench(path: Path, baseline: str | None) -> None:
    """Time the near-duplicate prompt search as the audit runs it (distinct normalised prompts);
    each module runs twice per input, alternating, and each stage reports its better run."""
    from prefaudit.analyzers import minhash
    from prefaudit.analyzers.hygiene import normalize_expr

    t = time.perf_counter()
    prompts = pl.read_ndjson(path).select(pl.col("prompt").cast(pl.Utf8))
    anchor = time.perf_counter() - t
    norm = prompts.select(normalize_expr("prompt").alias("t")).unique(maintain_order=True)["t"]
    inputs = {"distinct prompts": norm, "+20% edited copies": _edited_copies(norm, 0.2)}
    mods = {"current": minhash} | ({f"baseline {baseline}": _module_at(baseline)} if baseline else {})
    print(f"anchor polars.read_ndjson: wall {anchor:.1f} s; threads {pl.thread_pool_size()}")
    print(f"{'input':20s} {'texts':>9s} {'module':18s} {'total':>7s} {'shingles':>9s} {'sig+LSH':>8s} "
          f"{'jaccard':>8s} {'cand':>8s} {'pairs':>7s}")
    for label, texts in inputs.items():
        outs, best = {}, {}
        for _ in range(2):  # modules alternate; each stage's best of two runs
            for name, mod in mods.items():
                st, outs[name] = _time_stages(mod, texts)
                best[name] = {k: min(v, best.get(name, st)[k]) for k, v in st.items()}
        for name, st in best.items():
            print(f"{label:20s} {texts.len():9,d} {name:18s} {st['total']:7.2f} {st['shingles']:9.2f} "
                  f"{st['sig+LSH']:8.2f} {st['jaccard']:8.2f} {st['candidates']:8,d} {outs[name].height:7,d}")
        if len(outs) == 2:
            a, b = outs.values()
            print(f"{'':20s} identical output: {a.equals(b)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
