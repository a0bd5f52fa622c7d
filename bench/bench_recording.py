"""Recording: request rows per second from an agent host's row buffer to a finalized ``.arrow``
file, and the memory that costs per million rows (it must stream, not accumulate).

    .venv/bin/python -m bench.bench_recording [--rows 2000000] [--batch 5000]

The rows are realistic request rows (a third of them with an expert consultation, a third safe
reads without a write). The path is the production one: a host adds each row's values by name
(``RequestRows.add_request``: what a host pays per request) -> ``RequestRows.take``
(tuples -> packed records -> Arrow batch) ->
``StreamAppender.write`` (flushed stream) -> ``finalize_stream`` (stream -> zstd file). Beside it,
in the same run, the generic tuple buffer (``RowBuffer``: row tuples -> Arrow's converter) that
the hosts used before, over the same rows, for the ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

NAN = math.nan


def _values(i: int, rng: random.Random) -> tuple[Any, ...]:
    """One row as a host adds it (recording.PACKED order)."""
    t = 1_000_000_000_000 + i * 1000
    lat = rng.uniform(10, 100)
    kind = i % 3
    expert = (rng.uniform(0, 2), rng.uniform(20, 60)) if kind == 2 else (NAN, NAN)
    lease = 1_790_000_000_000_000_000 + i
    return (
        (7 << 40) | i, t, t + 500_000, t + int(lat * 1e6), i % 10_000, lease, lease + 900_000,
        rng.uniform(1, 20), rng.uniform(5, 50) if kind else NAN, *expert, 0.4, 1.1, 0.3, 0.0,
        12.0, 30.0 if kind else NAN, 40.0 if kind == 2 else NAN, 2.0,
        i % 1000, 0, i % 2, kind, 0, kind == 2, False,
    )  # fmt: skip


def _host_tuples(template: list[tuple[Any, ...]], buf: Any) -> None:
    """What a host did per request before RequestRows: build the 34-value row tuple (derived
    values computed in Python) and append it to a RowBuffer."""
    append = buf.append
    w, warm_end, names = 1_789_000_000_000_000_000, 0, ("safe", "risky", "complex")
    # fmt: off
    for row in template:
        rid, ti, ts, te, fk, ls, le, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, ag, cf, _, c, _, e, ch = row
        append(
            ("bench", rid, ag, 7, "node-1", "us-east", names[c], ti < warm_end, ti + w, ts + w, te + w,
             (te - ti) / 1e6, (te - ts) / 1e6, (ts - ti) / 1e6, "ok", None, e, ch, p1, p2 if p2 == p2 else None,
             p3 if p3 == p3 else None, p4 if p4 == p4 else None, p5, p6, p7, p8, p9, p10 if p10 == p10 else None,
             p11 if p11 == p11 else None, p12, fk, ls, le, cf)
        )
    # fmt: on


def _host_packed(template: list[tuple[Any, ...]], buf: Any) -> None:
    """What a host does per request now: add the row's measured values by name (``add_request``),
    called as a method as the host calls it (CPython 3.11 takes a slower path, ~3 µs a row more,
    for keywords passed to a bound method kept in a local)."""
    for a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, q, r, s, t, u, v, w, x, y, z, zz in template:  # noqa: E741
        buf.add_request(
            request_id=a, perf_intended=b, perf_start=c, perf_end=d, file_key=e, lease_start_ns=f, lease_end_ns=g,
            policy_ms=h, llm_ms=i, expert_queue_ms=j, expert_ms=k, lease_wait_ms=l, state_ms=m, fuse_ms=n,
            event_ms=o, policy_model_ms=q, llm_model_ms=r, expert_model_ms=s, rtt_model_ms=t, agent_id=u,
            conflicts=v, region=w, cls=x, outcome=y, escalated=z, cache_hit=zz,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from raybench.results import store
    from raybench.results.recording import RequestRows, RowBuffer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--json")
    args = p.parse_args(argv)
    rng = random.Random(1)
    template = [_values(i, rng) for i in range(args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        app = store.StreamAppender(run_dir, "requests")
        buf = RequestRows("bench", 7, "node-1", ["us-east", "eu-west"], ["safe", "risky", "complex"])
        generic = RowBuffer("requests")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        host_s = generic_s = write_s = 0.0
        written = generic_rows = 0
        while written < args.rows:
            # the two host paths over the same rows, batch by batch (alternating which goes first)
            for packed in (True, False) if (written // args.batch) % 2 else (False, True):
                ta = time.perf_counter()
                if packed:
                    _host_packed(template, buf)
                    batch = buf.take()
                    host_s += time.perf_counter() - ta
                else:
                    _host_tuples(template, generic)
                    generic_rows += generic.take().num_rows
                    generic_s += time.perf_counter() - ta
            tw = time.perf_counter()
            app.write(batch)
            write_s += time.perf_counter() - tw
            written += batch.num_rows
        app.close()
        t1 = time.perf_counter()
        rows = store.finalize_stream(run_dir, "requests")
        t2 = time.perf_counter()
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = (run_dir / "requests.arrow").stat().st_size
    host_rate, generic_rate = written / host_s, generic_rows / generic_s
    out = {
        "rows": rows,
        "rows_per_s_host": host_rate,
        "rows_per_s_host_generic": generic_rate,
        "host_speedup": host_rate / generic_rate,
        "rows_per_s_stream_write": written / write_s,
        "rows_per_s_finalize": rows / (t2 - t1),
        "rows_per_s_end_to_end": rows / (host_s + write_s + (t2 - t1)),
        "peak_rss_growth_mib": (rss1 - rss0) / 1024,
        # the rows repeat every --batch rows, which compresses far better than real rows once finalize
        # gathers batches: real rows' size is bench_finalize's
        "file_bytes_per_row_repeated_rows": size / rows,
    }
    print(
        f"recording {rows:,} rows: host rows -> Arrow batch {host_rate:,.0f} rows/s (the tuple buffer it replaced: "
        f"{generic_rate:,.0f}, x{out['host_speedup']:.2f}); batch -> stream {out['rows_per_s_stream_write']:,.0f} "
        f"rows/s; stream -> file {out['rows_per_s_finalize']:,.0f} rows/s; "
        f"all three {out['rows_per_s_end_to_end']:,.0f} rows/s; peak RSS +{out['peak_rss_growth_mib']:.0f} MiB"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
