"""The live view end to end without Ray: a real Aggregator fed with request rows, the driver's
ProgressLine asking it through a cluster we control (answers at once, or never), a stand-in for the
Judge; and a whole in-process run's status lines."""

from __future__ import annotations

import concurrent.futures
import io
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from raybench.actors.aggregator import Aggregator
from raybench.cli.progress import Printer
from raybench.config import scenario
from raybench.engine.hosts import Load
from raybench.engine.watch import ProgressLine, refresh_s
from raybench.results import store
from raybench.results.recording import OUTCOME_CODE, RequestRows

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


class _Cluster:
    """Calls run at once on the plain object (or never answer, for ``stalled`` actors)."""

    def __init__(self) -> None:
        self.stalled: set[int] = set()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.held: list[tuple[concurrent.futures.Future[Any], Any]] = []

    def call(self, actor: Any, method: str, *args: Any) -> concurrent.futures.Future[Any]:
        self.calls.append((method, args))
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if id(actor) in self.stalled:
            self.held.append((fut, lambda: getattr(actor, method)(*args)))
        else:
            fut.set_result(getattr(actor, method)(*args))
        return fut

    def release(self) -> None:
        """The stalled calls answer now."""
        self.stalled.clear()
        for fut, answer in self.held:
            fut.set_result(answer())
        self.held = []

    def wait(self, refs: list[Any], timeout: float) -> tuple[list[Any], list[Any]]:
        return [r for r in refs if r.done()], [r for r in refs if not r.done()]

    def get(self, ref: Any, timeout: float | None = None) -> Any:
        return ref.result(0)


def _judge(observations: dict[str, bool | None] | None, window: int | None = None) -> Any:
    """The Judge as ProgressLine sees it: the monitor's last observations (None: no thresholds)."""
    if observations is None:
        return SimpleNamespace(monitor=None, window_stats=[])
    last = {k: SimpleNamespace(threshold_id=k, passed=v) for k, v in observations.items()}
    stats = [{"window": window}] if window is not None else []
    return SimpleNamespace(monitor=SimpleNamespace(last_observations=last), window_stats=stats)


def _scenario() -> scenario.Scenario:
    # 100 agents x 1 req/s, flat: 100 requests due per second, 2,000 in all
    return scenario.load(
        None,
        "smoke",
        {"run.agents": 100, "arrivals.rate": 1.0, "run.duration": "20s", "run.warmup": "3s", "run.hosts": 2},
    )


def _flush(agg: Aggregator, ends_s: np.ndarray, lat_ms: np.ndarray, lag_ms: np.ndarray, errors: int = 0) -> None:
    """One host flush of rows ending at ``ends_s`` after T0 (perf clock == wall clock)."""
    buf = RequestRows("live", 0, "node-1", ["r"], ["safe"])
    buf.warm_end_perf_ns = T0 + 3 * S
    for i, (e, lat, lag) in enumerate(zip(ends_s, lat_ms, lag_ms, strict=True)):
        end = T0 + int(e * S)
        intended = end - int(lat * 1e6)
        outcome = "error" if i < errors else "ok"
        buf.add_request(
            request_id=i, perf_intended=intended, perf_start=intended + int(lag * 1e6), perf_end=end, agent_id=i,
            conflicts=0, region=0, cls=0, outcome=OUTCOME_CODE[outcome], escalated=False, cache_hit=False,
            error="boom" if outcome == "error" else None,
        )  # fmt: skip
    agg.write_packed(buf.take_packed())


def _aggregator(tmp_path: Path) -> Aggregator:
    """An aggregator holding 10 s of rows (100/s, 0.5 s flushes, 5 errors at 8 s)."""
    agg = Aggregator(str(tmp_path), T0, 5.0)
    rng = np.random.default_rng(5)
    for step in range(20):
        ends = np.sort(rng.uniform(step * 0.5, step * 0.5 + 0.5, 50))
        lat, lag = rng.lognormal(3.5, 0.5, 50).round(3), rng.exponential(1.0, 50).round(3)
        _flush(agg, ends, lat, lag, errors=5 if step == 16 else 0)
    return agg


