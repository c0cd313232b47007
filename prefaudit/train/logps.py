"""Per-sequence response log-probs from a causal LM, and the device / precision choice.

:class:`ResponseLogps` wraps a Hugging Face causal LM as one ``nn.Module`` (so DDP can wrap it) whose
forward returns, per row, the summed log-probs of the response tokens and the sum over the first
``shared_len`` response tokens. When the model splits into a backbone and an output embedding (checked
numerically once), the LM head runs only on response positions: prompt and padding positions never
reach the vocabulary projection.
"""

from __future__ import annotations

import contextlib
import inspect
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


def _cache_keyword(backbone: nn.Module) -> str:
    """``cache`` in recent transformers, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"


class ResponseLogps(nn.Module):
    """Module whose forward gives, per row, (sum of response-token log-probs, sum over the shared prefix).

    Token ``t`` of a row is scored from position ``t - 1``, so a response token right after the
    prompt is scored from the prompt's last token. Log-probs are computed in float32.

    With ``share_prompt`` (and a model that passes :meth:`check_shared_prompt`), a batch of pairs
    runs each prompt once and both responses on its key/value cache (gradients flow through the
    cache): the prompt tokens, usually most of a pair's tokens, cost one pass instead of two. The
    result is the same as the plain forward (checked numerically when the module is made).
    """

    def __init__(self, model: nn.Module, share_prompt: bool = True) -> None:
        super().__init__()
        self.model = model
        self._parts = split_lm(model)
        self.fast = self._parts is not None
        self.shared = share_prompt and self.fast and self.check_shared_prompt()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor,
                shared_len: torch.Tensor, prompt_ids: torch.Tensor | None = None,
                prompt_mask: torch.Tensor | None = None, response_ids: torch.Tensor | None = None,
                response_attn: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shared and prompt_ids is not None and bool(prompt_mask[:, -1].all()):
            return self._shared_forward(prompt_ids, prompt_mask, response_ids, response_attn, shared_len)
        target_mask = response_mask[:, 1:]
        targets = input_ids[:, 1:][target_mask]
        if self._parts is not None:
            backbone, head = self._parts
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            logits = head(hidden[:, :-1][target_mask])
        else:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            logits = out.logits[:, :-1][target_mask]
        return _sums(logits, targets, target_mask, shared_len)

    def _shared_forward(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
                        response_attn: torch.Tensor, shared_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (left-padded) once, then the interleaved chosen/rejected rows on their cache."""
        backbone, head = self._parts
        n_pairs = prompt_ids.shape[0]
        prompt_pos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        first = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=prompt_pos, use_cache=True)
        cache = first.past_key_values
        cache.batch_repeat_interleave(2)
        prompt_len = prompt_mask.sum(-1).repeat_interleave(2)
        width = response_ids.shape[1]
        attn = torch.cat([prompt_mask.repeat_interleave(2, dim=0), response_attn], dim=1)
        pos = prompt_len[:, None] + torch.arange(width, device=response_ids.device)[None]
        hidden = backbone(input_ids=response_ids, attention_mask=attn, position_ids=pos, use_cache=False,
                          **{_cache_keyword(backbone): cache}).last_hidden_state
        last_prompt = first.last_hidden_state[:, -1:].repeat_interleave(2, dim=0)
        predictors = torch.cat([last_prompt, hidden[:, :-1]], dim=1)
        mask = response_attn.bool()
        rows_shared = shared_len[:n_pairs].repeat_interleave(2)
        total, shared = _sums(head(predictors[mask]), response_ids[mask], mask, rows_shared)
        order = torch.cat([torch.arange(0, 2 * n_pairs, 2), torch.arange(1, 2 * n_pairs, 2)]).to(total.device)
        return total[order], shared[order]

    def check_shared_prompt(self) -> bool:
        """Whether the shared-prompt forward reproduces the plain one on this model (else it stays off)."""
        from prefaudit.train.batching import collate_pairs
        from prefaudit.train.truncation import TruncatedPair

        vocab = self.model.config.vocab_size if hasattr(self.model, "config") else 8
        ids = [int(i) % vocab for i in range(1, 40)]
        pairs = [TruncatedPair(ids[:3], ids[3:8], ids[8:10], 0, 0, 0, True),
                 TruncatedPair(ids[10:16], ids[16:17], ids[17:23], 0, 0, 0, True)]
        device = next(self.model.parameters()).device
        b = collate_pairs(pairs, 0).to(device)
        self.shared = True
        try:
            with torch.no_grad():
                plain = self.forward(b.input_ids, b.attention_mask, b.response_mask, b.shared_len)
                fast = self._shared_forward(b.prompt_ids, b.prompt_mask, b.response_ids, b.response_attn,
                                            b.shared_len)
            return all(torch.allclose(x, y, atol=1e-4, rtol=1e-4) for x, y in zip(plain, fast, strict=True))
        except Exception:  # a model whose cache cannot be shared this way uses the plain forward
            return False
        finally:
            self.shared = False


def _sums(logits: torch.Tensor, targets: torch.Tensor, target_mask: torch.Tensor,
          shared_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sums of the target tokens' log-probs: all of them, and the first ``shared_len``."""
    token_logps = -F.cross_entropy(logits.float(), targets, reduction="none")
    rows = torch.nonzero(target_mask, as_tuple=True)[0]
    position = target_mask.long().cumsum(dim=1)[target_mask]  # 1-based index within the response
    in_shared = (position <= shared_len[rows]).to(token_logps.dtype)
    total = token_logps.new_zeros(target_mask.shape[0]).index_add(0, rows, token_logps)
    shared = token_logps.new_zeros(target_mask.shape[0]).index_add(0, rows, token_logps * in_shared)
    return total, shared


def batch_logps(module: nn.Module, batch: Batch, device: torch.device,
                amp: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``module`` (a :class:`ResponseLogps`, possibly DDP-wrapped) on a batch -> (total, shared)."""
    b = batch.to(device)
    with autocast(device, amp):
        return module(b.input_ids, b.attention_mask, b.response_mask, b.shared_len, b.prompt_ids, b.prompt_mask,
                      b.response_ids, b.response_attn)
