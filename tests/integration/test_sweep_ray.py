"""A real small sweep on a local Ray: its rows are monotone in agents and its recommendation agrees
with them (the pure analysis is in tests/unit/test_sweep.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from raybench.cli import jsonout
from raybench.engine import sweep


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
    # `sweep --json` prints this document: the table's rows, null where the table has null
    doc = json.loads(jsonout.dumps(jsonout.document("sweep", jsonout.sweep(result), 0)))
    assert [p["agents"] for p in doc["points"]] == agents
    assert [p["throughput_per_s"] for p in doc["points"]] == tp
    assert [p["p99_ms"] for p in doc["points"]] == table.column("p99_ms").to_pylist()
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