def test_the_aggregator_feeds_the_live_view_every_batch(tmp_path: Path):
    agg = _aggregator(tmp_path)
    snap = agg.live_view(T0 + 10 * S, 5.0, 1.0)
    assert snap["done"] == 1_000 and snap["errors"] == 5
    assert (snap["span_start_ns"], snap["span_end_ns"]) == (T0 + 4 * S, T0 + 9 * S)
    out = agg.finalize()  # the same rows as on disk
    table = store.read_table(tmp_path, "requests")
    assert out["rows"]["requests"] == 1_000 and snap["warmup_done"] == table.column("warmup").to_pylist().count(True)
    ends = np.array(table.column("ts_end_ns").to_pylist())
    inside = (ends >= T0 + 4 * S) & (ends < T0 + 9 * S)
    lat, lag = table.column("latency_ms").to_numpy()[inside], table.column("lag_ms").to_numpy()[inside]
    assert snap["count"] == int(inside.sum()) == 500 and snap["rate"] == 100.0 and snap["span_errors"] == 5
    assert snap["p50_ms"] == float(np.percentile(lat, 50, method="inverted_cdf"))
    assert snap["p99_ms"] == float(np.percentile(lat, 99, method="inverted_cdf"))
    assert snap["lag_p99_ms"] == float(np.percentile(lag, 99, method="inverted_cdf"))
    assert snap["lag_max_ms"] == float(lag.max())


def test_the_status_line_shows_done_due_in_flight_errors_the_last_seconds_and_failing_thresholds(tmp_path: Path):
    agg = _aggregator(tmp_path)
    cluster: Any = _Cluster()  # the parts of a Cluster ProgressLine uses
    said: list[str] = []
    line = ProgressLine(
        _scenario(), Load(T0, 20.0), _judge({"p99<200ms": False, "error_rate<1%": True}, 1), said.append,
        cluster, agg, lambda: 312,
    )  # fmt: skip
    now = (T0 + 10 * S) / 1e9
    line.tick(now)  # asks the aggregator
    line.tick(now + 0.25)  # the answer is there: the line
    assert len(said) == 1 and cluster.calls == [("live_view", (int(now * 1e9), 5.0, 1.0))]
    text = said[0]
    assert text.startswith("[  10.0s     load] 100 agents | 10.0s left | done 1,000/1,000 of 2,000 | in flight 312 |")
    assert "| err 5 (0.50%) |" in text and "| last 5s: 100 req/s, p50 " in text and ", lag p99 " in text
    assert text.endswith("| failing: p99<200ms") and "first window not complete" not in text
    line.tick(now + 1.0)  # not due yet
    assert len(said) == 1


def test_the_line_says_the_phase_and_what_the_sla_monitor_knows(tmp_path: Path):
    agg = Aggregator(str(tmp_path), T0, 30.0)
    cluster: Any = _Cluster()  # the parts of a Cluster ProgressLine uses
    said: list[str] = []
    sc = _scenario()
    line = ProgressLine(sc, Load(T0, 20.0), _judge({"p99<200ms": None}), said.append, cluster, agg)
    for t in (-0.9, 1.1, 2.2):
        line.tick(T0 / 1e9 + t)
        line.tick(T0 / 1e9 + t + 0.25)
    assert said[0].startswith("[   0.0s starting] 100 agents | load in 0.9s | done 0/0 of 2,000 | in flight … |")
    assert said[1].startswith("[   1.1s  warm-up] 100 agents | 18.9s left | done 0/110 of 2,000")
    # 2 s after the start: the figures, never "first window not complete yet" (30 s windows)
    assert all("first window not complete" not in s and s.endswith("SLA: no window judged yet") for s in said)
    assert len(said) == 2  # the third tick was within 2 s of the second line
    line.tick(T0 / 1e9 + 3.2)
    line.tick(T0 / 1e9 + 3.45)
    assert said[2].startswith("[   3.2s     load] 100 agents | 16.8s left | done 0/320 of 2,000")
    assert "| err 0 | last 2.2s: 0 req/s |" in said[2]  # the span so far: from t0 to 1 s ago
    passing = ProgressLine(sc, Load(T0, 20.0), _judge({"p99<200ms": True}, 0), said.append, cluster, agg)
    assert passing.line(T0 / 1e9 + 35.0).startswith("[  35.0s draining] 100 agents | load ended 15.0s ago | done")
    assert passing.line(T0 / 1e9 + 35.0).endswith("| SLA passing (window 0)")
    no_sla = ProgressLine(sc, Load(T0, 20.0), _judge(None), said.append, cluster, agg)
    assert no_sla.line(T0 / 1e9 + 5.0).endswith("| in flight …")


