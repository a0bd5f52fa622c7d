"""Whole runs through the orchestrator without Ray: ``raybench.engine.run`` on the in-process cluster
(plain actors on one event loop, the in-memory transport, no FUSE), writing a real run folder. The
rows must be the agents' schedules, each window judged once, the files and the manifest complete;
a host killed mid-run is restarted and the requests that died with it become error rows."""

from __future__ import annotations

import gc
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from raybench.config import scenario
from raybench.engine.inprocess import InProcessCluster
from raybench.engine.run import Run, execute
from raybench.model.workload import intended_schedule
from raybench.results import store

AGENTS, DURATION_S = 30, 2.0
FAILING = "p99<1ms"  # fails in every window: a violation, and its rollback


@pytest.fixture(autouse=True)
def _process_state():
    """AgentHost tunes its process (GIL switch interval, frozen GC generation): undo it after."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


def _scenario() -> scenario.Scenario:
    return scenario.load(
        None,
        "smoke",
        {
            "run.agents": AGENTS,
            "run.hosts": 2,
            "run.duration": f"{DURATION_S}s",
            "run.warmup": "0s",
            "run.window": "1s",
            "run.flush_interval": "200ms",
            "run.drain_timeout": "2s",
            "fuse.mode": "off",
            "arrivals.rate": 3.0,  # ~180 requests
            "stages.expert": {"dist": "uniform", "min": 20, "max": 60},
            "experts.pool": 4,
            "sla": {
                "window": "1s",
                "initial_delay": "0s",
                "thresholds": ["error_rate<50%", FAILING],
                "actions": {FAILING: ["record", "rollback"]},
                "rollback": {"command": [sys.executable, "-c", "import sys; sys.stdin.read()"], "timeout": "20s"},
            },
        },
    )


def _intended(sc: scenario.Scenario, t0: int) -> set[tuple[int, int]]:
    return {(a, t0 + int(t * 1e9)) for a in range(sc.run.agents) for t, _ in intended_schedule(sc, a)}


def _events(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    t = store.read_table(run_dir, "events")
    kinds, details = t.column("kind").to_pylist(), t.column("detail").to_pylist()
    return [(k, json.loads(d)) for k, d in zip(kinds, details, strict=True)]


def _rows(requests: Any) -> list[tuple[int, int]]:
    """``(agent_id, ts_intended_ns)`` of every row."""
    return list(
        zip(requests.column("agent_id").to_pylist(), requests.column("ts_intended_ns").to_pylist(), strict=True)
    )


def test_a_whole_run_on_the_in_process_cluster(tmp_path: Path):
    sc = _scenario()
    said: list[str] = []
    with InProcessCluster() as cluster:
        run = Run(sc, store.create_run_dir(tmp_path, "whole"), cluster, progress=said.append)
        result = run.execute(time.time_ns())
    assert result is not None and result.status == "completed", result and result.manifest.get("error")
    m, run_dir = result.manifest, result.run_dir

    # one row per intended request, to the nanosecond, none lost
    requests = store.read_table(run_dir, "requests")
    rows = _rows(requests)
    assert len(rows) == len(set(rows)) == m["files"]["requests"] > 100
    assert set(rows) == _intended(sc, m["load_start_ns"])
    assert m["lost_requests"] == 0 and m["host_restarts"] == {} and m["error"] is None
    assert sum(h["recorded"] for h in m["hosts"]) == len(rows) and len(m["hosts"]) == 2

    # each window judged once, in order: every window of the load, then the drain's with rows
    windows = [w["window"] for w in run.judge.window_stats]
    n_load = math.ceil(DURATION_S / sc.run.window)
    assert windows == list(range(len(windows))) and len(windows) >= n_load
    sla = {r["id"]: r for r in result.sla_rows}
    assert all(r["windows_total"] == n_load for r in sla.values())
    assert [r["passed"] for r in result.sla_rows] == [True, False] and result.verdict is False
    assert store.read_table(run_dir, "sla").num_rows == 2

    # the files and the manifest
    assert not list(run_dir.glob("*.arrows"))
    for table in ("requests", "windows", "resources", "sla", "events"):
        assert (run_dir / f"{table}.arrow").exists(), table
    roles = set(store.read_table(run_dir, "resources").column("role").to_pylist())
    assert {"driver", "host", "shard", "experts", "aggregator"} <= roles
    assert m["status"] == "completed" and m["load_stopped_ns"] is None and m["abort_reason"] is None
    assert m["harness"]["status"] in ("ok", "saturated") and m["scenario_capacity"]
    assert m["cluster"]["head_node"] == "inproc-node-0" and m["fuse"]["enabled"] is False
    assert m["shards"] and m["experts"]["consultations"] > 0
    assert m["sla"]["verdict"] is False and m["sla_settings"]["thresholds"]

    # the violation was recorded, printed and acted on
    kinds = Counter(k for k, _ in _events(run_dir))
    assert kinds["violation"] >= 1 and kinds["rollback"] == kinds["violation"], kinds
    assert not kinds.keys() - {"violation", "rollback"}, kinds
    assert any(line.startswith("SLA violation: ") for line in said)
    assert said[0] == f"starting actors: {AGENTS} agents, 1 shards, 4 experts"
    assert said[1] == "2 agent hosts on 1 node(s); FUSE off (fuse.mode = off)"


def test_a_host_killed_mid_run_is_restarted_and_its_lost_requests_are_rows(tmp_path: Path):
    sc = _scenario()
    killed: list[int] = []
    with InProcessCluster() as cluster:

        def progress(line: str) -> None:
            if " load]" in line and not killed:  # the load has run a while: kill host 1
                killed.append(time.time_ns())
                cluster.kill([a for a in cluster.actors if a.role == "host"][1], restart=True)

        result = execute(sc, out=tmp_path, run_id="killed", cluster=cluster, progress=progress)
        assert [a.restarts for a in cluster.actors if a.role == "host"] == [0, 1]
    assert killed and result.status == "completed", result.manifest.get("error")
    m, run_dir = result.manifest, result.run_dir

    events = _events(run_dir)
    restarts = [d for k, d in events if k == "actor_restart"]
    assert len(restarts) == 1 and restarts[0]["host_id"] == 1 and restarts[0]["epoch"] == 1
    assert m["host_restarts"] == {"1": 1}
    assert [d["count"] for k, d in events if k == "lost_requests"] == [m["lost_requests"]]
    assert [h["epoch"] for h in m["hosts"]] == [0, 1]

    # still one row per intended request: what the dead host lost is an error row
    requests = store.read_table(run_dir, "requests")
    rows = _rows(requests)
    assert len(rows) == len(set(rows)) and set(rows) == _intended(sc, m["load_start_ns"])
    assert len(set(requests.column("request_id").to_pylist())) == requests.num_rows
    errors = [e for e in requests.column("error").to_pylist() if e and e.startswith(("lost:", "not started:"))]
    assert len(errors) == m["lost_requests"] > 0
    host_1 = set(range(AGENTS // 2, AGENTS))  # the second host's agents
    lost = [a for a, e in zip(requests.column("agent_id").to_pylist(), requests.column("error").to_pylist(),
                              strict=True) if e and e.startswith(("lost:", "not started:"))]  # fmt: skip
    assert set(lost) <= host_1
