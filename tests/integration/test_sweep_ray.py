"""raybench.engine.sweep: the pure analysis (search steps, slopes, recommendation) and a real small sweep on a
local Ray whose rows are monotone in agents and whose recommendation agrees with them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from raybench.engine import sweep
from raybench.engine.sweep import SweepPoint


def point(agents: int, held: bool | None, p99: float = 10.0, status: str = "completed") -> SweepPoint:
    return SweepPoint(agents, f"agents-{agents:06d}", status, held, agents * 1.0, agents * 0.9, 5.0, p99,
                      0.0, 100.0 + agents * 0.5, 20.0 + agents * 0.1)  # fmt: skip


@pytest.mark.ray
@pytest.mark.slow
def test_real_sweep_on_local_ray(ray_local, tmp_path: Path) -> None:
    from raybench.config import scenario

    sc = scenario.load(
        preset="smoke",
        overrides={"run.agents": 20, "run.duration": "4s", "run.warmup": "1s", "run.seed": 3, "run.window": "1s"},
    )
    result = sweep.run_sweep(sc, [40, 20], out=tmp_path, sweep_id="sw")
    table = pa.ipc.open_file(str(tmp_path / "sw" / "sweep.arrow")).read_all()
    agents = table.column("agents").to_pylist()
    assert agents == [20, 40]
    assert all(s == "completed" for s in table.column("status").to_pylist())
    offered = table.column("offered_rps").to_pylist()
    assert offered[0] < offered[1]  # twice the agents, twice the offered load
    tp = table.column("throughput_rps").to_pylist()
    assert all(t > 0 for t in tp)
    for p in result.points:
        assert (tmp_path / "sw" / p.run_id / "requests.arrow").exists()
    held = [p.held for p in result.points]
    a = result.analysis
    if None in held:
        assert "no SLA thresholds" in a.recommendation
    elif all(held):
        assert a.largest_held == 40 and a.recommendation.startswith("every size held")
    elif held == [True, False]:
        assert (a.largest_held, a.first_broken) == (20, 40)
    else:
        assert a.largest_held is None and a.recommendation.startswith("no size held")


# -- what the knee hit ---------------------------------------------------------------------------

SATURATED = {
    "status": "saturated",
    "reasons": [{"bound": "timing_error_p99_ms", "observed": 14.2, "limit": 10.0, "detail": "p99 14.2 ms"}],
    "system": [],
}
POOL_OVER = {"resource": "expert pool", "offered": 259.2, "capacity": 235.3, "unit": "consultations/s", "over": True}
POOL_OK = POOL_OVER | {"offered": 200.0, "over": False}


def limited(agents: int, held: bool, status: str, limit: str = "", detail: str = "") -> SweepPoint:
    return replace(point(agents, held), harness_status=status, limit=limit, limit_detail=detail)
