from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from raybench.cli import cli
from raybench.config import scenario
from raybench.errors import ScenarioError


def test_presets_load_and_roundtrip_through_the_manifest_form():
    assert {"lighthouse", "smoke", "stress"} <= set(scenario.preset_names())
    for name in scenario.preset_names():
        sc = scenario.load(preset=name)
        assert scenario.Scenario.from_dict(sc.to_dict()) == sc


def test_lighthouse_reproduces_the_modelled_system():
    sc = scenario.load(preset="lighthouse")
    mix = {c.name: c.weight for c in sc.classes}
    assert mix == {"safe": 0.7, "risky": 0.2, "complex": 0.1}
    assert (sc.stages.policy.min, sc.stages.policy.max) == (5, 25)
    assert (sc.stages.llm.min, sc.stages.llm.max) == (20, 80)
    assert (sc.stages.expert.min, sc.stages.expert.max) == (500, 1200)
    esc = sum(c.weight * c.escalation for c in sc.classes) * (1 - sc.stages.cache_hit_rate)
    assert 0.15 <= esc <= 0.25
    # the pool is busy but stable at the offered load
    utilisation = sc.offered_rate * esc * sc.stages.expert.mean / 1000 / sc.experts.pool
    assert 0.5 < utilisation < 0.9
    assert sc.run.warmup == 5 and sc.run.agents == 1000
    assert {r.name for r in sc.regions} == {"us-east", "eu-west", "ap-south"}


def test_smoke_extends_lighthouse_with_overrides():
    sc = scenario.load(preset="smoke", overrides={"run.agents": 10, "stages.llm.max": 120})
    assert sc.run.agents == 10 and sc.stages.llm.max == 120 and sc.run.duration == 20
    assert sc.arrivals.shape.kind == "flat"


def test_toml_file_and_set_assignment(tmp_path: Path):
    f = tmp_path / "s.toml"
    f.write_text('extends = "smoke"\nname = "mine"\n[run]\nagents = 7\n')
    sc = scenario.load(f, overrides=dict([scenario.parse_assignment('run.duration="5s"')]))
    assert (sc.name, sc.run.agents, sc.run.duration) == ("mine", 7, 5.0)
    assert scenario.parse_assignment("experts.pool=5") == ("experts.pool", 5)
    assert scenario.parse_assignment("fuse.mode=off") == ("fuse.mode", "off")


BAD = [
    ({"run.agnets": 5}, "unknown key run.agnets (did you mean 'agents'?)"),
    ({"runn.agents": 5}, "unknown key runn"),
    ({"run.agents": 0}, "run.agents = 0: must be >= 1"),
    ({"run.duration": "-5s"}, "run.duration"),
    ({"run.duration": "0s"}, "must be > 0"),
    ({"arrivals.rate": 0}, "must be > 0"),
    ({"arrivals.rate": -1}, "arrivals.rate"),
    ({"classes.safe.weight": 0.6}, "weights sum to 0.9"),
    ({"classes.risky.escalation": 1.5}, "probability must be in [0, 1]"),
    ({"stages.cache_hit_rate": -0.1}, "probability must be in [0, 1]"),
    ({"stages.llm.min": 100}, "min 100.0 > max 80.0"),
    ({"stages.policy": {"dist": "gauss", "mean": 1}}, "unknown distribution"),
    ({"arrivals.process": "poison"}, "did you mean 'poisson'"),
    ({"run.warmup": "30s"}, "warmup"),
    ({"state.keys": 1_000_000, "fuse.file_bytes": 4096}, "fuse.prefill: state.keys × fuse.file_bytes = 4,096,000,000"),
]


def test_a_large_workspace_is_allowed_without_prefill_or_fuse():
    big = {"state.keys": 1_000_000, "fuse.file_bytes": 4096}
    assert scenario.load(preset="smoke", overrides={**big, "fuse.prefill": False}).fuse.prefill is False
    assert scenario.load(preset="smoke", overrides={**big, "fuse.mode": "off"}).state.keys == 1_000_000


def test_hosts_open_ahead_only_the_prefilled_files_they_keep_open():
    assert scenario.load(preset="smoke").fuse_opens_ahead  # the default
    for off in ({"fuse.open_ahead": False}, {"fuse.prefill": False}, {"fuse.open_per_request": True},
                {"fuse.mode": "off"}):  # fmt: skip
        sc = scenario.load(preset="smoke", overrides=off)
        assert not sc.fuse_opens_ahead, off
        assert scenario.Scenario.from_dict(sc.to_dict()).fuse_opens_ahead is False
    assert scenario.load(preset="smoke").fuse.prefill is True


@pytest.mark.parametrize("overrides, fragment", BAD)
def test_invalid_scenarios_are_one_clear_error(overrides, fragment):
    with pytest.raises(ScenarioError) as info:
        scenario.load(preset="smoke", overrides=overrides)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


CLI_BAD = [
    (["run", "--preset", "lighthous"], "unknown preset 'lighthous'"),
    (["run", "--preset", "smoke", "--agents", "0"], "run.agents = 0"),
    (["run", "--preset", "smoke", "--duration", "abc"], "not a duration"),
    (["run", "--preset", "smoke", "--rate", "-2"], "arrivals.rate"),
    (["run", "--preset", "smoke", "--set", "classes.safe.weight=0.1"], "weights sum to"),
    (["run", "--preset", "smoke", "--set", "stages.llm.min=500"], "min 500.0 > max 80.0"),
    (["run", "--preset", "smoke", "--set", "run.agnets=5"], "did you mean 'agents'"),
    (["run", "--preset", "smoke", "--set", "classes.risky.escalation=2"], "probability"),
    (["run", "--preset", "smoke", "--run-id", "../x"], "--run-id"),
    (["run", "missing.toml"], "does not exist"),
    (["smoke", "--agents", "-1"], "run.agents = -1"),
]


@pytest.mark.parametrize("argv, fragment", CLI_BAD)
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, argv, fragment):
    out = tmp_path / "results"
    result = CliRunner().invoke(cli, [*argv, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_cli_refuses_an_existing_run_id(tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "manifest.json").write_text("{}")
    result = CliRunner().invoke(cli, ["smoke", "--out", str(tmp_path), "--run-id", "taken"])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert (tmp_path / "taken" / "manifest.json").read_text() == "{}"
