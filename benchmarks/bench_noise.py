"""Label-noise detection on real data: hh-rlhf harmless test with 20% injected flips (issue 3).

For each seed: flip a random 20% of the pairs (``PreferenceSet.swapped``), then score every pair with

- the **anchor** (issue 3's baseline): a 5-fold cross-fitted logistic regression (scikit-learn
  defaults) on MiniLM difference features e(a) - e(b), pairs in a random orientation, and cleanlab's
  ``find_label_issues`` on its out-of-fold probabilities for the flags;
- **prefaudit** ``NoiseAnalyzer`` with the MiniLM embedder (default parameters), and on the fast path
  (``--no-embeddings``: no embedder).

and report the AUROC of the score for the injected flips, the flags' precision and recall, and each
method's precision at the anchor's recall (pairs ranked by score, as many taken as reach that recall).
Embeddings come from the on-disk cache (``PREFAUDIT_CACHE_DIR``); the first run encodes them.

    nice python benchmarks/bench_noise.py [--seeds 0 1 2] [--n 0] [--no-fast]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz"


def inject_flips(data, rate: float, seed: int):
    """(set with ``rate`` of the pairs swapped at random, boolean mask of the flipped pairs)."""
    rng = np.random.default_rng(seed)
    n = len(data)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=int(round(rate * n)), replace=False)] = True
    ids = [p for p, f in zip(data.pair_ids, flipped, strict=True) if f]
    return data.swapped(ids), flipped


def anchor(data, embedder, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The issue's anchor: (P(recorded label right) per pair, cleanlab flags)."""
    from cleanlab.filter import find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ec = embedder.encode(data.df["chosen"].to_list())
    er = embedder.encode(data.df["rejected"].to_list())
    a_is_chosen = np.random.default_rng(seed + 1000).random(len(data)) < 0.5
    x = np.where(a_is_chosen[:, None], ec - er, er - ec)
    y = a_is_chosen.astype(int)
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    p = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=cv, method="predict_proba")
    right = np.where(y == 1, p[:, 1], p[:, 0])
    return right, np.asarray(find_label_issues(y, p), dtype=bool)


def evaluate(score: np.ndarray, flags: np.ndarray, flipped: np.ndarray, at_recall: float | None = None) -> dict:
    """AUROC of -score for the flips, precision/recall of the flags, precision at a given recall."""
    from sklearn.metrics import roc_auc_score

    out = {"auroc": float(roc_auc_score(flipped, -score)), "flagged": int(flags.sum()),
           "precision": float(flipped[flags].mean()) if flags.any() else float("nan"),
           "recall": float(flags[flipped].mean())}
    if at_recall is not None:
        order = np.argsort(score, kind="stable")
        hits = np.cumsum(flipped[order])
        k = int(np.searchsorted(hits, at_recall * flipped.sum()) + 1)
        out["precision_at_anchor_recall"] = float(hits[k - 1] / k)
    return out


def run(data, embedder, seed: int, fast: bool) -> list[tuple[str, dict, float]]:
    from prefaudit.analyzers.base import AuditContext
    from prefaudit.analyzers.noise import NoiseAnalyzer

    noisy, flipped = inject_flips(data, 0.2, seed)
    t = time.perf_counter()
    a_score, a_flags = anchor(noisy, embedder, seed)
    rows = [("anchor: LR on MiniLM diff + cleanlab", evaluate(a_score, a_flags, flipped), time.perf_counter() - t)]
    recall = rows[0][1]["recall"]
    rows[0][1]["precision_at_anchor_recall"] = evaluate(a_score, a_flags, flipped, recall)["precision_at_anchor_recall"]
    for name, emb in [("prefaudit NoiseAnalyzer (MiniLM)", embedder)] + ([("prefaudit --no-embeddings", None)] if fast else []):
        t = time.perf_counter()
        r = NoiseAnalyzer().run(noisy, AuditContext(seed=seed, embedder=emb))
        p = noisy.df.select("pair_id").join(r.pairs, on="pair_id", how="left")
        ev = evaluate(p["noise_score"].to_numpy(), p["noise_flag"].to_numpy(), flipped, recall)
        ev["estimated_rate"] = r.metrics["noise.estimated_rate"].value
        ev["rate_ci"] = r.metrics["noise.estimated_rate"].ci
        rows.append((name, ev, time.perf_counter() - t))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=0, help="random subset of this many pairs (0 = all 2,312)")
    ap.add_argument("--no-fast", action="store_true", help="skip the --no-embeddings variant")
    args = ap.parse_args(argv)
    os.environ.setdefault("PREFAUDIT_CACHE_DIR", str(ROOT / ".prefaudit_cache"))
    sys.path.insert(0, str(ROOT))
    import prefaudit
    from prefaudit.embed import Embedder

    data = prefaudit.load(HH)
    if args.n:
        data = data.sample(args.n, seed=0)
    embedder = Embedder()
    print(f"hh-rlhf harmless test: {len(data)} pairs, 20% flips injected; seeds {args.seeds}")
    print("| seed | method | AUROC | flagged | precision | recall | precision @ anchor recall | est. rate [CI] | s |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    agg: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name, ev, secs in run(data, embedder, seed, not args.no_fast):
            agg.setdefault(name, []).append(ev)
            rate = ("" if "estimated_rate" not in ev else
                    f"{ev['estimated_rate']:.3f} [{ev['rate_ci'][0]:.3f}, {ev['rate_ci'][1]:.3f}]" if ev["rate_ci"]
                    else f"{ev['estimated_rate']:.3f}")
            print(f"| {seed} | {name} | {ev['auroc']:.3f} | {ev['flagged']} | {ev['precision']:.3f} | "
                  f"{ev['recall']:.3f} | {ev['precision_at_anchor_recall']:.3f} | {rate} | {secs:.1f} |", flush=True)
    for name, evs in agg.items():
        m = {k: float(np.mean([e[k] for e in evs])) for k in ("auroc", "precision", "recall",
                                                                "precision_at_anchor_recall")}
        print(f"| mean | {name} | {m['auroc']:.3f} | | {m['precision']:.3f} | {m['recall']:.3f} | "
              f"{m['precision_at_anchor_recall']:.3f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
