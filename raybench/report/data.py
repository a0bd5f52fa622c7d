"""Reading a run folder for the report: numpy views of its tables and the small computations the
report's sections share (per-window grouping, stage means, CDF points, SLA latency bounds).

Pure apart from reading files; no matplotlib, no HTML. A table the run folder lacks is ``None`` on
:class:`RunData` (``sla.arrow`` and ``fuse_ops.arrow`` are optional); ``requests`` is always there
(empty when missing). Percentiles are exact nearest-rank (:mod:`raybench.judge.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.judge.stats import percentiles
from raybench.results.windows import window_index, window_ns
from raybench.units import parse_duration

if TYPE_CHECKING:
    import pyarrow as pa

#: Measured stages, in pipeline order (``<stage>_ms`` columns of requests.arrow).
STAGES = ("policy", "llm", "expert_queue", "expert", "lease_wait", "state", "fuse", "event")


class _Table:
    """A result table with numpy views of its columns (nulls: NaN for floats, 0 for ints)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.num_rows = table.num_rows

    def floats(self, col: str) -> np.ndarray:
        import pyarrow.compute as pc

        c = self.table.column(col)
        if pa_types().is_boolean(c.type):
            c = c.cast("int8")
        return np.asarray(pc.cast(c, "float64").to_numpy(zero_copy_only=False), dtype=np.float64)

    def ints(self, col: str) -> np.ndarray:
        return np.asarray(self.table.column(col).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)

    def strings(self, col: str) -> np.ndarray:
        return np.asarray(self.table.column(col).cast("string").to_pylist(), dtype=object)


def pa_types() -> Any:
    import pyarrow.types

    return pyarrow.types


class RunData:
    """What the report needs of one run folder, read once. Tables the folder lacks are None."""

    def __init__(self, path: Path) -> None:
        from raybench.results import store

        self.path = path
        self.manifest: dict[str, Any] = store.load_manifest(path)
        self.scenario: dict[str, Any] = self.manifest.get("scenario") or {}
        self.run_id = str(self.manifest.get("run_id", path.name))
        run = self.scenario.get("run") or {}
        end, start = self.manifest.get("load_end_ns"), self.manifest.get("load_start_ns")
        planned = (end - start) / 1e9 if isinstance(end, int) and isinstance(start, int) else 0.0
        self.duration_s = _seconds(run.get("duration"), planned)
        self.warmup_s = _seconds(run.get("warmup"), 0.0)
        self.window_s = _seconds(run.get("window"), 0.0) or _seconds(
            (self.scenario.get("sla") or {}).get("window"), 5.0
        )
        self.thresholds: list[str] = [str(t) for t in (self.scenario.get("sla") or {}).get("thresholds") or []]

        def opt(name: str) -> _Table | None:
            present = (path / f"{name}.arrow").exists() or (path / f"{name}.arrows").exists()
            return _Table(store.read_table(path, name)) if present else None

        self.requests = opt("requests") or _Table(store.read_table(path, "requests"))
        self.windows, self.resources, self.events = opt("windows"), opt("resources"), opt("events")
        self.fuse_ops = opt("fuse_ops")
        sla = opt("sla")
        self.sla = sla.table if sla is not None else None
        starts = self.requests.ints("ts_intended_ns")
        t0 = self.manifest.get("load_start_ns")
        self.t0_ns = int(t0) if isinstance(t0, int) else int(starts.min()) if starts.size else 0
        ends = self.requests.ints("ts_end_ns")
        #: Seconds from t0 to the last request's end (the end of the data).
        self.data_end_s = (int(ends.max()) - self.t0_ns) / 1e9 if ends.size else self.duration_s
        self._measured = ~self.all_bool("warmup")
        cls = self.measured_str("cls")
        known = list(self.scenario.get("classes") or {})
        self.classes = [c for c in known if (cls == c).any()] + [
            c for c in dict.fromkeys(cls.tolist()) if c not in known
        ]
        recorded = self.manifest.get("summary")
        # A run's manifest carries the summary per scope; other folders (``raybench fuse``) have
        # their own summary shape or none: recompute it from the requests then.
        if isinstance(recorded, list) and recorded and all(isinstance(r, dict) and "scope" in r for r in recorded):
            self.summary: list[dict[str, Any]] = recorded
        else:
            self.summary = self._summary() if self.requests.num_rows else []

    def _summary(self) -> list[dict[str, Any]]:
        from raybench.judge.summary import summarize as summarize_requests
        from raybench.results.windows import load_span

        span = load_span(self.manifest, duration_s=self.duration_s, warmup_s=self.warmup_s, now_ns=self.t0_ns)
        return summarize_requests(self.requests.table, span.measured_s)

    def all_col(self, col: str, dtype: Any = np.float64) -> np.ndarray:
        return self.requests.floats(col) if dtype is np.float64 else self.requests.ints(col)

    def all_bool(self, col: str) -> np.ndarray:
        return self.requests.floats(col) == 1.0

    def measured_col(self, col: str) -> np.ndarray:
        return self.all_col(col)[self._measured]

    def measured_str(self, col: str) -> np.ndarray:
        return self.requests.strings(col)[self._measured]


