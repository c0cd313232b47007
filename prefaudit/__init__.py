"""prefaudit: audit preference data before DPO trains on it — and prove what the audit is worth.

Public API (imported lazily so that ``import prefaudit`` stays fast)::

    load, load_annotations, load_prompts   read data (prefaudit.data)
    PreferenceSet, Annotations, Metric     the data and result types
    audit                                  run the analyzers -> Audit
    gate                                   thresholds -> checks -> verdict
    clean                                  policy -> cleaned PreferenceSet + manifest
    report                                 Audit -> self-contained HTML
    synth                                  synthetic data with known ground truth (module)
    train                                  the built-in DPO trainer
    ablate                                 raw vs cleaned vs controls, with CIs
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": ("prefaudit.data.load", "load"),
    "load_annotations": ("prefaudit.data.load", "load_annotations"),
    "load_prompts": ("prefaudit.data.load", "load_prompts"),
    "PreferenceSet": ("prefaudit.data.preference_set", "PreferenceSet"),
    "Annotations": ("prefaudit.data.preference_set", "Annotations"),
    "Metric": ("prefaudit.analyzers.base", "Metric"),
    "audit": ("prefaudit.audit", "audit"),
    "Audit": ("prefaudit.audit", "Audit"),
    "gate": ("prefaudit.gate", "gate"),
    "clean": ("prefaudit.clean", "clean"),
    "report": ("prefaudit.report", "report"),
    "synth": ("prefaudit.synth", None),
    "train": ("prefaudit.train", "train"),
    "ablate": ("prefaudit.ablate", "ablate"),
    "Embedder": ("prefaudit.embed", "Embedder"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'prefaudit' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value
