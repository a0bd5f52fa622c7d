"""Recording through a run's own pipeline: request rows per second from agent hosts to the
finalized ``requests.arrow``, with hosts and the aggregator as Ray actors on this machine.

    .venv/bin/python -m bench.bench_pipeline [--hosts 1,2] [--rows 2000000] [--flush 500ms | --batch 5000]

Each "host" actor records realistic request rows as fast as it can, the way an agent host does
(a tuple of measured values per request into ``RequestRows``; every flush interval, as a run's
hosts do (``run.flush_interval``, default 500 ms), or every ``--batch`` rows, the packed rows go
to ``Aggregator.write_packed``, at most ``MAX_PENDING_WRITES`` calls in flight); the real
``Aggregator`` actor makes each an Arrow batch, appends it to the run's stream and sorts it into
windows (the driver takes each window as a run's driver does); then ``Aggregator.finalize``
writes the ``.arrow`` file. The figure is rows divided by the wall time from the hosts' start to
the end of ``finalize``. Only the request work is left
out: rows cost what they cost, with no agent in between. Beside it, the CPU time each stage
spent per row (hosts: recording and shipping; the aggregator: receiving, building batches,
streaming, windows; finalize), which tells how many cores a given row rate needs: the hosts'
part runs in parallel over hosts, the aggregator's and finalize's do not. ``--paths tuples`` runs the same with
the buffer hosts used before (a 34-value tuple per row into a ``RowBuffer``), for the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from bench.bench_recording import _host_packed, _host_tuples, _values
from raybench.actors.host import MAX_PENDING_WRITES
from raybench.config.scenario import DEFAULT_FLUSH_INTERVAL
from raybench.units import parse_duration

#: Rows a host records between two looks at the clock.
TEMPLATE_ROWS = 1000


class Host:
    def __init__(self, host_id: int, aggregator: Any, batch: int, flush_s: float, path: str) -> None:
        from raybench.results.recording import RequestRows, RowBuffer

        rng = random.Random(host_id)
        self.template = [_values(i, rng) for i in range(min(batch or TEMPLATE_ROWS, TEMPLATE_ROWS))]
        self.aggregator = aggregator
        self.batch, self.flush_s = batch, flush_s
        self.shipped: list[int] = []  # rows per flush
        self.path = path
        self.buf: Any = (
            RequestRows("bench", host_id, "node-1", ["us-east", "eu-west"], ["safe", "risky", "complex"])
            if path == "packed"
            else RowBuffer("requests")
        )

    def ready(self) -> bool:
        return True

    def produce(self, rows: int) -> tuple[float, float]:
        """Record ``rows`` rows and hand them to the aggregator; returns this host's busy seconds
        and the CPU seconds its process spent meanwhile."""
        t0, cpu0 = time.perf_counter(), time.process_time()
        pending: list[Any] = []
        done = 0
        last = t0
        record = _host_packed if self.path == "packed" else _host_tuples
        while done < rows:
            record(self.template, self.buf)
            done += len(self.template)
            now = time.perf_counter()
            if done < rows and (len(self.buf) < self.batch if self.batch else now - last < self.flush_s):
                continue
            last = now
            self.shipped.append(len(self.buf))
            if self.path == "packed":  # as hosts do: the aggregator builds the Arrow batch
                pending.append(self.aggregator.write_packed.remote(self.buf.take_packed()))
            else:
                pending.append(self.aggregator.write.remote("requests", self.buf.take()))
            if len(pending) > MAX_PENDING_WRITES:
                ray.get(pending.pop(0))
        ray.get(pending)
        return time.perf_counter() - t0, time.process_time() - cpu0

    def flushes(self) -> list[int]:
        return self.shipped


class TimedAggregator:
    """The run's Aggregator, plus the CPU time of its process (all its threads: Ray's receiving
    and deserializing included)."""

    def __init__(self, *args: Any) -> None:
        from raybench.actors.aggregator import Aggregator

        self.inner = Aggregator(*args)

    def cpu_s(self) -> float:
        return time.process_time()

    def write_packed(self, packed: Any) -> int:
        return self.inner.write_packed(packed)

    def write(self, table: str, batch: Any) -> int:
        return self.inner.write(table, batch)

    def take_windows(self, upto: int) -> dict[int, Any]:
        return self.inner.take_windows(upto)

    def finalize(self) -> dict[str, Any]:
        return self.inner.finalize()


def _one(hosts: int, rows: int, batch: int, flush_s: float, path: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t0_ns = 1_000_000_000_000
        aggregator = ray.remote(TimedAggregator).remote(tmp, t0_ns, 10_000.0)  # one window: taken once, below
        actors = [ray.remote(Host).remote(h, aggregator, batch, flush_s, path) for h in range(hosts)]
        ray.get([a.ready.remote() for a in actors])
        cpu0 = ray.get(aggregator.cpu_s.remote())
        start = time.perf_counter()
        runs = [a.produce.remote(rows // hosts) for a in actors]
        ray.get(aggregator.take_windows.remote(0))  # as the driver does while a run goes on
        host_times = ray.get(runs)
        produced = time.perf_counter()
        cpu1 = ray.get(aggregator.cpu_s.remote())
        result = ray.get(aggregator.finalize.remote())
        end = time.perf_counter()
        cpu2 = ray.get(aggregator.cpu_s.remote())
        size = (Path(tmp) / "requests.arrow").stat().st_size
        flushes = [n for a in actors for n in ray.get(a.flushes.remote())]
        for a in [*actors, aggregator]:
            ray.kill(a)
    n = result["rows"]["requests"]
    return {
        "path": path,
        "hosts": hosts,
        "rows": n,
        "flush": f"every {batch:,} rows" if batch else f"every {flush_s * 1000:g} ms",
        "rows_per_flush_median": sorted(flushes)[len(flushes) // 2],
        "rows_per_s": n / (end - start),
        "rows_per_s_to_stream": n / (produced - start),
        "finalize_s": end - produced,
        "host_busy_s": [b for b, _ in host_times],
        "host_cpu_us_per_row": sum(c for _, c in host_times) / n * 1e6,
        "aggregator_cpu_us_per_row": (cpu1 - cpu0) / n * 1e6,
        "finalize_cpu_us_per_row": (cpu2 - cpu1) / n * 1e6,
        # hosts repeat a template of rows, which compresses far better than real rows: sizes of real
        # rows are bench_finalize's
        "file_bytes_per_row_repeated_rows": size / n,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", default="1,2", help="comma-separated host counts to measure")
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--flush", default=DEFAULT_FLUSH_INTERVAL, help="hosts ship their rows this often, as in runs")
    p.add_argument("--batch", type=int, default=0, help="ship every N rows instead (0: by --flush)")
    p.add_argument("--paths", default="packed,tuples", help="host buffers: packed (RequestRows), tuples (RowBuffer)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    flush_s = parse_duration(args.flush)
    from raybench.engine.run import connect

    owns = connect(None)
    try:
        out = {
            "runs": [
                _one(int(h), args.rows, args.batch, flush_s, path)
                for h in args.hosts.split(",")
                for path in args.paths.split(",")
            ]
        }
    finally:
        if owns:
            ray.shutdown()
    for r in out["runs"]:
        print(
            f"pipeline, {r['hosts']} host(s), {r['path']} rows, flush {r['flush']} "
            f"(median {r['rows_per_flush_median']:,} rows): {r['rows']:,} rows in "
            f"{r['rows'] / r['rows_per_s']:.2f} s -> "
            f"{r['rows_per_s']:,.0f} rows/s hosts -> .arrow file ({r['rows_per_s_to_stream']:,.0f} rows/s into the "
            f"stream, finalize {r['finalize_s']:.2f} s)"
        )
        print(
            f"  CPU per row: hosts {r['host_cpu_us_per_row']:.2f} µs, "
            f"aggregator {r['aggregator_cpu_us_per_row']:.2f} µs "
            f"(one process: at most {1 / r['aggregator_cpu_us_per_row']:.2f} M rows/s), finalize "
            f"{r['finalize_cpu_us_per_row']:.2f} µs ({1 / r['finalize_cpu_us_per_row']:.2f} M rows/s)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
