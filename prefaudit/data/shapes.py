"""Record shapes -> pairs: detection from the column names, and one conversion per shape.

Shapes (``format=`` names; ``auto`` picks the first that fits, in this order):

- ``tulu``: the Tülu-1 human-evaluation sheet (see :mod:`prefaudit.data.tulu`).
- ``annotations-long``: one row per vote with the pair's text: ``pair_id, prompt, response_a,
  response_b, annotator_id, label`` (+ ``model_a``/``model_b``, ``timestamp``...).
- ``annotations-wide``: one row per pair with one ``label_<annotator>`` column per annotator.
- ``pairwise``: two responses and one label, e.g. LLMBar's ``input, output_1, output_2, label``.
  With numbered responses (``output_1``/``output_2``, ``response_1``/``response_2``) the label
  1 or 2 names the better one; with lettered ones labels follow the a/b/graded vocabulary.
- ``pairs``: ``pair_id, prompt, response_a, response_b`` whose labels come from an annotations file.
- ``scored``: UltraFeedback-style ``prompt`` + a list of ``responses`` (strings, or objects with a
  text field and a score) and optionally a parallel ``scores`` list. One pair per record (so rows
  read = pairs + quarantined): chosen = the highest score (first if several), rejected = the lowest
  (last if several); the pair keeps ``chosen_score``, ``rejected_score``, ``score_margin``,
  ``n_responses`` (and ``chosen_model``/``rejected_model`` when responses name a model). When every
  score is equal the first two responses form a tie. Responses without a score are left out.
- ``trl``: TRL conversational — ``chosen``/``rejected`` lists of ``{role, content}`` messages, with
  an optional explicit ``prompt`` (messages or text). Without one, the prompt is the longest shared
  prefix of the two conversations (each side keeps at least its last message). Rendering: a single
  user (prompt) or assistant (response) message is its content; several messages are rendered as
  ``"Role: content"`` blocks joined by a blank line (``System:``, ``User:``, ``Assistant:``...).
- ``flat``: ``prompt, chosen, rejected`` (+ optional ``pair_id``, ``tie``, metadata).
- ``hh``: Anthropic HH transcripts, ``chosen``/``rejected`` only. The prompt is the longest common
  prefix of the two transcripts that ends with ``"\\n\\nAssistant:"`` (a response may itself contain
  that marker); the responses are the remainders, so ``prompt + chosen`` is the chosen transcript.

Column aliases apply when the canonical name is absent (and are noted): prompt <- instruction,
input, question, query; label <- preference, winner; annotator_id <- annotator, rater, rater_id,
worker_id, evaluator, judge; responses <- completions, outputs, candidates; scores <- ratings,
rewards; response_a/response_b <- output_1/output_2, response_1/response_2, completion_1/
completion_2 (numbered) or completion_a/completion_b (lettered).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from prefaudit.data.fields import ID, LIST, ROW, SCALAR, TEXT, TEXT_OR_LIST, InDoubt, qrow
from prefaudit.data.labels import LabelMap
from prefaudit.data.readers import Raw
from prefaudit.errors import ConfigError, InputError

HH_MARKER = "\n\nAssistant:"
PROMPT_ALIASES = ("instruction", "input", "question", "query")
LABEL_ALIASES = ("preference", "winner")
ANNOTATOR_ALIASES = ("annotator", "rater", "rater_id", "worker_id", "evaluator", "judge")
RESPONSES_ALIASES = ("completions", "outputs", "candidates")
SCORES_ALIASES = ("ratings", "rewards")
NUMBERED_AB = (("output_1", "output_2"), ("response_1", "response_2"), ("completion_1", "completion_2"))
LETTERED_AB = (("completion_a", "completion_b"),)
WIDE_PREFIX = "label_"
TEXT_KEYS = ("response", "text", "completion", "content", "output")
SCORE_KEYS = ("score", "overall_score", "rating", "reward")
ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool", "human": "Human"}


@dataclass
class Ctx:
    """What a conversion needs besides the frame."""

    where: str
    labels: Mapping[Any, Any] | None = None
    index_labels: bool = False
    notes: list[str] = field(default_factory=list)

    def label_map(self) -> LabelMap:
        return LabelMap(self.labels, index=self.index_labels)


@dataclass
class Converted:
    """Pairs (prompt, chosen, rejected, tie[, chosen_side][, pair_id] + metadata + __row) and quarantine."""

    df: pl.DataFrame
    quarantine: list[dict]


@dataclass(frozen=True)
class Shape:
    name: str
    required: dict[str, str]
    optional: dict[str, str]
    convert: Callable[[pl.DataFrame, Ctx], Any] | None = None


# ---- text helpers -------------------------------------------------------------------------------
def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search on slices: C-speed comparisons)."""
    hi = min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    lo = 0  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def split_hh(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen response, rejected response), or None when no shared prefix ends with the marker."""
    k = common_prefix_len(chosen, rejected)
    i = chosen.rfind(HH_MARKER, 0, k)
    if i < 0:
        return None
    p = i + len(HH_MARKER)
    return chosen[:p], chosen[p:], rejected[p:]


def as_messages(value: Any) -> list[tuple[str, str]] | None:
    """A list of (role, content), or None when the value is not a conversation (JSON text accepted)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError, ValueError):
            return None
    if not isinstance(value, (list, tuple)) or not value:
        return None
    out = []
    for m in value:
        if not isinstance(m, dict):
            return None
        role, content = m.get("role"), m.get("content")
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            content = "".join(t for t in texts if isinstance(t, str)) if all(
                isinstance(t, str) for t in texts) and texts else None
        if not isinstance(role, str) or not isinstance(content, str):
            return None
        out.append((role, content))
    return out


