"""The examples/ scripts run on a real small run and print what they should, and their
nearest-rank percentiles are raybench's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from small_run import small_run

from raybench.judge import stats
from raybench.results import store

pytestmark = pytest.mark.ray

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def run_dir(ray_local, tmp_path_factory):
    return small_run(tmp_path_factory)


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for library in ("pyarrow", "polars", "duckdb"):
        assert f"-- {library}" in out
    assert re.search(r"pyarrow, polars and DuckDB agree \(\d+ rows\)", out)
    return out


def table_rows(out: str, library: str) -> list[list[str]]:
    """The data rows printed under ``-- library``."""
    block = out.split(f"-- {library}\n", 1)[1].split("\n-- ", 1)[0]
    return [line.split() for line in block.strip().splitlines()[1:] if not line.startswith("pyarrow, polars")]


def measured(run_dir: Path) -> dict[str, list]:
    t = store.read_table(run_dir, "requests").to_pydict()
    keep = [not w for w in t["warmup"]]
    return {k: [v for v, m in zip(vals, keep, strict=True) if m] for k, vals in t.items()}


def test_p99_per_class_per_minute(run_dir):
    out = run_example("p99_per_class_per_minute.py", str(run_dir))
    rows = table_rows(out, "duckdb")
    req = measured(run_dir)
    classes = sorted(set(req["cls"]))
    # a 4-second run is one minute: one row per class, the class's exact p99 from raybench.judge.stats
    assert [r[1] for r in rows] == classes
    for _, cls, n, p99 in rows:
        lat = [x for x, c in zip(req["latency_ms"], req["cls"], strict=True) if c == cls]
        assert int(n) == len(lat)
        assert float(p99) == round(stats.percentile(lat, 99.0), 3)
    fine = table_rows(run_example("p99_per_class_per_minute.py", str(run_dir), "--bucket", "1"), "polars")
    assert len(fine) > len(rows)
    assert sum(int(r[2]) for r in fine) == len(req["latency_ms"])


def test_slowest_agents(run_dir):
    out = run_example("slowest_agents.py", str(run_dir), "--top", "5")
    rows = table_rows(out, "pyarrow")
    assert len(rows) == 5
    means = [float(r[2]) for r in rows]
    assert means == sorted(means, reverse=True)
    req = measured(run_dir)
    top = int(rows[0][0])
    lat = [x for x, a in zip(req["latency_ms"], req["agent_id"], strict=True) if a == top]
    assert int(rows[0][1]) == len(lat)
    assert float(rows[0][2]) == round(sum(lat) / len(lat), 3)
    assert float(rows[0][2]) == pytest.approx(max(
        sum(v for v, a in zip(req["latency_ms"], req["agent_id"], strict=True) if a == agent)
        / req["agent_id"].count(agent)
        for agent in set(req["agent_id"])
    ), abs=1e-3)  # fmt: skip


def test_escalation_vs_latency(run_dir):
    out = run_example("escalation_vs_latency.py", str(run_dir))
    rows = table_rows(out, "polars")
    req = measured(run_dir)
    assert sum(int(r[2]) for r in rows) == len(req["latency_ms"])
    for cls, esc, n, _mean, p50, p99, _queue in rows:
        lat = [
            x
            for x, c, e in zip(req["latency_ms"], req["cls"], req["escalated"], strict=True)
            if c == cls and str(e) == esc
        ]
        assert int(n) == len(lat)
        assert float(p50) == round(stats.percentile(lat, 50.0), 3)
        assert float(p99) == round(stats.percentile(lat, 99.0), 3)
