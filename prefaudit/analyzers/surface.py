"""Surface features of a response text: length, markdown, code, refusals, hedges, boilerplate, tone.

Vectorised with polars regular expressions (no per-row Python). Each feature is a count per text;
:data:`FEATURES` lists them with a description. Shared by the bias analyzer (effects table, shortcut
model) and any analyzer that needs a surface-only view of a response.
"""

from __future__ import annotations

import polars as pl

_Q = "['’]"  # straight or curly apostrophe

#: feature name -> (regex counted per text, description). Regexes are case-insensitive where marked.
PATTERNS: dict[str, tuple[str, str]] = {
    "list_items": (r"(?m)^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+\S", "markdown/numbered list items"),
    "headers": (r"(?m)^[ \t]*#{1,6}[ \t]+\S", "markdown headers"),
    "bold": (r"\*\*[^*\n]+\*\*|__[^_\n]+__", "bold markup"),
    "code_blocks": (r"```", "code fences"),
    "refusal": (r"(?i)\b(?:I\s+can(?:not|" + _Q + r"t)\s+(?:help|assist|provide|do|answer|comply|fulfil)"
                r"|I\s+(?:won" + _Q + r"t|will\s+not)\s+(?:help|assist|provide|do|answer)"
                r"|I" + _Q + r"?m\s+(?:not\s+able|unable)\s+to|I\s+am\s+(?:not\s+able|unable)\s+to"
                r"|I\s+must\s+decline|I\s+(?:can" + _Q + r"t|cannot)\s+and\s+won" + _Q + r"t"
                r"|(?:not|isn" + _Q + r"t)\s+(?:appropriate|something\s+I\s+can)"
                r"|I\s+(?:don" + _Q + r"t|do\s+not)\s+feel\s+comfortable)", "refusal phrases"),
    "hedge": (r"(?i)\b(?:I\s+think|I\s+believe|I\s+guess|probably|possibly|perhaps|maybe|might|"
              r"it\s+depends|not\s+(?:sure|certain)|it\s+seems|seems\s+(?:like|to)|generally|typically|"
              r"in\s+some\s+cases)\b", "hedges"),
    "apology": (r"(?i)\b(?:sorry|apologi[sz]e|apologies|forgive\s+me)\b", "apologies"),
    "ai_boilerplate": (r"(?i)\b(?:as\s+an?\s+(?:AI|artificial\s+intelligence|(?:large\s+)?language\s+model)"
                       r"|I" + _Q + r"?m\s+(?:just\s+|only\s+)?an?\s+(?:AI|language\s+model|assistant|bot)"
                       r"|I\s+am\s+(?:just\s+|only\s+)?an?\s+(?:AI|language\s+model|assistant|bot)"
                       r"|I\s+(?:don" + _Q + r"t|do\s+not)\s+have\s+(?:personal\s+)?"
                       r"(?:opinions|feelings|emotions|beliefs|preferences))", "'as an AI' boilerplate"),
    "exclamation": (r"!", "exclamation marks"),
    "politeness": (r"(?i)\b(?:please|thank\s+you|thanks|you" + _Q + r"re\s+welcome|happy\s+to\s+help|"
                   r"glad\s+to\s+help|great\s+question|good\s+question|hope\s+(?:this|that)\s+helps|"
                   r"feel\s+free)\b", "politeness phrases"),
    "questions": (r"\?", "question marks"),
}

#: Every feature: the regex counts plus the lengths.
FEATURES: dict[str, str] = {"chars": "characters", "words": "words (whitespace-separated)",
                            **{k: v[1] for k, v in PATTERNS.items()}}


def feature_exprs(col: str | pl.Expr, prefix: str = "") -> list[pl.Expr]:
    """One polars expression per feature of :data:`FEATURES` (UInt32 counts), named ``prefix + name``."""
    t = (pl.col(col) if isinstance(col, str) else col).fill_null("")
    exprs = [t.str.len_chars().alias(prefix + "chars"), t.str.count_matches(r"\S+").alias(prefix + "words")]
    for name, (pattern, _) in PATTERNS.items():
        e = t.str.count_matches(pattern)
        if name == "code_blocks":
            e = (e + 1) // 2  # a block is a pair of fences (an unclosed one counts)
        exprs.append(e.alias(prefix + name))
    return exprs


def surface_features(texts: pl.Series | list[str], prefix: str = "") -> pl.DataFrame:
    """Per text, a count for every feature of :data:`FEATURES`."""
    s = pl.Series("t", texts, dtype=pl.Utf8)
    return pl.DataFrame({"t": s}).select(feature_exprs("t", prefix))
