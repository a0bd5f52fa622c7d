"""Reading a run folder for the report: numpy views of its tables and the small computations the
report's sections share (per-window grouping, stage means, CDF points).

Pure apart from reading files; no matplotlib, no HTML. A table the run folder lacks is ``None`` on
:class:`RunData` (``sla.arrow`` and ``fuse_ops.arrow`` are optional); ``requests`` is always there
(empty when missing). Percentiles are exact nearest-rank (:mod:`raybench.judge.stats`).

Every column is converted once and kept (a 1,000,000-row run is read in well under a second);
string columns are read as integer codes into their sorted distinct values (:meth:`_Table.codes`),
never as a million Python strings compared one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.report.series import group
from raybench.results.windows import window_index, window_ns
from raybench.units import parse_duration

if TYPE_CHECKING:
    import pyarrow as pa

#: Measured stages, in pipeline order (``<stage>_ms`` columns of requests.arrow).
STAGES = ("policy", "llm", "expert_queue", "expert", "lease_wait", "state", "fuse", "event")


class _Table:
    """A result table with numpy views of its columns (nulls: NaN for floats, 0 for ints), each
    converted once."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.num_rows = table.num_rows
        self._cache: dict[tuple[str, str], Any] = {}

    def floats(self, col: str) -> np.ndarray:
        key = ("f", col)
        if key not in self._cache:
            import pyarrow.compute as pc

            c = self.table.column(col)
            if pa_types().is_boolean(c.type):
                c = c.cast("int8")
            self._cache[key] = np.asarray(pc.cast(c, "float64").to_numpy(zero_copy_only=False), dtype=np.float64)
        return self._cache[key]

    def ints(self, col: str) -> np.ndarray:
        key = ("i", col)
        if key not in self._cache:
            c = self.table.column(col).fill_null(0)
            self._cache[key] = np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.int64)
        return self._cache[key]

    def codes(self, col: str) -> tuple[list[str], np.ndarray]:
        """The distinct values of a string column that occur, sorted, and per row the index of its
        value among them (-1 for null)."""
        key = ("c", col)
        if key not in self._cache:
            self._cache[key] = _codes(self.table.column(col))
        return self._cache[key]

    def strings(self, col: str) -> np.ndarray:
        """The column as an object array of str (null: None)."""
        labels, codes = self.codes(col)
        lookup = np.array([*labels, None], dtype=object)
        return lookup[np.where(codes >= 0, codes, len(labels))]