def _seconds(value: Any, default: float) -> float:
    try:
        return parse_duration(value) if value is not None else default
    except ValueError:
        return default


def load(path: Path) -> RunData:
    """Read a run folder for the report. Raises ResultsError when it is not a readable run folder."""
    return RunData(Path(path))


def window_series(run: RunData, scope: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Start and end (s since t0; the last window's end clipped to the last request's end) of the
    windows of ``scope`` in windows.arrow, and their statistics columns, in time order."""
    if run.windows is None or run.windows.num_rows == 0:
        return np.array([]), np.array([]), {}
    w = run.windows
    m = w.strings("scope") == scope
    start = w.ints("window_start_ns")[m]
    o = np.argsort(start)
    ends = np.minimum((w.ints("window_end_ns")[m][o] - run.t0_ns) / 1e9, run.data_end_s)
    cols = ("count", "throughput", "p50_ms", "p99_ms", "escalations")
    return (start[o] - run.t0_ns) / 1e9, ends, {c: w.floats(c)[m][o] for c in cols}


def sla_lines(thresholds: Sequence[str]) -> list[tuple[float, str]]:
    """``(ms, expression)`` for every latency bound among the thresholds: the target of a
    percentile threshold, the limit inside ``share(latency<X)``; stage-scoped ones are left out."""
    from raybench.errors import ThresholdError
    from raybench.judge.grammar import parse_threshold

    out = []
    for expr in thresholds:
        try:
            th = parse_threshold(expr)
        except ThresholdError:
            continue
        if th.stage:
            continue
        if th.metric == "percentile":
            out.append((th.target, expr))
        elif th.metric == "share" and th.share_limit_ms is not None:
            out.append((th.share_limit_ms, expr))
    return out


def cdf_points(v: np.ndarray, limit: int = 4000) -> np.ndarray:
    """At most ``limit`` recorded values at evenly spaced ranks (the maximum always kept), so
    the figure stays small; every point is a measured value."""
    v = np.sort(v)
    if v.size <= limit:
        return v
    return v[np.unique(np.linspace(0, v.size - 1, limit).round().astype(int))]


def stage_means(run: RunData, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stage: mean ms per request (a stage that did not run counts 0) and share of requests
    in which it ran, over the measured requests selected by ``mask``."""
    means, ran = [], []
    n = int(mask.sum())
    for stage in STAGES:
        v = run.measured_col(f"{stage}_ms")[mask]
        present = ~np.isnan(v)
        means.append(float(np.where(present, v, 0.0).sum() / n) if n else math.nan)
        ran.append(float(present.mean()) if n else math.nan)
    return np.array(means), np.array(ran)


def per_window(
    run: RunData, ts_ns: np.ndarray, values: np.ndarray, how: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group values into the run's windows by ``ts_ns`` (window k: ``[t0 + kW, t0 + (k+1)W)``, as
    windows.arrow). Returns window starts and ends (s since t0, the last end clipped to the last
    request's end) and per window the sum (``how='sum'``) or exact p99 (``'p99'``, NaN when empty)."""
    k = window_index(ts_ns, run.t0_ns, window_ns(run.window_s))
    ok = k >= 0
    k, values = k[ok], values[ok]
    n = int(k.max()) + 1 if k.size else 0
    out = np.full(n, np.nan)
    for i in range(n):
        v = values[k == i]
        v = v[~np.isnan(v)]
        out[i] = float(v.sum()) if how == "sum" else (percentiles(v, (99.0,))[99.0] if v.size else math.nan)
    starts = np.arange(n) * run.window_s
    return starts, np.minimum(starts + run.window_s, run.data_end_s), out
