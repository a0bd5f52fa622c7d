"""Per-operation comparison of FUSE against native, computed from ``fuse_ops`` rows.

Method: latency percentiles are exact nearest-rank percentiles (:mod:`raybench.judge.stats`) over the
*successful* operations of one (op, target); failed operations are counted in ``errors`` (their
latency is the time to fail, which would flatter the figures). Throughput is successful operations
divided by the span of that target's rows (first start to last end), so it is what the workers
achieved together. The ratio is FUSE divided by native for the same op, on p50 and p99.

Formatting returns lines; only the CLI prints.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from raybench.judge.stats import percentiles
from raybench.units import format_ms

if TYPE_CHECKING:
    import pyarrow as pa

#: The pseudo-op that summarises every operation of a target.
ALL = "all"


def _span_s(ts_ns: Any, lat_us: Any) -> float:
    if len(ts_ns) == 0:
        return math.nan
    end = (ts_ns + (lat_us * 1000.0).astype("int64")).max()
    return float(end - ts_ns.min()) / 1e9


def compare_table(table: pa.Table) -> list[dict[str, Any]]:
    """One dict per (op, target), ops in the order of :data:`fuse_bench.load.OPS`, then ``all``.

    Keys: op, target, count (successful), errors, p50_ms, p99_ms, p999_ms, max_ms, ops_per_s,
    ratio_p50 and ratio_p99 (FUSE / native; None on native rows or when either side is missing).
    Raises ValueError when the table lacks a ``fuse_ops`` column.
    """
    import numpy as np

    from fuse_bench.load import OPS

    for col in ("op", "target", "ts_ns", "latency_us", "ok"):
        if col not in table.column_names:
            raise ValueError(f"not a fuse_ops table: no column {col!r}")
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


def format_latency(ms: float) -> str:
    """Sub-millisecond latencies in µs (3 significant figures), longer ones as :func:`format_ms`."""
    if not math.isnan(ms) and ms < 1.0:
        return f"{ms * 1000:.3g}µs"
    return format_ms(ms)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def format_compare(rows: list[dict[str, Any]]) -> list[str]:
    """The comparison as aligned text lines (header first)."""
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
