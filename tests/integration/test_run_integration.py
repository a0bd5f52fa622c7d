"""End to end on a real local Ray: the rows of a 1,000-agent run prove what the harness did."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from raybench.actors.file_handles import OPEN_AHEAD_MAX_FILES, handle_capacity
from raybench.cli import cli
from raybench.config import scenario
from raybench.engine.run import execute
from raybench.model.workload import intended_schedule
from raybench.results import store
from raybench.results.schema import SCHEMA_VERSION

pytestmark = pytest.mark.ray

AGENTS, DURATION, WARMUP, RATE = 1000, 12.0, 1.0, 0.4


@pytest.fixture(scope="module")
def big_run(ray_local, tmp_path_factory):
    sc = scenario.load(
        preset="smoke",
        overrides={
            "run.agents": AGENTS,
            "run.duration": f"{DURATION}s",
            "run.warmup": f"{WARMUP}s",
            "run.seed": 11,
            "arrivals.rate": RATE,
        },
    )
    out = tmp_path_factory.mktemp("results")
    result = execute(sc, out=out, run_id="big")
    table = store.read_table(result.run_dir, "requests")
    return sc, result, table


def _col(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(t.column(name).to_numpy(zero_copy_only=False))


def _f(t: pa.Table, name: str) -> np.ndarray:
    return np.asarray(t.column(name).to_numpy(zero_copy_only=False), dtype=float)


def _replayed_intended_counts(sc: scenario.Scenario) -> Counter:
    """Replay every agent's seeded RNG exactly as the dispatcher does: plan, then next time."""
    return Counter({a: n for a in range(sc.run.agents) if (n := len(intended_schedule(sc, a)))})


def test_every_intended_request_is_a_row(big_run):
    sc, result, t = big_run
    assert result.status == "completed"
    expected = _replayed_intended_counts(sc)
    agents = Counter(_col(t, "agent_id").tolist())
    assert agents == expected  # not one request lost or invented, per agent
    t0 = result.manifest["load_start_ns"]
    replayed = {(a, t0 + int(t * 1e9)) for a in expected for t, _ in intended_schedule(sc, a)}
    rows = set(zip(_col(t, "agent_id").tolist(), _col(t, "ts_intended_ns").tolist(), strict=True))
    assert rows == replayed  # to the nanosecond: the rows are the seeded schedule
    # 1,000 agents at 0.4 req/s for 12 s: P(an agent has no request) = e^-4.8, ~8 of them
    assert len(set(agents)) == len(expected) >= 980
    offered = sc.offered_rate * sc.run.duration
    assert abs(t.num_rows - offered) < 5 * math.sqrt(offered)
    assert len(set(_col(t, "request_id").tolist())) == t.num_rows


def test_latency_covers_every_modelled_sleep(big_run):
    _, _, t = big_run
    lat = _f(t, "latency_ms")
    policy, llm, expert = (np.nan_to_num(_f(t, c)) for c in ("policy_model_ms", "llm_model_ms", "expert_model_ms"))
    floor = np.maximum(policy, llm) + expert
    assert np.all(lat + 1e-6 >= floor)
    for measured, modelled in (
        ("policy_ms", "policy_model_ms"),
        ("llm_ms", "llm_model_ms"),
        ("expert_ms", "expert_model_ms"),
    ):
        m, d = _f(t, measured), _f(t, modelled)
        ran = ~np.isnan(d)
        assert ran.any()
        assert np.all(m[ran] >= d[ran] - 1e-3)
    assert np.allclose(lat, _f(t, "service_ms") + _f(t, "lag_ms"), atol=1e-3)
    assert np.all(_col(t, "ts_end_ns") >= _col(t, "ts_start_ns"))


def test_escalation_fraction_is_in_the_band(big_run):
    _, _, t = big_run
    esc = _col(t, "escalated").mean()
    assert 0.13 <= esc <= 0.20  # 0.9 x 0.18 = 0.162 expected
    assert np.all(np.isnan(_f(t, "expert_ms")) != _col(t, "escalated"))


def test_no_two_leases_on_a_key_overlap(big_run):
    _, _, t = big_run
    key, start, end = _f(t, "file_key"), _f(t, "lease_start_ns"), _f(t, "lease_end_ns")
    held = ~np.isnan(start) & ~np.isnan(end)
    assert held.sum() > 0.8 * t.num_rows
    key, start, end = key[held], _col(t, "lease_start_ns")[held], _col(t, "lease_end_ns")[held]
    assert np.all(end >= start)
    order = np.lexsort((start, key))
    k, s, e = key[order], start[order], end[order]
    same = k[1:] == k[:-1]
    assert np.all(s[1:][same] >= e[:-1][same]), "two requests held the same key at once"
    assert same.sum() > 0  # hot keys were shared, so the check had something to check


