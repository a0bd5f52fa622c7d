"""The workload: validation, rows on a native folder, processes, a filesystem killed mid-run."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from fuse_fixtures import assert_unmounted, backend

from fuse_bench.errors import UsageError
from fuse_bench.load import COLUMNS, rows_schema, run_workload
from fuse_bench.mount import Mount, private_mountpoint
from fuse_bench.mounttable import cleanup_stale, raybench_mounts
from fuse_bench.opstats import format_op_stats, op_stats
from fuse_bench.workload import OPS, Workload, parse_mix
from raybench.results.schema import column_names, conform, schema

__all__ = ["backend"]


def test_parse_mix() -> None:
    assert parse_mix("stat=3, read=1.5") == {"stat": 3.0, "read": 1.5}
    for bad in ("stat", "stst=1", "stat=x", "stat=-1", "stat=0", ""):
        with pytest.raises(UsageError):
            parse_mix(bad)


def test_workload_validation() -> None:
    with pytest.raises(UsageError):
        Workload(workers=0)
    with pytest.raises(UsageError):
        Workload(workers=2, processes=3)
    with pytest.raises(UsageError, match="did you mean"):
        Workload(mix={"reed": 1})
    assert list(Workload(mix={"read": 1, "stat": 0}).mix) == ["read"]


def test_native_rows(tmp_path: Path) -> None:
    wl = Workload(workers=4, duration_s=0.4, mix=dict.fromkeys(OPS, 1), files=4)
    t = run_workload(tmp_path, wl, target="native", node_id="n1", run_id="r1")
    assert t.schema.names == list(COLUMNS) == column_names("fuse_ops")
    assert t.schema.equals(rows_schema(), check_metadata=False)
    # raybench's fuse_ops schema takes the rows as they are
    assert t.schema.equals(schema("fuse_ops", final=False), check_metadata=False)
    assert conform("fuse_ops", t).schema.equals(schema("fuse_ops", final=False), check_metadata=True)
    assert set(t.column("op").to_pylist()) == set(OPS)
    assert all(t.column("ok").to_pylist())
    assert set(t.column("worker").to_pylist()) == {0, 1, 2, 3}
    assert set(t.column("node_id").to_pylist()) == {"n1"}
    assert list(tmp_path.iterdir()) == []  # the file set is removed


def test_native_processes(tmp_path: Path) -> None:
    wl = Workload(workers=4, duration_s=0.4, processes=2, shared=False, mix={"stat": 1, "write": 1})
    t = run_workload(tmp_path, wl, target="native")
    assert set(t.column("worker").to_pylist()) == {0, 1, 2, 3}
    assert t.schema.metadata[b"lost_workers"] == b""
    assert all(t.column("ok").to_pylist())


def test_op_stats_known_values() -> None:
    rows = []
    for i in range(1, 101):
        rows.append((i * 1000, "stat", "native", float(i), True))  # 1..100 µs
        rows.append((i * 1000, "stat", "fuse", float(i * 10), True))  # 10..1000 µs
    rows.append((0, "stat", "fuse", 5.0, False))
    ts, op, tgt, lat, ok = zip(*rows, strict=True)
    t = pa.table({"ts_ns": list(ts), "op": list(op), "target": list(tgt), "latency_us": list(lat), "ok": list(ok)})
    out = {(r["op"], r["target"]): r for r in op_stats(t)}
    fuse, native = out[("stat", "fuse")], out[("stat", "native")]
    assert native["p50_ms"] == pytest.approx(0.050) and native["p99_ms"] == pytest.approx(0.099)
    assert fuse["p50_ms"] == pytest.approx(0.5) and fuse["max_ms"] == pytest.approx(1.0)
    assert fuse["errors"] == 1 and fuse["count"] == 100
    assert fuse["ratio_p50"] == pytest.approx(10.0)
    assert native["ratio_p50"] is None
    lines = format_op_stats(op_stats(t))
    assert lines[0].split()[:3] == ["op", "target", "ok"]
    assert any(line.startswith("all") for line in lines)


@pytest.mark.fuse
def test_sigkill_mid_workload_records_errors(backend: str) -> None:
    m = Mount(private_mountpoint(), backend=backend).start()
    try:
        wl = Workload(workers=8, duration_s=6.0, op_timeout_s=5.0)
        killer = threading.Timer(1.0, m.kill)
        killer.start()
        started = time.monotonic()
        t = run_workload(m.mountpoint, wl, target="fuse")
        elapsed = time.monotonic() - started
        killer.join()
    finally:
        m.stop()
        cleanup_stale()
    assert_unmounted(m.mountpoint)
    assert not [e for e in raybench_mounts() if e.mountpoint == str(m.mountpoint)]
    ok = t.column("ok").to_pylist()
    errs = set(t.column("errno").to_pylist()) - {None}
    assert any(ok), "operations before the kill succeeded"
    assert not all(ok), "operations after the kill are recorded as errors"
    assert errs & {errno.ENOTCONN, errno.ECONNABORTED}, errs
    # Workers stop at the first 'mount gone' error instead of running out the clock.
    assert elapsed < wl.duration_s + wl.op_timeout_s


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.fuse
def test_workers_spread_over_several_mounts(backend: str) -> None:
    """Worker k works on mount k mod n: every filesystem process answers, each mount has its own
    shared file set, and every worker's operations are recorded."""
    with Mount(private_mountpoint(), backend=backend) as m1, Mount(private_mountpoint(), backend=backend) as m2:
        before = {m.pid: _cpu_ticks(m.pid) for m in (m1, m2)}
        wl = Workload(workers=4, duration_s=1.0, mix={"stat": 1, "create": 1, "readdir": 1}, files=4)
        t = run_workload([m1.mountpoint, m2.mountpoint], wl, target="fuse")
        after = {m.pid: _cpu_ticks(m.pid) for m in (m1, m2)}
        assert all(after[pid] > before[pid] for pid in before), (before, after)
        assert set(t.column("worker").to_pylist()) == {0, 1, 2, 3}
        assert all(t.column("ok").to_pylist())
        # the file sets were removed from both mounts
        assert not list(m1.mountpoint.iterdir()) and not list(m2.mountpoint.iterdir())
    assert_unmounted(m1.mountpoint)
    assert_unmounted(m2.mountpoint)
