"""Embedder: values against a direct SentenceTransformer, dedupe, order, cache (hits, keying, two
processes), local model paths, typed errors, and the ONNX backends against torch."""

from __future__ import annotations

import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np
import pytest

from prefaudit.embed import DEFAULT_MODEL_ID, Embedder, packaged_model_path
from prefaudit.embed_cache import EmbeddingCache, text_hash
from prefaudit.errors import ConfigError, InputError

# one xdist worker runs this module (Makefile: --dist loadgroup), so the model loads once, not per worker
pytestmark = pytest.mark.xdist_group("embed")

TEXTS = [
    "How do I bake sourdough bread at home?",
    "Tell me a joke about cats.",
    "What is the capital of France?",
    "Explain, step by step and with an example, how gradient descent finds the minimum of a "
    "convex function, and why the learning rate matters. " * 3,
    "ok",
    "",
    "Schreibe ein Gedicht über den Herbst. ✨",
    "How do I bake sourdough bread at home?",  # duplicate of 0
    "Tell me a joke about cats.",  # duplicate of 1
]


@pytest.fixture(scope="module")
def st_model():
    """An independently loaded SentenceTransformer of the packaged model (the reference)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embcache")


@pytest.fixture(scope="module")
def first(cache_dir):
    """A torch Embedder that encoded TEXTS into an empty cache, with a spy on what reached the model."""
    emb = Embedder(cache_dir=cache_dir, backend="torch", batch_size=4)
    encoder = emb._get_encoder()
    seen: list[list[str]] = []
    real = encoder.encode

    def spy(texts, batch_size):
        seen.append(list(texts))
        return real(texts, batch_size)

    encoder.encode = spy
    X = emb.encode(TEXTS)
    return emb, X, seen


def test_shape_dtype_normalised(first):
    emb, X, _ = first
    assert X.shape == (len(TEXTS), 384) and X.dtype == np.float32
    assert emb.dim == 384 and emb.model_id == DEFAULT_MODEL_ID
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)


def test_matches_direct_sentence_transformer_in_input_order(first, st_model):
    _, X, _ = first
    ref = st_model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(X, ref, atol=1e-5)
    # each row against the text encoded alone: order restored after length sorting
    for i in (3, 4, 6):
        alone = st_model.encode([TEXTS[i]], normalize_embeddings=True, convert_to_numpy=True)[0]
        np.testing.assert_allclose(X[i], alone, atol=1e-5)
    # semantic sanity: the duplicate rows are the same vector, different texts are not
    assert np.array_equal(X[0], X[7]) and np.array_equal(X[1], X[8])
    assert float(X[0] @ X[2]) < 0.9


def test_duplicates_encoded_once_longest_first(first):
    emb, _, seen = first
    sent = [t for call in seen for t in call]
    assert sorted(sent) == sorted(set(TEXTS))  # each distinct text reached the model exactly once
    assert [len(t) for t in sent] == sorted((len(t) for t in sent), reverse=True)
    s = emb.stats
    assert (s.requested, s.unique, s.hits, s.misses) == (9, 7, 0, 7)


def test_deterministic_and_second_call_hits_cache_without_loading(first, cache_dir, tmp_path):
    _, X, _ = first
    again = Embedder(cache_dir=cache_dir, backend="torch")
    Y = again.encode(list(reversed(TEXTS)))[::-1]
    assert np.array_equal(X, Y)  # cached vectors come back bit for bit
    assert (again.stats.hits, again.stats.misses) == (7, 0)
    assert again._encoder is None  # a fully cached encode never loads the model
    assert again.dim == 384 and again._encoder is None  # dim from the cache's metadata
    fresh = Embedder(cache_dir=tmp_path, backend="torch", batch_size=3)
    np.testing.assert_allclose(fresh.encode(TEXTS), X, atol=1e-6)  # recomputed: same values
    assert fresh.stats.misses == 7


def test_partial_hits(first, cache_dir):
    emb = Embedder(cache_dir=cache_dir, backend="torch")
    X = emb.encode([TEXTS[2], "a text never seen before", TEXTS[2]])
    assert (emb.stats.hits, emb.stats.misses) == (1, 1)
    np.testing.assert_array_equal(X[0], first[1][2])
    np.testing.assert_array_equal(X[0], X[2])


def test_local_path_and_cache_keyed_by_model(first, cache_dir, tmp_path):
    _, X, _ = first
    local = tmp_path / "my-minilm"
    shutil.copytree(packaged_model_path(), local)
    emb = Embedder(str(local), cache_dir=cache_dir, backend="torch")
    assert emb.model_id == str(local.resolve())
    assert emb.cache_path != Embedder(cache_dir=cache_dir, backend="torch").cache_path
    Y = emb.encode(TEXTS)
    assert (emb.stats.hits, emb.stats.misses) == (0, 7)  # another model: nothing from the default's cache
    np.testing.assert_allclose(Y, X, atol=1e-5)  # same weights, same vectors
    assert Embedder(Path(local), cache_dir=cache_dir, backend="torch").encode(TEXTS[:2]).shape == (2, 384)


def test_empty_and_typed_errors(cache_dir):
    emb = Embedder(cache_dir=cache_dir, backend="torch")
    empty = emb.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(InputError, match="text 1 is int"):
        emb.encode(["fine", 3])
    with pytest.raises(InputError):
        emb.encode([None])
    with pytest.raises(InputError, match="single string"):
        emb.encode("a bare string")
    with pytest.raises(ConfigError):
        Embedder(backend="tensorflow")
    with pytest.raises(ConfigError):
        Embedder(batch_size=0)
    with pytest.raises(ConfigError, match="not a model folder"):
        Embedder(cache_dir / "no-such-model-folder")
    # a hub name that is not available offline: a typed error when the model is first needed
    missing = Embedder("prefaudit-tests/no-such-model", cache_dir=cache_dir, backend="torch")
    with pytest.raises(ConfigError, match="could not load embedding model"):
        missing.encode(["needs the model"])


def test_params_stored_unchanged(tmp_path):
    emb = Embedder(
        "some/model", cache_dir=str(tmp_path), batch_size=8, device="cpu", backend="onnx", progress=True
    )
    assert (emb.model, emb.cache_dir, emb.batch_size, emb.device, emb.backend, emb.progress) == (
        "some/model",
        str(tmp_path),
        8,
        "cpu",
        "onnx",
        True,
    )
    assert emb.model_id == "some/model"  # a name is passed on as is


def test_progress_bar_only_when_asked(cache_dir, capsys):
    Embedder(cache_dir=cache_dir, backend="torch").encode(["quiet text number one"])
    assert capsys.readouterr().err == ""
    Embedder(cache_dir=cache_dir, backend="torch", progress=True).encode(["a text shown with a bar"])
    assert "embedding" in capsys.readouterr().err


def _writer(path: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cache = EmbeddingCache(path)
    for start in range(0, 600, 50):  # overlapping keys, many small transactions
        hashes = [text_hash(f"text {i}") for i in range(start, start + 50)]
        vecs = np.stack([np.full(4, i, np.float32) for i in range(start, start + 50)])
        cache.put_many(hashes, vecs + np.float32(0 * rng.random()))
        cache.get_many(hashes[:10])


def test_cache_safe_with_two_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = EmbeddingCache(path)
    assert len(cache) == 600
    got = cache.get_many([text_hash(f"text {i}") for i in range(600)])
    assert all(got[text_hash(f"text {i}")][0] == i for i in range(600))


def test_onnx_backends_match_torch(first, cache_dir):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    _, X, _ = first
    onnx = Embedder(cache_dir=cache_dir, backend="onnx", batch_size=4)
    Y = onnx.encode(TEXTS)
    assert onnx.stats.misses == 7  # keyed by backend: the torch vectors are not reused
    assert float(np.max(1 - np.sum(X * Y, axis=1))) < 1e-5
    int8 = Embedder(cache_dir=cache_dir, backend="onnx-int8", batch_size=4)
    Z = int8.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)
    err = 1 - np.sum(X * Z, axis=1)
    assert 0 < float(err.max()) < 0.1  # quantised: close to, but not exactly, float32
    assert len({onnx.cache_path, int8.cache_path, first[0].cache_path}) == 3