def render(messages: list[tuple[str, str]], single_role: str) -> str:
    """One message of ``single_role`` -> its content; otherwise "Role: content" blocks."""
    if len(messages) == 1 and messages[0][0] == single_role:
        return messages[0][1]
    return "\n\n".join(f"{ROLE_NAMES.get(r, r[:1].upper() + r[1:])}: {c}" for r, c in messages)


# ---- conversions --------------------------------------------------------------------------------
def _rowwise(df: pl.DataFrame, cols: list[str], fn: Callable[..., tuple[dict | None, tuple[str, str] | None]],
             ctx: Ctx, drop: list[str]) -> Converted:
    """Apply ``fn(*values) -> (new fields, None) | (None, (reason, detail))`` row by row."""
    keep: list[bool] = []
    new: dict[str, list[Any]] = {}
    quarantine: list[dict] = []
    rows = df[ROW].to_list()
    for i, values in enumerate(df.select(cols).iter_rows()):
        fields, problem = fn(*values)
        if problem is not None:
            keep.append(False)
            quarantine.append(qrow(ctx.where, rows[i], problem[0], problem[1], dict(zip(cols, values, strict=True))))
            continue
        keep.append(True)
        for k, v in (fields or {}).items():
            new.setdefault(k, []).append(v)
    mask = pl.Series(keep, dtype=pl.Boolean)
    out = df.filter(mask) if not mask.all() else df
    out = out.drop([c for c in drop if c in out.columns])
    if out.height:
        out = out.with_columns([pl.Series(k, v) for k, v in new.items()])
    else:
        out = out.with_columns([pl.lit(None, dtype=pl.Utf8).alias(k) for k in ("prompt", "chosen", "rejected")
                                if k not in out.columns])
    return Converted(out, quarantine)


def convert_flat(df: pl.DataFrame, ctx: Ctx) -> Converted:
    quarantine: list[dict] = []
    if "tie" in df.columns and df.schema["tie"] != pl.Boolean:
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}
        raw_tie = df["tie"].cast(pl.Utf8).str.to_lowercase().str.strip_chars()
        parsed = raw_tie.replace_strict(truth, default=None, return_dtype=pl.Boolean)
        bad = parsed.is_null() & raw_tie.is_not_null()
        for rec in df.filter(bad).iter_rows(named=True):
            quarantine.append(qrow(ctx.where, rec[ROW], "bad_label", f"tie must be true/false, got {rec['tie']!r}",
                                   rec, "tie"))
        df = df.with_columns(parsed.alias("tie"))
        if bad.any():
            df = df.filter(~bad)
    if "tie" in df.columns:
        df = df.with_columns(pl.col("tie").fill_null(False))
    return Converted(df, quarantine)


