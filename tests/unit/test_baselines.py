"""raybench.judge.baselines: named references to runs, validated, never replaced silently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from synth_runs import write_run

from raybench.errors import ResultsError, UsageError
from raybench.judge import baselines


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_run(tmp_path, "r1", seed=1, windows=2)
    write_run(tmp_path, "r2", seed=2, windows=2)
    return tmp_path


def test_save_load_resolve_and_list(root: Path) -> None:
    saved = baselines.save(root / "r1", "nightly")
    assert saved.path == root / ".baselines" / "nightly.json"
    record = json.loads(saved.path.read_text())
    assert record["format"] == baselines.FORMAT
    assert record["run"] == "r1"  # relative to the results root, so the root can move
    assert record["manifest"]["run_id"] == "r1"
    assert record["manifest"]["scenario"]["name"] == "synthetic"
    assert baselines.resolve(root, "nightly") == (root / "r1").resolve()
    baselines.save(root / "r2", "release-1.2")
    assert [b.name for b in baselines.list_baselines(root)] == ["nightly", "release-1.2"]
    lines = baselines.format_baselines(baselines.list_baselines(root))
    assert lines[0].split() == ["name", "run", "scenario", "saved", "run", "folder"]
    assert lines[1].startswith("nightly") and " r1 " in lines[1]


def test_never_overwritten_without_force(root: Path) -> None:
    baselines.save(root / "r1", "nightly")
    with pytest.raises(UsageError, match=r"already exists \(run r1\); use --force"):
        baselines.save(root / "r2", "nightly")
    assert baselines.load(root, "nightly").run_id == "r1"
    assert baselines.save(root / "r2", "nightly", force=True).run_id == "r2"
    assert baselines.load(root, "nightly").run_id == "r2"


@pytest.mark.parametrize("name", ["", "a b", "../x", ".hidden", "x" * 65, "a/b"])
def test_names_are_validated(root: Path, name: str) -> None:
    with pytest.raises(UsageError, match="not allowed"):
        baselines.save(root / "r1", name)
    assert not (root / ".baselines").exists()


def test_missing_things_are_one_line_errors(root: Path) -> None:
    with pytest.raises(ResultsError, match="not a run folder"):
        baselines.save(root / "nope", "x")
    with pytest.raises(UsageError, match="none is saved there"):
        baselines.load(root, "x")
    baselines.save(root / "r1", "gone", root=root)
    shutil.rmtree(root / "r1")
    with pytest.raises(ResultsError, match="no longer exists"):
        baselines.resolve(root, "gone")
    assert "MISSING" in baselines.format_baselines(baselines.list_baselines(root))[1]
    assert baselines.format_baselines([]) == ["no baselines saved"]


def test_run_outside_the_root_is_stored_by_absolute_path(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("elsewhere")
    saved = baselines.save(root / "r1", "abs", root=other)
    assert json.loads(saved.path.read_text())["run"] == str((root / "r1").resolve())
    assert baselines.resolve(other, "abs") == (root / "r1").resolve()
