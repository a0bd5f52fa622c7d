"""One place knows a request row's layout: RequestRows.add_request, written from recording.PACKED.
The hosts add their rows with it, and so does the driver for the requests of a host that died."""

from __future__ import annotations

import math
import random

import pytest

from raybench.results import schema
from raybench.results.recording import (
    NULL_INT,
    NULL_MS,
    OPTIONAL,
    OUTCOME_CODE,
    PACKED,
    RequestRows,
    RowBuffer,
)

REGIONS, CLASSES = ["us-east", "eu-west"], ["safe", "risky", "complex"]


def _values(rng: random.Random, i: int) -> dict:
    """One request's packed values by name (nulls as the host writes them), and its error."""
    intended = 4_000_000_000 + i * 1_000_000
    start = intended + rng.randrange(0, 2_000_000)
    v: dict = {name: (rng.uniform(0.1, 50.0) if rng.random() < 0.6 else NULL_MS) for name, c in PACKED if c == "d"}
    key = rng.random() < 0.7
    v |= {
        "request_id": (2 << 40) | i, "perf_intended": intended, "perf_start": start,
        "perf_end": start + rng.randrange(1_000_000, 50_000_000),
        "file_key": rng.randrange(1000) if key else NULL_INT,
        "lease_start_ns": start + 5 if key else NULL_INT, "lease_end_ns": start + 900 if key else NULL_INT,
        "agent_id": rng.randrange(100), "conflicts": rng.randrange(3), "region": rng.randrange(len(REGIONS)),
        "cls": rng.randrange(len(CLASSES)), "outcome": rng.randrange(len(schema.OUTCOMES)),
        "escalated": rng.random() < 0.2, "cache_hit": rng.random() < 0.1,
        "error": rng.choice([None, None, None, f"error {i}"]),
    }  # fmt: skip
    return v


def _buffer() -> RequestRows:
    buf = RequestRows("run-1", 2, "node-2", REGIONS, CLASSES)
    buf.wall_offset_ns, buf.warm_end_perf_ns = 1_790_000_000_000_000_000, 4_100_000_000
    return buf


def test_add_request_by_name_gives_the_batch_of_the_values_in_packed_order():
    rng = random.Random(5)
    requests = [_values(rng, i) for i in range(500)]
    by_name, in_order = _buffer(), _buffer()
    for r in requests:
        by_name.add_request(**r)
        in_order.add(tuple(r[name] for name, _ in PACKED))
        if r["error"] is not None:
            in_order.error(r["error"])
    a, b = by_name.take(), in_order.take()
    assert a is not None and b is not None and a.num_rows == 500
    for name in a.schema.names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    assert a.column("error").null_count == sum(r["error"] is None for r in requests)


def test_optional_values_default_to_null_and_the_others_are_required():
    assert {name for name, _ in PACKED if name in OPTIONAL} == OPTIONAL
    nullable = {f.name for f in schema.schema("requests", final=False) if f.nullable}
    assert nullable & {name for name, _ in PACKED} == OPTIONAL
    required = dict(request_id=1, perf_intended=10, perf_start=11, perf_end=20, agent_id=3, conflicts=0,
                    region=1, cls=2, outcome=OUTCOME_CODE["ok"], escalated=False, cache_hit=True)  # fmt: skip
    assert set(required) == {name for name, _ in PACKED} - OPTIONAL
    buf = _buffer()
    buf.add_request(**required)
    buf.add_request(**required, policy_ms=None, file_key=None)  # None is a null too (the slower path)
    with pytest.raises(TypeError, match="agent_id"):
        buf.add_request(**{k: v for k, v in required.items() if k != "agent_id"})
    with pytest.raises(TypeError):
        buf.add_request(*required.values())  # keyword-only: no values by position
    rows = buf.take().to_pylist()
    assert len(rows) == 2
    for row in rows:
        assert all(row[name] is None for name in OPTIONAL)
        assert row["agent_id"] == 3 and row["cls"] == "complex" and row["region"] == "eu-west"
        assert row["latency_ms"] == pytest.approx(10 / 1e6) and row["error"] is None


def test_a_wall_clock_buffer_gives_the_rows_the_driver_wrote_by_position_for_lost_requests():
    """The driver's rows for the requests of a dead host (raybench.engine.lost.account_lost) now come from
    add_request on a buffer whose clock is the wall clock; they equal the 34-value rows it used to
    build by position."""
    t0, h, node = 1_790_000_000_000_000_000, 3, "node-3"
    warm_end, last_death = t0 + 2_000_000_000, t0 + 7_500_000_000
    rng = random.Random(9)
    buf = RequestRows("run-9", h, node, REGIONS, CLASSES)
    buf.warm_end_perf_ns = warm_end
    old = RowBuffer("requests")
    for n in range(1, 301):
        intended = t0 + rng.randrange(0, 10_000_000_000)
        a, region, cls = rng.randrange(50), rng.randrange(len(REGIONS)), rng.randrange(len(CLASSES))
        escalate, cache_hit = rng.random() < 0.2, rng.random() < 0.1
        why = "lost: ..." if intended <= last_death else "not started: ..."
        end = max(intended, last_death)
        buf.add_request(
            request_id=(h << 40) | (0xFF << 32) | n, perf_intended=intended, perf_start=intended, perf_end=end,
            agent_id=a, conflicts=0, region=region, cls=cls, outcome=OUTCOME_CODE["error"],
            escalated=escalate, cache_hit=cache_hit, error=why,
        )  # fmt: skip
        lat = (end - intended) / 1e6
        old.append(
            (
                "run-9", (h << 40) | (0xFF << 32) | n, a, h, node, REGIONS[region], CLASSES[cls],
                intended < warm_end, intended, intended, end, lat, lat, 0.0, "error", why, escalate, cache_hit,
                *[None] * 12, None, None, None, 0,
            )
        )  # fmt: skip
    new_batch, old_batch = buf.take(), old.take()
    assert new_batch.schema == old_batch.schema
    for name in new_batch.schema.names:
        got, want = new_batch.column(name).to_pylist(), old_batch.column(name).to_pylist()
        if name in ("latency_ms", "service_ms", "lag_ms"):
            assert all(math.isclose(g, w, rel_tol=0, abs_tol=1e-9) for g, w in zip(got, want, strict=True)), name
        else:
            assert got == want, name
