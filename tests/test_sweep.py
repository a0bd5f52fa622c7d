"""raybench.sweep: the pure analysis (search steps, slopes, recommendation) and a real small sweep on a
local Ray whose rows are monotone in agents and whose recommendation agrees with them."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pytest

from raybench import sweep
from raybench.errors import UsageError
from raybench.sweep import SweepPoint, analyze, fit_slope, next_search_size, parse_sizes


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


@pytest.mark.ray
@pytest.mark.slow
def test_real_sweep_on_local_ray(ray_local, tmp_path: Path) -> None:
    from raybench import scenario

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
