"""Live Prometheus metrics (raybench.actors.metrics): what Ray's metrics agent exports after a real small
run equals the rows of its requests.arrow; the opt-in switches and their one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from raybench.actors.metrics import LATENCY_BOUNDS_MS
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


@pytest.mark.ray
def test_exported_metrics_equal_the_recorded_rows(scraped):
    info, table, samples = scraped
    live = info["metrics"]
    assert info["status"] == "completed"
    assert live["enabled"] and live["url"].startswith("http://127.0.0.1:"), live
    assert table.num_rows > 100 and live["rows"] == table.num_rows
    # throughput: the request counter, per class and outcome
    assert _sum(samples, "ray_raybench_requests_total", "cls", "outcome") == _rows(table, "cls", "outcome")
    # latency: the histogram's count per tag set, and every bucket over all of them
    hist = _sum(samples, "ray_raybench_request_latency_ms_count", "cls", "outcome", "escalated")
    assert hist == _rows(table, "cls", "outcome", "escalated")
    lat = table.column("latency_ms").to_numpy()
    buckets = _sum(samples, "ray_raybench_request_latency_ms_bucket", "le")
    assert {float(le) for (le,) in buckets} == {*map(float, LATENCY_BOUNDS_MS), float("inf")}
    for (le,), count in buckets.items():
        assert count == np.count_nonzero(lat <= float(le)), le
    # escalations, per class
    escalated = table.filter(table.column("escalated"))
    assert _sum(samples, "ray_raybench_escalations_total", "cls") == _rows(escalated, "cls")
    assert escalated.num_rows > 0
