"""Rows for the requests that died with their agent host, so a run's rows always equal its schedule.

A host that dies loses the requests it had in flight and the rows it had not flushed yet; while Ray
restarts it, its agents' requests due meanwhile never start. Every agent's schedule is
deterministic (:func:`raybench.model.workload.intended_schedule`), so the driver replays the dead
hosts' agents' schedules at the end and records every intended request without a row as an
``error`` row: ``lost: ...`` when it was due before the host's last death (its latency runs up to
the moment that death was noticed), ``not started: ...`` after it. Open loop only (a closed loop has
no schedule).
"""

from __future__ import annotations

from pathlib import Path

from raybench.config.scenario import Scenario
from raybench.engine.cluster import Actor, Cluster
from raybench.engine.events import EventLog
from raybench.engine.placement import HostSlot


def account_lost(
    cluster: Cluster,
    aggregator: Actor,
    sc: Scenario,
    run_dir: Path,
    t0_ns: int,
    host_plan: list[HostSlot],
    deaths: dict[int, list[int]],
    events: EventLog,
) -> int:
    """Write the error rows of the requests that died with hosts ``deaths`` (host -> times its
    deaths were noticed, ns) through the aggregator, record ``lost_requests``; returns how many."""
    from raybench.model.workload import Planner, intended_schedule
    from raybench.results import store
    from raybench.results.recording import OUTCOME_CODE, RequestRows

    if not deaths or not sc.arrivals.open_loop:
        return 0
    cluster.get(cluster.call(aggregator, "take_windows", -1))  # every write before this call has landed
    recorded = store.read_table(run_dir, "requests", columns=["agent_id", "ts_intended_ns"])
    seen = set(zip(recorded.column("agent_id").to_pylist(), recorded.column("ts_intended_ns").to_pylist(),
                   strict=True))  # fmt: skip
    planner = Planner(sc)
    regions, classes = [r.name for r in sc.regions], [c.name for c in sc.classes]
    batches = []
    warm_end = t0_ns + int(sc.run.warmup * 1e9)
    n = 0
    for h, host_deaths in deaths.items():
        node_id, agent_ids = host_plan[h]
        last_death = max(host_deaths)
        buf = RequestRows(run_dir.name, h, node_id, regions, classes)  # its clock: the wall clock
        buf.warm_end_perf_ns = warm_end
        for a in agent_ids:
            region = planner.region_of(a, sc.run.agents)
            for t, plan in intended_schedule(sc, a, planner):
                intended = t0_ns + int(t * 1e9)
                if (a, intended) in seen:
                    continue
                n += 1
                if intended <= last_death:
                    why = (
                        f"lost: agent host {h} died before this request's row was flushed (in flight or "
                        "buffered); latency is up to the moment the death was noticed"
                    )
                else:
                    why = f"not started: agent host {h} was restarting (or had failed for good)"
                buf.add_request(
                    request_id=(h << 40) | (0xFF << 32) | n, perf_intended=intended, perf_start=intended,
                    perf_end=max(intended, last_death), agent_id=a, conflicts=0, region=region, cls=plan.cls,
                    outcome=OUTCOME_CODE["error"], escalated=plan.escalate, cache_hit=plan.cache_hit, error=why,
                )  # fmt: skip
        batches.append(buf.take())
    cluster.get([cluster.call(aggregator, "write", "requests", b) for b in batches if b is not None])
    events.record("lost_requests", count=n, hosts=sorted(deaths))
    return n
