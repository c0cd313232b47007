"""Per-sequence response log-probs from a causal LM, and the device / precision choice.

:class:`ResponseLogps` wraps a Hugging Face causal LM as one ``nn.Module`` (so DDP can wrap it) whose
forward returns, per row, the summed log-probs of the response tokens and the sum over the first
``shared_len`` response tokens. When the model splits into a backbone and an output embedding (checked
numerically once), the LM head runs only on response positions: prompt and padding positions never
reach the vocabulary projection; and a batch of pairs can run in the packed layout, each prompt once.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prefaudit.errors import ConfigError
from prefaudit.train.batching import Batch

PRECISIONS = ("auto", "fp32", "bf16")


def select_device(requested: str | None = None, precision: str = "auto",
                  local_rank: int = 0) -> tuple[torch.device, torch.dtype | None]:
    """(device, autocast dtype or None). CUDA when present (bf16 autocast where supported), else CPU fp32.

    ``requested`` forces ``"cpu"`` or ``"cuda"``; ``precision`` ``"fp32"`` turns autocast off and
    ``"bf16"`` forces bf16 autocast (on CPU too).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    want_cuda = requested is None or str(requested).startswith("cuda")
    if requested is not None and not (requested == "cpu" or str(requested).startswith("cuda")):
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {requested!r}")
    if want_cuda and torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        bf16_ok = torch.cuda.is_bf16_supported()
    elif requested is not None and str(requested).startswith("cuda"):
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    else:
        device, bf16_ok = torch.device("cpu"), False
    if precision == "fp32":
        return device, None
    if precision == "bf16":
        return device, torch.bfloat16
    return device, torch.bfloat16 if bf16_ok else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for (device, dtype), or a no-op context when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def split_lm(model: Any) -> tuple[nn.Module, nn.Module] | None:
    """(backbone, lm_head) when ``head(backbone(x).last_hidden_state)`` reproduces ``model(x).logits``."""
    base = _base(model)
    backbone = getattr(base, getattr(base, "base_model_prefix", ""), None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if not isinstance(backbone, nn.Module) or not isinstance(head, nn.Module) or backbone is base:
        return None
    ids = torch.arange(1, 9, device=next(base.parameters()).device).remainder(base.config.vocab_size)[None]
    mask = torch.ones_like(ids)
    try:
        with torch.no_grad():
            full = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            split = head(backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state).float()
    except Exception:  # any architecture that does not split cleanly uses the full forward
        return None
    ok = full.shape == split.shape and torch.allclose(full, split, atol=1e-5, rtol=1e-4)
    return (backbone, head) if ok else None


class ResponseLogps(nn.Module):
    """Module whose forward gives, per row, (sum of response-token log-probs, sum over the shared prefix).

    Token ``t`` of a row is scored from position ``t - 1``, so a response token right after the
    prompt is scored from the prompt's last token. Log-probs are computed in float32.

    With ``share_prompt`` (and a model that passes :meth:`check_packed`), a batch of pairs that carries
    the packed layout (:mod:`prefaudit.train.batching`) runs each prompt once: one row per pair,
    ``prompt | chosen | rejected``, with the chosen tokens masked from the rejected ones. Same
    numbers as the plain forward, fewer tokens.
    """

    def __init__(self, model: nn.Module, share_prompt: bool = True) -> None:
        super().__init__()
        self.model = model
        self._parts = split_lm(model)
        self.fast = self._parts is not None
        self._mask_float = _attention_kind(model) == "eager"
        self.shared = False
        self.shared = share_prompt and self.fast and _attention_kind(model) in ("sdpa", "eager") \
            and self.check_packed()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor,
                shared_len: torch.Tensor, *packed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shared and packed and packed[0] is not None:
            return self._packed_forward(shared_len, *packed)
        target_mask = response_mask[:, 1:]
        targets = input_ids[:, 1:][target_mask]
        if self._parts is not None:
            backbone, head = self._parts
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            logits = head(hidden[:, :-1][target_mask])
        else:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            logits = out.logits[:, :-1][target_mask]
        token_logps = -F.cross_entropy(logits.float(), targets, reduction="none")
        rows = torch.nonzero(target_mask, as_tuple=True)[0]
        position = target_mask.long().cumsum(dim=1)[target_mask]  # 1-based index within the response
        return _sums(token_logps, rows, position, shared_len, input_ids.shape[0])

    def _packed_forward(self, shared_len: torch.Tensor, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor,
                        row: torch.Tensor, pred: torch.Tensor, token: torch.Tensor, which: torch.Tensor,
                        index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One row per pair; results in the plain layout's order (chosen rows, then rejected rows)."""
        backbone, head = self._parts
        n_pairs = ids.shape[0]
        if self._mask_float:
            dtype = next(self.model.parameters()).dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        hidden = backbone(input_ids=ids, position_ids=pos, attention_mask=mask, use_cache=False).last_hidden_state
        token_logps = -F.cross_entropy(head(hidden[row, pred]).float(), token, reduction="none")
        return _sums(token_logps, which * n_pairs + row, index, shared_len, 2 * n_pairs)

    def check_packed(self) -> bool:
        """Whether the packed forward reproduces the plain one on this model (else it stays off)."""
        from prefaudit.train.batching import collate_pairs
        from prefaudit.train.truncation import TruncatedPair

        vocab = getattr(getattr(self.model, "config", None), "vocab_size", 8)
        ids = [i % vocab for i in range(1, 40)]
        pairs = [TruncatedPair(ids[:3], ids[3:8], ids[8:10], 0, 0, 0, True),
                 TruncatedPair(ids[10:16], ids[16:17], ids[17:23], 0, 0, 0, True)]
        b = collate_pairs(pairs, 0).to(next(self.model.parameters()).device)
        if b.packed_ids is None:
            return False
        try:
            with torch.no_grad():
                plain = self.forward(b.input_ids, b.attention_mask, b.response_mask, b.shared_len)
                packed = self._packed_forward(b.shared_len, *_packed_fields(b))
            return all(torch.allclose(x, y, atol=1e-4, rtol=1e-4) for x, y in zip(plain, packed, strict=True))
        except Exception:  # a model that rejects a 4-D mask or position ids uses the plain forward
            return False


def _attention_kind(model: nn.Module) -> str:
    config = getattr(_base(model), "config", None)
    return str(getattr(config, "_attn_implementation", None) or "")


def _packed_fields(b: Batch) -> tuple[torch.Tensor | None, ...]:
    return (b.packed_ids, b.packed_pos, b.packed_mask, b.score_row, b.score_from, b.score_token, b.score_which,
            b.score_index)


def _sums(token_logps: torch.Tensor, rows: torch.Tensor, index: torch.Tensor, shared_len: torch.Tensor,
          n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sums of token log-probs: all of them, and those with 1-based ``index <= shared_len``."""
    in_shared = (index <= shared_len[rows]).to(token_logps.dtype)
    total = token_logps.new_zeros(n_rows).index_add(0, rows, token_logps)
    shared = token_logps.new_zeros(n_rows).index_add(0, rows, token_logps * in_shared)
    return total, shared


def batch_logps(module: nn.Module, batch: Batch, device: torch.device,
                amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``module`` (a :class:`ResponseLogps`, possibly DDP-wrapped) on a batch -> (total, shared)."""
    b = batch.to(device)
    with autocast(device, amp):
        return module(b.input_ids, b.attention_mask, b.response_mask, b.shared_len, *_packed_fields(b))
