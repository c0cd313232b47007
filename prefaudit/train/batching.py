"""Batches for the trainer: a deterministic, length-bucketed schedule and the padded tensors of a batch.

The schedule is a pure function of (lengths, batch size, steps, seed), so a resumed run and every
process of a distributed run see exactly the same global batches without sharing any state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from prefaudit.train.truncation import TruncatedPair


def length_batches(prompt_len: np.ndarray, response_len: np.ndarray, indices: Sequence[int], batch_size: int,
                   group_batches: int | None = None) -> list[list[int]]:
    """Cut ``indices`` into batches of similar shape: by prompt length, then by response length.

    The pairs are sorted by prompt length (longest first) and taken ``group_batches`` batches at a
    time (default: an eighth of the batches, within [4, 16]); inside such a group they are sorted by response length
    before being cut. A batch then has both a narrow range of prompt lengths and of response
    lengths — what the shared-prompt layout pads to — and a narrow range of total lengths too.
    """
    idx = np.asarray(indices, dtype=np.int64)
    idx = idx[np.argsort(-prompt_len[idx], kind="stable")]
    if group_batches is None:  # measured on hh-rlhf: 4 batches for small sets, up to 16 for large ones
        group_batches = min(16, max(4, -(-len(idx) // batch_size) // 8))
    group = max(1, group_batches) * batch_size
    out: list[list[int]] = []
    for g in range(0, len(idx), group):
        chunk = idx[g:g + group]
        chunk = chunk[np.argsort(-response_len[chunk], kind="stable")]
        out.extend(chunk[i:i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return out


def batch_schedule(prompt_len: Sequence[int], response_len: Sequence[int], batch_size: int, steps: int,
                   seed: int = 0, bucket_batches: int = 64) -> list[list[int]]:
    """Global batches (lists of pair indices) for ``steps`` optimizer steps.

    Pairs are drawn epoch by epoch, each epoch a fresh permutation (seeded by ``seed`` and the epoch),
    so every pair is seen once per epoch and nothing is dropped. The stream is cut into windows of
    ``bucket_batches`` batches; inside a window the pairs are grouped by length
    (:func:`length_batches`) and the batches shuffled — padding waste falls while the order stays
    random. ``bucket_batches=1`` gives plain random batches.
    """
    n = len(prompt_len)
    if n == 0 or batch_size < 1 or steps < 0:
        raise ValueError("batch_schedule needs pairs, batch_size >= 1 and steps >= 0")
    p_len, r_len = np.asarray(prompt_len), np.asarray(response_len)
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
            cut = length_batches(p_len, r_len, chunk, batch_size)
        else:
            cut = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        order = np.random.default_rng([seed, 1_000_003, w]).permutation(len(cut))
        batches.extend(cut[i] for i in order)
    return batches


def pair_length(p: TruncatedPair) -> int:
    """Tokens of the longer sequence of a pair (what its padded row costs)."""
    return len(p.prompt) + max(len(p.chosen), len(p.rejected))


def pair_shapes(pairs: Sequence[TruncatedPair]) -> tuple[np.ndarray, np.ndarray]:
    """(prompt lengths, longer-response lengths) of the pairs."""
    return (np.array([len(p.prompt) for p in pairs], dtype=np.int64),
            np.array([max(len(p.chosen), len(p.rejected)) for p in pairs], dtype=np.int64))


@dataclass
class Batch:
    """Padded tensors for 2B sequences: rows [0, B) are prompt+chosen, rows [B, 2B) prompt+rejected.

    ``response_mask`` marks response tokens; ``shared_len`` is, per row, min(|chosen|, |rejected|) of
    its pair (LD-DPO); ``response_len`` the row's response length in tokens.

    A batch of pairs also carries the *shared-prompt* layout, in which each prompt is run once:
    ``prompt_ids`` (B rows, left-padded, ``prompt_mask``) and ``response_ids`` (2B rows, right-padded,
    ``response_attn``; rows interleaved: chosen 0, rejected 0, chosen 1, ...).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    response_len: torch.Tensor
    shared_len: torch.Tensor
    prompt_ids: torch.Tensor | None = None
    prompt_mask: torch.Tensor | None = None
    response_ids: torch.Tensor | None = None
    response_attn: torch.Tensor | None = None

    @property
    def n_tokens(self) -> int:
        """Tokens of the 2B sequences prompt + response (what trl counts), whatever the layout."""
        return int(self.attention_mask.sum())

    def to(self, device: torch.device) -> Batch:
        return Batch(*(None if t is None else t.to(device, non_blocking=True) for t in (
            self.input_ids, self.attention_mask, self.response_mask, self.response_len, self.shared_len,
            self.prompt_ids, self.prompt_mask, self.response_ids, self.response_attn)))


def collate_sequences(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int,
                      shared_len: Sequence[int] | None = None) -> Batch:
    """Right-padded batch of prompt+response rows."""
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


def _padded(rows: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            sl = slice(width - len(r), width) if left else slice(0, len(r))
            ids[i, sl] = torch.tensor(list(r), dtype=torch.long)
            mask[i, sl] = 1
    return ids, mask


def collate_pairs(pairs: Sequence[TruncatedPair], pad_id: int) -> Batch:
    """The batch of a list of pairs: chosen rows first, then rejected rows (one forward for both).

    The shared-prompt layout is added when it pads to fewer tokens than the plain one
    (``B·max|prompt| + 2B·max|response|`` against ``2B·max(|prompt| + |response|)``).
    """
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    shared = [min(len(p.chosen), len(p.rejected)) for p in pairs] * 2
    batch = collate_sequences(prompts, responses, pad_id, shared)
    longest_prompt = max(len(p.prompt) for p in pairs)
    longest_response = max(max(len(p.chosen), len(p.rejected)) for p in pairs)
    if longest_prompt + 2 * longest_response >= 2 * batch.input_ids.shape[1]:
        return batch
    batch.prompt_ids, batch.prompt_mask = _padded([p.prompt for p in pairs], pad_id, left=True)
    batch.response_ids, batch.response_attn = _padded([r for p in pairs for r in (p.chosen, p.rejected)], pad_id,
                                                      left=False)
    return batch