def test_manifest_agrees_with_the_files(big_run):
    sc, result, t = big_run
    m = json.loads((result.run_dir / "manifest.json").read_text())
    assert m["status"] == "completed" and m["schema_version"] == SCHEMA_VERSION
    assert m["files"]["requests"] == t.num_rows
    assert sum(h["recorded"] for h in m["hosts"]) == t.num_rows
    assert sum(h["dispatched"] for h in m["hosts"]) == t.num_rows
    # Ray runs the hosts on uvloop when it is installed (a dependency), unless RAY_USE_UVLOOP=0
    uv = importlib.util.find_spec("uvloop") is not None and os.environ.get("RAY_USE_UVLOOP", "1") != "0"
    assert {h["event_loop"] for h in m["hosts"]} == {"uvloop" if uv else "asyncio"}
    assert m["scenario"] == sc.to_dict()
    assert m["files"]["windows"] == store.read_table(result.run_dir, "windows").num_rows
    roles = set(store.read_table(result.run_dir, "resources").column("role").cast(pa.string()).to_pylist())
    assert {"driver", "host", "shard", "experts", "aggregator"} <= roles
    assert not list(result.run_dir.glob("*.arrows")) and not list(result.run_dir.glob(".*tmp"))
    # the run judged its own harness (raybench.judge.harness) and recorded its scenario's limits
    assert m["harness"]["status"] in ("ok", "saturated")
    assert m["flush_age_ms"]["flushes"] > 0 and "late_rows" not in m["harness"]["unchecked"]
    assert m["scenario_capacity"][0]["resource"] == "expert pool" and not m["scenario_capacity"][0]["over"]
    warm = _col(t, "warmup")
    intended = _col(t, "ts_intended_ns")
    assert np.array_equal(warm, intended < m["load_start_ns"] + int(WARMUP * 1e9))
    if m["fuse"].get("enabled"):
        touched = ~np.isnan(_f(t, "lease_start_ns"))
        assert not np.isnan(_f(t, "fuse_ms")[touched]).any()
        # the workspace was there before the load: one file per key, fuse.file_bytes each
        assert {(n["prefill"], n["prefill_bytes"]) for n in m["fuse"]["nodes"]} == {(sc.state.keys, sc.fuse.file_bytes)}
        # each host opened every key's file before the load (fuse.open_ahead, the default), so the
        # requests opened none: their FUSE stage is the file operation alone
        # (Ray's workers inherit this process's descriptor limit, which bounds the handles)
        ahead = min(handle_capacity(sc.state.keys), OPEN_AHEAD_MAX_FILES)
        assert sc.fuse.open_ahead and all(h["files_opened_ahead"] == ahead for h in m["hosts"])
        assert all(h["files_opened"] == ahead and h["open_ahead_s"] > 0 for h in m["hosts"])
        assert "open_ahead_error" not in str(m["hosts"])
    # the driver ran the load at the hosts' niceness (Ray's worker niceness), then got its own back
    dp, nice = m["driver_priority"], max(h["nice"] for h in m["hosts"])
    assert dp["during"] == max(dp["before"], nice)
    if dp["during"] > dp["before"]:
        assert dp["restored"] is (os.geteuid() == 0)  # raising a priority again needs CAP_SYS_NICE
    if dp["restored"]:
        assert os.getpriority(os.PRIO_PROCESS, 0) == dp["before"]


def test_an_undersized_expert_pool_queues(ray_local, tmp_path):
    sc = scenario.load(
        preset="smoke",
        overrides={
            "run.agents": 100,
            "arrivals.rate": 1.0,
            "run.duration": "4s",
            "run.warmup": "1s",
            "experts.pool": 2,
            "fuse.mode": "off",
        },
    )
    result = execute(sc, out=tmp_path, run_id="small-pool")
    t = store.read_table(result.run_dir, "requests")
    q = _f(t, "expert_queue_ms")
    q = q[~np.isnan(q)]
    assert q.size > 5
    assert np.median(q) > 100  # ~16 escalations/s of ~850 ms on 2 experts: a growing queue
    assert result.manifest["experts"]["max_queue"] > 5
    assert result.manifest["scenario_capacity"][0]["over"]  # known before the run: raybench.judge.capacity


def test_cli_run_prints_the_run_folder_last_and_show_reads_it(ray_local, tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        cli,
        ["run", "--preset", "smoke", "--agents", "50", "--duration", "3s", "--warmup", "1s",
         "--set", "fuse.mode=off", "--out", str(tmp_path), "--run-id", "cli", "--quiet"],
    )  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    last = res.output.strip().splitlines()[-1]
    assert Path(last) == tmp_path / "cli"
    assert "cls=safe" in res.output
    assert any(line.startswith("harness: ") for line in res.output.splitlines())
    shown = runner.invoke(cli, ["show", last])
    assert shown.exit_code == 0, shown.output
    assert "harness: " in shown.output
    # show recomputes the same table from the files
    table_lines = [line for line in res.output.splitlines() if line.startswith(("all ", "cls="))]
    assert table_lines and all(line in shown.output for line in table_lines)


