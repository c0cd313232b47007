"""The Tülu-1 human-evaluation sheet (allenai/open-instruct ``eval_annotations_tulu_1``).

One row per rating: ``instance_index`` (the comparison: 996 of them), ``instance_id`` (the prompt,
compared for 3 model pairs), ``model_a``/``model_b`` (the order the rater saw), ``completion_a``/
``completion_b``, ``completion_*_is_acceptable``, ``preference`` (five levels), ``evaluator``,
``timestamp``. It loads as long-form annotations with:

- ``pair_id`` = ``instance_index``; ``annotator_id`` = ``evaluator``;
- one canonical order per comparison: the alphabetically smaller model name is ``a``; ratings shown
  the other way round are flipped (score negated, ``a_is_acceptable``/``b_is_acceptable`` swapped)
  and get ``shown_order`` "ba";
- labels a-is-better 2, a-is-slightly-better 1, tie 0, b-is-slightly-better -1, b-is-better -2;
- a comparison rated twice by the same evaluator keeps the latest rating by ``timestamp``; the
  earlier one is quarantined as ``repeated_rating`` (9 rows over 6 comparisons in the real file);
- pair metadata: ``instance_id``, ``model_a``, ``model_b`` (canonical order).
"""

from __future__ import annotations

from collections.abc import Iterable

from prefaudit.data.readers import Raw

COLUMNS = frozenset({"instance_index", "model_a", "model_b", "completion_a", "completion_b", "preference",
                     "evaluator"})
RENAME = {"instance_index": "pair_id", "evaluator": "annotator_id", "preference": "label",
          "completion_a": "response_a", "completion_b": "response_b",
          "completion_a_is_acceptable": "a_is_acceptable", "completion_b_is_acceptable": "b_is_acceptable"}
PAIR_COLUMNS = ["instance_id"]
SWAP_COLUMNS = [("a_is_acceptable", "b_is_acceptable")]


def looks_like_tulu(columns: Iterable[str]) -> bool:
    return set(columns) >= COLUMNS


def prepare(raw: Raw, notes: list[str]) -> None:
    """Rename the sheet's columns to the long-form annotation names."""
    present = set(raw.columns)
    raw.rename({k: v for k, v in RENAME.items() if k in present and v not in present})
    notes.append("Tülu-1 human eval: pair_id = instance_index, annotator_id = evaluator; each comparison "
                 "in alphabetical model order (ratings shown the other way flipped, shown_order 'ba'); "
                 "5-level preference mapped to [-2, 2]")
