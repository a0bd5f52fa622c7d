"""Synthetic requests/resources tables with the exact result schema, for known-value tests only.

Nothing here is a measurement: tests give the latencies and times they want and check the
evaluator's answer against values worked out by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from raybench.schema import schema

T0_NS = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000_000_000


def requests(
    latencies_ms: Sequence[float],
    *,
    ends_ns: Sequence[int] | None = None,
    intended_ns: Sequence[int] | None = None,
    cls: Sequence[str] | str = "safe",
    escalated: Sequence[bool] | bool = False,
    warmup: Sequence[bool] | bool = False,
    outcome: Sequence[str] | str = "ok",
    node: Sequence[str] | str = "node-a",
    region: Sequence[str] | str = "eu",
    stages: dict[str, Sequence[float | None]] | None = None,
    run_id: str = "synthetic",
) -> pa.Table:
    """A requests table (stream schema, plain strings) with one row per latency.

    Times: by default request i ends at ``T0_NS + i ms + 1 ns``; its intended start is its end minus
    its latency (or ``intended_ns``). Scalar column arguments apply to every row. ``stages`` maps a
    stage name (``fuse``) to its ``fuse_ms`` values (None where it did not run).
    """
    n = len(latencies_ms)

    def col(v: Any) -> list[Any]:
        if isinstance(v, (str, bool)):
            return [v] * n
        v = list(v)
        assert len(v) == n, f"column of length {len(v)} for {n} rows"
        return v

    lat = [float(x) for x in latencies_ms]
    ends = list(ends_ns) if ends_ns is not None else [T0_NS + i * MS + 1 for i in range(n)]
    intended = (
        list(intended_ns) if intended_ns is not None else [e - round(la * MS) for e, la in zip(ends, lat, strict=True)]
    )
    sch = schema("requests", final=False)
    data: dict[str, list[Any]] = {name: [None] * n for name in sch.names}
    data.update(
        run_id=[run_id] * n,
        request_id=list(range(n)),
        agent_id=[i % 7 for i in range(n)],
        host_id=[0] * n,
        node_id=col(node),
        region=col(region),
        cls=col(cls),
        warmup=col(warmup),
        ts_intended_ns=intended,
        ts_start_ns=intended,
        ts_end_ns=ends,
        latency_ms=lat,
        service_ms=lat,
        lag_ms=[0.0] * n,
        outcome=col(outcome),
        escalated=col(escalated),
        cache_hit=[False] * n,
        conflicts=[0] * n,
    )
    for stage, values in (stages or {}).items():
        data[f"{stage}_ms"] = col(values)
    return pa.Table.from_pydict(data, schema=sch)


def resources(samples: Sequence[tuple[str, int, int, int]], *, role: str = "host") -> pa.Table:
    """A resources table from ``(node_id, pid, ts_ns, rss_bytes)`` samples."""
    sch = schema("resources", final=False)
    n = len(samples)
    data = {
        "run_id": ["synthetic"] * n,
        "ts_ns": [s[2] for s in samples],
        "node_id": [s[0] for s in samples],
        "role": [role] * n,
        "pid": [s[1] for s in samples],
        "cpu_percent": [0.0] * n,
        "rss_bytes": [s[3] for s in samples],
        "threads": [1] * n,
        "open_fds": [3] * n,
        "gc_gen0": [0] * n,
        "gc_gen1": [0] * n,
        "gc_gen2": [0] * n,
    }
    return pa.Table.from_pydict(data, schema=sch)
