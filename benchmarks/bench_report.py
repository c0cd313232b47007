"""HTML report at scale: 100,000 synthetic pairs (generator defaults) -> report time, size, Chromium load.

Targets (issue 6): Python writes the report in under 10 s, the file is under 15 MB, and headless
Chromium finishes loading it (load event + the pair browser's first page rendered) in under 3 s.

Anchor, measured in the same run: the naive report — pandas ``DataFrame.to_html`` of the same embedded
pairs (texts, scores, flags) — for write time, size and Chromium load time.

    nice .venv/bin/python benchmarks/bench_report.py [--pairs 100000] [--embeddings] [--loads 3]

The audit itself is timed but is not part of the target (``--embeddings`` adds coverage and the
embedding-based parts; the default is the documented no-embeddings fast path).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import polars as pl

WORK = Path(__file__).resolve().parent / "_work" / "report"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def synthetic(n: int):
    """Generator defaults; the pairs and targets are cached (generation takes a minute at 100k)."""
    from prefaudit import synth
    from prefaudit.data.preference_set import PreferenceSet, SourceInfo

    WORK.mkdir(parents=True, exist_ok=True)
    pairs_p, target_p = WORK / f"synth_{n}.parquet", WORK / f"synth_{n}_target.parquet"
    if not pairs_p.exists():
        d = synth.make(n)
        d.pairs.df.write_parquet(pairs_p)
        d.target.write_parquet(target_p)
    df = pl.read_parquet(pairs_p)
    return PreferenceSet(df, source=SourceInfo(path=f"prefaudit.synth.make({n})", rows_read=n,
                                               format="synthetic")), pl.read_parquet(target_p)


def chromium_load(path: Path, loads: int) -> tuple[list[float], list[float]]:
    """Wall seconds from navigation to ready (load event + pair browser rendered), and the load event."""
    from playwright.sync_api import sync_playwright

    walls, events = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for _ in range(loads):
            page = browser.new_page()
            t = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load", timeout=60_000)
            if page.locator("#pb-data").count():
                page.wait_for_selector("html[data-browser=ready]", timeout=60_000)
                page.wait_for_selector("#pb-list article", timeout=60_000)
            walls.append(time.perf_counter() - t)
            nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            import json

            events.append(json.loads(nav)["loadEventEnd"] / 1000)
            page.close()
        browser.close()
    return walls, events


def worst_case(a, data, args) -> tuple[float, int, list[float]]:
    """The same audit with every pair flagged (a stand-in column) and every text 3,000 characters long."""
    from prefaudit.report import render_html

    stretched = data.df.with_columns(
        [pl.concat_str([pl.col(c)] * 12, separator=" ").str.slice(0, 3000).alias(c)
         for c in ("prompt", "chosen", "rejected")])
    a.data = type(data)(stretched, source=data.source)
    a.pairs = a.pairs.with_columns(pl.lit(True).alias("stress_flag"), pl.lit(0.0).alias("stress_score"))
    out = WORK / f"report_{args.pairs}_worst.html"
    t = time.perf_counter()
    render_html(a, out, max_pairs=args.max_pairs)
    return time.perf_counter() - t, out.stat().st_size, chromium_load(out, args.loads)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--embeddings", action="store_true")
    ap.add_argument("--max-pairs", type=int, default=2000)
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument("--renders", type=int, default=2)
    ap.add_argument("--analyzers", nargs="*", default=None, help="restrict the audit (default: all)")
    ap.add_argument("--tokenizer", default="tiny", help="tokenizer for the truncation audit ('' for none)")
    ap.add_argument("--worst-case", action="store_true",
                    help="also render a worst case: every pair flagged, every text past the 1,500-char embed cap")
    args = ap.parse_args()

    import prefaudit
    from prefaudit.audit import audit
    from prefaudit.gate import gate
    from prefaudit.report import render_html
    from prefaudit.report.model import ranked, with_texts

    t = time.perf_counter()
    data, target = synthetic(args.pairs)
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    a = audit(data, target=target if args.embeddings else None, embeddings=args.embeddings,
              analyzers=args.analyzers, tokenizer=args.tokenizer or None)
    t_audit = time.perf_counter() - t

    out = WORK / f"report_{args.pairs}.html"
    render_times = []
    for _ in range(args.renders):
        t = time.perf_counter()
        g = gate(a, None, attach=False)
        render_html(a, out, gate=g, max_pairs=args.max_pairs)
        render_times.append(time.perf_counter() - t)
    size = out.stat().st_size

    # anchor: pandas to_html of the same embedded pairs
    t = time.perf_counter()
    top = with_texts(ranked(a.pairs, args.max_pairs), data.df).drop("flags")
    anchor = WORK / f"anchor_{args.pairs}.html"
    anchor.write_text(top.to_pandas().to_html(), encoding="utf-8")
    t_anchor = time.perf_counter() - t

    walls, events = chromium_load(out, args.loads)
    a_walls, a_events = chromium_load(anchor, args.loads)
    ran = [k for k, r in a.results.items() if not r.skipped]
    n_flagged = ranked(a.pairs, a.pairs.height).height
    worst = worst_case(a, data, args) if args.worst_case else None  # mutates the audit: keep it last

    print(f"prefaudit {prefaudit.__version__}; {platform.platform()}; python {platform.python_version()}")
    print(f"data: {args.pairs:,} synthetic pairs ({t_data:.1f} s to load/generate); audit "
          f"({'embeddings' if args.embeddings else 'no embeddings'}; ran {', '.join(ran)}): {t_audit:.1f} s; "
          f"flagged pairs: {n_flagged:,}; embedded in the browser: {min(args.max_pairs, n_flagged):,}")
    print()
    print("| measure | prefaudit report | anchor: pandas to_html of the same pairs | target |")
    print("|---|---|---|---|")
    print(f"| Python write time (s), first / median of {args.renders} | {render_times[0]:.2f} / "
          f"{statistics.median(render_times):.2f} | {t_anchor:.2f} | < 10 |")
    print(f"| file size (MB) | {size / 1e6:.2f} | {anchor.stat().st_size / 1e6:.2f} | < 15 |")
    print(f"| Chromium load to ready (s), median of {args.loads} | {statistics.median(walls):.2f} "
          f"(max {max(walls):.2f}) | {statistics.median(a_walls):.2f} | < 3 |")
    print(f"| Chromium load event (s), median | {statistics.median(events):.2f} | "
          f"{statistics.median(a_events):.2f} | |")
    if worst is not None:
        t_w, size_w, walls_w = worst
        print(f"| worst case ({args.max_pairs:,} pairs embedded, every text cut at the cap): write / size / "
              f"Chromium | {t_w:.2f} s / {size_w / 1e6:.2f} MB / {statistics.median(walls_w):.2f} s | | |")


if __name__ == "__main__":
    main()
