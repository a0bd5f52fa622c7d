"""raybench.judge.harness: each bound judged both ways on tables whose values the test sets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from synth_requests import T0_NS, S, requests

from raybench.judge import harness
from raybench.judge.harness import CPU_MAX_PERCENT, LAG_P99_MAX_MS, TIMING_ERROR_P99_MAX_MS, format_harness, judge
from raybench.results.schema import schema

N = 1000


def calm_requests(*, terr_ms: float = 0.5, lag_ms: float = 1.0, slow: int = 0, slow_by: float = 0.0) -> pa.Table:
    """N rows: policy stages modelled at 10 ms and measured ``terr_ms`` longer, ``lag_ms`` of lag;
    the last ``slow`` rows are ``slow_by`` ms later in both (the tail)."""
    extra = np.r_[np.zeros(N - slow), np.full(slow, slow_by)]
    t = requests(
        [30.0] * N,
        stages={"policy": list(10.0 + terr_ms + extra), "policy_model": [10.0] * N},
    )
    return replaced(t, "lag_ms", lag_ms + extra)


def replaced(t: pa.Table, name: str, values: object) -> pa.Table:
    """``t`` with column ``name`` replaced (its field, nullability included, kept)."""
    i = t.schema.get_field_index(name)
    return t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))


def cpu_table(processes: Sequence[tuple[str, int, Sequence[float]]]) -> pa.Table:
    """One sample a second per process: ``(role, pid, cpu % per second)``."""
    rows = []
    for role, pid, series in processes:
        for i, cpu in enumerate(series):
            rows.append({"run_id": "t", "ts_ns": T0_NS + i * S + pid, "node_id": "node-a", "role": role, "pid": pid,
                         "cpu_percent": float(cpu), "rss_bytes": 1 << 20, "threads": 4, "open_fds": 8,
                         "gc_gen0": 0, "gc_gen1": 0, "gc_gen2": 0})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema("resources", final=False))


CALM_CPU = [("host", 11, [35.0] * 30), ("host", 12, [40.0] * 30), ("aggregator", 13, [5.0] * 30),
            ("shard", 14, [10.0] * 30), ("driver", 15, [3.0] * 30)]  # fmt: skip


def calm(**kw: object) -> harness.HarnessVerdict:
    args = {"flush_interval_s": 0.5, "flush_age_p99_ms": 520.0, "late_rows": 0, "lost_requests": 0} | kw
    return judge(calm_requests(), cpu_table(CALM_CPU), **args)  # type: ignore[arg-type]


def bounds_crossed(v: harness.HarnessVerdict) -> list[str]:
    return [r.bound for r in v.reasons]


def test_a_calm_run_is_ok_and_every_bound_was_checked() -> None:
    v = calm()
    assert v.status == "ok" and v.reasons == () and v.system == () and v.unchecked == ()
    assert v.observed["timing_error_p99_ms"] == pytest.approx(0.5)
    assert v.observed["lag_p99_ms"] == pytest.approx(1.0)
    assert v.observed["process_cpu_percent"] == pytest.approx(40.0)
    line = format_harness(v)
    assert line.startswith("harness: ok (") and "timing err p99 0.5 ms" in line and "40% of a core" in line
    assert harness.verdict_note(v.to_manifest()) == ""


def test_timing_error_tail_saturates() -> None:
    t = calm_requests(slow=30, slow_by=12.0)  # 3% of stages 12.5 ms late: the p99 is
    v = judge(t, cpu_table(CALM_CPU), flush_interval_s=0.5, flush_age_p99_ms=500.0, late_rows=0)
    assert v.status == "saturated" and "timing_error_p99_ms" in bounds_crossed(v)
    r = next(r for r in v.reasons if r.bound == "timing_error_p99_ms")
    assert r.observed == pytest.approx(12.5) and r.limit == TIMING_ERROR_P99_MAX_MS
    # below the bound: 0.5% of the stages late does not move the p99
    ok = judge(calm_requests(slow=5, slow_by=50.0), cpu_table(CALM_CPU), flush_interval_s=0.5)
    assert "timing_error_p99_ms" not in bounds_crossed(ok)


def test_dispatch_lag_saturates() -> None:
    t = calm_requests()
    t = replaced(t, "lag_ms", np.full(N, 15.0))
    v = judge(t, cpu_table(CALM_CPU), flush_interval_s=0.5, late_rows=0, flush_age_p99_ms=500.0)
    assert bounds_crossed(v) == ["lag_p99_ms"]
    assert v.reasons[0].observed == pytest.approx(15.0) and v.reasons[0].limit == LAG_P99_MAX_MS
    section = v.to_manifest()
    json.dumps(section)  # the manifest section is plain JSON
    assert section["reasons"][0] | {"detail": ""} == {"bound": "lag_p99_ms", "observed": 15.0,
                                                     "limit": LAG_P99_MAX_MS, "detail": ""}  # fmt: skip
    assert "lag p99 15.0 ms > 10 ms" in format_harness(section)
    assert harness.verdict_note(section) == " (harness saturated: figures include harness delay)"


def test_a_host_at_95_percent_for_several_windows_saturates() -> None:
    busy = [*CALM_CPU[1:], ("host", 11, [40.0] * 10 + [95.0] * 15 + [40.0] * 5)]
    v = judge(calm_requests(), cpu_table(busy), flush_interval_s=0.5, late_rows=0)
    assert v.status == "saturated" and bounds_crossed(v) == ["process_cpu"]
    r = v.reasons[0]
    assert r.observed == pytest.approx(95.0) and r.limit == CPU_MAX_PERCENT and r.role == "host"
    assert "host pid 11" in r.detail and "3 of its 6 windows" in r.detail
    assert "host pid 11" in format_harness(v)


def test_a_single_spike_is_not_flagged() -> None:
    # one 1-s sample of a whole core and more, in every window: never most of a window
    spiky = [("host", 11, [40.0, 40.0, 250.0, 40.0, 40.0] * 6), ("aggregator", 13, [5.0] * 29 + [400.0])]
    v = judge(calm_requests(), cpu_table(spiky), flush_interval_s=0.5, late_rows=0, flush_age_p99_ms=500.0)
    assert v.status == "ok", v.reasons
    # two busy samples straddling a window edge are not a busy window either
    edge = [("host", 11, [40.0] * 4 + [99.0, 99.0] + [40.0] * 24)]
    assert judge(calm_requests(), cpu_table(edge), flush_interval_s=0.5).status == "ok"


def test_a_system_process_out_of_cpu_is_the_systems_limit_not_the_harnesss() -> None:
    busy = [*CALM_CPU, ("fuse-server", 16, [97.0] * 30)]
    v = judge(calm_requests(), cpu_table(busy), flush_interval_s=0.5, late_rows=0, flush_age_p99_ms=500.0)
    assert v.status == "ok" and len(v.system) == 1
    assert v.system[0].role == "fuse-server" and "FUSE server pid 16" in v.system[0].detail
    assert "system out of CPU: FUSE server" in format_harness(v)


def test_flush_backlog_saturates() -> None:
    v = calm(flush_age_p99_ms=2400.0)  # rows 2.4 s old on arrival with a 0.5 s flush interval
    assert bounds_crossed(v) == ["flush_age_p99_ms"]
    assert v.reasons[0].limit == pytest.approx(1500.0)
    assert calm(flush_age_p99_ms=1400.0).status == "ok"
    assert "flush age p99" in format_harness(v)


def test_late_rows_saturate_unless_they_are_the_lost_requests() -> None:
    v = calm(late_rows=120, lost_requests=20)
    assert bounds_crossed(v) == ["late_rows"] and v.reasons[0].observed == 100.0
    assert calm(late_rows=20, lost_requests=20).status == "ok"  # the driver's rows for a dead host's requests


def test_what_cannot_be_checked_is_listed() -> None:
    few = requests([30.0] * 20)  # too few rows for a p99
    empty = cpu_table([])
    v = judge(few, empty, flush_interval_s=0.5)
    assert v.status == "ok"
    assert set(v.unchecked) == {"timing_error_p99_ms", "lag_p99_ms", "process_cpu", "flush_age_p99_ms", "late_rows"}
    assert "not checked" in format_harness(v)
    assert format_harness(None).startswith("harness: not judged")


def test_warmup_rows_are_left_out() -> None:
    t = calm_requests(slow=N // 2, slow_by=40.0)  # the late half is warm-up
    t = replaced(t, "warmup", [False] * (N // 2) + [True] * (N // 2))
    more = calm_requests()  # enough measured rows
    v = judge(pa.concat_tables([t, more]), cpu_table(CALM_CPU), flush_interval_s=0.5, late_rows=0)
    assert v.status == "ok"


def test_finalize_judges_the_harness_of_a_run_folder_and_of_a_recovered_one(tmp_path: Path) -> None:
    from raybench.config import scenario
    from raybench.engine import finalize
    from raybench.results import store

    sc = scenario.load(None, "smoke", {"run.warmup": "0s"})
    base = {"run_id": "h", "scenario": sc.to_dict(), "load_start_ns": T0_NS, "started_utc": "-"}
    for name, extra in (("run", {"late_rows": 0, "flush_age_ms": {"p99": 2500.0}}), ("recovered", None)):
        run_dir = store.create_run_dir(tmp_path, name)
        finalize.write_started(run_dir, base | {"run_id": name})
        store.write_table(run_dir, "requests", calm_requests())
        store.write_table(run_dir, "resources", cpu_table(CALM_CPU))
        if extra is None:
            m = finalize.recover(run_dir)
            assert m["harness"]["status"] == "ok"
            assert {"flush_age_p99_ms", "late_rows"} <= set(m["harness"]["unchecked"])
        else:
            m = finalize.finalize_folder(run_dir, status="completed", error=None, extra=extra)
            assert m["harness"]["status"] == "saturated"
            assert [r["bound"] for r in m["harness"]["reasons"]] == ["flush_age_p99_ms"]
        assert json.loads((run_dir / "manifest.json").read_text())["harness"] == m["harness"]
