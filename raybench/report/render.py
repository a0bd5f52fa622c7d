"""Rendering the report's figures: in this process, or, for a large run, in worker processes while
this one computes the next section.

A section asks for a figure with :func:`figure` (``figure(plots.cdf, samples, points)``), never by
calling the plot function itself. Outside :func:`rendering` that is the plain call and gives the
PNG bytes. Inside it, the call goes to the active :class:`Renderer`: with workers, it is sent to
one (its arguments are small, already aggregated arrays) and a :class:`Pending` stands for the PNG
until :meth:`Renderer.finish` puts every PNG into the page. The PNGs are byte for byte those of
the plain call.

Workers are forked (Linux only) when the renderer starts, before the run's tables are read and
while this process runs no other thread; a process that runs other threads (a Ray driver, a test
session with Ray) renders in-process. A worker that dies or a pool that cannot start falls back
to in-process rendering: never a missing figure.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: Workers used for a large run (at most the machine's cores).
MAX_WORKERS = 4
#: Environment variable that sets the workers (0 or 1: render in this process).
WORKERS_ENV = "RAYBENCH_REPORT_WORKERS"
_PLACEHOLDER = "raybench-figure-{}-pending"
_ACTIVE: ContextVar[Renderer | None] = ContextVar("raybench_report_renderer", default=None)


@dataclass(frozen=True)
class Pending:
    """A figure being rendered: ``marker`` stands for its base64 PNG in the page until
    :meth:`Renderer.finish`."""

    marker: str


def _call(module: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def _ready() -> int:
    return os.getpid()


def default_workers(size: int, threshold: int) -> int:
    """Workers for a run of ``size`` (bytes of its requests table): 0 below ``threshold``, else up
    to :data:`MAX_WORKERS` and the cores this process may use; ``RAYBENCH_REPORT_WORKERS``
    overrides."""
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            return 0
    if size < threshold:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(MAX_WORKERS, cores) if cores > 1 else 0


class Renderer:
    """Figures of one page: rendered here (``workers`` < 2) or by a pool of forked workers."""

    def __init__(self, workers: int = 0) -> None:
        self._results: list[bytes | Future[bytes]] = []
        self._jobs: list[tuple[Callable[..., bytes], tuple[Any, ...], dict[str, Any]]] = []
        self._pool: Any = None
        if workers > 1 and sys.platform == "linux" and threading.active_count() == 1:
            self._pool = _start_pool(workers)

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def submit(self, fn: Callable[..., bytes], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes | Pending:
        """Render ``fn(*args, **kwargs)`` now (no pool: the bytes) or in a worker (a Pending)."""
        if self._pool is None:
            return fn(*args, **kwargs)
        i = len(self._results)
        self._jobs.append((fn, args, kwargs))
        try:
            self._results.append(self._pool.submit(_call, fn.__module__, fn.__name__, args, kwargs))
        except Exception:  # a broken pool: this one and the rest in this process
            self._stop()
            self._results.append(fn(*args, **kwargs))
        return Pending(_PLACEHOLDER.format(i))

    def finish(self, page: str) -> str:
        """``page`` with every pending figure's PNG in place; stops the workers."""
        try:
            for i, res in enumerate(self._results):
                if not isinstance(res, Future):
                    png = res
                else:
                    try:
                        png = res.result()
                    except _broken():  # a worker died: render this figure here
                        fn, args, kwargs = self._jobs[i]
                        png = fn(*args, **kwargs)
                page = page.replace(_PLACEHOLDER.format(i), base64.b64encode(png).decode("ascii"), 1)
        finally:
            self._stop()
        return page

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None


def _broken() -> type[BaseException]:
    from concurrent.futures.process import BrokenProcessPool

    return BrokenProcessPool


def _start_pool(workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = None
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        # With "fork" every worker starts at the first submit: now, while no other thread runs.
        pool.submit(_ready).result(timeout=30)
        return pool
    except Exception:  # no fork here, no processes allowed, a worker that does not answer
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        return None


@contextlib.contextmanager
def rendering(workers: int = 0) -> Iterator[Renderer]:
    """Make a :class:`Renderer` the one :func:`figure` uses inside the block."""
    renderer = Renderer(workers)
    token = _ACTIVE.set(renderer)
    try:
        yield renderer
    finally:
        _ACTIVE.reset(token)
        renderer._stop()


def figure(fn: Callable[..., bytes], *args: Any, **kwargs: Any) -> bytes | Pending:
    """``fn(*args, **kwargs)`` (a plot function of :mod:`raybench.report.plots` or
    :mod:`raybench.report.plots_load`), through the active renderer if there is one."""
    renderer = _ACTIVE.get()
    return fn(*args, **kwargs) if renderer is None else renderer.submit(fn, args, kwargs)
