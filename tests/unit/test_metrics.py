"""Live Prometheus metrics (raybench.actors.metrics): what Ray's metrics agent exports after a real small
run equals the rows of its requests.arrow; the opt-in switches and their one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from raybench.cli import EXIT_USAGE, cli
from raybench.config import scenario as scn
from raybench.errors import ScenarioError
from raybench.results import store

HERE = Path(__file__).parents[1] / "fixtures"


def _agent_missing() -> str | None:
    try:
        import ray.dashboard.optional_deps  # noqa: F401  what Ray needs to start its metrics agent
    except ImportError as exc:
        return f"Ray's metrics agent is not installed (needs ray[default]): {exc}"
    return None


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    reason = _agent_missing()
    if reason:
        pytest.skip(reason)
    from prometheus_client.parser import text_string_to_metric_families

    out = tmp_path_factory.mktemp("metrics")
    proc = subprocess.run(
        [sys.executable, str(HERE / "metrics_run.py"), str(out)], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    samples = [
        s
        for family in text_string_to_metric_families((out / "metrics.txt").read_text())
        for s in family.samples
        if s.name.startswith("ray_raybench_") and s.labels.get("run_id") == "metrics"
    ]
    return info, store.read_table(Path(info["run_dir"]), "requests"), samples


def _sum(samples, name: str, *keys: str) -> Counter:
    """Values of one sample name added up by the given labels (over Ray's own: worker, node...)."""
    out: Counter = Counter()
    for s in samples:
        if s.name == name:
            out[tuple(s.labels[k] for k in keys)] += s.value
    return out


def _rows(table, *columns: str) -> Counter:
    cols = [table.column(c).to_pylist() for c in columns]
    return Counter(tuple(str(v).lower() if isinstance(v, bool) else v for v in row) for row in zip(*cols, strict=True))


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
