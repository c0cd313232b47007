"""Batches for the trainer: a deterministic, length-bucketed schedule and the padded tensors of a batch.

The schedule is a pure function of (lengths, batch size, steps, seed), so a resumed run and every
process of a distributed run see exactly the same global batches without sharing any state.

Two layouts hold a batch of B pairs:

- *plain*: 2B right-padded rows, prompt + chosen then prompt + rejected (trl's layout);
- *packed*: B rows ``prompt | chosen | rejected``, with position ids that restart the rejected
  response where the prompt ends and an attention mask that hides the chosen tokens from the
  rejected ones. Each row computes exactly what the two plain rows compute, but runs its prompt once;
  the prompt is usually most of a pair's tokens.

:func:`collate_pairs` adds the packed layout when it pads to fewer tokens; the model uses it when it
accepts the mask (:class:`prefaudit.train.logps.ResponseLogps` checks that numerically).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from prefaudit.train.truncation import TruncatedPair


def length_batches(lengths: np.ndarray, indices: Sequence[int], batch_size: int) -> list[list[int]]:
    """Cut ``indices`` into batches of similar length (longest first)."""
    idx = np.asarray(indices, dtype=np.int64)
    idx = idx[np.argsort(-np.asarray(lengths)[idx], kind="stable")]
    return [idx[i:i + batch_size].tolist() for i in range(0, len(idx), batch_size)]


def batch_schedule(lengths: Sequence[int], batch_size: int, steps: int, seed: int = 0,
                   bucket_batches: int = 64) -> list[list[int]]:
    """Global batches (lists of pair indices) for ``steps`` optimizer steps.

    Pairs are drawn epoch by epoch, each epoch a fresh permutation (seeded by ``seed`` and the epoch),
    so every pair is seen once per epoch and nothing is dropped. The stream is cut into windows of
    ``bucket_batches`` batches; inside a window the pairs are sorted by length and cut into batches,
    and the batches are shuffled — padding waste falls while the order stays random.
    ``bucket_batches=1`` gives plain random batches.
    """
    n = len(lengths)
    if n == 0 or batch_size < 1 or steps < 0:
        raise ValueError("batch_schedule needs pairs, batch_size >= 1 and steps >= 0")
    lengths = np.asarray(lengths)
    need = steps * batch_size
    window = max(1, bucket_batches) * batch_size
    stream: list[int] = []
    epoch = 0
    while len(stream) < need:
        stream.extend(np.random.default_rng([seed, epoch]).permutation(n).tolist())
        epoch += 1
    stream = stream[:need]
    batches: list[list[int]] = []
    for w, start in enumerate(range(0, need, window)):
        chunk = stream[start:start + window]
        if bucket_batches > 1:
            cut = length_batches(lengths, chunk, batch_size)
        else:
            cut = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        order = np.random.default_rng([seed, 1_000_003, w]).permutation(len(cut))
        batches.extend(cut[i] for i in order)
    return batches


def packed_length(p: TruncatedPair) -> int:
    """Tokens of a pair in the packed layout: prompt + chosen + rejected."""
    return len(p.prompt) + len(p.chosen) + len(p.rejected)


@dataclass
class Batch:
    """Padded tensors for B pairs (or B single sequences).

    Plain layout: 2B rows, [0, B) prompt+chosen and [B, 2B) prompt+rejected (or just B rows from
    :func:`collate_sequences`); ``response_mask`` marks response tokens, ``response_len`` a row's
    response length and ``shared_len`` min(|chosen|, |rejected|) of its pair (LD-DPO).

    Packed layout (optional): ``packed_ids``/``packed_pos`` (B, W), ``packed_mask`` (B, 1, W, W; True
    = may attend), and one entry per scored token: its row, the position that predicts it, the token,
    which response (0 chosen, 1 rejected) and its 1-based index within the response.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    response_len: torch.Tensor
    shared_len: torch.Tensor
    packed_ids: torch.Tensor | None = None
    packed_pos: torch.Tensor | None = None
    packed_mask: torch.Tensor | None = None
    score_row: torch.Tensor | None = None
    score_from: torch.Tensor | None = None
    score_token: torch.Tensor | None = None
    score_which: torch.Tensor | None = None
    score_index: torch.Tensor | None = None

    @property
    def n_tokens(self) -> int:
        """Tokens of the sequences prompt + response (what trl counts), whatever the layout."""
        return int(self.attention_mask.sum())

    def to(self, device: torch.device) -> Batch:
        return Batch(*(None if (t := getattr(self, f.name)) is None else t.to(device, non_blocking=True)
                       for f in fields(self)))


