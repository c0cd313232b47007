"""Truncation: which pairs lose tokens — or everything that told their responses apart — at ``max_length``.

Pairs are tokenized and cut exactly as the trainer does (:mod:`prefaudit.train.truncation`: trl's
tokenization; ``keep_end_prompt`` by default, ``mode="keep_start"`` for trl >= 1.0's rule). A pair is

- *truncated* when it loses at least one token (prompt or either response);
- *damaged* when its chosen and rejected responses differ but are identical once truncated (both
  cut before their first difference, or nothing of either left): DPO learns nothing, or noise, from it;
- *empty* when no response token is left (the prompt fills ``max_length``; the trainer drops it).

Per pair: ``truncation_score`` is 1 when nothing is cut, the share of response tokens kept when some
are, and 0 when the pair is damaged; ``truncation_flag`` is True for damaged pairs. The tokenizer is
any Hugging Face tokenizer object, a local folder, or ``"tiny"``: the trainer's tiny-preset tokenizer,
trained on the data's own non-tie pairs with the preset's settings (what ``prefaudit train --model
tiny`` would use).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.errors import ConfigError
from prefaudit.plots import new_figure, register_plot

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.data.preference_set import PreferenceSet

#: Budgets reported alongside the chosen one, to show what a longer ``max_length`` would save.
OTHER_LENGTHS = (128, 256, 512, 1024, 2048, 4096)
N_EXAMPLES = 20


@dataclass(frozen=True)
class TinyTokenizer:
    """Stands for the trainer's tiny-preset tokenizer, trained on the audited data when the audit runs."""

    vocab_size: int = 4096
    min_frequency: int = 2
    name: str = "tiny"

    def build(self, data: PreferenceSet) -> Any:
        from prefaudit.train.presets import preset_texts, train_tokenizer

        return train_tokenizer(preset_texts(data.trainable()), self.vocab_size, self.min_frequency)


def load_tokenizer(spec: str | Path, trust_remote_code: bool = False) -> Any:
    """``"tiny"`` -> :class:`TinyTokenizer`; a local Hugging Face folder -> its tokenizer."""
    if str(spec) == "tiny":
        return TinyTokenizer()
    if not Path(spec).is_dir():
        raise ConfigError(f"--tokenizer {spec}: no such folder (give a local Hugging Face folder or 'tiny')")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec, trust_remote_code=trust_remote_code)


def truncation_table(tokenizer: Any, data: PreferenceSet, max_length: int, mode: str = "keep_end_prompt",
                     max_prompt_length: int | None = None) -> pl.DataFrame:
    """One row per pair: token counts before and after truncation and the truncated / damaged / empty flags."""
    from prefaudit.train.truncation import common_prefix_length, tokenize_pairs, truncate_pair

    df = data.df
    tokenized = tokenize_pairs(tokenizer, df["prompt"].to_list(), df["chosen"].to_list(), df["rejected"].to_list())
    rows = []
    for t in tokenized:
        cut = truncate_pair(t.prompt, t.chosen, t.rejected, max_length, mode, max_prompt_length)
        rows.append((len(t.prompt), len(t.chosen), len(t.rejected), len(cut.prompt), len(cut.chosen),
                     len(cut.rejected), common_prefix_length(t.chosen, t.rejected), cut.truncated, cut.damaged,
                     cut.empty))
    names = ["prompt_tokens", "chosen_tokens", "rejected_tokens", "kept_prompt", "kept_chosen", "kept_rejected",
             "first_difference", "truncated", "damaged", "empty"]
    out = pl.DataFrame(rows, schema=names, orient="row") if rows else pl.DataFrame(
        schema={n: pl.Boolean if n in ("truncated", "damaged", "empty") else pl.Int64 for n in names})
    return out.with_columns(df["pair_id"].alias("pair_id")).select("pair_id", *names)


def _shares_at(table: pl.DataFrame, max_length: int, mode: str, max_prompt_length: int | None) -> dict[str, Any]:
    """Truncated and damaged shares at another budget, from token counts alone (no re-tokenization)."""
    p, c, r = (table[k].to_numpy() for k in ("prompt_tokens", "chosen_tokens", "rejected_tokens"))
    longest = np.maximum(c, r)
    if mode == "keep_start":
        kept_p = np.minimum(p, max_length)
    else:
        floor = max_length // 2 if max_prompt_length is None else min(max_prompt_length, max_length)
        need = p + longest - max_length
        kept_p = np.where(need <= 0, p, np.maximum(p - need, np.minimum(p, floor)))
    budget = np.maximum(0, max_length - kept_p)
    truncated = (kept_p < p) | (longest > budget)
    first = table["first_difference"].to_numpy()
    differ = (c != r) | (first < np.minimum(c, r))
    damaged = differ & (first >= budget)
    n = max(1, len(p))
    return {"max_length": max_length, "truncated_share": float(truncated.sum() / n),
            "damaged_share": float(damaged.sum() / n)}