def _codes(column: Any) -> tuple[list[str], np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column.cast("string"))
    if isinstance(column, pa.ChunkedArray):
        column = (
            column.unify_dictionaries().combine_chunks()
            if column.num_chunks
            else pa.array([], pa.dictionary(pa.int32(), pa.string()))
        )
    words = [str(w) for w in column.dictionary.cast("string").to_pylist()]
    idx = np.asarray(column.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    if not words:
        return [], np.full(idx.size, -1, dtype=np.int64)
    # A dictionary may hold values no row uses, or one value twice: map to the sorted values used.
    labels, inverse = np.unique(np.array(words, dtype=object), return_inverse=True)
    codes = np.where(idx >= 0, inverse[np.clip(idx, 0, None)], -1)
    used = np.bincount(codes[codes >= 0], minlength=len(labels)) > 0
    renumber = np.cumsum(used) - 1
    codes = np.where(codes >= 0, renumber[np.clip(codes, 0, None)], -1)
    return [str(w) for w, u in zip(labels, used, strict=True) if u], codes.astype(np.int64)


def pa_types() -> Any:
    import pyarrow.types

    return pyarrow.types


class RunData:
    """What the report needs of one run folder, read once. Tables the folder lacks are None."""

    def __init__(self, path: Path) -> None:
        from raybench.results import store
        from raybench.results.windows import load_span

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
        self.span = load_span(self.manifest, duration_s=self.duration_s, warmup_s=self.warmup_s, now_ns=self.t0_ns)
        #: Seconds from t0 to the end of the load (planned, or where it was stopped).
        self.load_end_s = (self.span.end_ns - self.t0_ns) / 1e9
        self._measured = ~self.all_bool("warmup")
        self._cache: dict[Any, Any] = {}
        self.classes = self._classes()
        recorded = self.manifest.get("summary")
        # A run's manifest carries the summary per scope; other folders (``raybench fuse``) have
        # their own summary shape or none: recompute it from the requests then.
        if isinstance(recorded, list) and recorded and all(isinstance(r, dict) and "scope" in r for r in recorded):
            self.summary: list[dict[str, Any]] = recorded
        else:
            self.summary = self._summary() if self.requests.num_rows else []

    def _classes(self) -> list[str]:
        """Classes with non-warm-up rows: the scenario's order, then the others by first appearance."""
        labels, codes = self.measured_codes("cls")
        ok = np.flatnonzero(codes >= 0)
        uniq, first = np.unique(codes[ok], return_index=True)
        by_first = [labels[u] for _, u in sorted(zip(first.tolist(), uniq.tolist(), strict=True))]
        known = list(self.scenario.get("classes") or {})
        return [c for c in known if c in by_first] + [c for c in by_first if c not in known]

    def _summary(self) -> list[dict[str, Any]]:
        from raybench.judge.summary import summarize as summarize_requests

        return summarize_requests(self.requests.table, self.span.measured_s)

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, computed once per run (for an aggregate several sections use)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def measured(self) -> np.ndarray:
        """Which rows are not warm-up."""
        return self._measured

    @property
    def measured_s(self) -> float:
        """Seconds of measured load (after the warm-up): the divisor of every rate."""
        return self.span.measured_s

    def all_col(self, col: str, dtype: Any = np.float64) -> np.ndarray:
        return self.requests.floats(col) if dtype is np.float64 else self.requests.ints(col)

    def all_bool(self, col: str) -> np.ndarray:
        return self.requests.floats(col) == 1.0

    def measured_col(self, col: str) -> np.ndarray:
        key = ("m", col)
        if key not in self._cache:
            self._cache[key] = self.all_col(col)[self._measured]
        return self._cache[key]

    def measured_str(self, col: str) -> np.ndarray:
        return self.requests.strings(col)[self._measured]

    def measured_codes(self, col: str) -> tuple[list[str], np.ndarray]:
        """:meth:`_Table.codes` of the non-warm-up rows."""
        labels, codes = self.requests.codes(col)
        return labels, codes[self._measured]

    def class_mask(self, cls: str) -> np.ndarray:
        """Which non-warm-up rows are of class ``cls``."""
        key = ("cls", cls)
        if key not in self._cache:
            labels, codes = self.measured_codes("cls")
            self._cache[key] = codes == labels.index(cls) if cls in labels else np.zeros(codes.size, bool)
        return self._cache[key]

    def latency_order(self) -> np.ndarray:
        """``argsort`` of every row's latency (warm-up included): the one sort of latencies the
        report does; every grouping of latencies reuses it (:func:`raybench.report.series.group`)."""
        key = ("order",)
        if key not in self._cache:
            self._cache[key] = np.argsort(self.all_col("latency_ms"))
        return self._cache[key]

    def measured_latency_order(self) -> np.ndarray:
        """``argsort`` of the non-warm-up rows' latency (indices into the non-warm-up rows)."""
        key = ("morder",)
        if key not in self._cache:
            order = self.latency_order()
            position = np.cumsum(self._measured) - 1
            self._cache[key] = position[order[self._measured[order]]]
        return self._cache[key]

    def sorted_latency(self, scope: str = "all") -> np.ndarray:
        """Non-warm-up latencies of ``all`` or of one class, sorted (kept for every figure)."""
        key = ("sorted", scope)
        if key not in self._cache:
            order = self.measured_latency_order()
            lat = self.measured_col("latency_ms")[order]
            self._cache[key] = lat if scope == "all" else lat[self.class_mask(scope)[order]]
        return self._cache[key]


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


def cdf_points(v: np.ndarray, limit: int = 4000) -> np.ndarray:
    """At most ``limit`` recorded values at evenly spaced ranks (the maximum always kept), so
    the figure stays small; every point is a measured value. ``v`` need not be sorted."""
    v = np.asarray(v)
    if v.size > 1 and not (v[1:] >= v[:-1]).all():
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


def stage_sums(run: RunData, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group ``0..n-1`` of the non-warm-up rows (``codes``, one per row): ``[group, stage]`` sums
    of each stage's ms (a stage that did not run counts 0) and counts of the rows in which it ran,
    and the rows per group. One pass per stage, whatever the number of groups; the means of
    :func:`stage_means` are ``sums / rows`` and ``ran / rows``."""
    ok = (codes >= 0) & (codes < n)
    c = codes[ok]
    rows = np.bincount(c, minlength=n)[:n].astype(np.float64)
    sums, ran = np.zeros((n, len(STAGES))), np.zeros((n, len(STAGES)))
    for j, stage in enumerate(STAGES):
        v = run.measured_col(f"{stage}_ms")[ok]
        present = ~np.isnan(v)
        sums[:, j] = np.bincount(c, weights=np.where(present, v, 0.0), minlength=n)[:n]
        ran[:, j] = np.bincount(c, weights=present, minlength=n)[:n]
    return sums, ran, rows


def per_window(
    run: RunData, ts_ns: np.ndarray, values: np.ndarray, how: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group values into the run's windows by ``ts_ns`` (window k: ``[t0 + kW, t0 + (k+1)W)``, as
    windows.arrow). Returns window starts and ends (s since t0, the last end clipped to the last
    request's end) and per window the sum (``how='sum'``; NaN values left out) or exact p99
    (``'p99'``, NaN when empty)."""
    k = window_index(ts_ns, run.t0_ns, window_ns(run.window_s))
    n = int(k.max()) + 1 if k.size and k.max() >= 0 else 0
    if how == "sum":
        values = np.asarray(values, dtype=np.float64)
        ok = (k >= 0) & ~np.isnan(values)
        out = np.bincount(k[ok], weights=values[ok], minlength=n)[:n].astype(np.float64)
    else:
        out = group(k, values, n).percentile(99.0)
    starts = np.arange(n) * run.window_s
    return starts, np.minimum(starts + run.window_s, run.data_end_s), out


def thin(n: int, limit: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Indices of at most about ``limit`` of ``n`` points to draw one by one: all when ``n <= limit``,
    else evenly spaced ones plus the ``limit // 50`` largest of ``keep`` (so the worst still show)."""
    if n <= limit:
        return np.arange(n)
    idx = np.linspace(0, n - 1, limit).round().astype(np.int64)
    if keep is not None and keep.size == n:
        top = max(limit // 50, 1)
        worst = np.argpartition(np.nan_to_num(keep, nan=-np.inf), n - top)[n - top :]
        idx = np.concatenate([idx, worst])
    return np.unique(idx)


def histogram_bins(values: np.ndarray, bins: int = 40) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(edges, counts, log)`` of a histogram of ``values``: log-spaced bins when every value is
    > 0 and they are not all equal, else linear ones."""
    v = np.asarray(values, dtype=np.float64)
    log = bool(v.size and v.min() > 0 and v.max() > v.min())
    edges = np.geomspace(v.min(), v.max(), bins + 1) if log else np.histogram_bin_edges(v, bins)
    counts, edges = np.histogram(v, edges)
    return edges, counts, log
