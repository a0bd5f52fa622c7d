"""The slowest agents of a raybench run by mean latency, computed three ways: pyarrow, polars and
DuckDB (each prints the same table; the script checks that they agree).

Usage::

    python examples/slowest_agents.py RUN_DIR [--top N]

Warm-up requests are left out. Per agent: requests, mean and max latency (ms), how many of its
requests were escalated to the expert pool, and lease conflicts. Ties are broken by agent id.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.compute as pc
import pyarrow.feather as feather

COLUMNS = ["agent_id", "warmup", "latency_ms", "escalated", "conflicts"]


def _rounded(rows: list[tuple]) -> list[tuple]:
    # Means are sums in different orders in each library: compare them to the microsecond.
    return [(a, n, round(mean, 3), round(mx, 3), e, c) for a, n, mean, mx, e, c in rows]


def with_pyarrow(run: Path, top: int) -> list[tuple]:
    t = feather.read_table(run / "requests.arrow", columns=COLUMNS)
    t = t.filter(pc.invert(t["warmup"]))
    t = t.set_column(t.schema.get_field_index("escalated"), "escalated", t["escalated"].cast("int64"))
    g = t.group_by("agent_id").aggregate(
        [("latency_ms", "count"), ("latency_ms", "mean"), ("latency_ms", "max"), ("escalated", "sum"),
         ("conflicts", "sum")]
    )  # fmt: skip
    g = g.sort_by([("latency_ms_mean", "descending"), ("agent_id", "ascending")]).slice(0, top)
    names = ["agent_id", "latency_ms_count", "latency_ms_mean", "latency_ms_max", "escalated_sum", "conflicts_sum"]
    return _rounded(list(zip(*(g[c].to_pylist() for c in names), strict=True)))


def with_polars(run: Path, top: int) -> list[tuple]:
    df = (
        pl.read_ipc(run / "requests.arrow", columns=COLUMNS)
        .filter(~pl.col("warmup"))
        .group_by("agent_id")
        .agg(
            requests=pl.len(),
            mean_ms=pl.col("latency_ms").mean(),
            max_ms=pl.col("latency_ms").max(),
            escalated=pl.col("escalated").sum(),
            conflicts=pl.col("conflicts").sum(),
        )
        .sort(["mean_ms", "agent_id"], descending=[True, False])
        .head(top)
    )
    return _rounded([tuple(r) for r in df.iter_rows()])


def with_duckdb(run: Path, top: int) -> list[tuple]:
    requests = feather.read_table(run / "requests.arrow", columns=COLUMNS)
    con = duckdb.connect()
    con.register("requests", requests)
    sql = f"""
        SELECT agent_id, count(*) AS requests, avg(latency_ms) AS mean_ms, max(latency_ms) AS max_ms,
               count(*) FILTER (WHERE escalated) AS escalated, sum(conflicts) AS conflicts
        FROM requests WHERE NOT warmup
        GROUP BY agent_id ORDER BY mean_ms DESC, agent_id LIMIT {int(top)}
    """
    return _rounded([tuple(r) for r in con.sql(sql).fetchall()])


def show(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    """Print rows as a plain aligned table."""
    cells = [header, *[tuple(str(v) for v in r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"-- {title}")
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a raybench run folder")
    ap.add_argument("--top", type=int, default=10, help="how many agents (default 10)")
    args = ap.parse_args()
    results = {
        "pyarrow": with_pyarrow(args.run, args.top),
        "polars": with_polars(args.run, args.top),
        "duckdb": with_duckdb(args.run, args.top),
    }
    print(f"the {args.top} slowest agents by mean latency (non-warm-up requests)")
    header = ("agent_id", "requests", "mean_ms", "max_ms", "escalated", "conflicts")
    for name, rows in results.items():
        show(name, header, rows)
    if results["pyarrow"] == results["polars"] == results["duckdb"]:
        print(f"pyarrow, polars and DuckDB agree ({len(results['pyarrow'])} rows)")
        return 0
    print("the three results differ", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
