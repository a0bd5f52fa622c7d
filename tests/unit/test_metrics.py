"""Live Prometheus metrics (raybench.actors.metrics): the opt-in switches and their one-line errors
(what a real run exports: tests/integration/test_metrics_ray.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from raybench.cli import EXIT_USAGE, cli
from raybench.config import scenario as scn
from raybench.errors import ScenarioError


def test_metrics_are_off_by_default_and_validated():
    assert scn.load(preset="smoke").run.metrics is False
    sc = scn.load(preset="smoke", overrides={"run.metrics": True})
    assert sc.run.metrics is True and scn.Scenario.from_dict(sc.to_dict()).run.metrics is True
    with pytest.raises(ScenarioError, match=r"run\.metrics = 'yes': expected true or false"):
        scn.load(preset="smoke", overrides={"run.metrics": "yes"})


def test_metrics_port_with_a_cluster_address_is_refused():
    res = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--metrics-port", "9500", "--address", "auto"])
    assert res.exit_code == EXIT_USAGE
    assert "--metrics-port is for a local Ray" in res.output


def test_metrics_port_in_use_is_refused_before_ray_starts(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = CliRunner().invoke(cli, ["run", "--preset", "smoke", "--metrics-port", str(port), "--out", str(tmp_path)])
    assert res.exit_code == EXIT_USAGE
    assert f"--metrics-port {port}: cannot listen there" in res.output
    assert list(tmp_path.iterdir()) == []  # nothing written
