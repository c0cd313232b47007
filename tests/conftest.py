"""Shared fixtures: paths to the real data in ../shared/data (skipping cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PREFAUDIT_SHARED_DATA", ROOT.parent / "shared" / "data"))

# One embedding cache for the whole run (and across runs on a developer's machine).
os.environ.setdefault("PREFAUDIT_CACHE_DIR", str(ROOT / ".prefaudit_cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def hh_path() -> Path:
    return _need(SHARED_DATA / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz")


@pytest.fixture(scope="session")
def tulu_annotations_path() -> Path:
    return _need(SHARED_DATA / "tulu1-human-eval" / "eval_annotations_tulu_1.csv")


@pytest.fixture(scope="session")
def llmbar_dir() -> Path:
    return _need(SHARED_DATA / "llmbar")


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return ROOT / "sample_data"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module's tests: tests share 2 cores (pytest -n 2), and runs
    compared bit for bit across processes must use the same thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
