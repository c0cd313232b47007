"""How a pair becomes token ids, and how it is cut to ``max_length`` — one rule for trainer and audit.

Tokenization (the same as trl 1.x's ``DPOTrainer`` for plain-text data):

1. the EOS token text is appended to ``chosen`` and ``rejected`` unless they already end with it;
2. ``prompt``, ``prompt + chosen`` and ``prompt + rejected`` are tokenized separately (with the
   tokenizer's default special tokens);
3. the prompt is the longest common prefix of the prompt ids with both full sequences (a BPE merge
   across the prompt/response boundary moves that token into the responses).

Truncation (``mode``):

- ``"keep_end_prompt"`` (default): when prompt + the longer response exceed ``max_length``, the prompt
  loses tokens from its *start* — only as many as needed, never below ``max_prompt_length`` (default
  ``max_length // 2``) — and the responses are cut to the tokens left. The end of the conversation
  (the last question) is kept, and each response keeps at least ``max_length - max_prompt_length``
  tokens, so a long prompt never crowds the responses out. (trl < 0.12 with
  ``truncation_mode="keep_end"`` did the same, except that it cut the prompt straight to
  ``max_prompt_length``.)
- ``"keep_start"`` (trl >= 1.0's rule): each sequence prompt + response keeps its first ``max_length``
  tokens. The prompt is kept whole when it fits and both responses are cut to the
  ``max_length - len(prompt)`` tokens left; a prompt that fills ``max_length`` leaves no response token
  (such a pair carries no training signal: the trainer drops it, as trl does). On hh-rlhf's harmless
  test split at 256 tokens this empties about 14% of the pairs; ``keep_end_prompt`` empties none.

Because both responses of a pair share one budget, a pair is *damaged* when its chosen and rejected
responses differ before truncation but are identical after it: everything that differed lay beyond
the budget, and DPO learns nothing (or noise) from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TRUNCATION_MODES = ("keep_end_prompt", "keep_start")


@dataclass(frozen=True)
class TokenizedPair:
    """Token ids of one pair: the shared prompt and the two responses (each ending with EOS)."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


@dataclass(frozen=True)
class TruncatedPair:
    """A pair after truncation, with the number of tokens each part lost."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    lost_prompt: int
    lost_chosen: int
    lost_rejected: int
    differed: bool

    @property
    def truncated(self) -> bool:
        """True when any token was cut."""
        return bool(self.lost_prompt or self.lost_chosen or self.lost_rejected)

    @property
    def empty(self) -> bool:
        """True when no response token is left (the prompt alone fills ``max_length``)."""
        return not self.chosen and not self.rejected

    @property
    def damaged(self) -> bool:
        """True when the responses differed but are identical (or both empty) once truncated."""
        return self.differed and self.chosen == self.rejected


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pairs(tokenizer: Any, prompts: Sequence[str], chosen: Sequence[str],
                   rejected: Sequence[str]) -> list[TokenizedPair]:
    """Tokenize pairs the way trl's DPOTrainer does (see the module docstring)."""
    eos = tokenizer.eos_token or ""

    def with_eos(texts: Sequence[str]) -> list[str]:
        return [t if not eos or t.endswith(eos) else t + eos for t in texts]

    prompts = list(prompts)
    enc_p = tokenizer(prompts)["input_ids"]
    enc_c = tokenizer([p + c for p, c in zip(prompts, with_eos(chosen), strict=True)])["input_ids"]
    enc_r = tokenizer([p + r for p, r in zip(prompts, with_eos(rejected), strict=True)])["input_ids"]
    out = []
    for p, c, r in zip(enc_p, enc_c, enc_r, strict=True):
        n = min(common_prefix_length(p, c), common_prefix_length(p, r))
        out.append(TokenizedPair(list(p[:n]), list(c[n:]), list(r[n:])))
    return out


def truncate_pair(prompt: Sequence[int], chosen: Sequence[int], rejected: Sequence[int], max_length: int,
                  mode: str = "keep_end_prompt", max_prompt_length: int | None = None) -> TruncatedPair:
    """Cut one tokenized pair to ``max_length`` tokens per sequence (see the module docstring)."""
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"unknown truncation mode {mode!r}; expected one of {TRUNCATION_MODES}")
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    prompt, chosen, rejected = list(prompt), list(chosen), list(rejected)
    if mode == "keep_start":
        kept_prompt = prompt[:max_length]
    else:
        floor = max_length // 2 if max_prompt_length is None else min(max_prompt_length, max_length)
        need = len(prompt) + max(len(chosen), len(rejected)) - max_length
        keep = len(prompt) if need <= 0 else max(len(prompt) - need, min(len(prompt), floor))
        kept_prompt = prompt[len(prompt) - keep:]
    budget = max(0, max_length - len(kept_prompt))
    c, r = chosen[:budget], rejected[:budget]
    return TruncatedPair(kept_prompt, c, r, len(prompt) - len(kept_prompt), len(chosen) - len(c),
                         len(rejected) - len(r), chosen != rejected)


def prepare_pairs(tokenizer: Any, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
                  max_length: int, mode: str = "keep_end_prompt",
                  max_prompt_length: int | None = None) -> list[TruncatedPair]:
    """Tokenize then truncate: exactly what the trainer feeds the model (and what the audit counts)."""
    return [truncate_pair(t.prompt, t.chosen, t.rejected, max_length, mode, max_prompt_length)
            for t in tokenize_pairs(tokenizer, prompts, chosen, rejected)]
