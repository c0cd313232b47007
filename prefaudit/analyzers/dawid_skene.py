"""Dawid–Skene annotator model: :func:`dawid_skene` -> :class:`DawidSkeneFit`.

A latent true label per item and one confusion matrix per annotator, fitted by EM from a
majority-vote start (Dawid & Skene 1979). The EM is written here in vectorised numpy, step for step
the algorithm of crowd-kit's ``DawidSkene`` (Toloka's maintained crowdsourcing library: the same
majority-vote start, M-step with the same 1e-10 floor, log-space E-step and the same
evidence-lower-bound stopping rule), because crowd-kit's pandas implementation re-joins frames on
every iteration: 11 s for the 1,141 Tülu votes (78 iterations) against milliseconds here, and an
audit runs it on every annotated set. ``tests/test_agreement_ds.py`` checks posteriors, confusion
matrices and priors against crowd-kit itself (a test-only dependency). cleanlab's multiannotator
module (CROWDLAB) was considered and not used: it needs a classifier's predicted probabilities and
fits no per-annotator confusion matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from prefaudit.stats import wilson_interval

DEFAULT_LABELS: tuple[str, ...] = ("a", "b", "tie")
_EPS = 1e-10  # crowd-kit's floor on confusion counts


@dataclass(frozen=True)
class DawidSkeneFit:
    """What :func:`dawid_skene` returns.

    - ``posteriors``: one row per item: ``pair_id``, ``p_<label>`` per label (sum 1), ``ds_label``
      (the most probable true label).
    - ``confusion``: long form ``annotator_id``, ``true_label``, ``given_label``, ``prob`` =
      P(annotator gives ``given_label`` | the true label is ``true_label``).
    - ``accuracies``: ``annotator_id``, ``n_labeled``, ``accuracy`` (posterior-expected share of their
      votes equal to the true label), ``ci_lo``/``ci_hi`` (Wilson on the expected correct count,
      holding the fit fixed), ``confusion_accuracy`` (sum over true labels of prior x diagonal).
    - ``priors``: label -> estimated share of items with that true label. ``labels``: label order.
    """

    posteriors: pl.DataFrame
    confusion: pl.DataFrame
    accuracies: pl.DataFrame
    priors: dict[str, float]
    labels: tuple[str, ...]

    def posterior_matrix(self) -> np.ndarray:
        """items x labels posterior array, rows in ``posteriors`` order."""
        return self.posteriors.select([f"p_{lab}" for lab in self.labels]).to_numpy()

    def confusion_matrix(self, annotator_id: str) -> np.ndarray:
        """labels x labels: rows true label, columns given label (rows sum to 1)."""
        c = self.confusion.filter(pl.col("annotator_id") == annotator_id)
        m = np.zeros((len(self.labels), len(self.labels)))
        idx = {lab: i for i, lab in enumerate(self.labels)}
        for t, g, p in c.select("true_label", "given_label", "prob").iter_rows():
            m[idx[t], idx[g]] = p
        return m


def _votes(votes: pl.DataFrame, item: str, annotator: str, label: str) -> pl.DataFrame:
    missing = [c for c in (item, annotator, label) if c not in votes.columns]
    if missing:
        raise ValueError(f"votes need columns {missing}")
    return votes.select(pl.col(item).cast(pl.Utf8).alias("pair_id"),
                        pl.col(annotator).cast(pl.Utf8).alias("annotator_id"),
                        pl.col(label).cast(pl.Utf8).alias("label")).drop_nulls()


def dawid_skene(
    votes: pl.DataFrame,
    *,
    labels: Sequence[str] | None = None,
    n_iter: int = 100,
    tol: float = 1e-5,
    item: str = "pair_id",
    annotator: str = "annotator_id",
    label: str = "label",
) -> DawidSkeneFit:
    """Fit Dawid–Skene to long-form votes (one row per item x annotator vote; null labels ignored).

    ``labels`` fixes the label set and order (default: ``a``, ``b``, ``tie`` when the votes use only
    those, else the sorted labels seen). Raises ``ValueError`` when no vote is left.
    """
    v = _votes(votes, item, annotator, label)
    if v.height == 0:
        raise ValueError("no votes to fit")
    seen = sorted(v["label"].unique().to_list())
    if labels is None:
        labels = DEFAULT_LABELS if set(seen) <= set(DEFAULT_LABELS) else tuple(seen)
    labels = tuple(labels)
    unknown = set(seen) - set(labels)
    if unknown:
        raise ValueError(f"votes use labels {sorted(unknown)} outside {labels}")
    items = sorted(v["pair_id"].unique().to_list())
    workers = sorted(v["annotator_id"].unique().to_list())
    t = v["pair_id"].replace_strict({x: i for i, x in enumerate(items)}, return_dtype=pl.Int64).to_numpy()
    w = v["annotator_id"].replace_strict({x: i for i, x in enumerate(workers)}, return_dtype=pl.Int64).to_numpy()
    y = v["label"].replace_strict({x: i for i, x in enumerate(labels)}, return_dtype=pl.Int64).to_numpy()
    post, errors, prior = em(t, w, y, len(items), len(workers), len(labels), n_iter=n_iter, tol=tol)
    posteriors = pl.DataFrame({"pair_id": items, **{f"p_{lab}": post[:, j] for j, lab in enumerate(labels)}}) \
        .with_columns(pl.Series("ds_label", np.asarray(labels)[post.argmax(axis=1)], dtype=pl.Utf8))
    confusion = _confusion_frame(workers, labels, errors)
    priors = {lab: float(prior[j]) for j, lab in enumerate(labels)}
    accuracies = _accuracies(v, posteriors, labels, confusion, priors)
    return DawidSkeneFit(posteriors, confusion, accuracies, priors, labels)


def em(t: np.ndarray, w: np.ndarray, y: np.ndarray, n_items: int, n_workers: int, n_labels: int, *,
       n_iter: int = 100, tol: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The EM on integer-coded votes (item ``t``, annotator ``w``, label ``y`` per vote).

    Returns (posteriors items x labels, errors annotators x given x true, priors). ``errors[w, g, c]``
    = P(annotator w gives g | true label c); combinations an annotator never gave stay 0.
    """
    k = n_labels
    post = np.zeros((n_items, k))
    np.add.at(post, (t, y), 1.0)
    post /= post.sum(axis=1, keepdims=True)  # majority-vote shares
    given = np.zeros((n_workers, k), dtype=bool)
    given[w, y] = True

    def m_step(post: np.ndarray) -> np.ndarray:
        err = np.zeros((n_workers, k, k))
        np.add.at(err, (w, y), post[t])
        err = np.where(given[:, :, None], np.maximum(err, _EPS), 0.0)
        return err / err.sum(axis=1, keepdims=True)

    def log_err(err: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(err[w, y])  # votes x true labels (finite: observed combinations only)

    prior = post.mean(axis=0)
    err = m_step(post)
    loss = -np.inf
    for _ in range(n_iter):
        ll = np.zeros((n_items, k))
        np.add.at(ll, t, log_err(err))
        ll += np.log(np.maximum(prior, _EPS))
        ll -= ll.max(axis=1, keepdims=True)
        post = np.exp(ll)
        post /= post.sum(axis=1, keepdims=True)
        prior = post.mean(axis=0)
        err = m_step(post)
        lv = log_err(err) + np.log(np.maximum(prior, _EPS))  # crowd-kit's bound: prior counted per vote
        p = np.maximum(post, _EPS)
        new_loss = float(((post[t] * lv).sum() - (np.log(p) * p).sum()) / len(t))
        if new_loss - loss < tol:
            break
        loss = new_loss
    return post, err, prior


def _confusion_frame(workers: list[str], labels: tuple[str, ...], errors: np.ndarray) -> pl.DataFrame:
    k = len(labels)
    return pl.DataFrame({
        "annotator_id": np.repeat(workers, k * k).tolist(),
        "true_label": np.tile(np.repeat(labels, k), len(workers)).tolist(),
        "given_label": np.tile(labels, k * len(workers)).tolist(),
        "prob": errors.transpose(0, 2, 1).reshape(-1),
    }, schema={"annotator_id": pl.Utf8, "true_label": pl.Utf8, "given_label": pl.Utf8, "prob": pl.Float64})


def _accuracies(v: pl.DataFrame, posteriors: pl.DataFrame, labels: tuple[str, ...], confusion: pl.DataFrame,
                priors: dict[str, float]) -> pl.DataFrame:
    long = posteriors.unpivot(index="pair_id", on=[f"p_{lab}" for lab in labels], variable_name="label",
                              value_name="p").with_columns(pl.col("label").str.strip_prefix("p_"))
    per = (v.join(long, on=["pair_id", "label"], how="left")
           .group_by("annotator_id").agg(pl.len().alias("n_labeled"), pl.col("p").fill_null(0.0).sum().alias("_k"))
           .sort("annotator_id"))
    diag = (confusion.filter(pl.col("true_label") == pl.col("given_label"))
            .with_columns((pl.col("prob") * pl.col("true_label").replace_strict(priors, return_dtype=pl.Float64))
                          .alias("_w"))
            .group_by("annotator_id").agg(pl.col("_w").sum().alias("confusion_accuracy")))
    cis = [wilson_interval(k, n) for k, n in per.select("_k", "n_labeled").iter_rows()]
    return (per.with_columns((pl.col("_k") / pl.col("n_labeled")).alias("accuracy"),
                             pl.Series("ci_lo", [c[0] if c else None for c in cis], dtype=pl.Float64),
                             pl.Series("ci_hi", [c[1] if c else None for c in cis], dtype=pl.Float64))
            .join(diag, on="annotator_id", how="left")
            .select("annotator_id", pl.col("n_labeled").cast(pl.Int64), "accuracy", "ci_lo", "ci_hi",
                    "confusion_accuracy"))
