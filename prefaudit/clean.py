"""Cleaning: a policy (TOML) applied to an audit's per-pair table -> cleaned PreferenceSet + manifest.

Each rule of the policy marks pairs with a reason code; a pair with any ``remove`` reason is removed,
a pair whose only action is ``relabel`` has chosen/rejected swapped. The manifest lists every removed
or relabeled pair with ``action`` and **all** its reason codes, so that kept + removed = pairs in
(asserted). Reason codes, in the order rules run:

- ``tie``: the annotators' consensus is a tie (kept in the audit, left out of training data);
- ``empty_response``, ``identical_pair``: from the hygiene analyzer;
- ``duplicate``: an exact or normalised duplicate of an earlier pair (the first copy is kept);
- ``contradiction``: the same prompt and responses labeled both ways (every pair of the group);
- ``eval_leakage``: the prompt is (nearly) an eval prompt (only with an eval set);
- ``truncated_looking``: a response looks cut off mid-sentence (off by default: informational);
- ``truncation``: the pair loses what distinguishes its responses at the trainer's ``max_length``;
- ``low_agreement``: ``agreement_score`` below the policy's minimum;
- ``noise``: likely mislabeled — by default the lowest-``noise_score`` pairs, 0.9 x as many as the
  noise analyzer estimates are mislabeled (``select = "budget"``), or those below a score threshold
  (``select = "threshold"``): removed, or relabeled when annotations support the other side;
- ``length_debias``: removed by length resampling (``[length] mode = "resample"``), which brings the
  chosen-longer rate of what is kept to 0.5 within a tolerance; ``mode = "weights"`` instead gives
  every kept pair a ``weight`` with the same effect and removes nothing.

The documented default policy is ``prefaudit/defaults/clean.toml``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit._callable import callable_module
from prefaudit.errors import ConfigError, InputError
from prefaudit.tomlfile import read_toml

if TYPE_CHECKING:
    from prefaudit.analyzers.base import Metric
    from prefaudit.audit import Audit
    from prefaudit.data.preference_set import PreferenceSet

ACTIONS = ("remove", "keep")
MANIFEST_SCHEMA = {"pair_id": pl.Utf8, "action": pl.Utf8, "reasons": pl.List(pl.Utf8), "noise_score": pl.Float64,
                   "agreement_score": pl.Float64, "detail": pl.Utf8}
REVIEW_COLUMNS = ("pair_id", "prompt", "response_a", "response_b", "label", "annotator_id")

#: Policy sections, their keys and defaults (the default TOML file documents each).
POLICY_SCHEMA: dict[str, dict[str, Any]] = {
    "ties": {"action": "remove"},
    "empty": {"action": "remove"},
    "identical": {"action": "remove"},
    "duplicates": {"action": "remove", "normalized": True},
    "contradictions": {"action": "remove"},
    "eval_leakage": {"action": "remove"},
    "truncated_looking": {"action": "keep"},
    "truncation": {"action": "remove"},
    "agreement": {"action": "remove", "min_score": 0.6},
    "noise": {"action": "remove", "select": "budget", "budget": 0.9, "max_score": 0.5, "use_flag": False,
              "relabel_below": 0.5},
    "length": {"mode": "none", "tolerance": 0.02},
    "review": {"reasons": ["noise", "low_agreement", "contradiction"], "include_flagged": True},
}
SECTION_ACTIONS = {"noise": ("remove", "relabel", "keep"), "length": ("none", "resample", "weights")}
SELECTS = ("budget", "threshold")


# ---- policy ----------------------------------------------------------------------------------------
def default_policy_path() -> Path:
    return Path(str(resources.files("prefaudit") / "defaults" / "clean.toml"))


def _check_policy(d: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    out = copy.deepcopy(POLICY_SCHEMA)
    for section, values in d.items():
        if section not in POLICY_SCHEMA:
            raise ConfigError(f"{where}: unknown policy section [{section}] (known: {', '.join(POLICY_SCHEMA)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: [{section}] must be a table")
        for key, value in values.items():
            if key not in POLICY_SCHEMA[section]:
                raise ConfigError(f"{where}: unknown key {key!r} in [{section}] "
                                  f"(known: {', '.join(POLICY_SCHEMA[section])})")
            default = POLICY_SCHEMA[section][key]
            if isinstance(default, bool) and not isinstance(value, bool):
                raise ConfigError(f"{where}: [{section}] {key} must be true or false")
            if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{where}: [{section}] {key} must be a number")
            if isinstance(default, list) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ConfigError(f"{where}: [{section}] {key} must be a list of reason codes")
            out[section][key] = float(value) if isinstance(default, float) else value
        key = "mode" if section == "length" else "action"
        if key in out[section]:
            allowed = SECTION_ACTIONS.get(section, ACTIONS)
            if out[section][key] not in allowed:
                raise ConfigError(f"{where}: [{section}] {key} must be one of {', '.join(allowed)}, "
                                  f"got {out[section][key]!r}")
    if out["noise"]["select"] not in SELECTS:
        raise ConfigError(f"{where}: [noise] select must be one of {', '.join(SELECTS)}, got {out['noise']['select']!r}")
    if out["noise"]["budget"] < 0:
        raise ConfigError(f"{where}: [noise] budget must be >= 0")
    tol = out["length"]["tolerance"]
    if not 0 <= tol < 0.5:
        raise ConfigError(f"{where}: [length] tolerance must be in [0, 0.5)")
    return out


def load_policy(spec: str | Path | Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """A validated policy from a TOML path, a mapping (missing keys take defaults), or None (the default)."""
    if isinstance(spec, Mapping):
        return _check_policy(spec, "policy")
    path = default_policy_path() if spec is None else Path(spec)
    d = read_toml(path, "policy")
    return _check_policy(d, str(path))


# ---- rules: (table, policy section) -> boolean Series over the pairs (True = the reason applies) --------
def _col(table: pl.DataFrame, *names: str) -> pl.Series | None:
    for n in names:
        if n in table.columns:
            return table[n]
    return None


def _bool(s: pl.Series | None, n: int) -> pl.Series:
    if s is None:
        return pl.Series([False] * n, dtype=pl.Boolean)
    return s.cast(pl.Boolean).fill_null(False)


def _rule_tie(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(t["tie"], t.height)


def _rule_empty(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(_col(t, "hygiene_empty_response"), t.height)


def _rule_identical(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(_col(t, "hygiene_identical_pair"), t.height)


def _rule_duplicate(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    """Every copy after the first (hygiene marks only the later copies, so one is kept)."""
    col = "hygiene_normalized_duplicate" if p["normalized"] else "hygiene_exact_duplicate"
    return _bool(_col(t, col), t.height)


def _rule_contradiction(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(_col(t, "hygiene_contradiction"), t.height)


def _rule_eval_leakage(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(_col(t, "hygiene_eval_leakage"), t.height)


def _rule_truncated_looking(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(_col(t, "hygiene_truncated_looking"), t.height)


def _rule_truncation(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    return _bool(_col(t, "truncation_flag"), t.height)


def _rule_low_agreement(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    s = _col(t, "agreement_score")
    if s is None:
        return _bool(None, t.height)
    return (s < p["min_score"]).fill_null(False)


def _rule_noise(t: pl.DataFrame, p: Mapping[str, Any], m: Mapping[str, Metric]) -> pl.Series:
    """``select = "budget"``: the lowest-``noise_score`` pairs, ``budget`` x the estimated number of
    mislabeled pairs (``noise.estimated_rate`` x the scored pairs; ties and unscored pairs never count); falls back to
    the threshold rule when the rate is undefined. ``select = "threshold"``: ``noise_score`` <
    ``max_score`` (or'ed with ``noise_flag`` when ``use_flag``)."""
    s = _col(t, "noise_score")
    rate = m.get("noise.estimated_rate")
    if p["select"] == "budget" and s is not None and rate is not None and rate.value is not None:
        scored = pl.DataFrame({"s": s}).with_row_index("i").filter(pl.col("s").is_not_null())
        k = int(round(p["budget"] * rate.value * scored.height))
        ranked = scored.sort(["s", "i"]).head(k)["i"].to_numpy()
        hit = np.zeros(t.height, dtype=bool)
        hit[ranked] = True
        return pl.Series(hit)
    hit = _bool(None, t.height) if s is None else (s < p["max_score"]).fill_null(False)
    if p["use_flag"]:
        hit = hit | _bool(_col(t, "noise_flag"), t.height)
    return hit


#: Rules in order: reason code -> (policy section, rule). Each rule sees the joined table.
RULES: dict[str, tuple[str, Callable[[pl.DataFrame, Mapping[str, Any], Mapping[str, Metric]], pl.Series]]] = {
    "tie": ("ties", _rule_tie),
    "empty_response": ("empty", _rule_empty),
    "identical_pair": ("identical", _rule_identical),
    "duplicate": ("duplicates", _rule_duplicate),
    "contradiction": ("contradictions", _rule_contradiction),
    "eval_leakage": ("eval_leakage", _rule_eval_leakage),
    "truncated_looking": ("truncated_looking", _rule_truncated_looking),
    "truncation": ("truncation", _rule_truncation),
    "low_agreement": ("agreement", _rule_low_agreement),
    "noise": ("noise", _rule_noise),
}

#: The analyzers whose per-pair columns the rules read.
NEEDED_ANALYZERS = ("hygiene", "agreement", "noise", "truncation")


def _relabel_supported(data: PreferenceSet, t: pl.DataFrame, relabel_below: float) -> pl.Series:
    """Pairs whose annotations hold at least one vote for the rejected side and whose noise score says
    the rejected side is the likelier one (``noise_score`` < ``relabel_below``)."""
    n = t.height
    if not data.has_annotations or "noise_score" not in t.columns:
        return _bool(None, n)
    cons = data.annotations.consensus().select("pair_id", "votes_a", "votes_b")
    side = data.df.select("pair_id", pl.col("chosen_side") if "chosen_side" in data.df.columns
                          else pl.lit("a").alias("chosen_side"))
    j = t.select("pair_id", "noise_score").join(side, on="pair_id", how="left", maintain_order="left") \
        .join(cons, on="pair_id", how="left", maintain_order="left")
    other_votes = pl.when(pl.col("chosen_side") == "b").then(pl.col("votes_a")).otherwise(pl.col("votes_b"))
    return j.select(((other_votes.fill_null(0) > 0) & (pl.col("noise_score") < relabel_below))
                    .fill_null(False))[:, 0]


def debias_resample(longer: np.ndarray, keep: np.ndarray, tolerance: float, seed: int) -> np.ndarray:
    """Indices to drop (among ``keep``) so that the kept chosen-longer rate is 0.5 within ``tolerance``.

    ``longer`` is 1 where the chosen response is longer, 0 where it is not, -1 where undefined (kept
    out of the rate). Drops a seeded random subset of the majority side.
    """
    idx_l = np.flatnonzero(keep & (longer == 1))
    idx_s = np.flatnonzero(keep & (longer == 0))
    nl, ns = idx_l.size, idx_s.size
    if nl + ns == 0 or abs(nl / (nl + ns) - 0.5) <= tolerance:
        return np.array([], dtype=np.int64)
    rng = np.random.default_rng(seed)
    target = 0.5 + tolerance if nl > ns else 0.5 - tolerance
    if nl > ns:  # need nl' / (nl' + ns) <= target
        n_keep = int(np.floor(target * ns / (1 - target)))
        return np.sort(rng.choice(idx_l, size=nl - n_keep, replace=False))
    n_keep = int(np.floor((1 - target) * nl / target))
    return np.sort(rng.choice(idx_s, size=ns - n_keep, replace=False))


def debias_weights(longer: np.ndarray) -> np.ndarray:
    """Per-pair weights (mean 1 over defined pairs) giving a weighted chosen-longer rate of exactly 0.5."""
    w = np.ones(longer.size)
    nl, ns = int((longer == 1).sum()), int((longer == 0).sum())
    if nl and ns:
        n = nl + ns
        w[longer == 1] = 0.5 * n / nl
        w[longer == 0] = 0.5 * n / ns
    return w


# ---- the result ------------------------------------------------------------------------------------
@dataclass
class CleanResult:
    """The cleaned set, the manifest (every removed/relabeled pair with all its reasons), and counts."""

    data: PreferenceSet
    manifest: pl.DataFrame
    policy: dict[str, dict[str, Any]]
    counts: dict[str, Any] = field(default_factory=dict)
    audit: Audit | None = None
    source: PreferenceSet | None = None

    @property
    def removed_ids(self) -> list[str]:
        return self.manifest.filter(pl.col("action") == "remove")["pair_id"].to_list()

    @property
    def relabeled_ids(self) -> list[str]:
        return self.manifest.filter(pl.col("action") == "relabel")["pair_id"].to_list()

    def ids_with_reason(self, reason: str, action: str | None = None) -> list[str]:
        m = self.manifest.filter(pl.col("reasons").list.contains(reason))
        if action is not None:
            m = m.filter(pl.col("action") == action)
        return m["pair_id"].to_list()

    def trl_frame(self) -> pl.DataFrame:
        """TRL's standard preference format: prompt, chosen, rejected (+ weight)."""
        cols = ["prompt", "chosen", "rejected"] + (["weight"] if "weight" in self.data.df.columns else [])
        return self.data.df.select(cols)

    def write(self, path: str | Path) -> Path:
        """Write the cleaned pairs in TRL format (by extension: .jsonl, .json, .csv, .parquet)."""
        from prefaudit.data.io import write_frame

        return write_frame(self.trl_frame(), path)

    def write_manifest(self, path: str | Path) -> Path:
        from prefaudit.data.io import write_frame

        m = self.manifest
        if Path(path).suffix.lower() == ".csv":
            m = m.with_columns(pl.col("reasons").list.join(";"))
        return write_frame(m, path)

    def review_frame(self) -> pl.DataFrame:
        """Suspicious pairs for re-annotation: pair_id, prompt, response_a, response_b, label, annotator_id.

        ``response_a``/``response_b`` are the pair's canonical order (the input's, before any
        relabeling); ``label`` (a / b / tie or a number in [-2, 2]) and ``annotator_id`` are left
        empty for the annotators to fill in. The filled-in file loads back with
        :func:`prefaudit.load_annotations`.
        """
        src = self.source if self.source is not None else self.data
        review = self.policy["review"]
        m = self.manifest.filter(pl.col("reasons").list.set_intersection(
            pl.lit(review["reasons"], dtype=pl.List(pl.Utf8))).list.len() > 0)["pair_id"]
        ids = set(m.to_list())
        if review["include_flagged"] and self.audit is not None and "noise_flag" in self.audit.pairs.columns:
            ids |= set(self.audit.pairs.filter(pl.col("noise_flag").fill_null(False))["pair_id"].to_list())
        ab = src.responses_ab().join(src.df.select("pair_id", "prompt"), on="pair_id", how="left",
                                     maintain_order="left")
        out = ab.filter(pl.col("pair_id").is_in(pl.Series(sorted(ids), dtype=pl.Utf8).implode()))
        return out.select("pair_id", "prompt", "response_a", "response_b",
                          pl.lit(None, pl.Utf8).alias("label"), pl.lit(None, pl.Utf8).alias("annotator_id"))

    def write_review(self, path: str | Path) -> Path:
        p = Path(path)
        if p.suffix.lower() != ".csv":
            raise ConfigError(f"--review-out must be a .csv file, got {p.name!r}")
        p.parent.mkdir(parents=True, exist_ok=True)
        self.review_frame().write_csv(p)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "policy": self.policy}

    def _repr_html_(self) -> str:
        from prefaudit.reprs import esc, table_html

        c = self.counts
        head = self.manifest.head(5).with_columns(pl.col("reasons").list.join(", "))
        return (f"<div class='prefaudit-clean'><b>Clean</b>: {c['pairs_in']} pairs in, {c['kept']} kept "
                f"({c['relabeled']} relabeled), {c['removed']} removed; by reason {esc(c['by_reason'], 300)}"
                f"{table_html(head.columns, head.rows())}</div>")

    def __repr__(self) -> str:
        c = self.counts
        return f"CleanResult(in={c['pairs_in']}, kept={c['kept']}, removed={c['removed']}, relabeled={c['relabeled']})"


