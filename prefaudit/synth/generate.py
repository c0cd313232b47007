"""Synthetic preference pairs with known ground truth: :func:`make` -> :class:`SynthData`.

How a pair is built (every choice below is documented so that tests can rely on it):

- **Prompts** are topic-structured advice questions (``bank.TOPICS``: 12 topics such as cooking,
  finance, programming, astronomy), a template about a subject plus an optional context sentence.
  Every prompt is unique within and across the training pairs, the eval pairs and the target set
  (until a topic's ~1,700 training prompts run out; then training prompts repeat). Eval and target
  prompts of a trained topic use template/subject combinations never seen in training.
- **Responses** are an opener naming the subject, 1-7 fact sentences (lengths drawn independently of
  quality) and sometimes a closer, as a paragraph or (20%) a bullet list. A fact sentence is a
  correct tip of the prompt's topic, or a *bad* sentence: a wrong, dismissive tip of the same topic
  (half) or a correct tip of another topic (off-topic, half). Quality is the gold score
  (:func:`prefaudit.synth.gold.gold_score`): the mean of +1 per correct and -1 per bad sentence.
- **Pairs**: with probability ``tie_share`` the two responses have equal quality (both all-correct,
  or both half bad); otherwise the better one has at most a quarter bad sentences (score >= 0.5) and
  the worse at least half (score <= 0), so the gold margin is at least 0.5. Which response is better
  is a coin flip independent of the lengths, so length carries no quality by default.
- **Single-label data** (``n_annotators=0``): the recorded preference is the gold one (a coin flip
  on quality ties). With ``length_bias=p``, a share ``biased_share`` of the pairs is instead labeled
  by a length-biased annotator who picks the longer response (characters) with probability ``p``
  whatever the quality (so also on ties). Then exactly ``round(flip_rate * n_pairs)`` of the other,
  non-tie pairs get chosen/rejected swapped (random flips); every flipped pair is mislabeled.
- **Multi-annotator data** (``n_annotators > 0``): each pair is rated by every annotator (or by
  ``votes_per_pair`` of them, drawn at random); an annotator with accuracy ``acc`` gives the true
  label (a, b, or tie on a quality tie) with probability ``acc``, else the other response (on a tie:
  a or b at random). chosen/rejected is the consensus (``Annotations.consensus``).
- **Eval pairs** are clean, never tied, from the trained topics; **target prompts** mix the trained
  topics with the withheld ones (``target_withheld_share`` of them), which never occur in training
  pairs (not even as off-topic sentences).

Random streams are separate per part, so for one seed the texts do not depend on the label knobs:
``make(seed=0)`` and ``make(seed=0, flip_rate=0.2)`` hold the same prompts and responses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefaudit.analyzers.base import Metric
from prefaudit.data.preference_set import Annotations, PreferenceSet, SourceInfo
from prefaudit.errors import ConfigError
from prefaudit.synth.bank import CLOSERS, OPENERS, TOPICS
from prefaudit.synth.gold import gold_scores

TOPIC_NAMES: tuple[str, ...] = tuple(TOPICS)
DEFAULT_WITHHELD: tuple[str, ...] = ("astronomy",)
DEFAULT_ACCURACIES: tuple[float, ...] = (0.95, 0.9, 0.85, 0.6)
LENGTHS = np.arange(1, 8)  # fact sentences per response
LENGTH_WEIGHTS = np.array([0.08, 0.14, 0.18, 0.18, 0.16, 0.14, 0.12])
EVEN_LENGTHS = np.array([2, 4, 6])  # for ties at score 0 (half bad)
OFF_TOPIC_SHARE = 0.5  # of the bad sentences
BULLET_SHARE = 0.2
CLOSER_SHARE = 0.3
HELDOUT_COMBO_SHARE = 0.2  # template x subject combinations kept for eval/target prompts


@dataclass
class SynthData:
    """What :func:`make` returns: the data, and the truth behind it.

    - ``pairs``: the training PreferenceSet (metadata column ``topic``; with annotators also
      ``chosen_side`` and the votes in ``pairs.annotations``).
    - ``eval``: a clean held-out PreferenceSet (gold labels, no ties).
    - ``target``: target prompts: ``prompt_id``, ``prompt``, ``topic``, ``withheld``.
    - ``truth``: one row per training pair: ``pair_id``, ``topic``, ``subject``, ``quality_tie``,
      ``gold_chosen``, ``gold_rejected`` (gold scores of the recorded chosen/rejected),
      ``label_correct`` (null on a quality tie or a tied consensus), ``flipped``, ``biased``,
      ``chosen_longer``; with annotators also ``gold_a``, ``gold_b``, ``true_label`` (a/b/tie),
      ``consensus``, ``n_votes``.
    - ``annotator_truth``: annotator id -> accuracy. ``withheld_topics``, ``topics`` (trained).
    - ``bayes_accuracy``: share of non-tie pairs on which the gold scorer's better response is the one
      built to be better (the clean label) — the ceiling of preference accuracy on clean labels.
    - ``label_accuracy``: share of non-tie pairs whose recorded label (consensus) agrees with the gold
      scorer — the ceiling on the data as recorded.
    """

    pairs: PreferenceSet
    eval: PreferenceSet
    target: pl.DataFrame
    truth: pl.DataFrame
    annotator_truth: dict[str, float]
    withheld_topics: tuple[str, ...]
    topics: tuple[str, ...]
    bayes_accuracy: Metric
    label_accuracy: Metric
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def flipped_ids(self) -> list[str]:
        return self.truth.filter(pl.col("flipped"))["pair_id"].to_list()

    @property
    def noise_rate(self) -> Metric:
        """Share of all pairs whose recorded label is wrong (ties count as not wrong)."""
        wrong = int((self.truth["label_correct"] == False).sum())  # noqa: E712 (nulls stay out)
        return Metric.proportion(wrong, self.truth.height)

    def meta(self) -> dict[str, Any]:
        """The global truth (knobs, topics, annotator accuracies, accuracies) as a JSON-able dict."""
        return {
            "generator": "prefaudit.synth", "config": self.config, "topics": list(self.topics),
            "withheld_topics": list(self.withheld_topics), "annotator_accuracies": self.annotator_truth,
            "pairs": len(self.pairs), "eval_pairs": len(self.eval), "target_prompts": self.target.height,
            "flipped": len(self.flipped_ids), "biased": int(self.truth["biased"].sum()),
            "quality_ties": int(self.truth["quality_tie"].sum()), "noise_rate": self.noise_rate.to_dict(),
            "bayes_accuracy": self.bayes_accuracy.to_dict(), "label_accuracy": self.label_accuracy.to_dict(),
        }

    def pairs_frame(self) -> pl.DataFrame:
        """The pairs as written: flat prompt/chosen/rejected, or response_a/response_b with annotators."""
        df = self.pairs.df
        if self.pairs.annotations is None:
            return df.select("pair_id", "prompt", "chosen", "rejected", "topic")
        ab = self.pairs.responses_ab()
        return df.select("pair_id", "prompt", "topic").join(ab, on="pair_id", how="left") \
            .select("pair_id", "prompt", "response_a", "response_b", "topic")

    def write(self, out: str | Path, truth_path: str | Path | None = None, *,
              annotations_path: str | Path | None = None, target_path: str | Path | None = None,
              eval_path: str | Path | None = None) -> dict[str, Path]:
        """Write the data. ``out`` is a directory (no suffix) or the pairs file (.jsonl/.csv/.parquet...).

        A directory gets ``pairs.jsonl``, ``truth.jsonl`` (+ ``truth.meta.json``), ``target.jsonl``,
        ``eval.jsonl`` and, with annotators, ``annotations.jsonl``. A pairs file gets only what is
        asked for, except that annotations (part of the data) default to ``<stem>.annotations.jsonl``
        beside it. The truth's global part goes to ``<truth stem>.meta.json`` beside the truth file.
        Returns the paths written, by role.
        """
        from prefaudit.data.io import write_frame

        out = Path(out)
        if out.suffix == "":
            out.mkdir(parents=True, exist_ok=True)
            pairs_path, truth_path = out / "pairs.jsonl", out / "truth.jsonl"
            target_path, eval_path = out / "target.jsonl", out / "eval.jsonl"
            annotations_path = out / "annotations.jsonl"
        else:
            pairs_path = out
            if annotations_path is None:
                annotations_path = out.with_name(out.name.split(".")[0] + ".annotations.jsonl")
        written = {"pairs": write_frame(self.pairs_frame(), pairs_path)}
        if self.pairs.annotations is not None:
            written["annotations"] = write_frame(
                self.pairs.annotations.df.select("pair_id", "annotator_id", "label"), Path(annotations_path))
        if truth_path is not None:
            truth_path = Path(truth_path)
            written["truth"] = write_frame(self.truth, truth_path)
            meta_path = truth_path.with_name(truth_path.name.split(".")[0] + ".meta.json")
            meta_path.write_text(json.dumps(self.meta(), indent=2) + "\n", encoding="utf-8")
            written["meta"] = meta_path
        if target_path is not None:
            written["target"] = write_frame(self.target.select("prompt_id", "prompt", "topic"), Path(target_path))
        if eval_path is not None:
            written["eval"] = write_frame(self.eval.df.select("pair_id", "prompt", "chosen", "rejected", "topic"),
                                          Path(eval_path))
        return written

    def __repr__(self) -> str:
        return (f"SynthData({len(self.pairs)} pairs, {len(self.eval)} eval, {self.target.height} target, "
                f"noise {self.noise_rate}, withheld={list(self.withheld_topics)})")


# ---- prompts -------------------------------------------------------------------------------------
class _PromptPool:
    """Unique prompts of one topic, in a seeded order: each template x subject combination once (with a
    random context or none) before any repeats with another context. A share of the combinations is
    kept apart for held-out (eval/target) prompts."""

    def __init__(self, topic: str, seed: int, heldout_share: float) -> None:
        spec = TOPICS[topic]
        rng = np.random.default_rng([seed, TOPIC_NAMES.index(topic), 101])
        combos = [(t, s) for t in range(len(spec["templates"])) for s in range(len(spec["subjects"]))]
        combos = [combos[i] for i in rng.permutation(len(combos))]
        n_hold = int(round(len(combos) * heldout_share))
        self.topic = topic
        n_ctx = len(spec["contexts"])
        self.lists = {"heldout": self._rounds(combos[:n_hold], n_ctx, rng),
                      "train": self._rounds(combos[n_hold:], n_ctx, rng)}
        self.used = {"heldout": 0, "train": 0}

    @staticmethod
    def _rounds(combos: list[tuple[int, int]], n_ctx: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        ctx_orders = [rng.permutation(n_ctx + 1) for _ in combos]  # index n_ctx: no context
        out = []
        for r in range(n_ctx + 1):
            for i in rng.permutation(len(combos)):
                out.append((*combos[i], int(ctx_orders[i][r])))
        return out

    def take(self, part: str) -> tuple[str, str]:
        """The next (prompt, subject) of ``part`` ("train" or "heldout"); cycles when exhausted."""
        items = self.lists[part]
        t, s, c = items[self.used[part] % len(items)]
        self.used[part] += 1
        spec = TOPICS[self.topic]
        subject = spec["subjects"][s]
        prompt = spec["templates"][t].format(s=subject)
        if c < len(spec["contexts"]):
            prompt += " " + spec["contexts"][c]
        return prompt, subject


# ---- responses -----------------------------------------------------------------------------------
def _response(rng: np.random.Generator, topic: str, subject: str, n_facts: int, n_bad: int,
              off_topics: Sequence[str]) -> str:
    """Opener + ``n_facts`` fact sentences of which ``n_bad`` are bad (wrong or off-topic) + maybe a closer."""
    facts = TOPICS[topic]["facts"]
    idx = rng.choice(len(facts), size=n_facts, replace=False)
    bad = set(rng.choice(n_facts, size=n_bad, replace=False).tolist())
    body = []
    for j, i in enumerate(idx):
        if j not in bad:
            body.append(facts[i][0])
        elif rng.random() >= OFF_TOPIC_SHARE or not off_topics:
            body.append(facts[i][1])
        else:
            other = TOPICS[off_topics[rng.integers(len(off_topics))]]["facts"]
            body.append(other[rng.integers(len(other))][0])
    opener = OPENERS[rng.integers(len(OPENERS))].format(s=subject)
    opener = opener[0].upper() + opener[1:]
    closer = CLOSERS[rng.integers(len(CLOSERS))].format(s=subject) if rng.random() < CLOSER_SHARE else None
    if rng.random() < BULLET_SHARE:
        text = opener + "\n\n" + "\n".join("- " + b for b in body)
        return text + ("\n\n" + closer if closer else "")
    return " ".join([opener, *body, *([closer] if closer else [])])


def _pair(rng: np.random.Generator, topic: str, subject: str, tie: bool,
          off_topics: Sequence[str]) -> tuple[str, str, str]:
    """Two responses (a, b) and which was built better ("a", "b" or "tie"): of equal quality when
    ``tie``, else one clearly better (a coin decides which)."""
    while True:
        better = -1  # stays -1 on a tie: ("a", "b", "tie")[-1] == "tie"
        if tie and rng.random() < 0.5:  # both half bad (score 0)
            n = rng.choice(EVEN_LENGTHS, size=2)
            bads = n // 2
        else:
            n = rng.choice(LENGTHS, size=2, p=LENGTH_WEIGHTS)
            if tie:  # both all correct (score 1)
                bads = np.zeros(2, dtype=int)
            else:
                better = int(rng.integers(2))
                bads = np.empty(2, dtype=int)
                bads[better] = rng.integers(0, n[better] // 4 + 1)
                bads[1 - better] = rng.integers(math.ceil(n[1 - better] / 2), n[1 - better] + 1)
        a = _response(rng, topic, subject, int(n[0]), int(bads[0]), off_topics)
        b = _response(rng, topic, subject, int(n[1]), int(bads[1]), off_topics)
        if a != b:
            return a, b, ("a", "b", "tie")[better]


def _build(rng: np.random.Generator, pools: dict[str, _PromptPool], topics: np.ndarray, part: str,
           ties: np.ndarray, trained: Sequence[str]) -> dict[str, list]:
    cols: dict[str, list] = {"topic": [], "subject": [], "prompt": [], "response_a": [], "response_b": [],
                             "built": []}
    for topic, tie in zip(topics, ties, strict=True):
        prompt, subject = pools[topic].take(part)
        a, b, built = _pair(rng, topic, subject, bool(tie), [t for t in trained if t != topic])
        for k, v in zip(cols, (topic, subject, prompt, a, b, built), strict=True):
            cols[k].append(v)
    return cols


# ---- the generator -------------------------------------------------------------------------------
def _check(n_pairs: int, flip_rate: float, length_bias: float | None, biased_share: float, tie_share: float,
           accuracies: Sequence[float], votes_per_pair: int | None, withheld: Sequence[str], n_target: int,
           target_withheld_share: float, n_eval: int) -> None:
    def bad(msg: str) -> None:
        raise ConfigError(msg)

    if n_pairs < 1:
        bad(f"n_pairs must be at least 1, got {n_pairs}")
    if not 0.0 <= flip_rate < 1.0:
        bad(f"flip_rate must be in [0, 1), got {flip_rate}")
    if length_bias is not None and not 0.0 <= length_bias <= 1.0:
        bad(f"length_bias must be in [0, 1], got {length_bias}")
    if not 0.0 < biased_share <= 1.0:
        bad(f"biased_share must be in (0, 1], got {biased_share}")
    if not 0.0 <= tie_share < 1.0:
        bad(f"tie_share must be in [0, 1), got {tie_share}")
    if any(not 0.0 <= a <= 1.0 for a in accuracies):
        bad(f"annotator accuracies must be in [0, 1], got {list(accuracies)}")
    if accuracies and (flip_rate or length_bias is not None):
        bad("flip_rate and length_bias apply to single-label data; with annotators, set their accuracies")
    if votes_per_pair is not None and not 1 <= votes_per_pair <= max(len(accuracies), 1):
        bad(f"votes_per_pair must be between 1 and the number of annotators, got {votes_per_pair}")
    unknown = [t for t in withheld if t not in TOPICS]
    if unknown:
        bad(f"unknown topic(s) {unknown}; topics are: {', '.join(TOPIC_NAMES)}")
    if len(set(withheld)) >= len(TOPICS):
        bad("at least one topic must stay in the training data")
    if n_target < 0 or n_eval < 0:
        bad("n_target and n_eval must be >= 0")
    if not 0.0 <= target_withheld_share <= 1.0:
        bad(f"target_withheld_share must be in [0, 1], got {target_withheld_share}")


def make(
    n_pairs: int = 2000,
    *,
    flip_rate: float = 0.0,
    length_bias: float | None = None,
    biased_share: float = 0.25,
    tie_share: float = 0.05,
    n_annotators: int = 0,
    annotator_accuracies: Sequence[float] | None = None,
    votes_per_pair: int | None = None,
    withheld_topics: Sequence[str] | str = DEFAULT_WITHHELD,
    n_target: int = 400,
    target_withheld_share: float = 0.25,
    n_eval: int = 500,
    seed: int = 0,
) -> SynthData:
    """Generate synthetic preference data with known ground truth (module docstring: how).

    Knobs: ``flip_rate`` — share of all pairs whose label is randomly swapped (exact count, drawn from
    non-tie pairs not judged by the biased annotator); ``length_bias`` — None (off) or the probability
    that the length-biased annotator picks the longer response, regardless of quality, on a random
    ``biased_share`` of the pairs; ``tie_share`` — share of pairs of equal gold quality;
    ``n_annotators`` / ``annotator_accuracies`` — multi-annotator data (accuracies default to evenly
    spaced from 0.95 down to 0.6; given accuracies set the count); ``votes_per_pair`` — raters per pair
    (default all); ``withheld_topics`` — topics absent from training and eval, present in the target
    set (default ``("astronomy",)``; a single name is fine; ``()`` for none); ``n_target`` target prompts of which
    ``target_withheld_share`` are from withheld topics; ``n_eval`` clean eval pairs.
    """
    withheld = (withheld_topics,) if isinstance(withheld_topics, str) else tuple(dict.fromkeys(withheld_topics))
    if annotator_accuracies is not None:
        accuracies = [float(a) for a in annotator_accuracies]
        if not accuracies:
            raise ConfigError("annotator_accuracies is empty")
        if n_annotators and n_annotators != len(accuracies):
            raise ConfigError(f"n_annotators={n_annotators} but {len(accuracies)} accuracies given")
    elif n_annotators > 0:
        accuracies = [round(float(a), 4) for a in np.linspace(0.95, 0.6, n_annotators)] if n_annotators > 1 \
            else [DEFAULT_ACCURACIES[0]]
    elif n_annotators < 0:
        raise ConfigError(f"n_annotators must be >= 0, got {n_annotators}")
    else:
        accuracies = []
    _check(n_pairs, flip_rate, length_bias, biased_share, tie_share, accuracies, votes_per_pair, withheld,
           n_target, target_withheld_share, n_eval)
    trained = tuple(t for t in TOPIC_NAMES if t not in withheld)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    rng_text, rng_label, rng_eval, rng_target, rng_votes = streams
    pools = {t: _PromptPool(t, seed, 0.0 if t in withheld else HELDOUT_COMBO_SHARE) for t in TOPIC_NAMES}

    # training pairs (texts first, from their own stream)
    topics = rng_text.choice(np.array(trained), size=n_pairs)
    ties = rng_text.random(n_pairs) < tie_share
    cols = _build(rng_text, pools, topics, "train", ties, trained)
    pair_ids = [f"syn-{i + 1:06d}" for i in range(n_pairs)]
    gold_a = gold_scores(cols["prompt"], cols["response_a"])
    gold_b = gold_scores(cols["prompt"], cols["response_b"])
    true_label = np.where(gold_a > gold_b, "a", np.where(gold_a < gold_b, "b", "tie"))
    built = np.array(cols["built"])
    bayes = Metric.proportion(int((true_label == built)[built != "tie"].sum()), int((built != "tie").sum()))
    len_a = np.array([len(x) for x in cols["response_a"]])
    len_b = np.array([len(x) for x in cols["response_b"]])
    base = pl.DataFrame({"pair_id": pair_ids, "prompt": cols["prompt"], "topic": cols["topic"],
                         "subject": cols["subject"]})
    config = {"n_pairs": n_pairs, "flip_rate": flip_rate, "length_bias": length_bias,
              "biased_share": biased_share if length_bias is not None else None, "tie_share": tie_share,
              "n_annotators": len(accuracies), "annotator_accuracies": accuracies or None,
              "votes_per_pair": votes_per_pair, "withheld_topics": list(withheld), "n_target": n_target,
              "target_withheld_share": target_withheld_share, "n_eval": n_eval, "seed": seed}

    if accuracies:
        pairs, truth, annotator_truth = _annotated(rng_votes, base, cols, true_label, gold_a, gold_b, len_a,
                                                   len_b, accuracies, votes_per_pair)
    else:
        pairs, truth = _single(rng_label, base, cols, true_label, gold_a, gold_b, len_a, len_b, flip_rate,
                               length_bias, biased_share)
        annotator_truth = {}
    decided = truth.filter(~pl.col("quality_tie"))
    label_acc = Metric.proportion(int((decided["label_correct"] == True).sum()), decided.height)  # noqa: E712

    eval_set = _eval_set(rng_eval, pools, trained, n_eval)
    target = _target(rng_target, pools, trained, withheld, n_target, target_withheld_share)
    pairs.source = SourceInfo(path=f"prefaudit.synth.make(seed={seed})", rows_read=n_pairs, format="synthetic")
    return SynthData(pairs=pairs, eval=eval_set, target=target, truth=truth, annotator_truth=annotator_truth,
                     withheld_topics=withheld, topics=trained, bayes_accuracy=bayes, label_accuracy=label_acc,
                     config=config)


def _single(rng: np.random.Generator, base: pl.DataFrame, cols: dict[str, list], true_label: np.ndarray,
            gold_a: np.ndarray, gold_b: np.ndarray, len_a: np.ndarray, len_b: np.ndarray, flip_rate: float,
            length_bias: float | None, biased_share: float) -> tuple[PreferenceSet, pl.DataFrame]:
    """Recorded labels for single-label data: gold, then the length-biased annotator, then random flips."""
    n = base.height
    tie = true_label == "tie"
    coin = np.where(rng.random(n) < 0.5, "a", "b")
    label = np.where(tie, coin, true_label)
    biased = np.zeros(n, dtype=bool)
    if length_bias is not None:
        biased[rng.choice(n, size=int(round(biased_share * n)), replace=False)] = True
        longer = np.where(len_a > len_b, "a", np.where(len_a < len_b, "b", coin))
        shorter = np.where(longer == "a", "b", "a")
        label = np.where(biased, np.where(rng.random(n) < length_bias, longer, shorter), label)
    flipped = np.zeros(n, dtype=bool)
    n_flip = int(round(flip_rate * n))
    eligible = np.flatnonzero(~tie & ~biased)
    if n_flip > eligible.size:
        raise ConfigError(f"flip_rate={flip_rate} needs {n_flip} flips but only {eligible.size} pairs are "
                          "neither quality ties nor length-biased")
    flipped[rng.choice(eligible, size=n_flip, replace=False)] = True
    label = np.where(flipped, np.where(label == "a", "b", "a"), label)
    a_chosen = label == "a"
    ra, rb = np.array(cols["response_a"], dtype=object), np.array(cols["response_b"], dtype=object)
    df = base.select("pair_id", "prompt").with_columns(
        pl.Series("chosen", np.where(a_chosen, ra, rb).tolist(), dtype=pl.Utf8),
        pl.Series("rejected", np.where(a_chosen, rb, ra).tolist(), dtype=pl.Utf8),
        pl.lit(False).alias("tie"), base["topic"])
    g_chosen, g_rejected = np.where(a_chosen, gold_a, gold_b), np.where(a_chosen, gold_b, gold_a)
    truth = base.select("pair_id", "topic", "subject").with_columns(
        pl.Series("quality_tie", tie), pl.Series("gold_chosen", g_chosen), pl.Series("gold_rejected", g_rejected),
        pl.Series("label_correct", np.where(tie, None, g_chosen > g_rejected).tolist(), dtype=pl.Boolean),
        pl.Series("flipped", flipped), pl.Series("biased", biased),
        pl.Series("chosen_longer", np.where(a_chosen, len_a > len_b, len_b > len_a)))
    return PreferenceSet(df), truth


def _annotated(rng: np.random.Generator, base: pl.DataFrame, cols: dict[str, list], true_label: np.ndarray,
               gold_a: np.ndarray, gold_b: np.ndarray, len_a: np.ndarray, len_b: np.ndarray,
               accuracies: Sequence[float], votes_per_pair: int | None,
               ) -> tuple[PreferenceSet, pl.DataFrame, dict[str, float]]:
    """Votes from annotators of known accuracy; chosen/rejected = the consensus."""
    n, k = base.height, len(accuracies)
    ids = [f"ann-{j + 1:02d}" for j in range(k)]
    correct = rng.random((n, k)) < np.asarray(accuracies)[None, :]
    other = np.where(true_label == "a", "b", "a")[:, None]
    wrong_on_tie = np.where(rng.random((n, k)) < 0.5, "a", "b")
    wrong = np.where((true_label == "tie")[:, None], wrong_on_tie, other)
    votes = np.where(correct, true_label[:, None], wrong)
    rated = np.ones((n, k), dtype=bool)
    if votes_per_pair is not None and votes_per_pair < k:
        order = np.argsort(rng.random((n, k)), axis=1)
        rated = np.zeros((n, k), dtype=bool)
        np.put_along_axis(rated, order[:, :votes_per_pair], True, axis=1)
    rows, cols_idx = np.nonzero(rated)
    pair_ids = base["pair_id"].to_numpy()
    ann = Annotations(pl.DataFrame({"pair_id": pair_ids[rows], "annotator_id": np.array(ids)[cols_idx],
                                    "label": votes[rows, cols_idx]}))
    cons = base.select("pair_id").join(ann.consensus().select("pair_id", "consensus", "n_votes"), on="pair_id",
                                       how="left")
    consensus = cons["consensus"].to_numpy()
    b_chosen = consensus == "b"
    ra, rb = np.array(cols["response_a"], dtype=object), np.array(cols["response_b"], dtype=object)
    df = base.select("pair_id", "prompt").with_columns(
        pl.Series("chosen", np.where(b_chosen, rb, ra).tolist(), dtype=pl.Utf8),
        pl.Series("rejected", np.where(b_chosen, ra, rb).tolist(), dtype=pl.Utf8),
        pl.Series("tie", consensus == "tie"), pl.Series("chosen_side", np.where(b_chosen, "b", "a")),
        base["topic"])
    decided = (true_label != "tie") & (consensus != "tie")
    g_chosen, g_rejected = np.where(b_chosen, gold_b, gold_a), np.where(b_chosen, gold_a, gold_b)
    truth = base.select("pair_id", "topic", "subject").with_columns(
        pl.Series("quality_tie", true_label == "tie"), pl.Series("gold_chosen", g_chosen),
        pl.Series("gold_rejected", g_rejected),
        pl.Series("label_correct", np.where(decided, consensus == true_label, None).tolist(), dtype=pl.Boolean),
        pl.Series("flipped", np.zeros(n, dtype=bool)), pl.Series("biased", np.zeros(n, dtype=bool)),
        pl.Series("chosen_longer", np.where(b_chosen, len_b > len_a, len_a > len_b)),
        pl.Series("gold_a", gold_a), pl.Series("gold_b", gold_b), pl.Series("true_label", true_label),
        pl.Series("consensus", consensus), cons["n_votes"].cast(pl.Int64))
    return PreferenceSet(df, annotations=ann), truth, dict(zip(ids, map(float, accuracies), strict=True))


def _eval_set(rng: np.random.Generator, pools: dict[str, _PromptPool], trained: Sequence[str],
              n_eval: int) -> PreferenceSet:
    """Clean held-out pairs (no ties), chosen = the gold-better response."""
    topics = rng.choice(np.array(trained), size=n_eval) if n_eval else np.array([], dtype=str)
    cols = _build(rng, pools, topics, "heldout", np.zeros(n_eval, dtype=bool), trained)
    ga, gb = gold_scores(cols["prompt"], cols["response_a"]), gold_scores(cols["prompt"], cols["response_b"])
    a_better = ga > gb
    return PreferenceSet(pl.DataFrame({
        "pair_id": [f"eval-{i + 1:06d}" for i in range(n_eval)], "prompt": cols["prompt"],
        "chosen": [a if k else b for a, b, k in zip(cols["response_a"], cols["response_b"], a_better, strict=True)],
        "rejected": [b if k else a for a, b, k in zip(cols["response_a"], cols["response_b"], a_better,
                                                       strict=True)],
        "tie": [False] * n_eval, "topic": cols["topic"]},
        schema={"pair_id": pl.Utf8, "prompt": pl.Utf8, "chosen": pl.Utf8, "rejected": pl.Utf8, "tie": pl.Boolean,
                "topic": pl.Utf8}), source=SourceInfo(path="prefaudit.synth eval", rows_read=n_eval,
                                                      format="synthetic"))


def _target(rng: np.random.Generator, pools: dict[str, _PromptPool], trained: Sequence[str],
            withheld: Sequence[str], n_target: int, withheld_share: float) -> pl.DataFrame:
    """Target prompts: trained topics (unseen template/subject combinations) plus the withheld topics."""
    n_w = int(round(withheld_share * n_target)) if withheld else 0
    topics = [withheld[i % len(withheld)] for i in range(n_w)]
    topics += rng.choice(np.array(trained), size=n_target - n_w).tolist()
    topics = [topics[i] for i in rng.permutation(n_target)]
    prompts = [pools[t].take("train" if t in withheld else "heldout")[0] for t in topics]
    return pl.DataFrame({"prompt_id": [f"tgt-{i + 1:05d}" for i in range(n_target)], "prompt": prompts,
                         "topic": topics, "withheld": [t in withheld for t in topics]},
                        schema={"prompt_id": pl.Utf8, "prompt": pl.Utf8, "topic": pl.Utf8, "withheld": pl.Boolean})
