"""CPU per request by role from resource samples with known answers."""

from __future__ import annotations

import pyarrow as pa
import pytest

from raybench.judge.cpu import cpu_per_request, cpu_seconds_by_role
from raybench.results import schema

S = 10**9


def _resources(samples: list[tuple[str, int, int, float]]) -> pa.Table:
    rows = []
    for role, pid, t_s, cpu in samples:
        row = dict.fromkeys(schema.column_names("resources"))
        row.update(run_id="r", ts_ns=t_s * S, node_id="n1", role=role, pid=pid, cpu_percent=cpu, rss_bytes=1,
                   threads=1, open_fds=1, gc_gen0=0, gc_gen1=0, gc_gen2=0)  # fmt: skip
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema.schema("resources", final=False))


def test_cpu_seconds_sum_each_process_over_the_span():
    # two host processes at 50% and 25% of a core, one shard at 10%, sampled every second
    samples = [("host", 1, t, 50.0) for t in range(0, 11)] + [("host", 2, t, 25.0) for t in range(0, 11)]
    samples += [("shard", 3, t, 10.0) for t in range(0, 11)]
    used = cpu_seconds_by_role(_resources(samples), 0, 10 * S)
    assert used["host"] == pytest.approx(10 * 0.75) and used["shard"] == pytest.approx(10 * 0.1)
    # the span (2 s, 6 s]: four samples of each process
    part = cpu_seconds_by_role(_resources(samples), 2 * S, 6 * S)
    assert part["host"] == pytest.approx(4 * 0.75)
    rows = {r["role"]: r for r in cpu_per_request(_resources(samples), 1000, 0, 10 * S)}
    assert rows["host"]["us_per_request"] == pytest.approx(7.5e6 / 1000)
    assert rows["total"]["cores"] == pytest.approx(0.85)
    # both ways: a first sample counts nothing (it has no previous one)
    assert cpu_seconds_by_role(_resources([("host", 1, 5, 99.0)]), 0, 10 * S)["host"] == 0.0
    assert cpu_per_request(_resources(samples), 0, 0, 10 * S)[0]["us_per_request"] is None
