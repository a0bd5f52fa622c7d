"""Aggregator: the one process that writes a run's rows to disk, on the head node.

Hosts send Arrow record batches (``write``), or their packed request rows (``write_packed``,
made into a batch here); each is appended at once to ``<table>.arrows`` so a
crash loses nothing already received. For live monitoring the aggregator also keeps the rows of
windows that are still open (window ``k`` holds requests whose ``ts_end_ns`` falls in
``[t0 + kW, t0 + (k+1)W)``) until the driver takes them with ``take_windows``; rows that arrive for
a window already taken are counted as late (the offline evaluation still sees them in the files).
At the end, ``finalize`` rewrites every stream into its ``.arrow`` file. The age of each host
flush's oldest row on arrival (``flush_age_ms``) tells whether rows queue on their way here, a
sign of a saturated harness (:mod:`raybench.judge.harness`). With ``run.metrics`` on,
every ``requests`` batch also feeds the live Prometheus metrics (``raybench.actors.metrics``).
Every ``requests`` batch also feeds the live view's rolling store (:class:`raybench.judge.live.Rolling`:
the last seconds' rows, totals); the driver's status line asks for its figures (``live_view``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from raybench.judge.live import SETTLE_S, SPAN_S, Rolling
from raybench.results import store
from raybench.results.schema import TABLES
from raybench.results.windows import window_index, window_ns


class Aggregator:
    """Plain class; a Ray actor (one at a time: ``write`` calls never interleave) at run time."""

    def __init__(self, run_dir: str, t0_ns: int, window_s: float) -> None:
        self.run_dir = Path(run_dir)
        self.t0_ns = t0_ns
        self.window_ns = window_ns(window_s)
        self.streams: dict[str, store.StreamAppender] = {}
        self.open_windows: dict[int, list[Any]] = {}
        self.taken_upto = -1  # windows <= this were handed to the driver
        self.late_rows = 0
        self.batches = 0
        self.flush_ages_ms: list[float] = []  # per host flush: now − its oldest row's ts_end, on arrival
        self._sampler: Any = None
        self.live: Any = None  # raybench.actors.metrics.LiveMetrics while metrics are on
        self.metrics_error: str | None = None
        self.rolling = Rolling(t0_ns)  # the live view's last seconds (raybench.judge.live)
        self.rolling_error: str | None = None
        self._error_outcomes: Any = None  # pa.array of the outcomes error_rate counts

    def set_t0(self, t0_ns: int) -> None:
        """Set the load start that windows are counted from (before any request row arrives)."""
        self.t0_ns = t0_ns
        self.rolling = Rolling(t0_ns)

    def _stream(self, table: str) -> store.StreamAppender:
        if table not in self.streams:
            self.streams[table] = store.StreamAppender(self.run_dir, table)
        return self.streams[table]

    def write(self, table: str, batch: Any) -> int:
        """Append a record batch of ``table``; returns the table's row count so far."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        stream = self._stream(table)
        stream.write(batch)
        self.batches += 1
        if table == "requests" and batch.num_rows:
            self._bucket(batch)
            self._roll(batch)
            if self.live is not None:
                self._observe(batch)
        return stream.rows

    def write_packed(self, packed: Any) -> int:
        """Append a host's packed request rows (:class:`raybench.results.recording.PackedRows`): the
        Arrow batch is built here, off the hosts' event loops."""
        from raybench.results.recording import to_batch

        batch = to_batch(packed)
        if batch.num_rows:
            import pyarrow.compute as pc

            self.flush_ages_ms.append((time.time_ns() - pc.min(batch.column("ts_end_ns")).as_py()) / 1e6)
        return self.write("requests", batch)

    def start_metrics(self, host: str | None = None) -> dict[str, Any]:
        """Turn on the live metrics if this node's metrics agent answers (at ``host``, default the
        node's address); returns where to scrape or why not (``raybench.actors.metrics.agent_status``)."""
        from raybench.actors.metrics import LiveMetrics, agent_status

        status = agent_status(host)
        if status["enabled"]:
            self.live = LiveMetrics(self.run_dir.name)
        return status

    def _observe(self, batch: Any) -> None:
        try:
            self.live.observe(batch)
        except Exception as exc:  # a live view never costs a row: the batch is on disk already
            self.metrics_error = f"live metrics stopped: {type(exc).__name__}: {exc}"[:300]
            self.live = None

    def _roll(self, batch: Any) -> None:
        """Feed the live view's rolling store: the batch's columns as numpy arrays, no row loop."""
        if self.rolling_error is not None:
            return
        try:
            import pyarrow.compute as pc

            if self._error_outcomes is None:
                import pyarrow as pa

                from raybench.judge.thresholds import ERROR_OUTCOMES

                self._error_outcomes = pa.array(ERROR_OUTCOMES)
            col = batch.column
            errors = pc.is_in(col("outcome"), value_set=self._error_outcomes).to_numpy(zero_copy_only=False)
            self.rolling.add(
                col("ts_end_ns").to_numpy(), col("latency_ms").to_numpy(), col("lag_ms").to_numpy(),
                errors, col("warmup").to_numpy(zero_copy_only=False),
            )  # fmt: skip
        except Exception as exc:  # a live view never costs a row: the batch is on disk already
            self.rolling_error = f"live view stopped: {type(exc).__name__}: {exc}"[:300]

    def live_view(
        self, now_ns: int | None = None, span_s: float = SPAN_S, settle_s: float = SETTLE_S
    ) -> dict[str, Any]:
        """The live view's figures at ``now_ns`` (default: now): totals since the start, and rate,
        errors, p50/p99 latency and dispatch lag over the span of the last ``span_s`` seconds
        (:meth:`raybench.judge.live.Rolling.snapshot`; ``error`` when the store stopped)."""
        snap = self.rolling.snapshot(time.time_ns() if now_ns is None else now_ns, span_s, settle_s)
        snap["late_rows"] = self.late_rows
        if self.rolling_error is not None:
            snap["error"] = self.rolling_error
        return snap

    def write_rows(self, table: str, rows: list[tuple[Any, ...]]) -> int:
        """Append plain row tuples (small tables: resources, events)."""
        from raybench.results.recording import RowBuffer

        buf = RowBuffer(table)
        buf.rows = rows
        batch = buf.take()
        return self.write(table, batch) if batch is not None else self._stream(table).rows

    def _bucket(self, batch: Any) -> None:
        import numpy as np
        import pyarrow as pa

        ends = batch.column("ts_end_ns").to_numpy()
        first = window_index(int(ends.min()), self.t0_ns, self.window_ns)
        last = window_index(int(ends.max()), self.t0_ns, self.window_ns)
        if first == last:  # the common case (a flush covers well under a window): keep it whole
            parts = [(first, batch)]
        else:
            k = window_index(ends, self.t0_ns, self.window_ns)
            parts = [(int(w), batch.filter(pa.array(k == w))) for w in np.unique(k)]
        for w, part in parts:
            if w <= self.taken_upto:
                self.late_rows += part.num_rows
            else:
                self.open_windows.setdefault(w, []).append(part)

    def take_windows(self, upto: int) -> dict[int, Any]:
        """Hand over (and forget) the rows of every open window ``<= upto`` as pa.Tables."""
        import pyarrow as pa

        out = {}
        for w in sorted(k for k in self.open_windows if k <= upto):
            out[w] = pa.Table.from_batches(self.open_windows.pop(w))
        self.taken_upto = max(self.taken_upto, upto)
        return out

    def finalize(self) -> dict[str, Any]:
        """Close every stream and rewrite it into its ``.arrow`` file; returns rows per table."""
        rows: dict[str, int] = {}
        for table in TABLES:
            stream = self.streams.get(table)
            if stream is not None:
                stream.close()
            if (self.run_dir / f"{table}.arrows").exists():
                rows[table] = store.finalize_stream(self.run_dir, table)
                (self.run_dir / f"{table}.arrows").unlink()
        out: dict[str, Any] = {
            "rows": rows,
            "late_rows": self.late_rows,
            "batches": self.batches,
            "flush_age_ms": flush_age(self.flush_ages_ms),
        }
        if self.live is not None:  # let Ray export the last rows' metrics before the actor is killed
            out["metrics"] = {"rows": self.live.rows, "settle_s": round(self.live.settle(), 3)}
        if self.metrics_error:
            out["metrics"] = {**out.get("metrics", {}), "error": self.metrics_error}
        return out

    def sample_resources(self) -> tuple[Any, ...]:
        from raybench.actors.sampler import ProcessSampler

        if self._sampler is None:
            self._sampler = ProcessSampler("aggregator")
        return self._sampler.sample()


def flush_age(ages_ms: list[float]) -> dict[str, Any]:
    """How old the host flushes' oldest rows were on arrival: count, p50, p99 and max (ms; null
    without flushes)."""
    from raybench.judge.stats import percentiles

    if not ages_ms:
        return {"flushes": 0, "p50": None, "p99": None, "max": None}
    ps = percentiles(ages_ms, (50.0, 99.0))
    top = max(ages_ms)
    return {"flushes": len(ages_ms), "p50": round(ps[50.0], 3), "p99": round(ps[99.0], 3), "max": round(top, 3)}
