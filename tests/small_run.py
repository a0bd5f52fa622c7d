"""One real small run (local Ray, smoke preset, 100 agents, 4 s), made once per test session and
shared by the report, export and examples tests. Use it through a fixture that depends on
``ray_local``::

    @pytest.fixture(scope="module")
    def run_dir(ray_local, tmp_path_factory):
        return small_run(tmp_path_factory)

Tests must not change the folder (write reports and exports elsewhere, or into a copy).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_CACHE: dict[str, Path] = {}


def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of the session's small run (run on first call)."""
    if "run" not in _CACHE:
        from raybench import scenario
        from raybench.run import execute

        sc = scenario.load(preset="smoke", overrides={"run.agents": 100, "run.duration": "4s", "run.warmup": "1s"})
        result = execute(sc, out=tmp_path_factory.mktemp("small_run"), run_id="small")
        _CACHE["run"] = Path(result.run_dir)
    return _CACHE["run"]
