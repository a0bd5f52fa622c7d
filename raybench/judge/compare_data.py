"""A run's metrics as windowed samples: what :mod:`raybench.judge.compare` and ``raybench history`` measure.

Rows are the non-warm-up rows of ``requests.arrow``. Row ``r`` falls in window ``k`` when its
``ts_end_ns`` is in ``[t0 + k*W, t0 + (k+1)*W)``; ``t0`` is the manifest's ``load_start_ns``
(fallback: the earliest ``ts_intended_ns``) plus the warm-up (the manifest scenario's
``run.warmup``; when it is not there but rows are flagged warm-up, the earliest ``ts_intended_ns``
of the other rows), so no window covers only warm-up. ``W`` is 5 s unless asked otherwise
(:func:`auto_window_s` chooses it from the runs' length for a comparison; :meth:`RunData.with_window`
re-cuts a loaded run). The grid ends at ``load_end_ns`` (fallback: the last ``ts_end_ns``); later
rows (the drain) join the last window, rows ending before ``t0`` join the first, and a last window
shorter than ``W/2`` is merged into the one before it (so no window's throughput is computed over a
sliver of time).

For each metric of :data:`METRICS` and scope (``all`` or ``cls=<class>``), a :class:`Sample` gives
the value over the whole run, the value in each window, and the value over any multiset of windows
(the block bootstrap's replicates). Percentiles are exact nearest-rank (:mod:`raybench.judge.stats`).

Pure module: no Ray; pyarrow only to read the run folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.errors import ResultsError, UsageError, nearest
from raybench.judge import stats
from raybench.results.store import load_manifest, read_table
from raybench.results.windows import window_index, window_ns
from raybench.units import parse_duration

if TYPE_CHECKING:
    import pyarrow as pa

#: Default window length in seconds; also the longest window :func:`auto_window_s` chooses.
DEFAULT_WINDOW_S = 5.0
#: Windows per run that :func:`auto_window_s` aims for (the shorter run gets at least this many
#: unless a floor below makes windows longer).
TARGET_WINDOWS = 20
#: Shortest window :func:`auto_window_s` chooses: a GC pause or a busy stretch of a few hundred ms
#: should fall inside one window, not spread over several that the bootstrap treats as independent.
MIN_WINDOW_S = 0.5
#: Fewest requests per window, on average, that :func:`auto_window_s` allows.
MIN_WINDOW_ROWS = 50
#: Most windows a comparison cuts a run into (the bootstrap holds replicates x windows counts).
MAX_WINDOWS = 2000
#: Outcomes that count as errors.
ERROR_OUTCOMES = ("error", "timeout")
#: Largest replicates x rows (in the searched range) for which a quantile's bootstrap uses a dense
#: cumulative-weight matrix (16 MB of float64).
DENSE_CELLS = 2_000_000


@dataclass(frozen=True)
class Metric:
    """A compared metric.

    Attributes:
        name: column-style name, e.g. ``p99_ms``.
        unit: ``ms``, ``rps``, ``fraction`` or ``per_request``.
        lower_is_better: True when an increase is a regression (latency); False for throughput.
        doc: what the metric is computed from.
    """

    name: str
    unit: str
    lower_is_better: bool
    doc: str


METRICS: tuple[Metric, ...] = (
    Metric("p50_ms", "ms", True, "50th percentile of latency_ms"),
    Metric("p90_ms", "ms", True, "90th percentile of latency_ms"),
    Metric("p99_ms", "ms", True, "99th percentile of latency_ms"),
    Metric("mean_ms", "ms", True, "mean of latency_ms"),
    Metric("throughput_rps", "rps", False, "completed requests per second"),
    Metric("error_rate", "fraction", True, "share of rows with outcome error or timeout"),
    Metric("escalation_p95_ms", "ms", True, "95th percentile of latency_ms of escalated rows"),
    Metric("conflict_rate", "per_request", True, "mean of conflicts (refused lease attempts)"),
    Metric("fuse_p99_ms", "ms", True, "99th percentile of fuse_ms"),
    Metric("llm_timing_error_p99_ms", "ms", True, "99th percentile of llm_ms - llm_model_ms"),
    Metric("policy_timing_error_p99_ms", "ms", True, "99th percentile of policy_ms - policy_model_ms"),
)
_BY_NAME = {m.name: m for m in METRICS}
_QUANTILE = {
    "p50_ms": ("latency", 50.0),
    "p90_ms": ("latency", 90.0),
    "p99_ms": ("latency", 99.0),
    "escalation_p95_ms": ("escalation", 95.0),
    "fuse_p99_ms": ("fuse", 99.0),
    "llm_timing_error_p99_ms": ("llm_err", 99.0),
    "policy_timing_error_p99_ms": ("policy_err", 99.0),
}
_MEAN = {"mean_ms": "latency", "error_rate": "err", "conflict_rate": "conflicts"}


# --------------------------------------------------------------------------------------------------
# Loading a run into per-row arrays with window indices


@dataclass(frozen=True)
class RunData:
    """The non-warm-up rows of one run, as numpy arrays, with their window index.

    Attributes:
        run_id: the run's id (manifest).
        path: the run folder.
        manifest: the parsed ``manifest.json``.
        window: window index of each row (int64).
        lengths: length in seconds of each window.
        cols: per-row arrays: ``latency``, ``cls`` (str), ``err`` (0/1), ``escalated`` (bool),
            ``conflicts``, ``fuse``, ``llm_err``, ``policy_err`` (NaN where the stage did not run),
            ``ts_end`` (int64 ns).
        t0_ns: start of the measured load (the window grid's origin).
        t_stop_ns: end of the window grid.
    """

    run_id: str
    path: Path
    manifest: dict[str, Any]
    window: np.ndarray
    lengths: np.ndarray
    cols: dict[str, np.ndarray]
    t0_ns: int = 0
    t_stop_ns: int = 0

    @property
    def classes(self) -> list[str]:
        """Request classes present, sorted."""
        return sorted({str(c) for c in np.unique(self.cols["cls"])})

    @property
    def measured_s(self) -> float:
        """Length of the measured load in seconds (the window grid's span)."""
        return (self.t_stop_ns - self.t0_ns) / 1e9

    def with_window(self, window_s: float) -> RunData:
        """The same rows cut into windows of ``window_s`` seconds (see the module docstring).

        Raises:
            ValueError: ``window_s`` is not positive.
        """
        window, lengths = _grid(self.cols["ts_end"], self.t0_ns, self.t_stop_ns, window_s)
        return replace(self, window=window, lengths=lengths)


def _grid(ts_end: np.ndarray, t0: int, t_stop: int, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Window index of each row and each window's length, for a grid from ``t0`` to ``t_stop``."""
    if not window_s > 0:
        raise ValueError(f"window must be positive, got {window_s}")
    w_ns = window_ns(window_s)
    k = max(1, math.ceil((t_stop - t0) / w_ns))
    lengths = np.full(k, w_ns / 1e9)
    lengths[-1] = (t_stop - t0 - (k - 1) * w_ns) / 1e9
    if k > 1 and lengths[-1] < w_ns / 2e9:
        k -= 1
        lengths = np.append(lengths[: k - 1], w_ns / 1e9 + lengths[-1])
    window = np.clip(window_index(ts_end, t0, w_ns), 0, k - 1).astype(np.int64)
    return window, lengths


def auto_window_s(*runs: RunData) -> float:
    """The window length of a comparison of ``runs`` when none is asked for.

    The shortest run is cut into :data:`TARGET_WINDOWS` windows (a smoke run's 17 s of load: 20
    windows of 0.85 s), but no window is longer than :data:`DEFAULT_WINDOW_S` (long runs get more
    windows), shorter than :data:`MIN_WINDOW_S`, or holds fewer than :data:`MIN_WINDOW_ROWS`
    requests on average in the sparsest run (those two floors may leave fewer windows), and the
    longest run gets at most :data:`MAX_WINDOWS`. Rounded down to the millisecond so that the grid
    of the shortest run ends on a whole window.
    """
    measured = min(max(r.measured_s, 1e-3) for r in runs)
    rate = min(r.window.size / max(r.measured_s, 1e-3) for r in runs)
    w = min(DEFAULT_WINDOW_S, measured / TARGET_WINDOWS)
    w = max(w, MIN_WINDOW_S, MIN_WINDOW_ROWS / max(rate, 1e-9), max(r.measured_s for r in runs) / MAX_WINDOWS)
    return max(math.floor(w * 1000) / 1000, 1e-3)


_COLUMNS = [
    "warmup", "cls", "ts_intended_ns", "ts_end_ns", "latency_ms", "outcome", "escalated", "conflicts",
    "fuse_ms", "llm_ms", "llm_model_ms", "policy_ms", "policy_model_ms",
]  # fmt: skip


def load_run(run_dir: Path | str, *, window_s: float = DEFAULT_WINDOW_S) -> RunData:
    """Read a run folder's manifest and requests into a :class:`RunData` (see the module docstring).

    Args:
        run_dir: the run folder.
        window_s: window length in seconds.

    Returns:
        The run's non-warm-up rows with window indices.

    Raises:
        ResultsError: no such folder, no manifest, unreadable table, or no non-warm-up rows.
        ValueError: ``window_s`` is not positive.
    """
    path = Path(run_dir)
    manifest = load_manifest(path)
    try:
        table = read_table(path, "requests", columns=_COLUMNS)
    except KeyError as exc:
        raise ResultsError(f"{path}/requests.arrow lacks column {exc}") from None
    return run_from_table(table, manifest, path, window_s=window_s)


def _measured_start(manifest: dict[str, Any], table: pa.Table, keep: np.ndarray) -> int:
    """Start of the measured load in ns: load start plus warm-up (see the module docstring)."""
    intended = table.column("ts_intended_ns").to_numpy(zero_copy_only=False).astype(np.int64)
    start = manifest.get("load_start_ns") or int(intended.min())
    warmup = ((manifest.get("scenario") or {}).get("run") or {}).get("warmup")
    if warmup is not None:
        try:
            return int(start + parse_duration(warmup) * 1e9)
        except (TypeError, ValueError):
            pass
    if not keep.all():  # warm-up rows but no warm-up length: start at the first measured request
        return max(int(start), int(intended[keep].min()))
    return int(start)


def run_from_table(
    table: pa.Table, manifest: dict[str, Any], path: Path | str, *, window_s: float = DEFAULT_WINDOW_S
) -> RunData:
    """A :class:`RunData` from a ``requests`` table (stream or file schema) and its manifest.

    Raises:
        ResultsError: no non-warm-up rows.
        ValueError: ``window_s`` is not positive.
    """
    import pyarrow as pa

    if not window_s > 0:
        raise ValueError(f"window must be positive, got {window_s}")
    path = Path(path)
    keep = ~table.column("warmup").to_numpy(zero_copy_only=False).astype(bool)
    if not keep.any():
        raise ResultsError(f"{path} has no non-warm-up requests to compare")

    def col(name: str) -> np.ndarray:
        c = table.column(name)
        if pa.types.is_dictionary(c.type):
            c = c.cast(pa.string())
        return c.to_numpy(zero_copy_only=False)[keep]

    f64 = np.float64
    ts_end = col("ts_end_ns").astype(np.int64)
    t0 = _measured_start(manifest, table, keep)
    t_stop = int(manifest.get("load_end_ns") or int(ts_end.max()) + 1)
    if t_stop <= t0:
        t_stop = max(int(ts_end.max()) + 1, t0 + 1)
    window, lengths = _grid(ts_end, t0, t_stop, window_s)
    cols = {
        "latency": col("latency_ms").astype(f64),
        "cls": col("cls").astype(str),
        "err": np.isin(col("outcome").astype(str), ERROR_OUTCOMES).astype(f64),
        "escalated": col("escalated").astype(bool),
        "conflicts": col("conflicts").astype(f64),
        "fuse": col("fuse_ms").astype(f64),
        "llm_err": col("llm_ms").astype(f64) - col("llm_model_ms").astype(f64),
        "policy_err": col("policy_ms").astype(f64) - col("policy_model_ms").astype(f64),
        "ts_end": ts_end,
    }
    return RunData(str(manifest.get("run_id", path.name)), path, manifest, window, lengths, cols, t0, t_stop)


# --------------------------------------------------------------------------------------------------
# One metric of one run and scope: point value, per-window values, bootstrap replicates


@dataclass(frozen=True)
class Sample:
    """The data one metric is computed from, in one run and scope.

    ``kind`` is ``quantile`` (nearest-rank percentile ``q`` of ``values``), ``mean`` (mean of
    ``values``) or ``rate`` (``values`` are per-window counts, divided by window ``lengths``).
    ``window`` holds the window index of each value (for ``rate``: ``arange(K)``).
    """

    kind: str
    q: float
    values: np.ndarray
    window: np.ndarray
    lengths: np.ndarray

    def point(self) -> float:
        """The metric over the whole run (NaN without data)."""
        if self.kind == "rate":
            return float(self.values.sum() / self.lengths.sum())
        if self.values.size == 0:
            return math.nan
        if self.kind == "mean":
            return float(self.values.mean())
        return stats.percentile(self.values, self.q)

    def per_window(self) -> np.ndarray:
        """The metric in each window that has data (every window for ``rate``).

        A window's quantile is the nearest-rank percentile of its rows: its ``ceil(q/100 * n)``-th
        smallest value, as in :func:`raybench.judge.stats.percentile`.
        """
        k = self.lengths.size
        if self.kind == "rate":
            return self.values / self.lengths
        n = np.bincount(self.window, minlength=k)
        if self.kind == "mean":
            sums = np.bincount(self.window, weights=self.values, minlength=k)
            return sums[n > 0] / n[n > 0]
        ordered = self.values[np.lexsort((self.values, self.window))]
        starts = np.concatenate([[0], np.cumsum(n)[:-1]])[n > 0]
        counts = n[n > 0]
        rank = np.maximum(np.ceil(np.round(counts * self.q / 100.0, 9)), 1).astype(np.int64)
        return ordered[starts + rank - 1]

    def replicate(self, counts: np.ndarray, *, dense_cells: int = DENSE_CELLS) -> np.ndarray:
        """The metric over resampled windows: ``counts[b, k]`` copies of window ``k`` in replicate ``b``.

        For a quantile this is the nearest-rank percentile of the rows of the replicated windows
        (the same definition as :func:`raybench.judge.stats.percentile`, computed with integer weights):
        the smallest sorted row at which the cumulative weight reaches ``ceil(q/100 * total)``.
        It lies between the smallest and the largest per-window quantile (if every window has at
        least ``ceil(q/100 * n_k)`` of its rows at or below ``x``, any multiset of windows has at
        least ``ceil(q/100 * total)``; likewise below), so only the rows in that range are searched.
        Up to ``dense_cells`` weights (replicates x rows in range) it is found from the cumulative
        weights, beyond that by a binary search per replicate (memory stays O(rows + replicates)).
        """
        k = self.lengths.size
        if self.kind == "rate":
            return (counts @ self.values) / (counts @ self.lengths)
        if self.kind == "mean":
            sums = np.bincount(self.window, weights=self.values, minlength=k)
            n = np.bincount(self.window, minlength=k).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                return (counts @ sums) / (counts @ n)
        out = np.full(counts.shape[0], math.nan)
        if self.values.size == 0:
            return out
        order = np.argsort(self.values, kind="stable")
        vals, wins = self.values[order], self.window[order]
        total = counts @ np.bincount(wins, minlength=k)
        rank = np.maximum(np.ceil(np.round(total * self.q / 100.0, 9)), 1)
        per_window = self.per_window()
        i0 = int(np.searchsorted(vals, per_window.min(), side="left"))
        i1 = int(np.searchsorted(vals, per_window.max(), side="right"))
        before = counts @ np.bincount(wins[:i0], minlength=k)  # weight of the rows below the range
        if counts.shape[0] * (i1 - i0) <= dense_cells:
            # Integer weights: half the memory traffic of float64 in the cumulative sum.
            dtype = np.int32 if vals.size * max(k, int(counts.max(initial=0))) < 2**31 else np.int64
            cum: np.ndarray = np.cumsum(counts.astype(dtype)[:, wins[i0:i1]], axis=1, dtype=dtype)
            reached = cum >= (rank - before)[:, None]
            return np.where(total > 0, vals[i0 + np.argmax(reached, axis=1)], math.nan)
        # Positions (in sorted order) of each window's rows, window j shifted by j * (rows + 1) so
        # that one sorted array holds them all: the weight of the first i sorted rows in replicate b
        # is sum_j counts[b, j] * #(positions of window j below i).
        rows = vals.size
        shifted = np.sort(np.arange(rows) + wins * (rows + 1))
        edges = np.concatenate([[0], np.cumsum(np.bincount(wins, minlength=k))])
        offsets = np.arange(k) * (rows + 1)
        lo = np.full(counts.shape[0], i0, dtype=np.int64)
        hi = np.full(counts.shape[0], i1, dtype=np.int64)
        while (lo < hi).any():  # binary search of the smallest i whose weight reaches the rank
            mid = (lo + hi) // 2
            below = np.searchsorted(shifted, mid[:, None] + offsets) - edges[:-1]
            weight = (counts * below).sum(axis=1)
            active = lo < hi
            reached = weight >= rank
            hi = np.where(active & reached, mid, hi)
            lo = np.where(active & ~reached, mid + 1, lo)
        return np.where(total > 0, vals[np.clip(lo - 1, 0, vals.size - 1)], math.nan)


def sample(run: RunData, metric: str, scope: str = "all") -> Sample:
    """The :class:`Sample` of ``metric`` (a name in :data:`METRICS`) in ``run`` for ``scope``.

    Args:
        run: the loaded run.
        metric: metric name, e.g. ``p99_ms``.
        scope: ``all`` or ``cls=<class>``.

    Returns:
        The sample (possibly empty).

    Raises:
        ValueError: unknown metric or scope.
    """
    if metric not in _BY_NAME:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(_BY_NAME)}")
    c = run.cols
    if scope == "all":
        mask = np.ones(run.window.size, dtype=bool)
    elif scope.startswith("cls="):
        mask = c["cls"] == scope[4:]
    else:
        raise ValueError(f"unknown scope {scope!r}; use 'all' or 'cls=<class>'")
    k = run.lengths.size
    if metric == "throughput_rps":
        counts = np.bincount(run.window[mask], minlength=k).astype(np.float64)
        return Sample("rate", 0.0, counts, np.arange(k), run.lengths)
    if metric in _MEAN:
        source, kind, q = _MEAN[metric], "mean", 0.0
    else:
        (source, q), kind = _QUANTILE[metric], "quantile"
    values = c["latency"] if source == "escalation" else c[source]
    if source == "escalation":
        mask = mask & c["escalated"]
    mask = mask & ~np.isnan(values)
    return Sample(kind, q, values[mask], run.window[mask], run.lengths)


def metric_value(run: RunData, metric: str, scope: str = "all") -> float:
    """The value of ``metric`` over the whole run for ``scope`` (NaN without data)."""
    return sample(run, metric, scope).point()


def resolve_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``, accepting short forms (``p99`` for ``p99_ms``).

    Raises:
        UsageError: no such metric (the message lists them and suggests the nearest).
    """
    key = name.strip().lower()
    for candidate in (key, f"{key}_ms", f"{key}_rps"):
        if candidate in _BY_NAME:
            return _BY_NAME[candidate]
    short = [m.name.removesuffix("_ms").removesuffix("_rps") for m in METRICS]
    raise UsageError(f"--metric {name!r} is not a metric{nearest(key, short)}; use one of: {', '.join(short)}")
