"""Finalize: a run's ``requests`` stream rewritten into its ``.arrow`` file, with the streamed
batches gathered into large ones (``store.CHUNK_ROWS``, what runs do) against one file batch per
streamed batch (before), side by side on the same stream.

    .venv/bin/python -m bench.bench_finalize [--rows 1000000] [--batches 250,5000,50000] [--repeat 3]

A run's stream holds one record batch per host flush: rows per second of the run divided by its
hosts, times the flush interval (1,000 agents at 1 req/s, 2 hosts, 500 ms: ~250 rows). The rows
are realistic request rows (``bench_recording._values``, every row different), packed and made
into batches the way hosts and the aggregator do. Each batch size gets its own stream; the two
ways alternate on it ``--repeat`` times and the best of each is reported (rows per second of
wall time, CPU time per row, file bytes per row).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_recording import _host_packed, _values


def _stream(run_dir: Path, rows: int, batch: int) -> None:
    from raybench.results import store
    from raybench.results.recording import RequestRows

    rng = random.Random(batch)
    buf = RequestRows("bench", 7, "node-1", ["us-east", "eu-west"], ["safe", "risky", "complex"])
    app = store.StreamAppender(run_dir, "requests")
    for start in range(0, rows, batch):
        _host_packed([_values(i, rng) for i in range(start, min(rows, start + batch))], buf)
        app.write(buf.take())
    app.close()


def _finalize(run_dir: Path, chunk_rows: int) -> tuple[float, float, int]:
    from raybench.results import store

    t0, c0 = time.perf_counter(), time.process_time()
    store.finalize_stream(run_dir, "requests", chunk_rows=chunk_rows)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = (run_dir / "requests.arrow").stat().st_size
    (run_dir / "requests.arrow").unlink()
    return wall, cpu, size


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from raybench.results.store import CHUNK_ROWS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batches", default="250,5000,50000", help="comma-separated rows per streamed batch")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args(argv)
    out: dict[str, Any] = {"rows": args.rows, "chunk_rows": CHUNK_ROWS, "runs": []}
    for batch in (int(b) for b in args.batches.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp)
            _stream(run_dir, args.rows, batch)
            best: dict[str, tuple[float, float, int]] = {}
            for i in range(args.repeat):
                for name, chunk in (("chunked", CHUNK_ROWS), ("as streamed", 1))[:: 1 if i % 2 == 0 else -1]:
                    result = _finalize(run_dir, chunk)
                    if name not in best or result[0] < best[name][0]:
                        best[name] = result
        row = {"batch_rows": batch}
        for name, (wall, cpu, size) in best.items():
            row[name] = {"rows_per_s": args.rows / wall, "cpu_us_per_row": cpu / args.rows * 1e6,
                         "bytes_per_row": size / args.rows}  # fmt: skip
        out["runs"].append(row)
        a, b = row["chunked"], row["as streamed"]
        print(
            f"finalize {args.rows:,} rows streamed in {batch:,}-row batches: chunked {a['rows_per_s']:,.0f} rows/s "
            f"({a['cpu_us_per_row']:.2f} µs CPU/row, {a['bytes_per_row']:.1f} B/row), as streamed "
            f"{b['rows_per_s']:,.0f} rows/s ({b['cpu_us_per_row']:.2f} µs, {b['bytes_per_row']:.1f} B/row): "
            f"×{a['rows_per_s'] / b['rows_per_s']:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
