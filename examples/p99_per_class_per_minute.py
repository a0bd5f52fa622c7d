"""p99 latency per request class per minute of a raybench run, computed three ways: pyarrow,
polars and DuckDB (each prints the same table; the script checks that they agree).

Usage::

    python examples/p99_per_class_per_minute.py RUN_DIR [--bucket SECONDS]

* Minutes count from the load start (``load_start_ns`` in manifest.json); a request belongs to the
  minute in which it ended (as windows.arrow does). ``--bucket 5`` gives 5-second buckets instead.
* Warm-up requests are left out, as in every raybench figure.
* p99 is the nearest-rank percentile, the method raybench uses: the latency of the request at rank
  ``ceil(0.99 * n)`` in sorted order (a value that was measured; no interpolation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

Q = 99  # percentile


def rank(n: int) -> int:
    """1-based nearest rank of the Q-th percentile among n values: ceil(Q * n / 100)."""
    return (Q * n + 99) // 100


def with_pyarrow(run: Path, t0: int, bucket_ns: int) -> list[tuple]:
    t = feather.read_table(run / "requests.arrow", columns=["cls", "warmup", "ts_end_ns", "latency_ms"])
    t = t.filter(pc.invert(t["warmup"]))
    t = t.append_column("minute", pc.divide(pc.subtract(t["ts_end_ns"], t0), bucket_ns))
    t = t.set_column(t.schema.get_field_index("cls"), "cls", t["cls"].cast(pa.string()))
    t = t.sort_by([("minute", "ascending"), ("cls", "ascending"), ("latency_ms", "ascending")])
    g = t.group_by(["minute", "cls"], use_threads=False).aggregate([("latency_ms", "list")])
    rows = []
    for minute, cls, lat in zip(*(g[c].to_pylist() for c in ("minute", "cls", "latency_ms_list")), strict=True):
        rows.append((minute, cls, len(lat), round(lat[rank(len(lat)) - 1], 3)))
    return sorted(rows)


def with_polars(run: Path, t0: int, bucket_ns: int) -> list[tuple]:
    df = (
        pl.read_ipc(run / "requests.arrow")
        .filter(~pl.col("warmup"))
        .with_columns(minute=(pl.col("ts_end_ns") - t0) // bucket_ns, cls=pl.col("cls").cast(pl.String))
        .group_by("minute", "cls")
        .agg(
            requests=pl.len(),
            p99_ms=pl.col("latency_ms").sort().get((pl.len() * Q + 99) // 100 - 1).round(3),
        )
        .sort("minute", "cls")
    )
    return [tuple(r) for r in df.iter_rows()]


def with_duckdb(run: Path, t0: int, bucket_ns: int) -> list[tuple]:
    requests = feather.read_table(run / "requests.arrow")  # DuckDB scans the Arrow table in place
    con = duckdb.connect()
    con.register("requests", requests)
    sql = f"""
        SELECT (ts_end_ns - {t0}) // {bucket_ns} AS minute, CAST(cls AS VARCHAR) AS cls,
               count(*) AS requests,
               round(list_sort(list(latency_ms))[({Q} * count(*) + 99) // 100], 3) AS p99_ms
        FROM requests WHERE NOT warmup
        GROUP BY ALL ORDER BY minute, cls
    """
    return [tuple(r) for r in con.sql(sql).fetchall()]


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
    ap.add_argument("--bucket", type=float, default=60.0, help="bucket length in seconds (default 60)")
    args = ap.parse_args()
    t0 = int(json.loads((args.run / "manifest.json").read_text())["load_start_ns"])
    bucket_ns = int(args.bucket * 1e9)
    results = {
        "pyarrow": with_pyarrow(args.run, t0, bucket_ns),
        "polars": with_polars(args.run, t0, bucket_ns),
        "duckdb": with_duckdb(args.run, t0, bucket_ns),
    }
    print(f"p{Q} latency (ms, nearest-rank) per class per {args.bucket:g}s bucket since load start")
    for name, rows in results.items():
        show(name, ("bucket", "cls", "requests", "p99_ms"), rows)
    if results["pyarrow"] == results["polars"] == results["duckdb"]:
        print(f"pyarrow, polars and DuckDB agree ({len(results['pyarrow'])} rows)")
        return 0
    print("the three results differ", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
