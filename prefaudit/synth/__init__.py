"""Synthetic preference data with known ground truth (``prefaudit synth`` / ``prefaudit.synth.make``).

- :func:`make` -> :class:`SynthData`: pairs (single-label or multi-annotator), a clean eval set, target
  prompts with withheld topics, and the truth (gold labels, flipped and biased pairs, annotator
  accuracies, topics). See :mod:`prefaudit.synth.generate` for how the data is built.
- :func:`gold_score` / :func:`gold_scores`: the gold quality of any response text (model generations too).
- :func:`topic_of`: the topic a prompt asks about.
"""

from prefaudit.synth.bank import TOPICS
from prefaudit.synth.generate import DEFAULT_ACCURACIES, DEFAULT_WITHHELD, TOPIC_NAMES, SynthData, make
from prefaudit.synth.gold import gold_score, gold_scores, topic_of

__all__ = ["DEFAULT_ACCURACIES", "DEFAULT_WITHHELD", "TOPICS", "TOPIC_NAMES", "SynthData", "gold_score",
           "gold_scores", "make", "topic_of"]
