"""The gold scorer: the synthetic data's definition of quality, usable on any text.

``gold_score(prompt, response)`` splits the response into sentences (lines, bullets and sentence ends)
and matches each against the fact bank (exactly after normalisation, else by word overlap, so
that text a model generates is scored too):

- a correct fact of the prompt's topic: +1;
- a wrong (dismissive) fact of any topic: -1;
- a correct fact of another topic (off-topic): -1;
- an opener or closer (shared boilerplate): skipped;
- anything else (unrecognised text of three words or more): 0, but it counts.

The score is the mean over counted sentences, in [-1, 1] (0 when nothing counts). A mean, not a sum,
so that quality does not grow with length. The prompt's topic comes from the subject it mentions
(:func:`topic_of`); when no topic is recognised, every correct fact counts +1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from prefaudit.synth.bank import CLOSERS, OPENERS, TOPICS

FUZZY_MIN_JACCARD = 0.6  # word-set overlap a sentence needs to count as a bank sentence
MIN_WORDS = 3  # shorter fragments are ignored

_WORD = re.compile(r"[a-z0-9']+")
_SPLIT = re.compile(r"\n+|(?<=[.!?])\s+")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


def normalize(text: str) -> str:
    """Lower-case words (letters, digits, apostrophes) joined by single spaces."""
    return " ".join(_WORD.findall(text.lower().replace("\u2019", "'")))


def split_sentences(text: str) -> list[str]:
    """Sentences of a response: split at line breaks and sentence ends, bullet markers removed."""
    return [s for s in (_BULLET.sub("", part).strip() for part in _SPLIT.split(text)) if s]


def _build_bank() -> tuple[dict[str, tuple[str, int]], dict[str, set[int]], list[tuple[frozenset[str], str, int]]]:
    exact: dict[str, tuple[str, int]] = {}
    entries: list[tuple[frozenset[str], str, int]] = []
    for topic, spec in TOPICS.items():
        for good, bad in spec["facts"]:
            for sentence, sign in ((good, 1), (bad, -1)):
                key = normalize(sentence)
                exact[key] = (topic, sign)
                entries.append((frozenset(key.split()), topic, sign))
    index: dict[str, set[int]] = {}
    for i, (words, _, _) in enumerate(entries):
        for w in words:
            index.setdefault(w, set()).add(i)
    return exact, index, entries


_EXACT, _INDEX, _ENTRIES = _build_bank()
_BOILER_RES = [re.compile("^" + re.escape(normalize(t.replace("{s}", "SUBJ"))).replace("subj", ".+") + "$")
               for t in (*OPENERS, *CLOSERS)]
_BOILER_SETS = [frozenset(normalize(t.replace("{s}", " ")).split()) for t in (*OPENERS, *CLOSERS)]
_SUBJECTS = sorted(((normalize(s), topic) for topic, spec in TOPICS.items() for s in spec["subjects"]),
                   key=lambda x: -len(x[0]))


@lru_cache(maxsize=200_000)
def classify_sentence(sentence: str) -> tuple[str, int] | None | str:
    """(topic, +1 correct / -1 wrong) for a bank sentence, ``"skip"`` for boilerplate or a fragment,
    None for unrecognised text."""
    key = normalize(sentence)
    words = key.split()
    if len(words) < MIN_WORDS:
        return "skip"
    if key in _EXACT:
        return _EXACT[key]
    if any(r.match(key) for r in _BOILER_RES):
        return "skip"
    ws = frozenset(words)
    best, best_j = None, FUZZY_MIN_JACCARD
    for i in set().union(*(_INDEX.get(w, ()) for w in ws)):
        bank_words, topic, sign = _ENTRIES[i]
        j = len(ws & bank_words) / len(ws | bank_words)
        if j >= best_j:
            best, best_j = (topic, sign), j
    if best is not None:
        return best
    for b in _BOILER_SETS:
        if len(ws & b) >= 0.8 * len(b) and len(ws) <= len(b) + 8:
            return "skip"
    return None


@lru_cache(maxsize=100_000)
def topic_of(prompt: str) -> str | None:
    """The topic whose subject the prompt mentions (the longest match), or None."""
    padded = f" {normalize(prompt)} "
    for subject, topic in _SUBJECTS:
        if f" {subject} " in padded:
            return topic
    return None


def gold_score(prompt: str, response: str) -> float:
    """Gold quality of ``response`` to ``prompt`` in [-1, 1] (see the module docstring). Deterministic."""
    topic = topic_of(prompt)
    total, count = 0, 0
    for sentence in split_sentences(response):
        c = classify_sentence(sentence)
        if c == "skip":
            continue
        count += 1
        if c is None:
            continue
        fact_topic, sign = c
        total += sign if (sign < 0 or topic is None or fact_topic == topic) else -1
    return total / count if count else 0.0


def gold_scores(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """:func:`gold_score` over aligned sequences (a prompt may be given once for many responses)."""
    if isinstance(prompts, str):
        prompts = [prompts] * len(responses)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
    return np.fromiter((gold_score(p, r) for p, r in zip(prompts, responses, strict=True)),
                       dtype=float, count=len(responses))
