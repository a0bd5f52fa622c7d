"""An AgentHost run without Ray: the plain class, the in-memory transport to plain shards and an
expert pool, a stand-in aggregator that keeps what the host ships, no FUSE. The rows must be the
requests the agents' schedules intend, and the shards, the pool and the timings must agree with them."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections import defaultdict
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest

from raybench.actors.experts import ExpertPool
from raybench.actors.host import AgentHost
from raybench.actors.state import StateShard
from raybench.actors.transport import MemoryTransport
from raybench.config import scenario
from raybench.model.workload import Planner, intended_schedule
from raybench.results.recording import PackedRows, to_batch

AGENTS, SHARDS, EXPERTS = 20, 2, 2
EPS = 1e-6  # ms: float rounding of the timings


class FakeAggregator:
    """Keeps each flush a host ships (``write_packed``'s stand-in); replies at once."""

    def __init__(self) -> None:
        self.flushes: list[PackedRows] = []

    def write_packed(self, packed: PackedRows) -> asyncio.Future[int]:
        self.flushes.append(packed)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.set_result(sum(len(p.records) for p in self.flushes))
        return fut

    def table(self) -> pa.Table:
        return pa.Table.from_batches([to_batch(p) for p in self.flushes])


@pytest.fixture(autouse=True)
def _process_state():
    """AgentHost tunes its process (GIL switch interval, frozen GC generation): undo it after."""
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


def _scenario(**overrides: Any) -> Any:
    return scenario.load(
        None,
        "smoke",
        {
            "run.agents": AGENTS,
            "run.duration": "2s",
            "run.warmup": "0s",
            "run.shards": SHARDS,
            "run.flush_interval": "200ms",
            "fuse.mode": "off",
            "arrivals.rate": 4.0,  # ~160 requests
            "stages.expert": {"dist": "uniform", "min": 20, "max": 60},
            "experts.pool": EXPERTS,  # a queue forms now and then
            "state.keys": 6,  # hot keys: leases collide
        }
        | overrides,
    )


def _host(sc: Any) -> tuple[AgentHost, MemoryTransport, FakeAggregator]:
    transport = MemoryTransport([StateShard(i) for i in range(SHARDS)], ExpertPool(EXPERTS))
    aggregator = FakeAggregator()
    host = AgentHost(
        0, list(range(AGENTS)), sc, "run-test", [], None, None, None, "node-0",
        transport=transport, ship=aggregator.write_packed,
    )  # fmt: skip
    return host, transport, aggregator


def _run(sc: Any, during: Any = None) -> tuple[AgentHost, MemoryTransport, FakeAggregator, int, dict[str, Any]]:
    """Run a host from 50 ms from now to its end (``during(host)`` meanwhile); returns the host, its
    transport, the rows it shipped, the load's start (wall ns) and the host's counters."""
    host, transport, aggregator = _host(sc)
    load_start = time.time_ns() + 50_000_000

    async def main() -> dict[str, Any]:
        run = asyncio.ensure_future(host.run(load_start))
        if during is not None:
            await during(host)
        return await run

    counters = asyncio.run(asyncio.wait_for(main(), 60))
    return host, transport, aggregator, load_start, counters


def test_a_host_records_one_row_per_intended_request_and_the_state_agrees():
    sc = _scenario()
    host, transport, aggregator, load_start, counters = _run(sc)
    rows = aggregator.table().to_pylist()

    # one row per request the agents' schedules intend, no more, no fewer
    planner = Planner(sc)
    intended = {
        (a, load_start + int(t * 1e9)): plan for a in range(AGENTS) for t, plan in intended_schedule(sc, a, planner)
    }
    assert len(intended) > 100
    assert sorted((r["agent_id"], r["ts_intended_ns"]) for r in rows) == sorted(intended)
    assert counters["dispatched"] == counters["recorded"] == len(rows) and counters["cancelled"] == 0
    assert len({r["request_id"] for r in rows}) == len(rows)
    assert len(aggregator.flushes) > 1  # flushed while the load ran, not only at the end

    # each row is its plan's request, and every request ran to its end
    for r in rows:
        plan = intended[(r["agent_id"], r["ts_intended_ns"])]
        assert r["cls"] == sc.classes[plan.cls].name
        assert r["escalated"] == plan.escalate and r["cache_hit"] == plan.cache_hit
        assert r["outcome"] == ("denied" if plan.denied else "ok"), r
        assert r["error"] is None and r["host_id"] == 0 and r["node_id"] == "node-0" and r["run_id"] == "run-test"
        assert r["warmup"] is False
        assert (r["file_key"] is None) == plan.denied
    took_lease = [r for r in rows if r["file_key"] is not None]

    # the shards granted and released every lease, one holder at a time
    shards = [s.stats() for s in transport.shards]
    assert sum(s["leases_held"] for s in shards) == 0
    assert sum(s["grants"] for s in shards) == sum(s["releases"] for s in shards) == len(took_lease)
    assert sum(s["lost_releases"] for s in shards) == 0
    assert sum(s["cas_ok"] + s["reads"] for s in shards) == len(took_lease)
    assert sum(s["events"] for s in shards) == len(took_lease)
    # queue mode: each refused ACQUIRE waits once in the key's queue (wait_lease tries once more
    # on arrival, and is refused again unless the key came free meanwhile: then it queues)
    conflicts, queued = sum(r["conflicts"] for r in rows), sum(s.get("queued", 0) for s in shards)
    assert 0 < transport.lease_waits == conflicts and queued <= conflicts  # hot keys: leases collided
    assert sum(s["refusals"] for s in shards) == conflicts + queued
    by_key: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for r in took_lease:
        assert r["lease_start_ns"] <= r["lease_end_ns"]
        by_key[r["file_key"]].append((r["lease_start_ns"], r["lease_end_ns"]))
    for leases in by_key.values():
        leases.sort()
        assert all(nxt[0] >= prev[1] for prev, nxt in pairwise(leases)), leases
    # the client sent an acquire (refused or not: a refused one is granted by its wait), a commit
    # and an append per lease; the shards also applied each lease wait's own acquire
    assert host.client.ops == 3 * len(took_lease)
    assert sum(s["ops"] for s in shards) == host.client.ops + transport.lease_waits
    assert host.client.calls == len(transport.sent) < host.client.ops  # batched

    # escalations consulted the pool, and only they did
    escalated = [r for r in rows if r["escalated"]]
    assert escalated and transport.consultations == host.transport.experts.consultations == len(escalated)
    for r in escalated:
        assert r["expert_queue_ms"] >= 0 and r["expert_ms"] >= r["expert_model_ms"] - EPS
    assert all(r["expert_ms"] is None and r["expert_queue_ms"] is None for r in rows if not r["escalated"])

    # timings: no stage shorter than its model, no request shorter than its modelled stages
    for r in rows:
        assert r["lag_ms"] >= 0 and r["service_ms"] <= r["latency_ms"] + EPS
        assert r["ts_intended_ns"] <= r["ts_start_ns"] <= r["ts_end_ns"]
        review = 0.0
        if r["policy_model_ms"] is not None:
            assert r["policy_ms"] >= r["policy_model_ms"] - EPS
            review = r["policy_model_ms"]
        if r["llm_model_ms"] is not None:
            assert r["llm_ms"] >= r["llm_model_ms"] - EPS
            review = max(review, r["llm_model_ms"])  # policy and LLM review run in parallel
        modelled = review + (r["expert_model_ms"] or 0.0) + (r["rtt_model_ms"] or 0.0)
        assert r["latency_ms"] >= modelled - EPS, r
        assert r["service_ms"] >= modelled - EPS, r
    assert transport.connects == transport.closes == 1


def test_stop_ends_dispatch_and_drains_what_is_in_flight():
    """stop() in the middle of the load: no request starts after it, and every request already
    started runs to its end and has its row (none cancelled, none lost)."""
    sc = _scenario(**{"run.duration": "10s"})
    stopped_at: list[int] = []

    async def stop_soon(host: AgentHost) -> None:
        await asyncio.sleep(0.8)
        stopped_at.append(time.time_ns())
        await host.stop()

    t0 = time.monotonic()
    _, transport, aggregator, load_start, counters = _run(sc, stop_soon)
    assert time.monotonic() - t0 < 5.0  # not the scenario's 10 s
    rows = aggregator.table().to_pylist()
    assert rows and counters["dispatched"] == counters["recorded"] == len(rows) and counters["cancelled"] == 0
    # dispatched (a request is when its intended time has come) before the stop; it may start
    # running on the loop's next turn, after it
    assert all(r["ts_intended_ns"] <= stopped_at[0] for r in rows)
    assert all(r["outcome"] in ("ok", "denied") for r in rows)
    # the rows are a prefix of each agent's schedule: nothing skipped before the stop
    planner = Planner(sc)
    for a in range(AGENTS):
        mine = sorted(r["ts_intended_ns"] for r in rows if r["agent_id"] == a)
        schedule = [load_start + int(t * 1e9) for t, _ in intended_schedule(sc, a, planner)]
        assert mine == schedule[: len(mine)]
    assert sum(s.stats()["leases_held"] for s in transport.shards) == 0
