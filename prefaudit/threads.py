"""Limits on the native libraries' thread pools (BLAS, OpenMP) around numeric work.

Small matrix products and many short model fits run faster on one BLAS thread: more threads only
contend, badly so on a busy 2-core machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def limited_threads(threads: int | None, *, preload_sklearn: bool = False) -> Iterator[None]:
    """Limit BLAS/OpenMP threads to ``threads`` (None: leave the libraries' defaults).

    A limit does not reach a library loaded inside the block: ``preload_sklearn`` loads
    scikit-learn's OpenMP runtime and SciPy's BLAS first, for code that calls scikit-learn.
    """
    if threads is None:
        yield
        return
    if preload_sklearn:
        import sklearn.cluster  # noqa: F401
        import sklearn.metrics  # noqa: F401
    with threadpool_limits(limits=threads):
        yield


_ONE_THREAD: list[threadpool_limits] = []


@contextmanager
def one_thread() -> Iterator[None]:
    """BLAS held to one thread; re-entrant and free when nested (threadpoolctl's set-up costs ~2 ms,
    which adds up over hundreds of small fits)."""
    if _ONE_THREAD:
        yield
        return
    with threadpool_limits(1) as lim:
        _ONE_THREAD.append(lim)
        try:
            yield
        finally:
            _ONE_THREAD.pop()
