"""Figures rendered by worker processes: the page gets every PNG, byte for byte, and a worker
that dies costs nothing but time (the figure is rendered in this process instead)."""

from __future__ import annotations

import base64
import os

import pytest

from raybench.report import render

PARENT = os.getpid()


def png_of(x: int) -> bytes:
    return b"png-" + bytes([x])


def die_in_a_worker(x: int) -> bytes:
    if os.getpid() != PARENT:
        os._exit(3)
    return png_of(x)


def page_with(pending: list[object]) -> str:
    return "".join(f'<img src="data:image/png;base64,{p.marker if hasattr(p, "marker") else "?"}">' for p in pending)


def test_without_a_renderer_a_figure_is_the_plain_call():
    assert render.figure(png_of, 5) == b"png-\x05"


def test_workers_render_every_figure_into_the_page():
    with render.rendering(2) as r:
        if not r.parallel:
            pytest.skip("no forked workers here (another thread runs, or no fork)")
        pending = [render.figure(png_of, i) for i in range(6)]
        page = r.finish(page_with(pending))
    for i in range(6):
        assert base64.b64encode(png_of(i)).decode() in page
    assert "pending" not in page


def test_a_worker_that_dies_falls_back_to_this_process():
    with render.rendering(2) as r:
        if not r.parallel:
            pytest.skip("no forked workers here (another thread runs, or no fork)")
        pending = [render.figure(die_in_a_worker, i) for i in range(3)]
        page = r.finish(page_with(pending))
    for i in range(3):
        assert base64.b64encode(png_of(i)).decode() in page


def test_workers_only_for_a_large_run_and_the_environment_decides(monkeypatch):
    monkeypatch.delenv(render.WORKERS_ENV, raising=False)
    assert render.default_workers(10, threshold=100) == 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert render.default_workers(1000, threshold=100) == (min(render.MAX_WORKERS, cores) if cores > 1 else 0)
    monkeypatch.setenv(render.WORKERS_ENV, "0")
    assert render.default_workers(1000, threshold=100) == 0