def test_a_stalled_aggregator_never_blocks_the_watch_and_old_figures_are_marked(tmp_path: Path):
    agg = _aggregator(tmp_path)
    cluster: Any = _Cluster()  # the parts of a Cluster ProgressLine uses
    said: list[str] = []
    line = ProgressLine(_scenario(), Load(T0, 20.0), _judge(None), said.append, cluster, agg, lambda: 7)
    base = T0 / 1e9
    line.tick(base + 10.0)
    line.tick(base + 10.25)
    assert "| last 5s: 100 req/s" in said[-1]
    cluster.stalled.add(id(agg))  # from now on the aggregator never answers
    started = time.monotonic()
    line.tick(base + 12.3)  # asks
    line.tick(base + 12.55)  # no answer yet, not 0.5 s yet: nothing
    assert len(said) == 1
    line.tick(base + 12.9)  # 0.6 s: the line, with the previous figures (done and due as of them), marked
    assert len(said) == 2 and "| done 1,000/1,000 of 2,000 | in flight 7 |" in said[-1]
    assert said[-1].startswith("[  12.9s     load]") and said[-1].endswith("| figures 2.9s old (aggregator slow)")
    line.tick(base + 14.4)  # due again, the call still unanswered: a line, no second call
    assert len(said) == 3 and said[-1].endswith("| figures 4.4s old (aggregator slow)")
    assert [m for m, _ in cluster.calls] == ["live_view", "live_view"]
    cluster.release()  # the late answer: kept, not shown (a line was shown for its call)
    line.tick(base + 14.65)
    assert len(said) == 3 and line.snap_at == base + 12.3
    line.tick(base + 16.4)
    line.tick(base + 16.65)
    assert len(said) == 4 and said[-1].startswith("[  16.4s     load]") and "aggregator slow" not in said[-1]
    assert time.monotonic() - started < 1.0  # no tick waited for the aggregator


def test_refresh_every_2s_on_a_terminal_and_at_most_every_10s_in_a_log():
    assert refresh_s(3600.0, tty=True) == 2.0
    assert refresh_s(20.0, tty=False) == 2.0 and refresh_s(100.0, tty=False) == 5.0
    assert refresh_s(3600.0, tty=False) == 10.0


def test_a_log_gets_the_status_lines_as_plain_lines(tmp_path: Path):
    out = io.StringIO()  # not a terminal
    agg = _aggregator(tmp_path)
    printer = Printer(out)
    line = ProgressLine(_scenario(), Load(T0, 20.0), _judge(None), printer, cast(Any, _Cluster()), agg, lambda: 0)
    assert line.every == 2.0  # a 20 s run in a log: every 2 s
    for t in (10.0, 10.25, 12.0, 12.25):
        line.tick(T0 / 1e9 + t)
    printer.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(s.startswith("[  1") and "\r" not in s and "\033" not in s for s in lines)


@pytest.fixture
def _process_state():
    """AgentHost tunes its process (GIL switch interval, frozen GC generation): undo it after."""
    import gc
    import sys

    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


@pytest.mark.usefixtures("_process_state")
def test_a_whole_in_process_run_shows_the_live_view(tmp_path: Path):
    from raybench.engine.inprocess import InProcessCluster
    from raybench.engine.run import Run

    sc = scenario.load(
        None,
        "smoke",
        {
            # 7 s: status lines every 2 s, windows judged from 2.5 s on; a busy machine still shows
            # a few lines after the first judged window
            "run.agents": 20, "run.hosts": 2, "run.duration": "7s", "run.warmup": "1s", "run.window": "1s",
            "run.flush_interval": "200ms", "run.drain_timeout": "2s", "fuse.mode": "off", "arrivals.rate": 4.0,
            "sla": {"window": "1s", "initial_delay": "0s", "thresholds": ["p99<1ms"]},
        },
    )  # fmt: skip
    said: list[str] = []
    with InProcessCluster() as cluster:
        run = Run(sc, store.create_run_dir(tmp_path, "live"), cluster, progress=said.append)
        result = run.execute(time.time_ns())
    assert result is not None and result.status == "completed"
    status = [s for s in said if s.startswith("[")]
    assert len(status) >= 2 and all("first window not complete" not in s for s in status)
    load = [s for s in status if " load]" in s]
    assert load and all(re.search(r"\| done [\d,]+/[\d,]+ of [\d,]+ \| in flight \d+ \|", s) for s in load), load
    assert any("| last " in s and " req/s, p50 " in s for s in status)
    assert any(s.endswith("| failing: p99<1ms") for s in status)
