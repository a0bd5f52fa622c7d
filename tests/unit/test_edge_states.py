"""Exits and edge states without Ray: signals at window boundaries, runs stopped early, thresholds on
a stage that is off, chaos's restart budget, a closed stdout and unexpected errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
import synth_requests as synth
from click.testing import CliRunner
from synth_requests import MS, T0_NS, S

from raybench.cli import EXIT_RUNTIME, cli
from raybench.config import scenario as scn
from raybench.engine.interrupts import Interrupts
from raybench.judge.grammar import parse_thresholds
from raybench.judge.sla import SlaMonitor, judged_verdict
from raybench.results.windows import load_span

# -- signals arrive only between windows ------------------------------------------------------------


def test_a_signal_inside_a_deferred_block_is_raised_when_it_ends():
    before = signal.getsignal(signal.SIGTERM)  # Ray, if the suite started it, has its own
    irq = Interrupts().install()
    try:
        done = []
        with pytest.raises(KeyboardInterrupt), irq.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("after the signal")  # the block runs to its end
        assert done == ["after the signal"]
        with pytest.raises(KeyboardInterrupt):  # outside a block: at once
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        irq.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_inside_a_deferred_block_raises_at_once():
    irq = Interrupts().install()
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt), irq.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            reached.append(True)
        assert not reached
    finally:
        irq.restore()


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        irq = Interrupts().install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        irq.restore()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


class _FakeAggregator:
    """``take_windows.remote(upto)`` as the Aggregator answers it: the tables of windows <= upto."""

    def __init__(self, tables: dict[int, pa.Table]) -> None:
        self.tables = tables
        self.take_windows = SimpleNamespace(remote=self._take)

    def _take(self, upto: int) -> dict[int, pa.Table]:
        got = {k: t for k, t in self.tables.items() if k <= upto}
        for k in got:
            del self.tables[k]
        return got


def _window_table(k: int, n: int = 20) -> pa.Table:
    ends = [T0_NS + k * S + (i + 1) * 10 * MS for i in range(n)]
    return synth.requests([5.0 + i for i in range(n)], ends_ns=ends)


def test_sigterm_while_windows_are_judged_hands_each_window_over_once(monkeypatch, tmp_path: Path):
    """The race behind 'window 2 comes after window 2': a SIGTERM while the driver judges windows
    used to leave a window judged but not marked handed, and the drain judged it again."""
    import ray

    from raybench.engine.cluster import RayCluster
    from raybench.engine.events import EventLog
    from raybench.engine.hosts import Load
    from raybench.engine.judging import Judge

    monkeypatch.setattr(ray, "get", lambda x, **kw: x)
    sc = scn.load(None, "smoke", {"run.window": "1s", "sla.window": "1s", "sla.initial_delay": "0s"})
    irq = Interrupts().install()
    try:
        aggregator = _FakeAggregator({k: _window_table(k) for k in range(6)})
        load = Load(T0_NS, sc.run.duration)
        drv = Judge(sc, sc.sla.resolved(), RayCluster(), aggregator, load, EventLog(tmp_path.name), interrupts=irq)
        drv.monitor = drv.sla.monitor(t0_ns=T0_NS, stages_off=sc.stages_off())
        observe = drv.monitor.observe_window

        def observe_and_get_killed(k: int, *args: Any, **kw: Any) -> Any:
            out = observe(k, *args, **kw)
            if k == 2:  # the monitor has taken window 2; the driver has not noted it yet
                os.kill(os.getpid(), signal.SIGTERM)
            return out

        monkeypatch.setattr(drv.monitor, "observe_window", observe_and_get_killed)
        with pytest.raises(KeyboardInterrupt):
            drv.take_windows(3)
        assert [w["window"] for w in drv.window_stats] == [0, 1, 2, 3]
        drv.take_windows(1 << 40)  # the drain after the interrupt: no window twice, no ValueError
        # every window of the planned 20 s load, each once (the empty ones after 5 too)
        assert [w["window"] for w in drv.window_stats] == list(range(20))
    finally:
        irq.restore()


# -- a load stopped early: rates over the time that ran ---------------------------------------------


def test_load_span_of_a_run_stopped_early_uses_the_time_that_ran():
    manifest = {"load_start_ns": T0_NS, "load_end_ns": T0_NS + 120 * S, "load_stopped_ns": T0_NS + 25 * S}
    span = load_span(manifest, duration_s=120, warmup_s=3)
    assert span.stopped_early and span.ran_s == 25 and span.planned_s == 120
    assert span.measured_s == 22
    assert span.windows(5.0) == 5
    full = load_span({"load_start_ns": T0_NS, "load_end_ns": T0_NS + 120 * S}, duration_s=120, warmup_s=3)
    assert not full.stopped_early and full.measured_s == 117 and full.windows(5.0) == 24
    # a stop after the planned end (the drain) is no early stop
    late = load_span({**manifest, "load_stopped_ns": T0_NS + 130 * S}, duration_s=120, warmup_s=3)
    assert not late.stopped_early and late.measured_s == 117


def test_verdict_line_says_what_an_interrupted_verdict_covers():
    from raybench.cli.run import verdict_line

    sc = scn.load(None, "smoke", {"run.duration": "120s"})
    manifest = {"load_start_ns": T0_NS, "load_end_ns": T0_NS + 120 * S, "load_stopped_ns": T0_NS + 22 * S}
    line = verdict_line(SimpleNamespace(verdict=True, status="interrupted", manifest=manifest), sc)
    assert line == "SLA: PASS (over 22.0 s of 120 s planned: the run was interrupted)"
    done = {"load_start_ns": T0_NS, "load_end_ns": T0_NS + 120 * S}
    assert verdict_line(SimpleNamespace(verdict=False, status="completed", manifest=done), sc) == "SLA: FAIL"
    degraded = verdict_line(SimpleNamespace(verdict=True, status="degraded", manifest=done), sc)
    assert degraded.startswith("SLA: PASS (covers only what ran")


# -- thresholds on a stage that is off --------------------------------------------------------------


def test_scenario_names_the_stages_it_switched_off():
    assert scn.load(None, "smoke", {}).stages_off() == {}
    off = scn.load(None, "smoke", {"fuse.mode": "off"}).stages_off()
    assert off == {"fuse": "fuse.mode = off"}


def _judge(stages_off: dict[str, str]) -> list[dict[str, Any]]:
    ths = parse_thresholds(["p99{stage=fuse}<50ms", "p99<100ms"])
    mon = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, stages_off=stages_off)
    table = synth.requests([5.0] * 10, ends_ns=[T0_NS + i * 10 * MS for i in range(10)])  # fuse_ms all null
    mon.observe_window(0, T0_NS, T0_NS + S, table)
    return mon.finalize(table)


def test_a_threshold_on_a_stage_that_is_off_is_not_applicable_and_does_not_fail():
    rows = _judge({"fuse": "fuse.mode = off"})
    fuse = rows[0]
    assert fuse["applicable"] is False and fuse["passed"] and fuse["windows_total"] == 0
    assert "fuse.mode = off" in fuse["note"]
    assert judged_verdict(rows) is True


def test_no_data_on_a_stage_that_is_on_still_fails():
    rows = _judge({})
    assert rows[0]["applicable"] and rows[0]["passed"] is False and rows[0]["cumulative_passed"] is None
    assert judged_verdict(rows) is False


def test_only_not_applicable_thresholds_give_no_verdict():
    ths = parse_thresholds(["p99{stage=fuse}<50ms"])
    mon = SlaMonitor(ths, t0_ns=T0_NS, window_s=1.0, stages_off={"fuse": "fuse.mode = off"})
    assert judged_verdict(mon.finalize(synth.requests([5.0]))) is None


# -- chaos does not use up the restarts it is there to prove ----------------------------------------


def test_restart_budget_covers_every_planned_chaos_kill():
    from raybench.engine.faults import MAX_HOST_RESTARTS, planned_chaos_kills, restart_budget

    sc = scn.load(None, "smoke", {"run.duration": "30s", "run.chaos": "5s"})
    assert planned_chaos_kills(sc) == 5  # at 5, 10, 15, 20 and 25 s
    assert restart_budget(sc) == MAX_HOST_RESTARTS + 5
    assert restart_budget(scn.load(None, "smoke", {})) == MAX_HOST_RESTARTS
    fuse_only = scn.load(None, "smoke", {"run.chaos": "5s", "run.chaos_target": "fuse"})
    assert restart_budget(fuse_only) == MAX_HOST_RESTARTS


# -- a closed stdout, an unexpected error ------------------------------------------------------------


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    from synth_runs import write_run

    return write_run(tmp_path, "base", seed=1), write_run(tmp_path, "cur", seed=2)


@pytest.mark.parametrize("command", ["show", "compare"])
def test_a_closed_stdout_exits_0_quietly(two_runs: tuple[Path, Path], command: str):
    """`raybench show RUN | head -1`: the reader is gone before raybench writes."""
    args = [str(two_runs[0])] if command == "show" else [*map(str, two_runs), "--no-write"]
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "raybench.cli", command, *args],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_an_unexpected_error_exits_3_with_one_line_and_the_traceback_in_a_file(two_runs, monkeypatch):
    from raybench.judge import summary

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("planted for the test")

    monkeypatch.setattr(summary, "summarize", broken)
    res = CliRunner().invoke(cli, ["show", str(two_runs[0])])
    assert res.exit_code == EXIT_RUNTIME
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raybench: unexpected error: ZeroDivisionError: planted")
    path = Path(lines[0].rsplit("the full traceback is in ", 1)[1].rstrip(")"))
    try:
        text = path.read_text()
        assert "Traceback (most recent call last)" in text and "planted for the test" in text
    finally:
        path.unlink()