def _require_fuse() -> None:
    from fuse_bench.mount import probe

    reason = probe()
    if reason is not None:
        pytest.skip(f"FUSE unavailable: {reason}")


def test_fuse_probe_workload_runs_beside_the_agents(ray_local, tmp_path):
    _require_fuse()
    sc = scenario.load(
        preset="smoke",
        overrides={"run.agents": 50, "run.duration": "4s", "run.warmup": "1s", "fuse.probe_workers": 2,
                   "fuse.open_ahead": False},
    )  # fmt: skip
    result = execute(sc, out=tmp_path, run_id="probe")
    # without open_ahead the hosts opened files on their keys' first use, inside requests
    hosts = result.manifest["hosts"]
    assert {h["files_opened_ahead"] for h in hosts} == {0} and "open_ahead_s" not in hosts[0]
    assert 0 < sum(h["files_opened"] for h in hosts) <= sum(h["recorded"] for h in hosts)
    ops = store.read_table(result.run_dir, "fuse_ops")
    assert ops.num_rows > 10 and result.manifest["files"]["fuse_ops"] == ops.num_rows
    assert set(ops.column("target").cast(pa.string()).to_pylist()) == {"fuse"}
    assert set(ops.column("run_id").to_pylist()) == {"probe"}
    t0, end = result.manifest["load_start_ns"], result.manifest["load_end_ns"]
    ts = ops.column("ts_ns").to_pylist()
    assert min(ts) >= t0 - 50_000_000 and max(ts) <= end + 1_000_000_000


def test_fuse_passthrough_serves_the_file_stage_from_a_folder_on_disk(ray_local, tmp_path):
    _require_fuse()
    sc = scenario.load(
        preset="smoke",
        overrides={"run.agents": 50, "arrivals.rate": 1.0, "run.duration": "3s", "run.warmup": "1s",
                   "fuse.fs": "passthrough"},
    )  # fmt: skip
    result = execute(sc, out=tmp_path, run_id="passthrough")
    node = result.manifest["fuse"]["nodes"][0]
    assert node["mode"] == "passthrough" and result.manifest["scenario"]["fuse"]["fs"] == "passthrough"
    t = store.read_table(result.run_dir, "requests")
    ok = t.filter(pc.equal(t.column("outcome").cast(pa.string()), "ok"))
    assert ok.num_rows > 50 and ok.column("fuse_ms").null_count == 0
    assert min(ok.column("fuse_ms").to_pylist()) > 0
    # the mount, its backing folder with the files the agents wrote, and the run's folder are gone
    base = Path(node["mountpoint"]).parent
    assert not base.exists()
    assert "raybench-passthrough" not in Path("/proc/mounts").read_text()


def test_injected_faults_shrink_the_pool_and_fail_requests(ray_local, tmp_path):
    sc = scenario.load(
        preset="smoke",
        overrides={
            "run.agents": 100,
            "arrivals.rate": 1.0,
            "run.duration": "8s",
            "run.warmup": "1s",
            "fuse.mode": "off",
            "faults": [
                {"kind": "shrink_experts", "pool": 1, "start": "2s", "end": "5s"},
                {"kind": "fail", "share": 0.5, "start": "5s", "end": "6s"},
            ],
        },
    )
    result = execute(sc, out=tmp_path, run_id="faults")
    events = store.read_table(result.run_dir, "events")
    kinds = events.column("kind").to_pylist()
    assert "fault_start" in kinds and "fault_end" in kinds
    t = store.read_table(result.run_dir, "requests")
    t0 = result.manifest["load_start_ns"]
    rel = (_col(t, "ts_intended_ns") - t0) / 1e9
    queue = _f(t, "expert_queue_ms")
    shrunk = (rel >= 2.2) & (rel < 4.5) & ~np.isnan(queue)
    normal = (rel >= 6.5) & ~np.isnan(queue)
    assert shrunk.sum() > 3 and np.median(queue[shrunk]) > 100  # one expert for ~16 escalations/s
    assert np.median(queue[normal]) < 5
    errors = np.asarray(t.column("error").to_pylist(), dtype=object)
    injected = np.array([bool(e) and "injected failure" in e for e in errors])
    assert injected.any() and np.all((rel[injected] >= 5) & (rel[injected] < 6))
    assert 0.3 < injected[(rel >= 5) & (rel < 6)].mean() < 0.7
