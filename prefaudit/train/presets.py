"""Models for the trainer: the built-in tiny preset and any local Hugging Face causal-LM folder.

The tiny preset is a *standard* Hugging Face folder (``config.json`` with a ``GPT2LMHeadModel``
config, ``model.safetensors`` with randomly initialised weights, and a ``PreTrainedTokenizerFast``
byte-level BPE tokenizer trained on the data itself), so any tool — trl included — can load the same
model with ``AutoModelForCausalLM.from_pretrained(folder)``. Nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefaudit.errors import ConfigError

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
PRESET_FILE = "prefaudit_preset.json"


@dataclass(frozen=True)
class TinyPreset:
    """Shape of the tiny GPT-2-style preset (defaults: 4 layers, 256 wide, ~4k BPE vocabulary)."""

    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    vocab_size: int = 4096
    n_positions: int = 1024
    min_frequency: int = 2


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE tokenizer on ``texts`` -> ``PreTrainedTokenizerFast``.

    Special tokens: ``<|endoftext|>`` (eos) and ``<|pad|>`` (pad); no BOS and no automatic special
    tokens, like GPT-2. Every byte is in the base alphabet, so no text is ever unknown.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
                                   model_max_length=1_000_000)


def preset_texts(data: Any) -> list[str]:
    """The texts a preset tokenizer is trained on: every distinct prompt, chosen and rejected text."""
    df = data.df if hasattr(data, "df") else data
    seen: dict[str, None] = {}
    for col in ("prompt", "chosen", "rejected"):
        for t in df[col].to_list():
            seen.setdefault(t, None)
    return list(seen)


def build_tiny(out_dir: str | Path, texts: Iterable[str], *, seed: int = 0,
               preset: TinyPreset | None = None, tokenizer: Any | None = None, **shape: int) -> Path:
    """Write the tiny preset to ``out_dir`` (a standard HF folder) and return its path.

    ``texts`` train the tokenizer unless ``tokenizer`` is given (e.g. to build a second model that
    shares the first one's vocabulary). ``shape`` overrides :class:`TinyPreset` fields
    (``n_layer``, ``n_embd``, ``n_head``, ``vocab_size``, ``n_positions``). Weights are a random
    initialisation fixed by ``seed``; dropout is off.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    preset = TinyPreset(**{**asdict(preset or TinyPreset()), **shape})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer if tokenizer is not None else train_tokenizer(texts, preset.vocab_size, preset.min_frequency)
    config = GPT2Config(
        vocab_size=len(tok), n_positions=preset.n_positions, n_embd=preset.n_embd, n_layer=preset.n_layer,
        n_head=preset.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        activation_function="gelu_pytorch_tanh",  # GPT-2's tanh GELU, as one fused kernel
        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    with _no_progress_bars():
        model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / PRESET_FILE).write_text(json.dumps({"preset": "tiny", "seed": seed, **asdict(preset)}, indent=2))
    return out


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_model(path: str | Path, *, trust_remote_code: bool = False, dtype: Any = None) -> tuple[Any, Any]:
    """Load a local HF causal-LM folder -> (model, tokenizer); remote code only when allowed.

    The tokenizer gets ``pad_token = eos_token`` when it has no pad token. Dropout is disabled.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if not (p / "config.json").is_file():
        raise ConfigError(f"--model {path}: not a Hugging Face model folder (no config.json); "
                          "give a local folder or 'tiny'")
    tok = AutoTokenizer.from_pretrained(p, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ConfigError(f"--model {path}: the tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    with _no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(p, trust_remote_code=trust_remote_code,
                                                     dtype=dtype or torch.float32)
    disable_dropout(model)
    return model, tok


def disable_dropout(model: Any) -> None:
    """Set every dropout probability to 0 (DPO log-probs must not be noisy)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def resolve_model(spec: str | Path, data: Any, work_dir: str | Path, *, seed: int = 0,
                  **shape: int) -> Path:
    """``"tiny"`` -> build the tiny preset from ``data`` in ``work_dir``; else a local folder path."""
    if str(spec) == "tiny":
        return build_tiny(work_dir, preset_texts(data), seed=seed, **shape)
    path = Path(spec)
    if not path.is_dir():
        raise ConfigError(f"--model {spec}: no such folder (give a local Hugging Face folder or 'tiny')")
    return path