class TruncationAnalyzer:
    """Share of pairs truncated, and of pairs damaged by truncation, at the trainer's ``max_length``.

    Parameters (None: take it from the :class:`AuditContext`): ``tokenizer`` (object, local folder or
    ``"tiny"``), ``max_length``, ``max_prompt_length``; ``mode`` is the trainer's truncation mode.
    """

    name = "truncation"

    def __init__(self, tokenizer: Any = None, max_length: int | None = None, mode: str = "keep_end_prompt",
                 max_prompt_length: int | None = None, n_examples: int = N_EXAMPLES) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.mode = mode
        self.max_prompt_length = max_prompt_length
        self.n_examples = n_examples

    def config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "mode": self.mode, "max_prompt_length": self.max_prompt_length,
                "n_examples": self.n_examples}

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        from prefaudit.train.truncation import TRUNCATION_MODES

        ctx = context or AuditContext()
        tok = self.tokenizer if self.tokenizer is not None else ctx.tokenizer
        max_length = self.max_length if self.max_length is not None else ctx.max_length
        max_prompt = self.max_prompt_length if self.max_prompt_length is not None else ctx.max_prompt_length
        cfg = {**self.config(), "max_length": max_length, "max_prompt_length": max_prompt}
        if tok is None:
            return AnalyzerResult.skip(self.name, "no tokenizer given (--tokenizer)", cfg)
        if self.mode not in TRUNCATION_MODES:
            raise ConfigError(f"truncation mode must be one of {TRUNCATION_MODES}, got {self.mode!r}")
        if isinstance(tok, str | Path):
            tok = load_tokenizer(tok)
        if isinstance(tok, TinyTokenizer):
            tok = tok.build(data)
        cfg["tokenizer"] = str(getattr(tok, "name_or_path", "") or type(tok).__name__)
        t = truncation_table(tok, data, max_length, self.mode, max_prompt)
        n = t.height
        count = lambda col: int(t[col].sum())  # noqa: E731
        lost_resp = (t["kept_chosen"] < t["chosen_tokens"]) | (t["kept_rejected"] < t["rejected_tokens"])
        metrics = {
            "truncation.truncated_share": Metric.proportion(count("truncated"), n,
                                                            "share of pairs losing at least one token"),
            "truncation.damaged_share": Metric.proportion(
                count("damaged"), n, "responses differ but are identical once truncated"),
            "truncation.response_truncated_share": Metric.proportion(int(lost_resp.sum()), n),
            "truncation.prompt_truncated_share": Metric.proportion(int((t["kept_prompt"] < t["prompt_tokens"]).sum()),
                                                                   n),
            "truncation.empty_share": Metric.proportion(count("empty"), n,
                                                        "no response token left (the trainer drops these)"),
        }
        total = (t["chosen_tokens"] + t["rejected_tokens"]).cast(pl.Float64)
        kept = (t["kept_chosen"] + t["kept_rejected"]).cast(pl.Float64)
        score = (pl.when(t["damaged"]).then(0.0).when(~t["truncated"]).then(1.0)
                 .otherwise(kept / pl.max_horizontal(total, pl.lit(1.0))))
        pairs = t.select(
            "pair_id", score.alias("truncation_score"), pl.col("damaged").alias("truncation_flag"),
            *[pl.col(c).alias(f"truncation_{c}") for c in t.columns if c not in ("pair_id", "damaged")])
        lengths = pl.DataFrame([
            {"part": part, **{f"p{q}": float(np.quantile(t[f"{part}_tokens"].to_numpy(), q / 100)) if n else None
                              for q in (50, 90, 99)}, "max": int(t[f"{part}_tokens"].max() or 0)}
            for part in ("prompt", "chosen", "rejected")])
        budgets = sorted({*OTHER_LENGTHS, max_length})
        examples = t.filter(pl.col("damaged")).head(self.n_examples).join(
            data.df.select("pair_id", "prompt", "chosen", "rejected"), on="pair_id", how="left")
        details = {"token_lengths": lengths,
                   "by_max_length": pl.DataFrame([_shares_at(t, b, self.mode, max_prompt) for b in budgets]),
                   "examples": examples}
        return AnalyzerResult(self.name, metrics, pairs, details, None, cfg)


@register_plot("truncation")
def plot_truncation(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """Truncated and damaged shares against the token budget; the audited budget marked."""
    fig = new_figure(6.0, 3.2)
    ax = fig.add_subplot()
    table = result.details.get("by_max_length")
    if isinstance(table, pl.DataFrame) and table.height:
        x = table["max_length"].to_list()
        ax.plot(x, table["truncated_share"].to_list(), "o-", color="#1f5fa8", label="truncated")
        ax.plot(x, table["damaged_share"].to_list(), "s-", color="#b8322a", label="damaged")
        ax.set_xscale("log", base=2)
        if result.config.get("max_length"):
            ax.axvline(result.config["max_length"], color="#888", linestyle=":")
        ax.legend()
    ax.set_xlabel("max_length (tokens)")
    ax.set_ylabel("share of pairs")
    ax.set_title("truncation")
    return fig
