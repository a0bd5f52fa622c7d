"""The aggregator's bookkeeping, as a plain object: streams, live windows, late rows, finalize."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from raybench.actors.aggregator import Aggregator
from raybench.results import store
from raybench.results.recording import NULL_INT, NULL_MS, RequestRows

T0, WINDOW_NS = 1_000_000_000_000, 5_000_000_000


def _rows(ends_s: list[float], host: int = 0) -> RequestRows:
    """Request rows ending ``ends_s`` seconds after T0 (perf clock == wall clock here)."""
    buf = RequestRows("agg", host, "node-1", ["r"], ["safe"])
    rng = random.Random(host)
    for i, e in enumerate(ends_s):
        end = T0 + int(e * 1e9)
        buf.add(
            (i, end - 50_000_000, end - 40_000_000, end, i, NULL_INT, NULL_INT, rng.random(), *[NULL_MS] * 11,
             i, 0, 0, 0, 0, False, False)
        )  # fmt: skip
    return buf


def test_rows_land_in_their_windows_late_ones_are_counted_and_every_row_is_in_the_file(tmp_path: Path):
    agg = Aggregator(str(tmp_path), T0, WINDOW_NS / 1e9)
    agg.write_packed(_rows([0.1, 0.2, 4.9]).take_packed())  # all in window 0: kept whole
    agg.write_packed(_rows([4.95, 5.0, 9.99, 10.0, 12.5], host=1).take_packed())  # windows 0, 1, 2
    taken = agg.take_windows(0)
    assert list(taken) == [0] and taken[0].num_rows == 4
    assert sorted(taken[0].column("ts_end_ns").to_pylist()) == [T0 + int(e * 1e9) for e in (0.1, 0.2, 4.9, 4.95)]
    agg.write_packed(_rows([3.0, 6.0], host=2).take_packed())  # 3.0 s: window 0 was handed over
    assert agg.late_rows == 1
    taken = agg.take_windows(5)
    assert {w: t.num_rows for w, t in taken.items()} == {1: 3, 2: 2}
    assert agg.take_windows(5) == {}
    out = agg.finalize()
    assert out["rows"]["requests"] == 10 and out["late_rows"] == 1
    table = store.read_table(tmp_path, "requests")
    assert table.num_rows == 10 and isinstance(table, pa.Table)
    assert sorted(table.column("host_id").to_pylist()) == [0] * 3 + [1] * 5 + [2] * 2


def test_a_failing_live_view_never_costs_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    agg = Aggregator(str(tmp_path), T0, WINDOW_NS / 1e9)
    agg.write_packed(_rows([0.1, 0.2]).take_packed())

    def broken(*args: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(agg.rolling, "add", broken)
    assert agg.write_packed(_rows([0.3, 0.4, 0.5]).take_packed()) == 5
    agg.write_packed(_rows([0.6]).take_packed())
    view = agg.live_view(T0 + 3 * 10**9)
    assert view["done"] == 2 and view["error"] == "live view stopped: ValueError: boom"
    assert agg.finalize()["rows"]["requests"] == 6