def collate_sequences(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int,
                      shared_len: Sequence[int] | None = None) -> Batch:
    """Right-padded batch of prompt+response rows (the plain layout)."""
    rows = len(prompts)
    width = max(1, max(len(p) + len(r) for p, r in zip(prompts, responses, strict=True)))
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    attn = torch.zeros((rows, width), dtype=torch.long)
    resp = torch.zeros((rows, width), dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        n_p, n = len(p), len(p) + len(r)
        ids[i, :n] = torch.tensor(list(p) + list(r), dtype=torch.long)
        attn[i, :n] = 1
        resp[i, n_p:n] = True
    lens = torch.tensor([len(r) for r in responses], dtype=torch.float32)
    shared = torch.tensor(list(shared_len) if shared_len is not None else [len(r) for r in responses],
                          dtype=torch.long)
    return Batch(ids, attn, resp, lens, shared)


def _pack(pairs: Sequence[TruncatedPair], pad_id: int, batch: Batch) -> None:
    """Fill the packed layout of ``batch`` (see :class:`Batch`)."""
    n = len(pairs)
    width = max(packed_length(p) for p in pairs)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), 3, dtype=torch.long)  # 0 prompt, 1 chosen, 2 rejected, 3 padding
    rows, pred, token, which, index = [], [], [], [], []
    for i, p in enumerate(pairs):
        lp, lc, lr = len(p.prompt), len(p.chosen), len(p.rejected)
        ids[i, :lp + lc + lr] = torch.tensor([*p.prompt, *p.chosen, *p.rejected], dtype=torch.long)
        pos[i, :lp + lc] = torch.arange(lp + lc)
        pos[i, lp + lc:lp + lc + lr] = torch.arange(lp, lp + lr)
        segment[i, :lp], segment[i, lp:lp + lc], segment[i, lp + lc:lp + lc + lr] = 0, 1, 2
        for w, (start, resp) in enumerate(((lp, p.chosen), (lp + lc, p.rejected))):
            rows += [i] * len(resp)
            pred += [lp - 1] + list(range(start, start + len(resp) - 1)) if resp else []
            token += list(resp)
            which += [w] * len(resp)
            index += list(range(1, len(resp) + 1))
    q, k = segment[:, :, None], segment[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    mask = causal & (k != 3) & ~((q == 2) & (k == 1))
    mask |= torch.eye(width, dtype=torch.bool) & (q == 3)  # padding attends to itself: no empty rows
    batch.packed_ids, batch.packed_pos, batch.packed_mask = ids, pos, mask[:, None]
    batch.score_row, batch.score_from, batch.score_token, batch.score_which, batch.score_index = (
        torch.tensor(x, dtype=torch.long) for x in (rows, pred, token, which, index))


def collate_pairs(pairs: Sequence[TruncatedPair], pad_id: int) -> Batch:
    """The batch of a list of pairs: plain layout (chosen rows first, then rejected rows), plus the
    packed layout when it pads to fewer tokens and every prompt has a token to predict from."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    shared = [min(len(p.chosen), len(p.rejected)) for p in pairs] * 2
    batch = collate_sequences(prompts, responses, pad_id, shared)
    if all(p.prompt for p in pairs) and max(packed_length(p) for p in pairs) < 2 * batch.input_ids.shape[1]:
        _pack(pairs, pad_id, batch)
    return batch