def convert_hh(df: pl.DataFrame, ctx: Ctx) -> Converted:
    def one(chosen: str, rejected: str) -> tuple[dict | None, tuple[str, str] | None]:
        parts = split_hh(chosen, rejected)
        if parts is None:
            return None, ("no_shared_prompt",
                          "the transcripts share no prefix ending with '\\n\\nAssistant:'")
        return {"prompt": parts[0], "chosen": parts[1], "rejected": parts[2]}, None

    return _rowwise(df, ["chosen", "rejected"], one, ctx, [])


def convert_trl(df: pl.DataFrame, ctx: Ctx) -> Converted:
    has_prompt = "prompt" in df.columns

    def one(chosen: Any, rejected: Any, prompt: Any = None) -> tuple[dict | None, tuple[str, str] | None]:
        c, r = as_messages(chosen), as_messages(rejected)
        if c is None or r is None:
            side = "chosen" if c is None else "rejected"
            return None, ("bad_messages", f"{side!r} is not a list of {{role, content}} messages")
        if prompt is not None:
            if isinstance(prompt, str) and as_messages(prompt) is None:
                p_text = prompt
            else:
                p = as_messages(prompt)
                if p is None:
                    return None, ("bad_messages", "'prompt' is neither text nor a list of messages")
                p_text = render(p, "user")
            return {"prompt": p_text, "chosen": render(c, "assistant"), "rejected": render(r, "assistant")}, None
        k = 0
        limit = min(len(c), len(r)) - 1
        while k < limit and c[k] == r[k]:
            k += 1
        if k == 0:
            return None, ("no_shared_prompt", "the two conversations do not start with the same message")
        return {"prompt": render(c[:k], "user"), "chosen": render(c[k:], "assistant"),
                "rejected": render(r[k:], "assistant")}, None

    cols = ["chosen", "rejected", *(["prompt"] if has_prompt else [])]
    return _rowwise(df, cols, one, ctx, ["chosen", "rejected", "prompt"])


