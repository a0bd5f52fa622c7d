"""raybench.judge.capacity: the scenario's own limits, from the scenario alone."""

from __future__ import annotations

import pytest

from raybench.config import scenario
from raybench.judge import capacity
from raybench.judge.capacity import EXPERT_POOL, HOT_LEASE


def lighthouse(**overrides: object) -> scenario.Scenario:
    return scenario.load(None, "lighthouse", overrides)


def finding(sc: scenario.Scenario, resource: str) -> capacity.Finding:
    return next(f for f in capacity.findings(sc) if f.resource == resource)


def test_lighthouse_at_1000_agents_is_within_its_expert_pool() -> None:
    sc = lighthouse()
    assert capacity.escalated_share(sc) == pytest.approx(0.9 * (0.7 * 0.05 + 0.2 * 0.35 + 0.1 * 0.75))
    f = finding(sc, EXPERT_POOL)
    assert f.capacity == pytest.approx(200 / 0.85)  # ~235 consultations/s
    # 162 escalations/s on average; the diurnal peak summed over three regions is ~1.14x that
    assert 1.0 < capacity.peak_factor(sc) < 1.3
    assert 160 < f.offered < 235 and not f.over
    assert capacity.over_capacity(capacity.findings(sc)) == []


def test_lighthouse_at_10000_agents_is_over_its_expert_pool() -> None:
    found = capacity.findings(lighthouse(**{"run.agents": 10_000}))
    assert capacity.over_capacity(found) == [EXPERT_POOL]
    f = next(f for f in found if f.resource == EXPERT_POOL)
    assert f.offered > 1600 and f.utilization > 6
    line = capacity.format_finding(f)
    assert "expert pool" in line and "235" in line and "the run goes on" in line
    d = f.to_dict()
    assert d["over"] is True and d["resource"] == EXPERT_POOL and d["capacity"] == pytest.approx(235.29, rel=1e-3)
    assert capacity.over_capacity([d]) == [EXPERT_POOL]  # read back from a manifest


def test_a_larger_pool_holds_10000_agents() -> None:
    sc = lighthouse(**{"run.agents": 10_000, "experts.pool": 3000})
    assert capacity.over_capacity(capacity.findings(sc)) == []
    assert finding(sc, EXPERT_POOL).capacity == pytest.approx(3000 / 0.85)


def test_flat_shape_cache_hits_and_denials() -> None:
    sc = lighthouse(**{"arrivals.shape": {"kind": "flat"}, "stages.cache_hit_rate": 0.5, "classes.safe.deny": 1.0})
    assert capacity.peak_factor(sc) == 1.0
    # safe requests are all denied (never escalated, never leased) when they miss the cache
    assert capacity.escalated_share(sc) == pytest.approx(0.5 * (0.2 * 0.35 + 0.1 * 0.75))
    assert capacity.leased_share(sc) == pytest.approx(1 - 0.5 * 0.7)


def test_the_hottest_key_lease() -> None:
    sc = lighthouse()
    f = finding(sc, HOT_LEASE)
    assert f.capacity == pytest.approx(1000 / (0.4 * 1.0 + 0.35 * 2.0 + 0.25 * 4.0))
    assert not f.over
    # two keys and a steep Zipf: most requests want key 0, held >= 4 ms each
    hot = lighthouse(**{"state.keys": 2, "state.zipf": 3.0, "fuse.mode": "off"})
    assert capacity.hottest_key_share(2, 3.0) == pytest.approx(8 / 9)
    assert HOT_LEASE in capacity.over_capacity(capacity.findings(hot))
    # no modelled round trip: no hold time the scenario knows, no lease finding
    local = lighthouse(regions=[{"name": "here", "weight": 1.0, "rtt": 0}])
    assert all(f.resource != HOT_LEASE for f in capacity.findings(local))


def test_step_peaks_and_closed_loop() -> None:
    steps = lighthouse(**{"arrivals.shape": {"kind": "step", "steps": [["10s", 3.0], ["12s", 1.0]]}})
    assert capacity.peak_factor(steps) == pytest.approx(3.0)
    closed = lighthouse(**{"arrivals.process": "closed", "arrivals.think": {"dist": "constant", "value": 500}})
    assert capacity.peak_rate(closed) == pytest.approx(1000 * 2.0)  # at most 1 / think time per agent
