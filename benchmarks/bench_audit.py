"""Audit at scale (issue 5): ``prefaudit audit --no-embeddings`` on 1,000,000 pairs, and the embedding path.

1. Whole-process wall time (imports included) and peak memory of ``prefaudit audit --no-embeddings`` on a
   1M-pair JSONL (prompts 5-25 words, responses 10-80 words), against a bare ``polars.read_ndjson`` of
   the same file in a fresh process, in the same run (targets: < 3x the anchor, < 4 GB peak); and
   ``prefaudit validate`` of the same file, the lossless load every audit starts with.
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


def run_process(argv: list[str]) -> tuple[float, float, float]:
    """Run a fresh process; return (wall seconds, peak RSS in GiB, CPU seconds user + system)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "CI": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}:\n{err}")
    return wall, usage.ru_maxrss / 1024 / 1024, usage.ru_utime + usage.ru_stime


def scale(n: int, repeats: int) -> dict:
    path = data_file(n)
    size_gb = path.stat().st_size / 1e9
    out = WORK / "audit_scale.json"
    cmds = {"anchor": [PY, "-c", f"import polars as pl; pl.read_ndjson({str(path)!r})"],
            # the lossless load alone (what every audit starts with): the floor under the audit's time
            "validate": [PY, "-m", "prefaudit", "validate", str(path)],
            "audit": [PY, "-m", "prefaudit", "audit", str(path), "--no-embeddings", "--json", str(out), "--quiet"]}
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cmds}
    for _ in range(repeats):  # interleaved, so all see the same machine load
        for k, cmd in cmds.items():
            runs[k].append(run_process(cmd))
    timings = json.loads(out.read_text())["timings"]
    best = {k: min(v) for k, v in runs.items()}
    return {"n": n, "file_gb": size_gb, **best, "ratio": best["audit"][0] / best["anchor"][0],
            "cpu_ratio": best["audit"][2] / best["anchor"][2],
            "validate_ratio": best["validate"][0] / best["anchor"][0],
            **{f"all_{k}": [round(r[0], 2) for r in v] for k, v in runs.items()}, "timings": timings,
            "load": os.getloadavg()[0]}


def embed(n: int) -> dict:
    """In-process audit with embeddings on real text: hh-rlhf harmless test (first ``n`` pairs) when
    ``../shared/data`` is there, else synthetic data (``prefaudit.synth``); cold cache, then warm. The
    warm audit is also judged by the default gate (the real-data sanity check of gate.toml)."""
    hh = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz"
    out: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["PREFAUDIT_CACHE_DIR"] = cache
        import prefaudit

        if hh.exists():
            data = prefaudit.load(hh).sample(n, seed=0)
            out["source"] = f"hh-rlhf harmless-base test, {len(data):,} pairs"
        else:
            data = prefaudit.synth.make(n, seed=0).pairs
            out["source"] = f"prefaudit.synth defaults, {len(data):,} pairs"
        for phase in ("cold", "warm"):
            emb = prefaudit.Embedder()
            t = time.perf_counter()
            a = prefaudit.audit(data, embeddings=True, embedder=emb, seed=0)
            wall = time.perf_counter() - t
            out[phase] = {"wall": wall, "pairs_per_s": len(data) / wall, "timings": dict(a.timings),
                          "encoded": emb.stats.misses, "cache_hits": emb.stats.hits}
        g = prefaudit.gate(a)
        out["gate"] = (g.verdict, {r["metric"]: (r["status"], r["value"]) for r in g.checks.iter_rows(named=True)
                                   if r["status"] != "skip"})
    return out


