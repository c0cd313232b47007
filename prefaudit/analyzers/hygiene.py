"""Hygiene: duplicates, contradictions, identical/empty/truncated-looking responses, eval leakage.

Pure, vectorised functions underneath (polars string kernels, hashing; no per-row Python loops), and
:class:`HygieneAnalyzer` on top. Everything runs without embeddings; only the near-duplicate checks use
them when an embedder is given (cosine similarity), and fall back to MinHash otherwise.

Reason codes (``hygiene_reasons``, ";"-joined, in this order) and what each means:

============================ ==================================================================
``exact_duplicate``          same prompt, chosen and rejected as an earlier pair (the first copy
                             is not flagged, so dropping flagged pairs keeps one copy)
``normalized_duplicate``     the same after :func:`normalize_expr` (case, punctuation, whitespace)
                             as an earlier pair; includes exact duplicates
``identical_pair``           chosen and rejected are the same text after normalisation
``empty_response``           chosen or rejected is empty or whitespace only
``contradiction``            the same prompt and two responses appear labeled both ways
                             (:func:`contradiction_groups`; every member is flagged)
``eval_leakage``             the prompt is an exact (normalised) or near duplicate of an eval prompt
``truncated_looking``        chosen or rejected looks cut off (:func:`truncated_expr`)
``near_duplicate_prompt``    the prompt is a near duplicate of a *different* prompt elsewhere in
                             the set (several pairs per identical prompt is normal and not flagged)
============================ ==================================================================

``hygiene_score`` is the lowest :data:`SEVERITY` of a pair's reasons (1.0 when it has none);
``hygiene_flag`` is True for every reason except ``near_duplicate_prompt``, which is informational.
Other per-pair columns: one boolean ``hygiene_<reason>`` per reason code, ``hygiene_duplicate_group``
(id shared by all copies after normalisation, the first included), ``hygiene_duplicate_of`` (pair_id
of the first copy), ``hygiene_contradiction_group`` and ``hygiene_near_duplicate_of``.

Near duplicates: embedding cosine >= ``cosine_threshold`` (0.95) with an embedder, else Jaccard
similarity of word 3-shingles >= ``jaccard_threshold`` (0.8) on the normalised text (candidates from
MinHash LSH, then the exact Jaccard of the hashed shingle sets). Duplicates and contradictions compare
64-bit hashes of the normalised texts, and a response is normalised in full only where a check can use
it (:func:`_response_keys`). On 1,000,000 pairs without embeddings the analyzer takes about 5 s on 2
cores, 2 s of it the MinHash search (benchmarks/RESULTS.md, "Audit at scale (issue 5)").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.plots import new_figure, register_plot

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.data.preference_set import PreferenceSet
    from prefaudit.embed import Embedder

#: Characters :func:`normalize_expr` turns into spaces: Unicode punctuation, symbols, and whitespace
#: other than the plain space.
_PUNCT = r"[\p{P}\p{S}[^\S ]]"
#: How a structured line starts (list item, heading, table row, quote, code), and a URL anywhere in it.
_STRUCTURED_START = r"^(?:[ \t]*(?:[-*+•][ \t]|\d+[.)][ \t]|#|\||>|`)|(?: {4}|\t))"
_URL = r"(?:https?://|www\.)"
#: A text that ends on one of these (a letter, digit, comma, semicolon, colon, open bracket or dash) ends open.
_OPEN_LAST_CHAR = r"[\p{L}\p{N},;:(\[\-–—]"
#: The last line of a (stripped) text is a list item, heading, table row, quote, code or holds a URL.
_STRUCTURED_LAST_LINE = rf"(?:^|\n){_STRUCTURED_START[1:]}[^\n]*\z|{_URL}[^\n]*\z"

#: Score given by each reason (lowest wins). Below 0.9 the pair is flagged.
SEVERITY: dict[str, float] = {
    "exact_duplicate": 0.0, "normalized_duplicate": 0.1, "identical_pair": 0.0, "empty_response": 0.0,
    "contradiction": 0.0, "eval_leakage": 0.0, "truncated_looking": 0.5, "near_duplicate_prompt": 0.9,
}
REASONS: tuple[str, ...] = tuple(SEVERITY)
_HASH_SEED = 11
FLAG_BELOW = 0.9

#: Metric name for each reason's share.
SHARE_METRICS = {
    "exact_duplicate": "hygiene.exact_duplicate_share",
    "normalized_duplicate": "hygiene.normalized_duplicate_share",
    "identical_pair": "hygiene.identical_pair_share",
    "empty_response": "hygiene.empty_response_share",
    "contradiction": "hygiene.contradiction_share",
    "eval_leakage": "hygiene.eval_leakage_share",
    "truncated_looking": "hygiene.truncated_response_share",
    "near_duplicate_prompt": "hygiene.near_duplicate_prompt_share",
}


# ---- text predicates ------------------------------------------------------------------------------
def normalize_expr(expr: pl.Expr | str) -> pl.Expr:
    """Normalised text: lower-cased, punctuation/symbols turned into spaces, whitespace collapsed and stripped.

    Vectorised (polars string kernels): two texts that differ only in case, punctuation or spacing
    normalise to the same string.
    """
    e = pl.col(expr) if isinstance(expr, str) else expr
    # two passes that match rarely (punctuation and non-space whitespace, then runs of spaces) are
    # several times faster than one pass over every whitespace character
    return (e.str.to_lowercase().str.replace_all(_PUNCT, " ")
            .str.replace_all(" {2,}", " ").str.strip_chars())


def empty_expr(expr: pl.Expr | str) -> pl.Expr:
    """True where the text is null, empty or whitespace only."""
    e = pl.col(expr) if isinstance(expr, str) else expr
    return e.is_null() | (e.str.strip_chars().str.len_chars() == 0)


def _many_words(min_words: int) -> str:
    """Pattern: at least ``min_words`` words (stops at the n-th word)."""
    return rf"^\s*(?:\S+\s+){{{max(min_words, 1) - 1}}}\S"


def _truncation_parts(e: pl.Expr, min_words: int) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(odd code fence, open ending with at least ``min_words`` words, structured last line) of a text."""
    t = e.fill_null("").str.strip_chars()
    open_end = t.str.contains(_OPEN_LAST_CHAR + r"\z")
    many_words = t.str.contains(_many_words(min_words))
    odd_fence = (t.str.count_matches("```") % 2) == 1
    return odd_fence, open_end & many_words, t.str.contains(_STRUCTURED_LAST_LINE)


