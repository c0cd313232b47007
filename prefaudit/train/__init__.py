"""The built-in DPO trainer: presets, tokenization/truncation, losses (pure functions), the loop, sampling.

    from prefaudit.train import train, generate
    result = train(pairs, eval_pairs, model="tiny", loss="sigmoid", beta=0.1, steps=200, out="run/")
    result.summary["eval"]["preference_accuracy"]
    texts = generate(result, prompts, max_new_tokens=64)
"""

import sys
import types

from prefaudit.train.generate import generate
from prefaudit.train.loop import TrainConfig, TrainResult, train
from prefaudit.train.losses import LOSSES, LossOutput, LossParams, PairLogps, get_loss
from prefaudit.train.presets import build_tiny, load_model, train_tokenizer
from prefaudit.train.truncation import TRUNCATION_MODES, prepare_pairs, tokenize_pairs, truncate_pair

__all__ = [
    "LOSSES", "TRUNCATION_MODES", "LossOutput", "LossParams", "PairLogps", "TrainConfig", "TrainResult",
    "build_tiny", "generate", "get_loss", "load_model", "prepare_pairs", "tokenize_pairs", "train",
    "train_tokenizer", "truncate_pair",
]


class _CallableModule(types.ModuleType):
    """``prefaudit.train`` is both this package and the function: importing the package (which binds
    ``prefaudit.train`` to the module) must not break ``prefaudit.train(data, ...)``."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
