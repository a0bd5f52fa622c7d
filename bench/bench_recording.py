"""Recording: request rows per second from a host's row buffer to a finalized ``.arrow`` file, and
the memory that costs per million rows (it must stream, not accumulate).

    .venv/bin/python -m bench.bench_recording [--rows 2000000] [--batch 5000]

Rows are realistic request tuples; the path is the production one: RowBuffer.take (tuples ->
Arrow batch) -> StreamAppender.write (flushed stream) -> finalize_stream (stream -> zstd file).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any


def _row(i: int, rng: random.Random) -> tuple[Any, ...]:
    now = 1_790_000_000_000_000_000 + i * 1000
    lat = rng.uniform(10, 100)
    return (
        "bench", i, i % 1000, i % 2, "node-1", "us-east", ("safe", "risky", "complex")[i % 3], False,
        now, now + 500_000, now + int(lat * 1e6), lat, lat - 0.5, 0.5, "ok", None, False, False,
        12.0, None, None, None, 1.2, 1.1, 0.4, 0.0, 11.5, None, None, 2.0, i % 10_000, now, now + 1, 0,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from raybench import store
    from raybench.recording import RowBuffer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    rng = random.Random(1)
    template = [_row(i, rng) for i in range(args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        app = store.StreamAppender(run_dir, "requests")
        buf = RowBuffer("requests")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        written = 0
        while written < args.rows:
            buf.rows = list(template)
            batch = buf.take()
            app.write(batch)
            written += batch.num_rows
        app.close()
        t1 = time.perf_counter()
        rows = store.finalize_stream(run_dir, "requests")
        t2 = time.perf_counter()
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = (run_dir / "requests.arrow").stat().st_size
    out = {
        "rows": rows,
        "rows_per_s_stream": written / (t1 - t0),
        "rows_per_s_finalize": rows / (t2 - t1),
        "rows_per_s_end_to_end": rows / (t2 - t0),
        "peak_rss_growth_mib": (rss1 - rss0) / 1024,
        "file_bytes_per_row": size / rows,
    }
    print(
        f"recording {rows:,} rows: {out['rows_per_s_stream']:,.0f} rows/s tuples->stream, "
        f"{out['rows_per_s_finalize']:,.0f} rows/s stream->file, {out['rows_per_s_end_to_end']:,.0f} rows/s overall; "
        f"peak RSS +{out['peak_rss_growth_mib']:.0f} MiB; {out['file_bytes_per_row']:.1f} bytes/row on disk"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