# ---- the entry point --------------------------------------------------------------------------------
def clean(
    data_or_audit: Any,
    policy: str | Path | Mapping[str, Any] | None = None,
    *,
    annotations: Any = None,
    eval: Any = None,  # noqa: A002 - the DESIGN.md option name
    seed: int = 0,
    embeddings: bool = True,
    embedder: Any = None,
    tokenizer: Any = None,
    max_length: int = 256,
    progress: bool = False,
    max_model_pairs: int | None = 50_000,
) -> CleanResult:
    """Apply a cleaning policy (default: ``prefaudit/defaults/clean.toml``).

    ``data_or_audit`` is an :class:`Audit` made in this process (it keeps its data) or data as
    :func:`prefaudit.audit` accepts it, in which case the analyzers the rules read (hygiene,
    agreement, noise, truncation) are run first with the given options. Every pair gets its scores:
    above ``max_model_pairs`` pairs (None or 0: no limit) the noise model is cross-fitted on a seeded
    sample of that size and scores the other pairs out of sample (``NoiseAnalyzer(fit_pairs=...)``),
    which bounds time and memory on large sets.
    """
    from prefaudit.audit import Audit, audit

    pol = load_policy(policy)
    if isinstance(data_or_audit, Audit):
        if data_or_audit.data is None:
            raise InputError("this audit was read from JSON and carries no data: pass the data to clean()")
        aud = data_or_audit
    else:
        aud = audit(data_or_audit, annotations, eval=eval, analyzers=list(NEEDED_ANALYZERS), seed=seed,
                    embeddings=embeddings, embedder=embedder, tokenizer=tokenizer, max_length=max_length,
                    progress=progress, max_model_pairs=None,  # every pair gets its scores
                    config={"noise": {"fit_pairs": max_model_pairs or None}})
    return apply_policy(aud.data, aud.pairs, pol, seed=seed, audit=aud)


