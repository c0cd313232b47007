"""Embedding speed and backend error: prefaudit's Embedder against a bare SentenceTransformer.

Texts: hh-rlhf harmless-test prompts + final chosen and rejected responses (first --pairs pairs),
plus LLMBar instructions (the out-of-distribution part of the OOD check). All runs use a fresh
cache folder, so "cold" means an empty embedding cache; the ONNX exports are made into it first
and their one-off cost is reported on its own row.

Rows (texts/s; ratio = against the bare SentenceTransformer.encode anchor of the same run, measured
before and after the other rows and averaged):
- bare: ``SentenceTransformer(path).encode(texts, batch_size=64)`` (the anchor);
- Embedder torch cold / warm (warm: a new Embedder reading everything from the cache);
- Embedder onnx cold, onnx-int8 cold (float32 ONNX graph; int8 dynamic quantisation).

Error of each backend against torch float32 on the same texts: 1 - cos (mean, max); prompt k-NN
(k=10) neighbour overlap; KMeans cluster assignment agreement (centroids fitted on the torch
prompt embeddings, k=10, each prompt assigned from both embeddings: this isolates the embedding
error from KMeans' own run-to-run variation, which the adjusted Rand index between two KMeans seeds
on the same torch embeddings shows as a yardstick); OOD scores as the coverage analyzer computes
them (mean cosine distance to the 5 nearest training prompts = the first 70% of the hh prompts;
flag above the 0.95 quantile of the training prompts' own leave-one-out distances; target = the
other 30% + the LLMBar inputs): Spearman correlation, flag agreement, flagged share, and the AUROC
with which the score tells LLMBar inputs from held-out hh prompts.

Run: ``nice .venv/bin/python benchmarks/bench_embed.py [--pairs 500]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PREFAUDIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MARK = "\n\nAssistant:"


def hh_texts(n_pairs: int) -> tuple[list[str], list[str]]:
    """(prompts, responses) of the first n_pairs hh-rlhf harmless-test pairs."""
    prompts, responses = [], []
    with gzip.open(DATA / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            chosen, rejected = row["chosen"], row["rejected"]
            cut_c, cut_r = chosen.rfind(MARK), rejected.rfind(MARK)
            prompts.append(chosen[:cut_c].strip())
            responses += [chosen[cut_c + len(MARK) :].strip(), rejected[cut_r + len(MARK) :].strip()]
            if len(prompts) == n_pairs:
                break
    return prompts, responses


def llmbar_inputs() -> list[str]:
    out = []
    for path in sorted((DATA / "llmbar").glob("*.json")):
        out += [r["input"] for r in json.loads(path.read_text())]
    return out


def knn_dist(queries: np.ndarray, base: np.ndarray, k: int, leave_one_out: bool = False) -> np.ndarray:
    """Mean cosine distance to the k nearest rows of base (unit vectors)."""
    sim = queries @ base.T
    if leave_one_out:
        np.fill_diagonal(sim, -np.inf)
    top = -np.sort(-sim, axis=1)[:, :k]
    return 1.0 - top.mean(axis=1)


def neighbours(X: np.ndarray, k: int) -> np.ndarray:
    sim = X @ X.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def quality(
    ref: np.ndarray, other: np.ndarray, n_prompts: int, n_train: int, n_target: int
) -> dict[str, float]:
    """Error of `other` against `ref` (rows aligned; the first n_prompts rows are hh prompts, the
    last n_target rows are the OOD target's LLMBar part)."""
    from scipy.stats import spearmanr
    from sklearn.cluster import KMeans
    from sklearn.metrics import roc_auc_score

    err = 1.0 - np.sum(ref * other, axis=1)
    P, Q = ref[:n_prompts], other[:n_prompts]
    nr, nq = neighbours(P, 10), neighbours(Q, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nr, nq, strict=True)])
    km = KMeans(n_clusters=10, n_init=3, random_state=0).fit(P)
    cluster_agree = np.mean(km.predict(P) == km.predict(Q))
    is_llmbar = np.r_[np.zeros(n_prompts - n_train), np.ones(n_target)]

    def ood(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        train = X[:n_train]
        target = np.vstack([X[n_train:n_prompts], X[-n_target:]])
        thr = np.quantile(knn_dist(train, train, 5, leave_one_out=True), 0.95)
        scores = knn_dist(target, train, 5)
        return scores, scores > thr

    s_ref, f_ref = ood(ref)
    s_oth, f_oth = ood(other)
    return {
        "cos_err_mean": float(err.mean()),
        "cos_err_max": float(err.max()),
        "knn10_overlap": float(overlap),
        "cluster_agree": float(cluster_agree),
        "ood_spearman": float(spearmanr(s_ref, s_oth).statistic),
        "ood_flag_agree": float(np.mean(f_ref == f_oth)),
        "ood_flag_share_ref": float(f_ref.mean()),
        "ood_flag_share": float(f_oth.mean()),
        "ood_auroc_ref": float(roc_auc_score(is_llmbar, s_ref)),
        "ood_auroc": float(roc_auc_score(is_llmbar, s_oth)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backends", default="onnx,onnx-int8")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from sentence_transformers import SentenceTransformer

    from prefaudit.embed import Embedder, packaged_model_path

    prompts, responses = hh_texts(args.pairs)
    target_ood = llmbar_inputs()
    texts = prompts + responses + target_ood
    n_unique = len(set(texts))
    n_train = int(0.7 * len(prompts))
    print(
        f"texts: {len(texts)} ({n_unique} distinct; {len(prompts)} hh prompts, {len(responses)} hh responses, "
        f"{len(target_ood)} LLMBar inputs), mean {np.mean([len(t) for t in texts]):.0f} chars; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    cache = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    n = len(texts)
    rows: list[
        tuple[str, float, float, float | None, str]
    ] = []  # name, wall s, CPU s, wall s incl. load, note

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def bare() -> tuple[float, float, float, np.ndarray]:
        (w0, _), st = (
            clock(),
            SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True),
        )
        w1, c1 = clock()
        X = st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
        w2, c2 = clock()
        print(f"bare: {n / (w2 - w1):.1f} texts/s", flush=True)
        return w2 - w1, c2 - c1, w2 - w0, X

    bare1 = bare()

    def embedder(backend: str, note: str) -> np.ndarray:
        emb = Embedder(cache_dir=cache, backend=backend, batch_size=args.batch_size)
        w0, _ = clock()
        emb._get_encoder()  # model load (and, for ONNX, export when absent) timed apart
        w1, c1 = clock()
        X = emb.encode(texts)
        w2, c2 = clock()
        assert emb.stats.misses == n_unique, emb.stats
        rows.append((f"Embedder {backend} cold", w2 - w1, c2 - c1, w2 - w0, note))
        print(f"{backend} cold: {n / (w2 - w1):.1f} texts/s (load {w1 - w0:.1f} s)", flush=True)
        return X

    X_torch = embedder("torch", "dedupe + cache writes included")
    w0, c0 = clock()
    warm = Embedder(cache_dir=cache, backend="torch", batch_size=args.batch_size)
    X_warm = warm.encode(texts)
    w1, c1 = clock()
    assert warm.stats.misses == 0 and warm._encoder is None and np.array_equal(X_warm, X_torch)
    rows.append(("Embedder torch warm", w1 - w0, c1 - c0, w1 - w0, "all from cache; model never loaded"))

    results = {}
    for backend in [b for b in args.backends.split(",") if b]:
        # the one-off export (ONNX graph; int8 quantisation) into the cache folder
        w0, _ = clock()
        Embedder(cache_dir=cache, backend=backend)._get_encoder()
        rows.append((f"{backend} one-off export + load", clock()[0] - w0, 0.0, None, "once per machine"))
        results[backend] = embedder(backend, "export already in the cache")

    bare2 = bare()
    ref_bare = bare1[3]
    anchor, anchor_cpu, anchor_load = ((x + y) / 2 for x, y in zip(bare1[:3], bare2[:3], strict=True))

    print(f"\n# Embedding speed, {date.today()}, {platform.machine()} {os.cpu_count()}-CPU, {n} texts")
    print(
        f"anchor bare SentenceTransformer.encode: {n / bare1[0]:.1f} and {n / bare2[0]:.1f} texts/s "
        f"(mean {n / anchor:.1f}; {n / anchor_load:.1f} incl. model load; {n / anchor_cpu:.1f} per CPU-second)"
    )
    print(
        "| run | texts/s | × anchor | × anchor (CPU time) | texts/s incl. load | × anchor incl. load | note |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, wall, cpu, with_load, note in rows:
        if with_load is None:
            print(f"| {name} | {wall:.1f} s | | | | | {note} |")
            continue
        print(
            f"| {name} | {n / wall:.1f} | {anchor / wall:.2f} | {anchor_cpu / max(cpu, 1e-9):.2f} | {n / with_load:.1f} | "
            f"{anchor_load / with_load:.2f} | {note} |"
        )

    print("\n# Error against torch float32 (same texts)")
    keys = [
        "cos_err_mean",
        "cos_err_max",
        "knn10_overlap",
        "cluster_agree",
        "ood_spearman",
        "ood_flag_agree",
        "ood_flag_share_ref",
        "ood_flag_share",
        "ood_auroc_ref",
        "ood_auroc",
    ]
    print("| backend | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    n_prompts, n_target = len(prompts), len(target_ood)
    yard = dict(quality(X_torch, ref_bare, n_prompts, n_train, n_target))
    print(
        "| bare ST (same torch) | "
        + " | ".join(f"{yard[k]:.2e}" if k.startswith("cos") else f"{yard[k]:.3f}" for k in keys)
        + " |"
    )
    for backend, X in results.items():
        q = quality(X_torch, X, n_prompts, n_train, n_target)
        print(
            f"| {backend} | "
            + " | ".join(f"{q[k]:.2e}" if k.startswith("cos") else f"{q[k]:.3f}" for k in keys)
            + " |"
        )
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    P = X_torch[:n_prompts]
    seeds = adjusted_rand_score(
        KMeans(10, n_init=3, random_state=0).fit_predict(P),
        KMeans(10, n_init=3, random_state=1).fit_predict(P),
    )
    print(f"\nyardstick: KMeans ARI between two seeds on the same torch embeddings: {seeds:.3f}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
