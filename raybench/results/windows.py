"""Per-window statistics of a run, computed exactly from its request rows.

Window ``k`` of length ``W`` holds the requests whose ``ts_end_ns`` (completion) falls in
``[t0 + kW, t0 + (k+1)W)``, where ``t0`` is the load start; the last window ends at the load's end,
and requests that completed after it (the drain) are in no window, as in the SLA's windows.
Warm-up requests are left out (as in every SLA figure), windows that lie wholly in the warm-up too,
and a window's throughput divides its count by its measured part: the time in it after the warm-up
and before the load's end (window 0 of a 3 s warm-up and 5 s windows: 2 s). Scopes: ``all``,
``cls=<class>``, ``region=<region>``, ``node=<node id>``.

:class:`LoadSpan` is the time the load ran: from ``t0`` to the planned end, or to the moment it
was stopped early (Ctrl-C, SIGTERM, an SLA abort: the manifest's ``load_stopped_ns``). Every rate
divides by the measured part of it (after the warm-up), never by the planned duration of a run that
did not run that long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.judge.stats import percentiles

if TYPE_CHECKING:
    import pyarrow as pa

_PS = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class LoadSpan:
    """When a run's load ran (UTC ns): ``[start_ns, end_ns)``, the first ``warmup_s`` of it warm-up."""

    start_ns: int
    end_ns: int
    planned_end_ns: int
    warmup_s: float

    @property
    def stopped_early(self) -> bool:
        """The load stopped before its planned end."""
        return self.end_ns < self.planned_end_ns

    @property
    def ran_s(self) -> float:
        """Seconds of load that ran, warm-up included."""
        return max(self.end_ns - self.start_ns, 0) / 1e9

    @property
    def planned_s(self) -> float:
        """Seconds of load planned, warm-up included."""
        return max(self.planned_end_ns - self.start_ns, 0) / 1e9

    @property
    def measured_s(self) -> float:
        """Seconds after the warm-up that ran: the divisor of every rate (at least 1 ns)."""
        return max(self.ran_s - self.warmup_s, 1e-9)

    def windows(self, window_s: float) -> int:
        """How many windows of ``window_s`` the load that ran spans (at least 1)."""
        return max(1, math.ceil(round((self.end_ns - self.start_ns) / (window_s * 1e9), 9)))


def load_span(manifest: dict[str, Any], *, duration_s: float, warmup_s: float, now_ns: int = 0) -> LoadSpan:
    """The :class:`LoadSpan` of a run from its manifest (or ``started.json``).

    ``load_start_ns`` is the load's t0 (``now_ns`` when the run stopped before its load started);
    the planned end is ``load_end_ns`` (else t0 + ``duration_s``); ``load_stopped_ns``, when the
    load was stopped early, ends it there.
    """
    start = manifest.get("load_start_ns") or now_ns
    planned = manifest.get("load_end_ns") or start + int(duration_s * 1e9)
    stopped = manifest.get("load_stopped_ns")
    end = min(planned, max(stopped, start)) if isinstance(stopped, int) else planned
    return LoadSpan(int(start), int(end), int(planned), warmup_s)


def window_ns(window_s: float) -> int:
    """A window length in whole nanoseconds (rounded, at least 1): every window grid's ``W``.

    Raises:
        ValueError: ``window_s`` is not a positive number.
    """
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError(f"window must be > 0 s, not {window_s!r}")
    return max(1, round(float(window_s) * 1e9))


def window_index(ts_ns: Any, t0_ns: int, w_ns: int) -> Any:
    """The window holding each time: ``floor((ts - t0) / W)`` for windows of ``w_ns``
    (:func:`window_ns`) from ``t0_ns``; negative before ``t0_ns``. An int for an int, else a numpy
    int64 array."""
    if isinstance(ts_ns, (int, np.integer)):
        return (int(ts_ns) - int(t0_ns)) // w_ns
    return (np.asarray(ts_ns, dtype=np.int64) - int(t0_ns)) // w_ns


def _row(
    run_id: str, bounds: tuple[int, int], measured_s: float, scope: str, lat: np.ndarray, bad: np.ndarray,
    esc: np.ndarray,
) -> dict:  # fmt: skip
    n = int(lat.size)
    ps = percentiles(lat, _PS) if n else dict.fromkeys(_PS)
    return {
        "run_id": run_id,
        "window_start_ns": bounds[0],
        "window_end_ns": bounds[1],
        "scope": scope,
        "count": n,
        "throughput": n / measured_s,
        "mean_ms": float(lat.mean()) if n else None,
        "p50_ms": ps[50.0],
        "p90_ms": ps[90.0],
        "p95_ms": ps[95.0],
        "p99_ms": ps[99.0],
        "p999_ms": ps[99.9],
        "max_ms": float(lat.max()) if n else None,
        "error_rate": float(bad.mean()) if n else None,
        "escalations": int(esc.sum()),
    }


def compute(
    requests: pa.Table,
    run_id: str,
    t0_ns: int,
    window_s: float,
    n_windows: int,
    *,
    warmup_s: float = 0.0,
    end_ns: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``windows.arrow``: one per window (0..n_windows-1) and scope, including empty
    windows of the ``all`` scope; windows wholly in the first ``warmup_s`` are left out, the last
    ends at ``end_ns`` (the load's end; default the last window's end), and rows that ended at or
    after it belong to no window."""
    import pyarrow.compute as pc

    wn = window_ns(window_s)
    stop = t0_ns + n_windows * wn if end_ns is None else min(int(end_ns), t0_ns + n_windows * wn)
    measured_from = t0_ns + round(warmup_s * 1e9)
    req = requests.filter(pc.invert(requests.column("warmup")))
    ends = req.column("ts_end_ns").to_numpy()
    k = np.where(ends < stop, window_index(ends, t0_ns, wn), -1)
    lat = req.column("latency_ms").to_numpy()
    outcome = np.asarray(req.column("outcome").cast("string").to_pylist(), dtype=object)
    bad = (outcome == "error") | (outcome == "timeout")
    esc = req.column("escalated").to_numpy(zero_copy_only=False)
    scopes: list[tuple[str, np.ndarray]] = [("all", np.ones(len(lat), dtype=bool))]
    for col in ("cls", "region", "node_id"):
        values = np.asarray(req.column(col).cast("string").to_pylist(), dtype=object)
        name = "node" if col == "node_id" else col
        for v in sorted(set(values[k >= 0].tolist())):
            scopes.append((f"{name}={v}", values == v))
    rows = []
    for w in range(n_windows):
        start, end = t0_ns + w * wn, min(t0_ns + (w + 1) * wn, stop)
        measured_s = (end - max(start, measured_from)) / 1e9
        if measured_s <= 0:  # wholly in the warm-up (or past the load's end): no measured time
            continue
        in_w = k == w
        for scope, mask in scopes:
            m = in_w & mask
            if scope != "all" and not m.any():
                continue
            rows.append(_row(run_id, (start, end), measured_s, scope, lat[m], bad[m], esc[m]))
    return rows
