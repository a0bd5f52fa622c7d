"""raybench.engine.sweep: the pure analysis (search steps, slopes, recommendation) and a real small sweep on a
local Ray whose rows are monotone in agents and whose recommendation agrees with them."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from raybench.engine import sweep
from raybench.engine.sweep import SweepPoint, analyze, fit_slope, next_search_size, parse_sizes
from raybench.errors import UsageError


def point(agents: int, held: bool | None, p99: float = 10.0, status: str = "completed") -> SweepPoint:
    return SweepPoint(agents, f"agents-{agents:06d}", status, held, agents * 1.0, agents * 0.9, 5.0, p99,
                      0.0, 100.0 + agents * 0.5, 20.0 + agents * 0.1)  # fmt: skip


def test_parse_sizes() -> None:
    assert parse_sizes("4000,500, 1_000,500") == [500, 1000, 4000]
    for bad in ("", "a,b", "0,5", "-3"):
        with pytest.raises(UsageError, match="--agents"):
            parse_sizes(bad)


def test_next_search_size_bisects_until_resolution() -> None:
    pts = [point(500, True), point(1000, True), point(2000, False)]
    assert next_search_size(pts) == 1500
    pts.append(point(1500, False))
    assert next_search_size(pts) == 1250
    pts.append(point(1250, True))
    assert next_search_size(pts) == 1375
    pts.append(point(1375, True))
    assert next_search_size(pts) is None  # 1375 held, 1500 broke: within 10 %
    assert next_search_size([point(500, True)]) is None
    assert next_search_size([point(500, False)]) is None
    assert next_search_size([point(5, True), point(6, False)]) is None


def test_fit_slope() -> None:
    assert fit_slope([1, 2, 3], [2.0, 4.0, 6.0]) == pytest.approx(2.0)
    assert math.isnan(fit_slope([1, 1], [2.0, 3.0]))
    assert fit_slope([1, 2, 3, 4], [1.0, math.nan, 3.0, 4.0]) == pytest.approx(1.0)


def test_analyze_recommendation_agrees_with_rows() -> None:
    a = analyze([point(2000, False, p99=300.0), point(500, True), point(1000, True, p99=40.0)])
    assert (a.largest_held, a.first_broken) == (1000, 2000)
    assert a.recommendation.startswith("run at most 1000 agents")
    assert "p99 40.0 ms" in a.recommendation and "broke at 2000 agents" in a.recommendation
    assert a.slopes["memory_mib"] == pytest.approx(0.5)
    assert analyze([point(500, True), point(1000, True)]).recommendation.startswith("every size held")
    assert analyze([point(500, False)]).recommendation.startswith("no size held")
    assert "no SLA thresholds" in analyze([point(500, None)]).recommendation
    failed = analyze([point(500, True), point(1000, True, status="failed")])
    assert failed.first_broken == 1000
    noisy = analyze([point(500, True), point(1000, False), point(2000, True)])
    assert noisy.largest_held == 500 and "held again" in noisy.notes[0]


def test_write_sweep_table(tmp_path: Path) -> None:
    pts = [point(1000, True), point(500, True)]
    path = sweep.write_sweep(tmp_path / "sweep.arrow", pts, analyze(pts))
    table = pa.ipc.open_file(str(path)).read_all()
    assert table.column("agents").to_pylist() == [500, 1000]
    assert table.schema.metadata[b"table"] == b"sweep"
    assert b"every size held" in table.schema.metadata[b"recommendation"]
    lines = sweep.format_sweep(pts, analyze(pts))
    assert lines[-1].startswith("recommendation: every size held")


def test_cli_usage_errors_exit_2_before_starting_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from raybench.cli import cli

    for args, message in (
        (["--agents", "many"], "--agents 'many' is not a list"),
        (["--agents", "10", "--resolution", "fine"], "--resolution"),
        (["--agents", "10", "--preset", "nope"], "nope"),
    ):
        result = CliRunner().invoke(cli, ["sweep", *args, "--out", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


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


def test_attribute_names_the_harness_or_the_system_resource() -> None:
    ok = {"status": "ok", "reasons": [], "system": []}
    assert sweep.attribute(ok, [POOL_OK], 3.0, 850.0) == ("ok", "", "")
    status, limit, detail = sweep.attribute(SATURATED, [POOL_OVER], 3.0, 850.0)
    assert (status, limit) == ("saturated", sweep.HARNESS)
    assert "timing error p99 14.2 ms > 10 ms" in detail and "expert pool" in detail
    status, limit, detail = sweep.attribute(ok, [POOL_OVER], 2100.0, 850.0)
    assert (status, limit) == ("ok", "expert pool")
    assert "offered 259 consultations/s at the peak > capacity 235" in detail and "queue wait p99 2,100 ms" in detail
    # the pool kept up on paper but its queue did not drain (e.g. a slow_stage fault)
    assert sweep.attribute(ok, [POOL_OK], 1200.0, 850.0)[1] == "expert pool"
    shard = {"status": "ok", "system": [{"bound": "process_cpu", "observed": 97.0, "role": "shard", "detail": ""}]}
    assert sweep.attribute(shard, [], float("nan"), 850.0)[1] == "state shard"
    assert sweep.attribute(None, [], float("nan"), 850.0) == ("unknown", "", "")


def test_a_knee_with_a_saturated_harness_is_the_harnesss_and_the_sweep_stops_there() -> None:
    pts = [limited(5000, True, "ok"), limited(6000, True, "ok"),
           limited(7000, False, "saturated", sweep.HARNESS, "timing error p99 14.2 ms > 10 ms")]  # fmt: skip
    a = analyze(pts)
    assert (a.largest_held, a.first_broken, a.limit, a.harness_ceiling) == (6000, 7000, sweep.HARNESS, 7000)
    assert a.recommendation.startswith("run at most 6000 agents")
    assert "raybench's harness saturated (timing error p99 14.2 ms > 10 ms)" in a.recommendation
    assert "not the system's" in a.recommendation
    # no bisection at or above the saturated size
    assert next_search_size([limited(5000, True, "ok"), limited(8000, True, "saturated", sweep.HARNESS)]) is None
    # every size held up to one whose harness saturated: the system's limit was not reached
    held = analyze([limited(5000, True, "ok"), limited(6000, True, "saturated", sweep.HARNESS, "lag p99 12 ms")])
    assert held.limit == sweep.HARNESS and held.harness_ceiling == 6000
    assert "harness saturated at 6000 agents (lag p99 12 ms)" in held.recommendation
    lines = sweep.format_sweep(pts, a)
    assert "harness" in lines[0] and "limit" in lines[0] and "saturated" in lines[3]


def test_a_knee_at_the_expert_pools_capacity_is_the_expert_pools() -> None:
    detail = "expert pool: offered 259 consultations/s at the peak > capacity 235"
    pts = [limited(6000, True, "ok"), limited(7000, True, "ok"), limited(8000, False, "ok", "expert pool", detail)]
    a = analyze(pts)
    assert (a.largest_held, a.first_broken, a.limit, a.harness_ceiling) == (7000, 8000, "expert pool", None)
    assert "at the system's expert pool (" + detail in a.recommendation
    assert "the scenario's own limit, not this machine's" in a.recommendation
    plain = analyze([limited(6000, True, "ok"), limited(7000, False, "ok")])
    assert plain.limit == "" and "no harness bound crossed" in plain.recommendation


def test_sweep_table_has_the_harness_and_limit_columns(tmp_path: Path) -> None:
    pts = [limited(500, True, "ok"), limited(1000, False, "saturated", sweep.HARNESS, "lag p99 12 ms")]
    path = sweep.write_sweep(tmp_path / "sweep.arrow", pts, analyze(pts))
    table = pa.ipc.open_file(str(path)).read_all()
    assert table.column("harness_status").to_pylist() == ["ok", "saturated"]
    assert table.column("limit").to_pylist() == [None, "harness"]
    assert table.column("limit_detail").to_pylist() == [None, "lag p99 12 ms"]
    assert table.schema.metadata[b"limit"] == b"harness" and table.schema.metadata[b"harness_ceiling"] == b"1000"


def test_run_sweep_runs_no_size_above_a_saturated_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from raybench.config import scenario
    from raybench.engine import run as engine

    ran: list[int] = []

    def execute(sc, *, out, run_id, address):
        ran.append(sc.run.agents)
        return SimpleNamespace(run_dir=out / run_id, status="completed", verdict=True)

    def measured(run_dir, agents, status, verdict):
        return limited(agents, True, "saturated" if agents >= 2000 else "ok", sweep.HARNESS if agents >= 2000 else "")

    monkeypatch.setattr(engine, "connect", lambda address: False)
    monkeypatch.setattr(engine, "execute", execute)
    monkeypatch.setattr(sweep, "point_from_run", measured)
    said: list[str] = []
    sc = scenario.load(preset="smoke")
    result = sweep.run_sweep(sc, [1000, 2000, 4000, 8000], out=tmp_path, sweep_id="sw", progress=said.append)
    assert ran == [1000, 2000]
    assert any("no larger size is run (skipped: [4000, 8000])" in line for line in said)
    assert result.analysis.harness_ceiling == 2000 and result.analysis.limit == sweep.HARNESS
