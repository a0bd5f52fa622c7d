"""Per-operation statistics of a workload's rows, FUSE against native.

Method: latency percentiles are exact nearest-rank percentiles (:func:`percentiles`) over the
*successful* operations of one (op, target); failed operations are counted in ``errors`` (their
latency is the time to fail, which would flatter the figures). Throughput is successful operations
divided by the span of that target's rows (first start to last end), so it is what the workers
achieved together. The ratio is FUSE divided by native for the same op, on p50 and p99.

Formatting returns lines; only the caller prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fuse_bench.workload import OPS

if TYPE_CHECKING:
    import pyarrow as pa

#: The pseudo-op that summarises every operation of a target.
ALL = "all"


def _span_s(ts_ns: Any, lat_us: Any) -> float:
    if len(ts_ns) == 0:
        return math.nan
    end = (ts_ns + (lat_us * 1000.0).astype("int64")).max()
    return float(end - ts_ns.min()) / 1e9


def percentiles(values: Any, qs: Sequence[float]) -> dict[float, float]:
    """Exact nearest-rank percentiles (the smallest value with at least ``q`` % of the values at or
    below it: always a measured value); NaN for each when ``values`` is empty."""
    import numpy as np

    for q in qs:
        if not 0.0 < q <= 100.0:
            raise ValueError(f"percentile {q} is outside (0, 100]")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {q: math.nan for q in qs}
    out = np.percentile(arr, list(qs), method="inverted_cdf")
    return {q: float(v) for q, v in zip(qs, out, strict=True)}


def op_stats(table: pa.Table) -> list[dict[str, Any]]:
    """One dict per (op, target), ops in the order of :data:`fuse_bench.workload.OPS`, then ``all``.

    ``table``: rows of :func:`fuse_bench.load.run_workload` (string columns may be
    dictionary-encoded). Keys: op, target, count (successful), errors, p50_ms, p99_ms, p999_ms,
    max_ms, ops_per_s, ratio_p50 and ratio_p99 (FUSE / native; None on native rows or when either
    side is missing). Raises ValueError when the table lacks one of the columns it needs.
    """
    import numpy as np

    for col in ("op", "target", "ts_ns", "latency_us", "ok"):
        if col not in table.column_names:
            raise ValueError(f"not a table of file operations: no column {col!r}")
    op = np.asarray(table.column("op").cast("string").to_pylist(), dtype=object)
    target = np.asarray(table.column("target").cast("string").to_pylist(), dtype=object)
    ts = table.column("ts_ns").to_numpy()
    lat = table.column("latency_us").to_numpy()
    ok = table.column("ok").to_numpy(zero_copy_only=False)

    out: list[dict[str, Any]] = []
    index: dict[tuple[str, str], dict[str, Any]] = {}
    targets = [t for t in ("fuse", "native") if (target == t).any()]
    spans = {t: _span_s(ts[target == t], lat[target == t]) for t in targets}
    present = [o for o in OPS if (op == o).any()] + [ALL]
    for o in present:
        for t in targets:
            sel = target == t if o == ALL else (target == t) & (op == o)
            if not sel.any():
                continue
            good = lat[sel & ok] / 1000.0
            ps = percentiles(good, (50.0, 99.0, 99.9))
            row = {
                "op": o,
                "target": t,
                "count": int(good.size),
                "errors": int((sel & ~ok).sum()),
                "p50_ms": ps[50.0],
                "p99_ms": ps[99.0],
                "p999_ms": ps[99.9],
                "max_ms": float(good.max()) if good.size else math.nan,
                "ops_per_s": good.size / spans[t] if spans[t] > 0 else math.nan,
                "ratio_p50": None,
                "ratio_p99": None,
            }
            index[(o, t)] = row
            out.append(row)
    for (o, t), row in index.items():
        base = index.get((o, "native"))
        if t == "fuse" and base is not None:
            for key, src in (("ratio_p50", "p50_ms"), ("ratio_p99", "p99_ms")):
                if base[src] > 0 and not math.isnan(row[src]):
                    row[key] = row[src] / base[src]
    return out


def format_latency(ms: float | None) -> str:
    """A latency for a table, 3 significant figures: µs below 1 ms, then ms, then s; '-' for missing."""
    if ms is None or math.isnan(ms):
        return "-"
    if ms < 1.0:
        return f"{ms * 1000:.3g}µs"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    if ms >= 100:
        return f"{ms:.0f}ms"
    if ms >= 10:
        return f"{ms:.1f}ms"
    return f"{ms:.2f}ms"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def format_op_stats(rows: list[dict[str, Any]]) -> list[str]:
    """:func:`op_stats` rows as aligned text lines (header first)."""
    header = ("op", "target", "ok", "err", "p50", "p99", "p99.9", "max", "ops/s", "p50 x", "p99 x")
    body = [
        (
            r["op"],
            r["target"],
            str(r["count"]),
            str(r["errors"]),
            format_latency(r["p50_ms"]),
            format_latency(r["p99_ms"]),
            format_latency(r["p999_ms"]),
            format_latency(r["max_ms"]),
            "-" if math.isnan(r["ops_per_s"]) else f"{r['ops_per_s']:.0f}",
            _ratio(r["ratio_p50"]),
            _ratio(r["ratio_p99"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines
