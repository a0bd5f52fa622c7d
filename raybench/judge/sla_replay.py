"""A finished run's SLA verdict, offline: its rows cut into windows and replayed through the monitor.

Window ``k`` of length ``W`` covers the rows with ``ts_end_ns`` in ``[t0 + k*W, t0 + (k+1)*W)``,
where ``t0`` is the run's load start (manifest ``load_start_ns``); see :func:`split_windows`.
:func:`evaluate_run` (``raybench sla``) feeds them, in order, to the same
:class:`~raybench.judge.sla.SlaMonitor` the live run uses, so both give the same verdicts for the
same rows and settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raybench.judge.sla import SlaMonitor, Violation
from raybench.judge.thresholds import Threshold
from raybench.results.windows import window_index, window_ns

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Window:
    """Rows of one window: ``requests`` are those with ``ts_end_ns`` in ``[start_ns, end_ns)``."""

    k: int
    start_ns: int
    end_ns: int
    requests: pa.Table


def split_windows(requests: pa.Table, t0_ns: int, window_s: float, *, end_ns: int | None = None) -> list[Window]:
    """Cut ``requests`` into consecutive windows of ``window_s`` from ``t0_ns`` by ``ts_end_ns``.

    Every window from 0 up to the last one holding a row is returned, empty ones included (no
    completions is a measurement). With ``end_ns``, windows stop there: the last one is cut short
    at ``end_ns`` and rows ending at or after it belong to no window. Rows ending before ``t0_ns``
    belong to no window.
    """
    import numpy as np
    import pyarrow as pa

    w_ns = window_ns(window_s)
    ts = np.asarray(requests.column("ts_end_ns").to_numpy(), dtype=np.int64)
    if end_ns is None:
        if ts.size == 0 or int(ts.max()) < t0_ns:
            return []
        n = window_index(int(ts.max()), t0_ns, w_ns) + 1
        stop = t0_ns + n * w_ns
    else:
        if end_ns <= t0_ns:
            return []
        n = window_index(end_ns - 1, t0_ns, w_ns) + 1  # up to the window of end_ns's last nanosecond
        stop = end_ns
    idx = window_index(ts, t0_ns, w_ns)
    idx[(ts < t0_ns) | (ts >= stop)] = -1  # in no window
    out = []
    for k in range(n):
        start = t0_ns + k * w_ns
        rows = requests.filter(pa.array(idx == k))
        out.append(Window(k, start, min(start + w_ns, stop), rows))
    return out


def evaluate_run(
    thresholds: Sequence[Threshold],
    requests: pa.Table,
    resources: pa.Table | None,
    *,
    t0_ns: int,
    window_s: float,
    end_ns: int | None = None,
    initial_delay_s: float = 0.0,
    grace_windows: int = 1,
    counting: str = "consecutive",
    settle_windows: int = 1,
    run_id: str = "",
    stages_off: Mapping[str, str] | None = None,
    warmup_s: float = 0.0,
) -> tuple[list[dict[str, Any]], list[Violation]]:
    """Replay a finished run through :class:`SlaMonitor` window by window (the offline verdict).

    Returns the ``sla.arrow`` rows and every violation, in the order the live monitor would have
    declared them.
    """
    import pyarrow.compute as pc

    mon = SlaMonitor(
        thresholds,
        t0_ns=t0_ns,
        window_s=window_s,
        initial_delay_s=initial_delay_s,
        grace_windows=grace_windows,
        counting=counting,
        settle_windows=settle_windows,
        run_id=run_id,
        stages_off=stages_off,
        warmup_s=warmup_s,
    )
    violations: list[Violation] = []
    for w in split_windows(requests, t0_ns, window_s, end_ns=end_ns):
        res = None
        if resources is not None and resources.num_rows:
            ts = resources.column("ts_ns")
            res = resources.filter(pc.and_(pc.greater_equal(ts, w.start_ns), pc.less(ts, w.end_ns)))
        violations.extend(mon.observe_window(w.k, w.start_ns, w.end_ns, w.requests, res))
    rows = mon.finalize(requests, resources)
    violations.extend(mon.late_violations)
    return rows, violations
