"""Audit at scale (issue 5): ``prefaudit audit --no-embeddings`` on 1,000,000 pairs, and the embedding path.

1. Whole-process wall time (imports included) and peak memory of ``prefaudit audit --no-embeddings`` on a
   1M-pair JSONL (prompts 5-25 words, responses 10-80 words), against a bare ``polars.read_ndjson`` of
   the same file in a fresh process, in the same run (targets: < 3x the anchor, < 4 GB peak).
2. With embeddings, on a smaller sample: pairs/s cold (empty embedding cache) and warm, and where the
   time goes (the audit's per-analyzer timings).

Usage::

    nice .venv/bin/python benchmarks/bench_audit.py [--n 1000000] [--embed-n 2000] [--repeats 2]
        [--skip-scale] [--skip-embed]

The data is generated under ``benchmarks/_work/`` (gitignored) and reused when present.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
PY = sys.executable


def data_file(n: int) -> Path:
    """The loader benchmark's file of the same spec (``bench_load.generate``), generated once if absent."""
    path = WORK / f"pairs_{n}.jsonl"
    if not path.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_load import generate

        print(f"generating {n:,} pairs -> {path}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, n)
    return path


def run_process(argv: list[str]) -> tuple[float, float, str]:
    """Run a fresh process; return (wall seconds, peak RSS in GiB, stderr tail)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "CI": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}:\n{err}")
    return wall, usage.ru_maxrss / 1024 / 1024, err


def scale(n: int, repeats: int) -> dict:
    path = data_file(n)
    size_gb = path.stat().st_size / 1e9
    out = WORK / "audit_scale.json"
    anchor_cmd = [PY, "-c", f"import polars as pl; pl.read_ndjson({str(path)!r})"]
    audit_cmd = [PY, "-m", "prefaudit", "audit", str(path), "--no-embeddings", "--json", str(out), "--quiet"]
    anchors, audits = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        anchors.append(run_process(anchor_cmd)[:2])
        audits.append(run_process(audit_cmd)[:2])
    timings = json.loads(out.read_text())["timings"]
    a_wall = min(w for w, _ in anchors)
    u_wall = min(w for w, _ in audits)
    return {"n": n, "file_gb": size_gb, "anchor_wall": a_wall, "anchor_rss": max(m for _, m in anchors),
            "audit_wall": u_wall, "audit_rss": max(m for _, m in audits), "ratio": u_wall / a_wall,
            "all_anchor": [round(w, 2) for w, _ in anchors], "all_audit": [round(w, 2) for w, _ in audits],
            "timings": timings}


def embed(n: int) -> dict:
    """In-process audit with embeddings on ``n`` pairs: cold cache, then warm."""
    import polars as pl

    src = data_file(max(n, 1_000_000))
    sample = WORK / f"pairs_{n}_embed.jsonl"
    pl.read_ndjson(src, n_rows=n).write_ndjson(sample)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["PREFAUDIT_CACHE_DIR"] = cache
        import prefaudit

        for phase in ("cold", "warm"):
            t = time.perf_counter()
            a = prefaudit.audit(str(sample), embeddings=True, seed=0)
            wall = time.perf_counter() - t
            out[phase] = {"wall": wall, "pairs_per_s": n / wall, "timings": dict(a.timings)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--embed-n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-embed", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}", flush=True)
    if not args.skip_scale:
        r = scale(args.n, args.repeats)
        print(f"\n## audit --no-embeddings on {r['n']:,} pairs ({r['file_gb']:.2f} GB JSONL)")
        print("| process | wall s (best of runs) | runs | peak RSS GiB |")
        print("|---|---|---|---|")
        print(f"| polars.read_ndjson (anchor) | {r['anchor_wall']:.2f} | {r['all_anchor']} | {r['anchor_rss']:.2f} |")
        print(f"| prefaudit audit --no-embeddings | {r['audit_wall']:.2f} | {r['all_audit']} | {r['audit_rss']:.2f} |")
        print(f"ratio audit / anchor: {r['ratio']:.2f}x (target < 3x); peak {r['audit_rss']:.2f} GiB (target < 4)")
        print("audit timings (s):", json.dumps({k: round(v, 2) for k, v in r["timings"].items()}))
    if not args.skip_embed:
        e = embed(args.embed_n)
        print(f"\n## audit with embeddings on {args.embed_n:,} pairs (in-process)")
        print("| cache | wall s | pairs/s | where the time goes (s) |")
        print("|---|---|---|---|")
        for phase, v in e.items():
            tim = ", ".join(f"{k} {t:.2f}" for k, t in v["timings"].items() if k != "total")
            print(f"| {phase} | {v['wall']:.2f} | {v['pairs_per_s']:.0f} | {tim} |")


if __name__ == "__main__":
    main()
