"""Sample responses from a (trained) policy — for gold win rates and response lengths of generations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from prefaudit.train import presets
from prefaudit.train.logps import select_device


def generate(model: Any, prompts: Sequence[str], *, tokenizer: Any = None, max_new_tokens: int = 64,
             temperature: float = 1.0, top_p: float = 1.0, do_sample: bool = True, seed: int = 0,
             batch_size: int = 16, device: str | None = None, trust_remote_code: bool = False) -> list[str]:
    """Responses (new text only, special tokens removed) to ``prompts``, in order.

    ``model`` is a model object (then give ``tokenizer``), a local HF folder, or a
    :class:`~prefaudit.train.loop.TrainResult`. Prompts are left-padded and, when needed, keep only
    their last tokens so that prompt + ``max_new_tokens`` fits the model's context. Sampling is
    reproducible for a ``seed``; ``do_sample=False`` decodes greedily.
    """
    if hasattr(model, "summary") and hasattr(model, "model"):  # a TrainResult
        model, tokenizer = model.model, model.tokenizer
    if isinstance(model, str | Path):
        model, tokenizer = presets.load_model(model, trust_remote_code=trust_remote_code)
    if tokenizer is None:
        raise ValueError("generate() needs the tokenizer when given a model object")
    dev, _ = select_device(device, "fp32")
    model = model.to(dev).eval()
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    keep = max(1, limit - max_new_tokens) if limit else None
    encoded = tokenizer(list(prompts))["input_ids"]
    encoded = [ids[-keep:] if keep else ids for ids in encoded]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results: list[str] = [""] * len(encoded)
    gen_kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": pad,
                              "eos_token_id": tokenizer.eos_token_id}
    if do_sample:
        gen_kw.update(temperature=temperature, top_p=top_p, top_k=0)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), torch.inference_mode():
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(encoded[i])
                if n:
                    ids[row, width - n:] = torch.tensor(encoded[i])
                    attn[row, width - n:] = 1
            out = model.generate(input_ids=ids.to(dev), attention_mask=attn.to(dev), **gen_kw)
            texts = tokenizer.batch_decode(out[:, width:].cpu(), skip_special_tokens=True)
            for i, text in zip(chunk, texts, strict=True):
                results[i] = text
    return results
