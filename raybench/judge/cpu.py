"""CPU per request by process role, from a run's resource samples (pure: numpy on tables).

Each ``resources`` row holds ``cpu_percent``: the process's CPU since its previous sample, in % of
one core. The CPU time a sample stands for is therefore ``cpu_percent / 100 × (ts − previous ts)``,
and a role's CPU over a span is the sum of its processes' samples taken in that span (each
process's first sample has no previous one and counts nothing). Divided by the requests completed
in the same span, that is the role's µs of CPU per request: where the harness's and the simulated
system's CPU goes (``bench/bench_capacity.py``, docs/performance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


def cpu_seconds_by_role(resources: pa.Table, start_ns: int, end_ns: int) -> dict[str, float]:
    """CPU seconds each role used in ``(start_ns, end_ns]``, summed over its processes."""
    if resources.num_rows == 0:
        return {}
    roles = np.asarray(resources.column("role").cast("string").to_pylist(), dtype=object)
    nodes = np.asarray(resources.column("node_id").cast("string").to_pylist(), dtype=object)
    pids = resources.column("pid").to_numpy()
    ts = resources.column("ts_ns").to_numpy().astype(np.int64)
    cpu = np.asarray(resources.column("cpu_percent").to_numpy(zero_copy_only=False), dtype=np.float64)
    out: dict[str, float] = {}
    keys = np.char.add(np.char.add(nodes.astype(str), ":"), pids.astype(str))
    for key in np.unique(keys):
        m = keys == key
        order = np.argsort(ts[m], kind="stable")
        t, c = ts[m][order], cpu[m][order]
        dt = np.diff(t) / 1e9
        inside = (t[1:] > start_ns) & (t[1:] <= end_ns)
        used = float(np.nansum(c[1:][inside] / 100.0 * dt[inside]))
        role = str(roles[m][0])
        out[role] = out.get(role, 0.0) + used
    return out


def cpu_per_request(resources: pa.Table, requests_done: int, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Per role: CPU seconds in ``(start_ns, end_ns]``, cores on average, and µs per request for
    ``requests_done`` requests completed in that span (None without requests); sorted by role,
    with a ``total`` row last."""
    span_s = (end_ns - start_ns) / 1e9
    used = cpu_seconds_by_role(resources, start_ns, end_ns)
    rows = []
    for role, seconds in [*sorted(used.items()), ("total", sum(used.values()))]:
        rows.append(
            {
                "role": role,
                "cpu_s": seconds,
                "cores": seconds / span_s if span_s > 0 else None,
                "us_per_request": seconds * 1e6 / requests_done if requests_done > 0 else None,
            }
        )
    return rows
