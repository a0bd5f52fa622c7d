from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from raybench.config import scenario
from raybench.model.workload import Planner, Zipf, agent_rng


def test_zipf_probabilities_and_sampling():
    z = Zipf(100, 1.0)
    h = sum(1 / k for k in range(1, 101))
    assert z.probability(0) == pytest.approx(1 / h)
    assert z.probability(9) == pytest.approx(1 / 10 / h)
    assert sum(z.probability(k) for k in range(100)) == pytest.approx(1.0)
    rng = random.Random(5)
    n = 50_000
    counts = Counter(z.sample(rng) for _ in range(n))
    for k in (0, 1, 9):
        p = z.probability(k)
        assert abs(counts[k] - n * p) < 5 * math.sqrt(n * p)
    assert max(counts) <= 99 and min(counts) >= 0
    assert Zipf(10, 0.0).probability(3) == pytest.approx(0.1)


def test_plans_follow_the_class_mix_and_escalation_band():
    sc = scenario.load(preset="lighthouse")
    planner = Planner(sc)
    rng = agent_rng(1, 0)
    plans = [planner.plan(rng, 0) for _ in range(40_000)]
    share = Counter(sc.classes[p.cls].name for p in plans)
    assert share["safe"] / len(plans) == pytest.approx(0.7, abs=0.015)
    assert share["risky"] / len(plans) == pytest.approx(0.2, abs=0.015)
    esc = sum(p.escalate for p in plans) / len(plans)
    assert 0.15 <= esc <= 0.25
    for p in plans[:2000]:
        cls = sc.classes[p.cls]
        assert (p.llm_ms is not None) == (cls.llm and not p.cache_hit)
        assert (p.policy_ms is None) == p.cache_hit
        assert (p.expert_ms is not None) == p.escalate
        assert not (p.cache_hit and p.escalate)
        assert 0 <= p.key < sc.state.keys


def test_plans_are_reproducible_per_agent():
    sc = scenario.load(preset="smoke")
    planner = Planner(sc)
    a = [planner.plan(agent_rng(42, 7), 1) for _ in range(1)]
    b = [planner.plan(agent_rng(42, 7), 1) for _ in range(1)]
    c = [planner.plan(agent_rng(43, 7), 1) for _ in range(1)]
    assert a == b and a != c
    seq1 = [planner.plan(r, 0) for r in [agent_rng(1, 3)] for _ in range(50)]
    r = agent_rng(1, 3)
    seq2 = [planner.plan(r, 0) for _ in range(50)]
    assert seq1 == seq2


def test_regions_are_assigned_in_proportion():
    sc = scenario.load(preset="lighthouse")
    planner = Planner(sc)
    counts = Counter(planner.region_of(a, 1000) for a in range(1000))
    assert [counts[i] for i in range(3)] == [400, 350, 250]
