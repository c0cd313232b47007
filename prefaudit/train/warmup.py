"""Supervised fine-tuning on preference responses: ``sft(data, ...)``, the trainer's warm-up on its own.

``train(..., sft_steps=N)`` warms the policy up inside a DPO run (the warmed model becomes the
reference); ``sft`` runs the same warm-up (:func:`prefaudit.train.loop._sft_warmup`: token-mean NLL
of the responses, prompt masked, length-bucketed batches, AdamW, gradient clipping) as a step of its
own and returns — and with ``out`` saves — the fine-tuned model, e.g. a shared starting point for
several DPO runs. ``responses="both"`` trains on the chosen and the rejected response of every pair
(label-free: what the annotators preferred does not enter).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from prefaudit.errors import ConfigError, InputError

RESPONSES = ("chosen", "both")


@dataclass
class SFTResult:
    """The fine-tuned model and tokenizer, the per-step records (``kind="sft"``, ``nll``), the saved folder."""

    model: Any
    tokenizer: Any
    metrics: list[dict[str, Any]]
    model_dir: Path | None


def sft_targets(data: Any, responses: str = "chosen") -> Any:
    """The pairs whose ``chosen`` column is the SFT target: ``data`` (trainable pairs), or with
    ``responses="both"`` every pair twice, once per response as ``chosen``."""
    if responses not in RESPONSES:
        raise ConfigError(f"responses={responses!r}: expected one of {RESPONSES}")
    if not hasattr(data, "trainable"):
        raise ConfigError("SFT data must be a PreferenceSet (see prefaudit.load)")
    data = data.trainable()
    if responses == "chosen":
        return data
    from prefaudit.data.preference_set import PreferenceSet

    df = data.df.select("pair_id", "prompt", "chosen", "rejected")
    swapped = df.select(pl.col("pair_id") + "#r", "prompt", pl.col("rejected").alias("chosen"),
                        pl.col("chosen").alias("rejected"))
    return PreferenceSet(pl.concat([df, swapped]).with_columns(tie=pl.lit(False)))


def sft(data: Any, *, model: str = "tiny", out: str | Path | None = None, steps: int | None = None,
        lr: float = 1e-4, batch_size: int = 8, max_length: int = 256, responses: str = "chosen", seed: int = 0,
        progress: bool = False, **options: Any) -> SFTResult:
    """Fine-tune ``model`` (``"tiny"`` or a local HF folder) on the responses of ``data`` for ``steps``
    optimizer steps (default: one epoch) of ``batch_size`` responses at learning rate ``lr``.

    Responses are tokenized and truncated as in :func:`prefaudit.train.train` (eos appended);
    ``options`` are further :class:`~prefaudit.train.loop.TrainConfig` fields (``truncation``,
    ``weight_decay``, ``max_grad_norm``, ``bucket_batches``, ``device``, ``precision``, ``preset``...).
    With ``out``, the model is saved to ``out/model`` and the records to ``out/metrics.jsonl``.
    """
    from prefaudit.train import loop, presets
    from prefaudit.train.logps import select_device

    targets = sft_targets(data, responses)
    cfg = replace(loop.TrainConfig(), model=model, lr=lr, sft_lr=lr, batch_size=batch_size,
                  max_length=max_length, seed=seed, **options)
    cfg.validate()
    d = loop.init_distributed(cfg.device)
    if d.world > 1:
        raise ConfigError("sft() runs in one process; use train(..., sft_steps=N) under torchrun")
    device, amp = select_device(cfg.device, cfg.precision, d.local_rank)
    loop._quiet_transformers()
    import torch

    torch.manual_seed(seed)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.model == "tiny" and out_dir is None:
        raise ConfigError("sft(model='tiny') builds the preset into a folder: give out=")
    folder = loop._model_folder(cfg, targets, out_dir, d) if cfg.model == "tiny" else \
        presets.resolve_model(cfg.model, targets, ".")
    net, tok = presets.load_model(folder, trust_remote_code=cfg.trust_remote_code)
    net.to(device)
    pairs, _, _ = loop._prepare(tok, targets, cfg)
    pairs = [p for p in pairs if p.chosen]
    if not pairs:
        raise InputError("no response keeps a token after truncation; raise max_length")
    cfg = replace(cfg, sft_steps=steps or math.ceil(len(pairs) / batch_size))
    lengths = [len(p.prompt) + len(p.chosen) for p in pairs]  # for the length buckets
    records = loop._sft_warmup(net, pairs, lengths, cfg, tok.pad_token_id, device, amp, d, progress)
    net.eval()
    model_dir = None
    if out_dir is not None:
        model_dir = out_dir / "model"
        net.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        (out_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return SFTResult(net, tok, records, model_dir)