def convert_pairwise(df: pl.DataFrame, ctx: Ctx) -> Converted:
    score = ctx.label_map().scores(df["label"])
    bad = score.is_null()
    quarantine = [qrow(ctx.where, rec[ROW], "bad_label", f"label {rec['label']!r} is not recognised", rec, "label")
                  for rec in df.filter(bad).iter_rows(named=True)] if bad.any() else []
    df = df.with_columns(score.alias("__score"))
    if bad.any():
        df = df.filter(~bad)
    a = pl.col("__score") >= 0
    df = df.with_columns(
        pl.when(a).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("chosen"),
        pl.when(a).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("rejected"),
        (pl.col("__score") == 0).alias("tie"),
        pl.when(a).then(pl.lit("a")).otherwise(pl.lit("b")).alias("chosen_side"),
    ).drop("__score", "response_a", "response_b")
    return Converted(df, quarantine)


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if v == v else None
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def convert_scored(df: pl.DataFrame, ctx: Ctx) -> Converted:
    has_scores = "scores" in df.columns

    def one(responses: Any, scores: Any = None) -> tuple[dict | None, tuple[str, str] | None]:
        if isinstance(responses, str):
            try:
                responses = json.loads(responses)
            except (json.JSONDecodeError, RecursionError, ValueError):
                return None, ("not_text", "'responses' is not a list")
        if isinstance(scores, str):
            try:
                scores = json.loads(scores)
            except (json.JSONDecodeError, RecursionError, ValueError):
                return None, ("bad_score", "'scores' is not a list")
        if not isinstance(responses, (list, tuple)):
            return None, ("not_text", "'responses' is not a list")
        if scores is not None and (not isinstance(scores, (list, tuple)) or len(scores) != len(responses)):
            return None, ("bad_score", "'scores' is not a list as long as 'responses'")
        items: list[tuple[str, float, Any]] = []
        for i, resp in enumerate(responses):
            model, raw_score = None, None
            if isinstance(resp, dict):
                text = next((resp[k] for k in TEXT_KEYS if isinstance(resp.get(k), str)), None)
                raw_score = next((resp[k] for k in SCORE_KEYS if resp.get(k) is not None), None)
                model = resp.get("model")
            else:
                text = resp
            if scores is not None:
                raw_score = scores[i]
            if not isinstance(text, str):
                return None, ("not_text", f"response {i + 1} is not text")
            if raw_score is None:
                continue
            s = _num(raw_score)
            if s is None:
                return None, ("bad_score", f"score of response {i + 1} is not a number: {raw_score!r}")
            items.append((text, s, model))
        if len(items) < 2:
            return None, ("too_few_responses", f"{len(items)} scored response(s); a pair needs two")
        ss = [s for _, s, _ in items]
        best = ss.index(max(ss))
        worst = len(ss) - 1 - ss[::-1].index(min(ss))
        tie = ss[best] == ss[worst]
        if tie:
            best, worst = 0, 1
        out = {"chosen": items[best][0], "rejected": items[worst][0], "tie": tie,
               "chosen_score": items[best][1], "rejected_score": items[worst][1],
               "score_margin": items[best][1] - items[worst][1], "n_responses": len(items)}
        if any(m is not None for _, _, m in items):
            out["chosen_model"] = None if items[best][2] is None else str(items[best][2])
            out["rejected_model"] = None if items[worst][2] is None else str(items[worst][2])
        return out, None

    cols = ["responses", *(["scores"] if has_scores else [])]
    conv = _rowwise(df, cols, one, ctx, ["responses", "scores"])
    if "chosen_model" in conv.df.columns:
        conv.df = conv.df.with_columns(pl.col("chosen_model", "rejected_model").cast(pl.Utf8))
    return conv


SHAPES: dict[str, Shape] = {
    "flat": Shape("flat", {"prompt": TEXT, "chosen": TEXT, "rejected": TEXT},
                  {"pair_id": ID, "tie": SCALAR}, convert_flat),
    "hh": Shape("hh", {"chosen": TEXT, "rejected": TEXT}, {"pair_id": ID}, convert_hh),
    "trl": Shape("trl", {"chosen": LIST, "rejected": LIST}, {"prompt": TEXT_OR_LIST, "pair_id": ID}, convert_trl),
    "pairwise": Shape("pairwise", {"prompt": TEXT, "response_a": TEXT, "response_b": TEXT, "label": SCALAR},
                      {"pair_id": ID}, convert_pairwise),
    "scored": Shape("scored", {"prompt": TEXT, "responses": LIST}, {"scores": LIST, "pair_id": ID}, convert_scored),
    "pairs": Shape("pairs", {"pair_id": ID, "prompt": TEXT, "response_a": TEXT, "response_b": TEXT}, {}),
    "annotations-long": Shape("annotations-long", {"pair_id": ID, "prompt": TEXT, "response_a": TEXT,
                                                   "response_b": TEXT, "annotator_id": ID, "label": SCALAR},
                              {"model_a": TEXT, "model_b": TEXT, "shown_order": TEXT}),
    "annotations-wide": Shape("annotations-wide", {"prompt": TEXT, "response_a": TEXT, "response_b": TEXT},
                              {"pair_id": ID}),
    "tulu": Shape("tulu", {}, {}),  # resolved to annotations-long by prefaudit.data.tulu
}
FORMATS = ("auto", *SHAPES)
ANNOTATION_SHAPES = ("annotations-long", "annotations-wide", "pairs", "tulu")


# ---- detection ----------------------------------------------------------------------------------
def _alias(raw: Raw, target: str, candidates: tuple[str, ...], ctx: Ctx) -> None:
    cols = raw.columns
    if target in cols:
        return
    for c in candidates:
        if c in cols:
            raw.rename({c: target})
            ctx.notes.append(f"column {c!r} used as {target!r}")
            return


