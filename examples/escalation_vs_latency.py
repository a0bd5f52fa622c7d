"""What escalation to the expert pool costs: latency of escalated and not escalated requests per
class of a raybench run, computed three ways: pyarrow, polars and DuckDB (each prints the same
table; the script checks that they agree).

Usage::

    python examples/escalation_vs_latency.py RUN_DIR

Warm-up requests are left out. Per class and escalated (true/false): requests, mean, p50 and p99
latency (ms) and the mean expert-queue wait. Percentiles are nearest-rank, the method raybench
uses: the latency at rank ``ceil(q/100 * n)`` in sorted order (a measured value).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

COLUMNS = ["cls", "warmup", "escalated", "latency_ms", "expert_queue_ms"]


def rank(q: int, n: int) -> int:
    """1-based nearest rank of the q-th percentile among n values: ceil(q * n / 100)."""
    return (q * n + 99) // 100


def _rounded(rows: list[tuple]) -> list[tuple]:
    return [(c, e, n, *(None if v is None else round(v, 3) for v in rest)) for c, e, n, *rest in rows]


def with_pyarrow(run: Path) -> list[tuple]:
    t = feather.read_table(run / "requests.arrow", columns=COLUMNS)
    t = t.filter(pc.invert(t["warmup"]))
    t = t.set_column(t.schema.get_field_index("cls"), "cls", t["cls"].cast(pa.string()))
    t = t.sort_by([("cls", "ascending"), ("escalated", "ascending"), ("latency_ms", "ascending")])
    g = t.group_by(["cls", "escalated"], use_threads=False).aggregate(
        [("latency_ms", "list"), ("latency_ms", "mean"), ("expert_queue_ms", "mean")]
    )
    rows = []
    for cls, esc, lat, mean, queue in zip(
        *(g[c].to_pylist() for c in ("cls", "escalated", "latency_ms_list", "latency_ms_mean", "expert_queue_ms_mean")),
        strict=True,
    ):
        rows.append((cls, esc, len(lat), mean, lat[rank(50, len(lat)) - 1], lat[rank(99, len(lat)) - 1], queue))
    return _rounded(sorted(rows))


def with_polars(run: Path) -> list[tuple]:
    def nearest(q: int) -> pl.Expr:
        return pl.col("latency_ms").sort().get((pl.len() * q + 99) // 100 - 1)

    df = (
        pl.read_ipc(run / "requests.arrow", columns=COLUMNS)
        .filter(~pl.col("warmup"))
        .with_columns(pl.col("cls").cast(pl.String))
        .group_by("cls", "escalated")
        .agg(
            requests=pl.len(),
            mean_ms=pl.col("latency_ms").mean(),
            p50_ms=nearest(50),
            p99_ms=nearest(99),
            queue_mean_ms=pl.col("expert_queue_ms").mean(),
        )
        .sort("cls", "escalated")
    )
    return _rounded([tuple(r) for r in df.iter_rows()])


def with_duckdb(run: Path) -> list[tuple]:
    requests = feather.read_table(run / "requests.arrow", columns=COLUMNS)
    con = duckdb.connect()
    con.register("requests", requests)
    sql = """
        SELECT CAST(cls AS VARCHAR) AS cls, escalated, count(*) AS requests, avg(latency_ms) AS mean_ms,
               list_sort(list(latency_ms))[(50 * count(*) + 99) // 100] AS p50_ms,
               list_sort(list(latency_ms))[(99 * count(*) + 99) // 100] AS p99_ms,
               avg(expert_queue_ms) AS queue_mean_ms
        FROM requests WHERE NOT warmup
        GROUP BY ALL ORDER BY cls, escalated
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
    args = ap.parse_args()
    results = {"pyarrow": with_pyarrow(args.run), "polars": with_polars(args.run), "duckdb": with_duckdb(args.run)}
    print("latency (ms) of escalated vs not escalated requests per class (non-warm-up, nearest-rank)")
    header = ("cls", "escalated", "requests", "mean_ms", "p50_ms", "p99_ms", "queue_mean_ms")
    for name, rows in results.items():
        show(name, header, rows)
    if results["pyarrow"] == results["polars"] == results["duckdb"]:
        print(f"pyarrow, polars and DuckDB agree ({len(results['pyarrow'])} rows)")
        return 0
    print("the three results differ", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