def truncated_expr(expr: pl.Expr | str, min_words: int = 8) -> pl.Expr:
    """True where a response looks cut off mid-sentence (a heuristic; false positives are possible).

    A response looks truncated when it opens a code fence it never closes (an odd number of
    ```), or when it has at least ``min_words`` words, its last line is prose (not a list item,
    heading, table row, code or URL) and it ends on a letter, digit, comma, semicolon, colon, open
    bracket or dash instead of closing punctuation (``. ! ? …`` quotes, brackets, emoji...). Short
    answers ("Paris", "Yes") are never flagged. On hh-rlhf about 6% of responses match (that data set
    is known to contain responses cut at a length limit). :func:`truncated_looking` computes the same
    over a frame, faster.
    """
    odd_fence, open_prose, structured = _truncation_parts(pl.col(expr) if isinstance(expr, str) else expr,
                                                          min_words)
    return odd_fence | (open_prose & ~structured)


def _spread(values: pl.Series, rows: pl.Series, n: int, fill: Any = None) -> pl.Series:
    """A length-``n`` column holding ``values`` at positions ``rows`` and ``fill`` elsewhere."""
    return pl.repeat(fill, n, dtype=values.dtype, eager=True).scatter(rows, values).alias(values.name)


def truncated_looking(df: pl.DataFrame, col: str, min_words: int = 8) -> pl.Series:
    """:func:`truncated_expr` of ``df[col]``, faster on large frames: patterns that skip surrounding
    whitespace themselves instead of stripping every text; for a one-line text the last-line test is
    two cheap patterns (its start, and a URL anywhere); the full last-line pattern runs only on the
    multi-line texts whose open ending it can still clear."""
    e = pl.col(col).fill_null("")
    base = df.select(
        ((e.str.count_matches("```") % 2) == 1).alias("fence"),
        (e.str.contains(_OPEN_LAST_CHAR + r"\s*\z") & e.str.contains(_many_words(min_words))).alias("open"),
        e.str.contains("\n", literal=True).alias("nl"),
        (e.str.contains(r"^\s*" + _STRUCTURED_START[1:]) | e.str.contains(_URL)).alias("one"))
    out = base["fence"] | (base["open"] & ~base["nl"] & ~base["one"])
    rows = (base["open"] & base["nl"]).arg_true()
    if rows.len():
        cleared = df[rows].select(_truncation_parts(pl.col(col), min_words)[2].alias("s"))["s"]
        out = out.scatter(rows, base["fence"].gather(rows) | ~cleared)
    return out.alias(col)


