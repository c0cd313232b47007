"""The built-in DPO trainer: presets, tokenization/truncation, losses (pure functions), the loop, sampling.

    from prefaudit.train import train, generate
    result = train(pairs, eval_pairs, model="tiny", loss="sigmoid", beta=0.1, steps=200, out="run/")
    result.summary["eval"]["preference_accuracy"]
    texts = generate(result, prompts, max_new_tokens=64)
    warm = sft(pairs, model="tiny", steps=500, lr=1e-3, responses="both", out="sft/")  # SFT on its own

Names are imported lazily, so that ``prefaudit.train.truncation`` (used by the truncation audit)
loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from prefaudit._callable import callable_module

_LAZY = {
    "train": "loop", "TrainConfig": "loop", "TrainResult": "loop",
    "generate": "sampling", "sft": "warmup", "SFTResult": "warmup",
    "LOSSES": "losses", "LossOutput": "losses", "LossParams": "losses", "PairLogps": "losses",
    "get_loss": "losses",
    "build_tiny": "presets", "load_model": "presets", "train_tokenizer": "presets",
    "TRUNCATION_MODES": "truncation", "prepare_pairs": "truncation", "tokenize_pairs": "truncation",
    "truncate_pair": "truncation",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'prefaudit.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"prefaudit.train.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def _train(*args: Any, **kwargs: Any) -> Any:
    return __getattr__("train")(*args, **kwargs)


callable_module(__name__, _train)  # ``prefaudit.train(data, ...)`` works after ``import prefaudit.train``