def apply_aliases(raw: Raw, ctx: Ctx) -> None:
    """Rename well-known alternative column names to the canonical ones (noted in ``ctx.notes``)."""
    _alias(raw, "prompt", PROMPT_ALIASES, ctx)
    _alias(raw, "label", LABEL_ALIASES, ctx)
    _alias(raw, "annotator_id", ANNOTATOR_ALIASES, ctx)
    _alias(raw, "responses", RESPONSES_ALIASES, ctx)
    _alias(raw, "scores", SCORES_ALIASES, ctx)
    cols = raw.columns
    if "response_a" not in cols and "response_b" not in cols:
        for a, b in NUMBERED_AB + LETTERED_AB:
            if a in cols and b in cols:
                raw.rename({a: "response_a", b: "response_b"})
                ctx.notes.append(f"columns {a!r}/{b!r} used as 'response_a'/'response_b'")
                ctx.index_labels = (a, b) in NUMBERED_AB
                break


def _looks_listy(raw: Raw, col: str) -> bool:
    """Most sampled values are lists (or JSON text of a list of objects, as in CSV)."""
    if raw.df is not None and isinstance(raw.df.schema.get(col), (pl.List, pl.Array)):
        return True
    sample = raw.sample(col, 20)
    listy = sum(isinstance(v, (list, tuple)) or (isinstance(v, str) and v.lstrip().startswith("[{"))
                for v in sample)
    return listy * 2 > len(sample)


def _looks_hh(raw: Raw) -> bool:
    return any(isinstance(v, str) and "Assistant:" in v for v in raw.sample("chosen", 50))


def detect(raw: Raw, with_annotations: bool) -> str:
    """The shape of the records, from their column names (and a few values); InputError if none fits."""
    from prefaudit.data.tulu import looks_like_tulu

    cols = set(raw.columns)
    if looks_like_tulu(cols):
        return "tulu"
    ab = {"prompt", "response_a", "response_b"} <= cols
    if with_annotations:
        if ab and "pair_id" in cols:
            return "pairs"
        raise InputError("with annotations, the pairs file needs columns pair_id, prompt, response_a, response_b "
                         f"(found {sorted(cols)})", path=raw.path)
    if ab and {"pair_id", "annotator_id", "label"} <= cols:
        return "annotations-long"
    if ab and any(c.startswith(WIDE_PREFIX) for c in cols) and "label" not in cols:
        return "annotations-wide"
    if ab and "label" in cols:
        return "pairwise"
    if ab:
        raise InputError("response_a/response_b without labels: give an annotations file (--annotations) "
                         "or a label column", path=raw.path, column="label")
    if "prompt" in cols and "responses" in cols:
        return "scored"
    if {"chosen", "rejected"} <= cols:
        listy = _looks_listy(raw, "chosen")
        if raw.coerced and listy and raw.df is not None and raw.df.schema["chosen"] == pl.Utf8:
            raise InDoubt("chosen")
        if listy:
            return "trl"
        if "prompt" in cols:
            return "flat"
        if _looks_hh(raw):
            return "hh"
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in cols]
    raise InputError(f"no recognisable shape: columns {sorted(cols)[:20]}; expected prompt/chosen/rejected, "
                     "HH transcripts (chosen/rejected), TRL messages, pairwise (prompt, response_a, response_b, "
                     "label), scored responses, or multi-annotator pairs", path=raw.path,
                     column=missing[0] if missing else None)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def require_columns(raw: Raw, shape: str) -> None:
    """InputError naming the first required column absent from the whole file."""
    spec = SHAPES[shape]
    cols = set(raw.columns)
    for c in spec.required:
        if c not in cols:
            raise InputError(f"required column {c!r} is absent (shape {shape!r}; found {sorted(cols)[:20]})",
                             path=raw.path, column=c)
    if shape == "annotations-wide" and not any(c.startswith(WIDE_PREFIX) for c in cols):
        raise InputError(f"wide annotations need one '{WIDE_PREFIX}<annotator>' column per annotator",
                         path=raw.path, column=WIDE_PREFIX + "*")