#: Characters of each response normalised up front to find the pairs that may be identical pairs.
PREFIX_CHARS = 64


def _frame(df: pl.DataFrame | PreferenceSet) -> pl.DataFrame:
    """The pairs frame with the normalised prompt ``_pt``, the 64-bit hash ``_p`` of it, and the hashes
    ``_c``, ``_r`` of the normalised chosen and rejected texts (:func:`normalized_hash`), computed once.

    Comparing hashes instead of strings makes the group-bys of a million pairs several times faster;
    two different texts share a hash with probability 2^-64 per comparison (none expected in any real
    data set). ``_c`` and ``_r`` are null for the pairs where no check can use them
    (:func:`_response_keys`).
    """
    df = df if isinstance(df, pl.DataFrame) else df.df
    if "_p" in df.columns:
        return df
    return _response_keys(_prompt_keys(df))


def _prompt_keys(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its normalised prompt ``_pt`` and that text's hash ``_p`` (what prompts are matched on)."""
    return df.with_columns(normalize_expr("prompt").alias("_pt")).with_columns(
        pl.col("_pt").hash(seed=_HASH_SEED).alias("_p"))


def _response_keys(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` (with ``_p``) plus ``_c`` and ``_r``, the normalised-text hashes of chosen and rejected,
    for the pairs that need them, null for the others.

    Normalised duplicates and contradictions need a prompt shared with another pair (equal ``_p``).
    An identical pair needs ``N(chosen) == N(rejected)``, with N = :func:`normalize_expr`; N of a prefix
    is a prefix of N of the text (N works character by character, then collapses and strips spaces),
    so such a pair also has normalised first :data:`PREFIX_CHARS` characters of which the shorter is a
    prefix of the longer. Only those pairs are normalised in full: on a million pairs with distinct
    prompts that skips almost every response.
    """
    a = normalize_expr(pl.col("chosen").str.slice(0, PREFIX_CHARS))
    b = normalize_expr(pl.col("rejected").str.slice(0, PREFIX_CHARS))
    prefix = df.select(a.alias("a"), b.alias("b")).select(
        (pl.col("a").str.starts_with(pl.col("b")) | pl.col("b").str.starts_with(pl.col("a"))).fill_null(True))
    need = df.select(pl.col("_p").is_duplicated()).to_series() | prefix.to_series()
    rows = need.arg_true()
    keys = df[rows].select(normalized_hash("chosen").alias("_c"), normalized_hash("rejected").alias("_r"))
    return df.with_columns(_spread(keys[c], rows, df.height) for c in ("_c", "_r"))


def normalized_hash(expr: pl.Expr | str) -> pl.Expr:
    """64-bit hash of the :func:`normalize_expr` text: equal for texts equal after normalisation."""
    return normalize_expr(expr).hash(seed=_HASH_SEED)


# ---- duplicates and contradictions -------------------------------------------------------------------
def contradiction_groups(df: pl.DataFrame | PreferenceSet) -> pl.DataFrame:
    """Pairs labeled both ways: the same prompt and the same two responses, chosen/rejected swapped.

    Prompt and responses are compared after :func:`normalize_expr`. Pairs whose two responses
    normalise to the same text, and pairs marked ``tie`` (when that column exists), are never part
    of a contradiction. Returns one row per pair that belongs to a contradiction group — columns
    ``pair_id`` (Utf8) and ``contradiction_group`` (Int64, numbered 0.. in order of each group's
    first pair in ``df``) — and an empty frame when there is none. Every group holds at least one
    pair in each orientation; join on ``pair_id`` (left join: null = no contradiction).
    """
    df = _frame(df)
    schema = {"pair_id": pl.Utf8, "contradiction_group": pl.Int64}
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    d = df.select(
        pl.col("pair_id").cast(pl.Utf8), "_p", "_c", "_r",
        (pl.col("tie") if "tie" in df.columns else pl.lit(False)).alias("_tie"),
    ).with_row_index("_row")
    d = d.filter((pl.col("_c") != pl.col("_r")) & ~pl.col("_tie").fill_null(False))
    d = d.with_columns(
        pl.min_horizontal("_c", "_r").alias("_lo"),
        pl.max_horizontal("_c", "_r").alias("_hi"),
        (pl.col("_c") < pl.col("_r")).alias("_dir"),
    )
    keys = ["_p", "_lo", "_hi"]
    groups = (d.group_by(keys).agg(pl.col("_dir").n_unique().alias("_nd"), pl.col("_row").min().alias("_first"))
              .filter(pl.col("_nd") > 1).sort("_first")
              .with_row_index("contradiction_group").select(*keys, pl.col("contradiction_group").cast(pl.Int64)))
    if groups.height == 0:
        return pl.DataFrame(schema=schema)
    return (d.join(groups, on=keys, how="inner").sort("_row")
            .select("pair_id", "contradiction_group"))


def duplicate_table(df: pl.DataFrame | PreferenceSet) -> pl.DataFrame:
    """Per pair (input order): ``exact_duplicate`` and ``normalized_duplicate`` (True for every copy
    after the first), ``duplicate_group`` (Int64 id shared by the copies after normalisation, numbered
    in order of first appearance; null for a pair without copies) and ``duplicate_of`` (pair_id of the
    first copy; null for the first copy itself and for pairs without copies)."""
    df = _frame(df)
    norm = df.select(pl.struct("_p", "_c", "_r").hash(seed=17)).to_series()
    rows = norm.is_duplicated().arg_true()  # the group work only where there are copies
    copies = df[rows].select(pl.col("pair_id").cast(pl.Utf8), pl.struct("prompt", "chosen", "rejected")
                             .hash(seed=13).alias("_raw")).with_columns(norm.gather(rows).alias("_norm"),
                                                                         rows.alias("_row"))
    first_row = pl.col("_row").min().over("_norm")
    groups = copies.select(
        (~pl.col("_raw").is_first_distinct()).alias("exact_duplicate"),
        (~pl.col("_norm").is_first_distinct()).alias("normalized_duplicate"),
        (first_row.rank("dense") - 1).cast(pl.Int64).alias("duplicate_group"),
        pl.when(pl.col("_norm").is_first_distinct()).then(None)
        .otherwise(pl.col("pair_id").first().over("_norm")).alias("duplicate_of"),
    )
    return pl.DataFrame([df["pair_id"].cast(pl.Utf8),
                         *[_spread(groups[c], rows, df.height, False) for c in ("exact_duplicate", "normalized_duplicate")],
                         *[_spread(groups[c], rows, df.height) for c in ("duplicate_group", "duplicate_of")]])


# ---- near duplicates -----------------------------------------------------------------------------------
def _near_pairs_embedded(embedder: Embedder, texts: list[str], threshold: float,
                         group: np.ndarray | None) -> pl.DataFrame:
    """Pairs (i < j) of texts with embedding cosine >= threshold (blocked brute force, top-5 per row)."""
    from prefaudit.analyzers.coverage import knn_cosine

    x = np.asarray(embedder.encode(texts), dtype=np.float32)
    if group is None:
        sim, idx = knn_cosine(x, x, k=min(5, len(texts) - 1), exclude_self=True)
        i = np.repeat(np.arange(len(texts)), sim.shape[1])
        j, s = idx.ravel(), sim.ravel()
    else:  # only across the two groups: each row of group 1 against all of group 0
        a, b = np.flatnonzero(group == 0), np.flatnonzero(group == 1)
        if a.size == 0 or b.size == 0:
            return pl.DataFrame(schema={"i": pl.Int64, "j": pl.Int64, "similarity": pl.Float64})
        sim, idx = knn_cosine(x[b], x[a], k=min(5, a.size))
        i = np.repeat(b, sim.shape[1])
        j, s = a[idx.ravel()], sim.ravel()
    keep = s >= threshold
    return pl.DataFrame({"i": np.minimum(i, j)[keep], "j": np.maximum(i, j)[keep], "similarity": s[keep]},
                        schema={"i": pl.Int64, "j": pl.Int64, "similarity": pl.Float64}).unique(["i", "j"])


def near_duplicate_prompt_pairs(prompts: list[str] | pl.Series, *, embedder: Embedder | None = None,
                                cosine_threshold: float = 0.95, jaccard_threshold: float = 0.8,
                                group: np.ndarray | None = None,
                                normalized: pl.Series | None = None) -> pl.DataFrame:
    """Pairs (i, j) of near-duplicate texts (positions in ``prompts``, which should be distinct).

    With an embedder: cosine similarity >= ``cosine_threshold`` (the 5 nearest neighbours of each
    text are checked); otherwise the Jaccard similarity of the word 3-shingles of the normalised texts
    >= ``jaccard_threshold``, with candidates from MinHash LSH (:mod:`prefaudit.analyzers.minhash`).
    ``normalized`` may pass the texts already normalised. With ``group`` (0/1 per text), only pairs
    across the two groups are returned (used for eval leakage).
    """
    from prefaudit.analyzers.minhash import near_duplicate_pairs

    texts = pl.Series("t", prompts, dtype=pl.Utf8)
    if texts.len() < 2:
        return pl.DataFrame(schema={"i": pl.Int64, "j": pl.Int64})
    if embedder is not None:
        out = _near_pairs_embedded(embedder, texts.to_list(), cosine_threshold, group)
    else:
        norm = normalized if normalized is not None else \
            pl.DataFrame({"t": texts}).select(normalize_expr("t"))["t"]
        out = near_duplicate_pairs(norm, threshold=jaccard_threshold, group=group)
    if group is not None:
        g = np.asarray(group)
        out = out.filter(pl.Series(g[out["i"].to_numpy()] != g[out["j"].to_numpy()]))
    return out.select("i", "j")


def near_duplicate_prompts(df: pl.DataFrame | PreferenceSet, *, embedder: Embedder | None = None,
                           cosine_threshold: float = 0.95, jaccard_threshold: float = 0.8) -> pl.DataFrame:
    """Per pair: ``near_duplicate_prompt`` (its prompt nearly duplicates a different prompt of the set)
    and ``near_duplicate_of`` (the pair_id of the first pair holding such a prompt)."""
    df = _frame(df)
    d = df.select(pl.col("pair_id").cast(pl.Utf8), "prompt", "_p", "_pt")
    uniq = d.unique("_p", keep="first", maintain_order=True).with_row_index("_u")
    raw = uniq["prompt"]
    pairs = near_duplicate_prompt_pairs(raw, embedder=embedder, cosine_threshold=cosine_threshold,
                                        jaccard_threshold=jaccard_threshold, normalized=uniq["_pt"])
    both = pl.concat([pairs, pairs.select(pl.col("j").alias("i"), pl.col("i").alias("j"))])
    partner = both.group_by("i").agg(pl.col("j").min()).select(
        pl.col("i").cast(pl.UInt32).alias("_u"), pl.col("j").cast(pl.UInt32).alias("_v"))
    partnered = (uniq.select("_u", "_p").join(partner, on="_u", how="inner")  # only prompts with a partner
                 .join(uniq.select(pl.col("_u").alias("_v"), pl.col("pair_id").alias("near_duplicate_of")),
                       on="_v", how="left").select("_p", "near_duplicate_of"))
    return d.select("pair_id", "_p").join(partnered, on="_p", how="left", maintain_order="left").select(
        "pair_id", pl.col("near_duplicate_of").is_not_null().alias("near_duplicate_prompt"), "near_duplicate_of")


def eval_leakage(df: pl.DataFrame | PreferenceSet, eval_prompts: pl.Series | list[str], *,
                 embedder: Embedder | None = None, cosine_threshold: float = 0.95,
                 jaccard_threshold: float = 0.8) -> tuple[pl.DataFrame, int]:
    """Training pairs whose prompt is an exact (normalised) or near duplicate of an eval prompt.

    Returns (per pair: ``pair_id``, ``eval_leakage``, ``leak_kind`` "exact"/"near"/null) and the number
    of distinct eval prompts found in the training data.
    """
    df = _frame(df)
    ev = _prompt_keys(pl.DataFrame({"prompt": pl.Series(eval_prompts, dtype=pl.Utf8)})).unique(
        "_p", maintain_order=True)
    d = df.select(pl.col("pair_id").cast(pl.Utf8), "prompt", "_p", "_pt")
    exact = d["_p"].is_in(ev["_p"].implode())
    tr = d.unique("_p", maintain_order=True).filter(~pl.col("_p").is_in(ev["_p"].implode()))
    texts = pl.concat([tr["prompt"], ev["prompt"]])
    group = np.r_[np.zeros(tr.height, dtype=np.int8), np.ones(ev.height, dtype=np.int8)]
    pairs = near_duplicate_prompt_pairs(texts, embedder=embedder, cosine_threshold=cosine_threshold,
                                        jaccard_threshold=jaccard_threshold, group=group,
                                        normalized=pl.concat([tr["_pt"], ev["_pt"]]))
    tr_hit = np.unique(np.r_[pairs["i"].to_numpy(), pairs["j"].to_numpy()])
    tr_hit = tr_hit[tr_hit < tr.height]
    near_keys = tr["_p"].gather(tr_hit) if tr_hit.size else pl.Series("_p", [], dtype=pl.UInt64)
    near = d["_p"].is_in(near_keys.implode())
    ev_hit = np.unique(np.r_[pairs["i"].to_numpy(), pairs["j"].to_numpy()])
    n_eval_leaked = int(ev["_p"].is_in(d["_p"].implode()).sum()) + int((ev_hit >= tr.height).sum())
    out = pl.DataFrame({"pair_id": d["pair_id"], "_e": exact, "_n": near}).select(
        "pair_id", (pl.col("_e") | pl.col("_n")).alias("eval_leakage"),
        pl.when(pl.col("_e")).then(pl.lit("exact")).when(pl.col("_n")).then(pl.lit("near"))
        .otherwise(None).alias("leak_kind"))
    return out, n_eval_leaked


# ---- the whole table ----------------------------------------------------------------------------------
def hygiene_table(df: pl.DataFrame | PreferenceSet, *, embedder: Embedder | None = None,
                  eval_prompts: pl.Series | list[str] | None = None, cosine_threshold: float = 0.95,
                  jaccard_threshold: float = 0.8, truncation_min_words: int = 8,
                  near_duplicates: bool = True) -> pl.DataFrame:
    """Per pair (input order): ``pair_id``, one boolean column per reason code, ``duplicate_of``,
    ``near_duplicate_of``, ``contradiction_group``, ``leak_kind``, ``reasons`` (";"-joined), ``score``
    and ``flag``."""
    return _hygiene(df, embedder, eval_prompts, cosine_threshold, jaccard_threshold, truncation_min_words,
                    near_duplicates)[0]


def _hygiene(df: pl.DataFrame | PreferenceSet, embedder: Embedder | None, eval_prompts: Any,
             cosine_threshold: float, jaccard_threshold: float, truncation_min_words: int,
             near_duplicates: bool) -> tuple[pl.DataFrame, int]:
    """:func:`hygiene_table` plus the number of distinct eval prompts found in the training data."""
    df = _frame(df)
    base = df.select(
        pl.col("pair_id").cast(pl.Utf8),
        (pl.col("_c") == pl.col("_r")).fill_null(False).alias("identical_pair"),
        (empty_expr("chosen") | empty_expr("rejected")).alias("empty_response"),
    ).with_columns((truncated_looking(df, "chosen", truncation_min_words)
                    | truncated_looking(df, "rejected", truncation_min_words)).alias("truncated_looking"))
    dup = duplicate_table(df)
    contra = contradiction_groups(df)
    t = base.join(dup, on="pair_id", how="left", maintain_order="left").join(
        contra, on="pair_id", how="left", maintain_order="left").with_columns(
        pl.col("contradiction_group").is_not_null().alias("contradiction"))
    if near_duplicates:
        near = near_duplicate_prompts(df, embedder=embedder, cosine_threshold=cosine_threshold,
                                      jaccard_threshold=jaccard_threshold)
        t = t.join(near, on="pair_id", how="left", maintain_order="left")
    else:
        t = t.with_columns(pl.lit(False).alias("near_duplicate_prompt"),
                           pl.lit(None, dtype=pl.Utf8).alias("near_duplicate_of"))
    n_leaked = 0
    if eval_prompts is not None:
        leak, n_leaked = eval_leakage(df, eval_prompts, embedder=embedder, cosine_threshold=cosine_threshold,
                                      jaccard_threshold=jaccard_threshold)
        t = t.join(leak, on="pair_id", how="left", maintain_order="left")
    else:
        t = t.with_columns(pl.lit(False).alias("eval_leakage"), pl.lit(None, dtype=pl.Utf8).alias("leak_kind"))
    reasons = pl.concat_list([pl.when(pl.col(r)).then(pl.lit(r)).otherwise(None) for r in REASONS])
    score = pl.min_horizontal([pl.when(pl.col(r)).then(pl.lit(SEVERITY[r])).otherwise(pl.lit(1.0))
                               for r in REASONS])
    t = t.with_columns(reasons.list.drop_nulls().list.join(";").alias("reasons"),
                       score.alias("score")).with_columns((pl.col("score") < FLAG_BELOW).alias("flag"))
    return t, n_leaked


# ---- the analyzer ---------------------------------------------------------------------------------------
def _eval_prompts(ev: Any) -> pl.Series | None:
    if ev is None:
        return None
    frame = ev if isinstance(ev, pl.DataFrame) else ev.df
    return frame["prompt"]


class HygieneAnalyzer:
    """Duplicates, contradictions, identical/empty/truncated-looking responses, near-duplicate prompts
    and eval leakage (``context.eval``). See the module docstring for the reason codes.

    Parameters: ``cosine_threshold`` (embedding near duplicates), ``jaccard_threshold`` (MinHash
    near duplicates when no embedder is given), ``truncation_min_words`` (see :func:`truncated_expr`),
    ``near_duplicates`` (False skips the near-duplicate prompt search), ``n_examples`` (example
    pairs per reason in the details).
    """

    name = "hygiene"

    def __init__(self, *, cosine_threshold: float = 0.95, jaccard_threshold: float = 0.8,
                 truncation_min_words: int = 8, near_duplicates: bool = True, n_examples: int = 5) -> None:
        self.cosine_threshold = cosine_threshold
        self.jaccard_threshold = jaccard_threshold
        self.truncation_min_words = truncation_min_words
        self.near_duplicates = near_duplicates
        self.n_examples = n_examples

    def config(self) -> dict[str, Any]:
        return {"cosine_threshold": self.cosine_threshold, "jaccard_threshold": self.jaccard_threshold,
                "truncation_min_words": self.truncation_min_words, "near_duplicates": self.near_duplicates,
                "n_examples": self.n_examples}

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        ctx = context or AuditContext()
        cfg = {**self.config(), "near_duplicate_method": "embedding cosine" if ctx.embedder is not None
               else "MinHash word 3-shingle Jaccard"}
        df = _frame(data)
        eval_prompts = _eval_prompts(ctx.eval)
        t, n_leaked = _hygiene(df, ctx.embedder, eval_prompts, self.cosine_threshold, self.jaccard_threshold,
                               self.truncation_min_words, self.near_duplicates)
        n = t.height
        counts = t.select([pl.col(r).sum().alias(r) for r in REASONS]).row(0, named=True)
        metrics: dict[str, Metric] = {}
        for r, name in SHARE_METRICS.items():
            if r == "eval_leakage" and eval_prompts is None:
                metrics[name] = Metric.undefined("no eval set given (--eval)", n)
            elif r == "near_duplicate_prompt" and not self.near_duplicates:
                metrics[name] = Metric.undefined("near-duplicate search turned off", n)
            else:
                metrics[name] = Metric.proportion(int(counts[r]), n)
        if eval_prompts is not None:
            n_eval = int(pl.DataFrame({"p": eval_prompts}).select(normalize_expr("p")).n_unique())
            metrics["hygiene.eval_prompts_leaked_share"] = Metric.proportion(
                n_leaked, n_eval, "share of distinct eval prompts found (exactly or nearly) in the training data")
        metrics["hygiene.contradiction_groups"] = Metric.count(
            int(t["contradiction_group"].n_unique() - (1 if t["contradiction_group"].null_count() else 0)))
        metrics["hygiene.flagged_share"] = Metric.proportion(int(t["flag"].sum()), n)
        pairs = t.select(
            "pair_id", pl.col("score").alias("hygiene_score"), pl.col("flag").alias("hygiene_flag"),
            pl.col("reasons").alias("hygiene_reasons"),
            *[pl.col(r).fill_null(False).alias(f"hygiene_{r}") for r in REASONS],
            *[pl.col(c).alias(f"hygiene_{c}") for c in ("duplicate_group", "duplicate_of",
                                                         "contradiction_group", "near_duplicate_of")])
        summary = pl.DataFrame({"reason": list(REASONS), "n": [int(counts[r]) for r in REASONS]}).with_columns(
            (pl.col("n") / max(n, 1)).alias("share"),
            pl.col("reason").replace_strict(SEVERITY, return_dtype=pl.Float64).alias("severity"))
        firsts = pl.any_horizontal(pl.col(r) & (pl.col(r).cum_sum() <= self.n_examples) for r in REASONS)
        ex = t.select("pair_id", *REASONS).with_row_index("_i").filter(firsts)
        ex = ex.with_columns(df[ex["_i"]].select("prompt", "chosen", "rejected"))
        examples = pl.concat([
            ex.filter(pl.col(r)).head(self.n_examples).select(
                pl.lit(r).alias("reason"), "pair_id", *[pl.col(c).str.slice(0, 300) for c in
                                                         ("prompt", "chosen", "rejected")])
            for r in REASONS])
        return AnalyzerResult(name=self.name, metrics=metrics, pairs=pairs,
                              details={"summary": summary, "examples": examples}, config=cfg)


@register_plot("hygiene")
def plot_hygiene(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """Horizontal bars: share of pairs per reason code, with Wilson 95% CIs."""
    items = [(r, result.metrics.get(m)) for r, m in SHARE_METRICS.items()]
    items = [(r, m) for r, m in items if m is not None and m.value is not None]
    fig = new_figure(6.0, 0.6 + 0.32 * max(1, len(items)))
    ax = fig.add_subplot()
    for i, (_, m) in enumerate(items):
        lo, hi = m.ci if m.ci else (m.value, m.value)
        ax.barh(i, m.value, color="#c0504d" if m.value > 0 else "#9bbb59")
        ax.plot([lo, hi], [i, i], color="#333")
    ax.set_yticks(range(len(items)), [r for r, _ in items])
    ax.set_xlabel("share of pairs (95% CI)")
    ax.set_title("hygiene")
    return fig