def apply_policy(data: PreferenceSet, pairs: pl.DataFrame, policy: Mapping[str, Mapping[str, Any]], *,
                 metrics: Mapping[str, Metric] | None = None, seed: int = 0,
                 audit: Audit | None = None) -> CleanResult:
    """The pure core of :func:`clean`: policy + per-pair table (+ the audit's metrics, for the noise
    budget) -> cleaned set + manifest."""
    metrics = metrics if metrics is not None else (audit.metrics if audit is not None else {})
    n = data.df.height
    t = data.df.select("pair_id", "tie", "chosen", "rejected").join(
        pairs.drop([c for c in ("tie", "chosen", "rejected") if c in pairs.columns]),
        on="pair_id", how="left", maintain_order="left")
    remove_codes: dict[str, pl.Series] = {}
    relabel = _bool(None, n)
    for code, (section, rule) in RULES.items():
        p = policy[section]
        if p["action"] == "keep":
            continue
        hit = rule(t, p, metrics)
        if code == "noise" and p["action"] == "relabel":
            ok = _relabel_supported(data, t, p["relabel_below"])
            relabel = hit & ok
            hit = hit & ~ok
        remove_codes[code] = hit
    removed = pl.Series([False] * n) if not remove_codes else \
        pl.DataFrame(remove_codes).select(pl.any_horizontal(pl.all()))[:, 0]
    suspected = relabel  # the noise reason stays listed even when another reason removes the pair
    relabel = relabel & ~removed

    # length debiasing on what would be kept (relabeled pairs count with their new orientation)
    length = policy["length"]
    lc = t["chosen"].str.len_chars()
    lr = t["rejected"].str.len_chars()
    chosen_longer = pl.select(pl.when(relabel).then(lr > lc).otherwise(lc > lr)).to_series()
    longer = np.where(t["tie"].to_numpy(), -1, chosen_longer.cast(pl.Int8).to_numpy())
    weights = None
    if length["mode"] == "resample":
        drop = debias_resample(longer, ~removed.to_numpy(), length["tolerance"], seed)
        hit = np.zeros(n, dtype=bool)
        hit[drop] = True
        remove_codes["length_debias"] = pl.Series(hit)
        removed = removed | pl.Series(hit)
    elif length["mode"] == "weights":
        keep_mask = ~removed.to_numpy()
        w = np.ones(n)
        w[keep_mask] = debias_weights(longer[keep_mask])
        weights = pl.Series("weight", w)

    codes = list(remove_codes)
    reasons_df = pl.DataFrame({c: remove_codes[c] for c in codes}) if codes else pl.DataFrame()
    if policy["noise"]["action"] == "relabel":
        reasons_df = reasons_df.with_columns(suspected.alias("noise_relabel"))
    reason_names = [*codes, *(["noise"] if "noise_relabel" in reasons_df.columns else [])]
    reason_cols = [*codes, *(["noise_relabel"] if "noise_relabel" in reasons_df.columns else [])]
    if reason_cols:
        reasons = reasons_df.select(pl.concat_list([
            pl.when(pl.col(c)).then(pl.lit(name)).otherwise(None) for c, name in zip(reason_cols, reason_names,
                                                                                      strict=True)])
            .list.drop_nulls().list.unique(maintain_order=True).alias("reasons"))["reasons"]
    else:
        reasons = pl.Series("reasons", [[] for _ in range(n)], dtype=pl.List(pl.Utf8))
    action = pl.select(pl.when(removed).then(pl.lit("remove")).when(relabel).then(pl.lit("relabel"))
                       .otherwise(None)).to_series()
    man = pl.DataFrame({"pair_id": t["pair_id"], "action": action, "reasons": reasons,
                        "noise_score": t["noise_score"] if "noise_score" in t.columns else None,
                        "agreement_score": t["agreement_score"] if "agreement_score" in t.columns else None},
                       schema_overrides={"noise_score": pl.Float64, "agreement_score": pl.Float64})
    man = man.filter(pl.col("action").is_not_null()).with_columns(
        pl.when(pl.col("action") == "relabel").then(pl.lit("chosen and rejected swapped"))
        .otherwise(None).alias("detail"))
    man = man.select(list(MANIFEST_SCHEMA)).cast(MANIFEST_SCHEMA)

    removed_ids = man.filter(pl.col("action") == "remove")["pair_id"]
    relabel_ids = man.filter(pl.col("action") == "relabel")["pair_id"]
    cleaned = data.swapped(relabel_ids.to_list()) if relabel_ids.len() else data
    if weights is not None:
        from dataclasses import replace

        cleaned = replace(cleaned, df=cleaned.df.with_columns(weights))
    cleaned = cleaned.drop(removed_ids.to_list())
    kept, n_removed = len(cleaned), removed_ids.len()
    assert kept + n_removed == n, f"accounting broken: kept {kept} + removed {n_removed} != pairs in {n}"
    by_reason = {c: int(man.filter(pl.col("reasons").list.contains(c)).height) for c in (*RULES, "length_debias")}
    counts = {"pairs_in": n, "kept": kept, "removed": int(n_removed), "relabeled": int(relabel_ids.len()),
              "by_reason": {k: v for k, v in by_reason.items() if v}}
    return CleanResult(cleaned, man, {k: dict(v) for k, v in policy.items()}, counts, audit, data)


callable_module(__name__, clean)

__all__ = ["CleanResult", "RULES", "apply_policy", "clean", "debias_resample", "debias_weights", "load_policy"]