def calibrate(seeds: list[int]) -> None:
    """Calibration of the default gate.toml and clean.toml on ``prefaudit.synth`` (generator defaults,
    2,000 pairs, the flip rate as the one knob): gate verdicts at 0-30% flips with and without
    embeddings (first two seeds), and the precision/recall of the noise removals against the injected
    flips at 30% (every seed) for the default policy and its alternatives (the real
    :func:`prefaudit.clean.apply_policy`)."""
    import prefaudit
    from prefaudit.clean import apply_policy, load_policy

    policies = {"default (budget 0.9)": {}, "budget 1.0": {"noise": {"budget": 1.0}},
                "budget 0.8": {"noise": {"budget": 0.8}},
                **{f"threshold {t}": {"noise": {"select": "threshold", "max_score": t}} for t in (0.5, 0.4, 0.3)},
                "cleanlab flag": {"noise": {"select": "threshold", "max_score": 0.0, "use_flag": True}}}
    print("\n## gate calibration: default gate.toml on synthetic data (2,000 pairs)")
    print("| embeddings | flips | seed | noise.estimated_rate [95% CI] | truth | verdict | failing / warning checks |")
    print("|---|---:|---:|---|---:|---|---|")
    pr: dict[str, list[tuple[float, float]]] = {k: [] for k in policies}
    runs = [(emb, flip, seed) for emb in (True, False) for flip in (0.0, 0.1, 0.2, 0.3) for seed in seeds[:2]]
    runs += [(True, 0.3, seed) for seed in seeds[2:]]  # more seeds for the clean calibration
    for emb, flip, seed in runs:
        s = prefaudit.synth.make(flip_rate=flip, seed=seed)
        a = prefaudit.audit(s.pairs, analyzers=["hygiene", "noise", "bias"], embeddings=emb, seed=0)
        g = prefaudit.gate(a)
        m = a.metrics["noise.estimated_rate"]
        bad = [f"{r['metric']} {r['status']}" for r in g.checks.iter_rows(named=True)
               if r["status"] in ("warn", "fail")]
        ci = f"[{m.ci[0]:.3f}, {m.ci[1]:.3f}]" if m.ci else ""
        print(f"| {'yes' if emb else 'no'} | {flip:.0%} | {seed} | {m.value:.3f} {ci} | "
              f"{s.noise_rate.value:.3f} | {g.verdict} | {', '.join(bad)} |", flush=True)
        if emb and flip == 0.3:
            flipped = set(s.flipped_ids)
            for name, pol in policies.items():
                res = apply_policy(a.data, a.pairs, load_policy(pol), metrics=a.metrics)
                got = set(res.ids_with_reason("noise"))
                hit = len(got & flipped)
                pr[name].append((hit / max(1, len(got)), hit / len(flipped)))
    print("\n## clean calibration: noise removals vs the injected flips (30% flips, embeddings)")
    print("| noise rule | " + " | ".join(f"seed {k} precision / recall" for k in seeds) + " | seeds meeting both |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for name, vals in pr.items():
        ok = sum(p >= 0.8 and r >= 0.7 for p, r in vals)
        print(f"| {name} | " + " | ".join(f"{p:.3f} / {r:.3f}" for p, r in vals) + f" | {ok} of {len(vals)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--embed-n", type=int, default=2312)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--calibrate", action="store_true", help="gate.toml / clean.toml calibration on synthetic data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}", flush=True)
    if args.calibrate:
        calibrate(args.seeds)
        return
    if not args.skip_scale:
        r = scale(args.n, args.repeats)
        print(f"\n## audit --no-embeddings on {r['n']:,} pairs ({r['file_gb']:.2f} GB JSONL); "
              f"1-min load average at the end: {r['load']:.1f}")
        print("| process | wall s (best) | all runs | CPU s | peak RSS GiB |")
        print("|---|---:|---|---:|---:|")
        for label, key in (("polars.read_ndjson (anchor)", "anchor"), ("prefaudit validate (lossless load)", "validate"),
                           ("prefaudit audit --no-embeddings", "audit")):
            w, m, c = r[key]
            print(f"| {label} | {w:.2f} | {r['all_' + key]} | {c:.2f} | {m:.2f} |")
        print(f"ratio validate / anchor: wall {r['validate_ratio']:.2f}x")
        print(f"ratio audit / anchor: wall {r['ratio']:.2f}x, CPU {r['cpu_ratio']:.2f}x (target < 3x); "
              f"peak {r['audit'][1]:.2f} GiB (target < 4)")
        t = r["timings"]
        stages = [k for k in t if not k.startswith("cpu_") and k != "total"]
        print("| stage | wall s | CPU s |\n|---|---:|---:|")
        for k in stages:
            print(f"| {k} | {t[k]:.2f} | {t.get('cpu_' + k, float('nan')):.2f} |")
    if not args.skip_embed:
        e = embed(args.embed_n)
        print(f"\n## audit with embeddings (in-process): {e['source']}")
        print("| cache | wall s | pairs/s | where the time goes: wall s (CPU s) |")
        print("|---|---|---|---|")
        for phase in ("cold", "warm"):
            v = e[phase]
            tt = v["timings"]
            tim = ", ".join(f"{k} {t:.2f} ({tt.get('cpu_' + k, 0):.2f} CPU)" for k, t in tt.items()
                            if k != "total" and not k.startswith("cpu_"))
            print(f"| {phase} | {v['wall']:.2f} | {v['pairs_per_s']:.0f} | {tim} |")
        enc, secs = e["cold"]["encoded"], e["cold"]["wall"] - e["warm"]["wall"]
        print(f"embedding (cold - warm): {secs:.1f} s for {enc:,} distinct texts encoded = {enc / secs:.1f} texts/s "
              f"({secs / e['cold']['wall']:.0%} of the cold audit); warm run: {e['warm']['cache_hits']:,} cache hits")
        print(f"default gate on it: {e['gate'][0]}; {e['gate'][1]}")


if __name__ == "__main__":
    main()
