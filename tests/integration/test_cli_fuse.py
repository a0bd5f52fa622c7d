"""``raybench fuse`` in-process through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fuse_fixtures import require_fuse

from fuse_bench.mounttable import raybench_mounts
from raybench.cli import cli
from raybench.results.store import read_table


def _run(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(cli, ["fuse", *args])
    return result.exit_code, result.stdout.strip().splitlines(), result.stderr.strip()


@pytest.mark.fuse
def test_fuse_command_writes_a_run(tmp_path: Path) -> None:
    require_fuse("mfusepy")
    before = {e.mountpoint for e in raybench_mounts()}
    code, lines, err = _run(
        "--workers", "2", "--duration", "300ms", "--mix", "stat=1,read=1", "--backend", "mfusepy",
        "--out", str(tmp_path), "--run-id", "r1",
    )  # fmt: skip
    assert code == 0, err
    run_dir = Path(lines[-1])
    assert run_dir == tmp_path / "r1"
    t = read_table(run_dir, "fuse_ops")
    assert set(t.column("target").to_pylist()) == {"fuse", "native"}
    assert set(t.column("op").to_pylist()) == {"stat", "read"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["kind"] == "fuse" and manifest["mount"]["backend"] == "mfusepy"
    assert any(line.startswith("stat") for line in lines)
    assert {e.mountpoint for e in raybench_mounts()} <= before
    # Never overwrite a run.
    code, _, err = _run("--duration", "100ms", "--out", str(tmp_path), "--run-id", "r1")
    assert code == 2 and "already exists" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--workers", "abc"],
        ["--workers", "0"],
        ["--duration", "ten"],
        ["--mix", "stat=x"],
        ["--mix", "sta=1"],
        ["--backend", "fusepi"],
        ["--mode", "mem"],
        ["--mounts", "0"],
        ["--mounts", "17"],
        ["--run-id", "../x"],
    ],
)
def test_bad_flags_one_line_exit_2(args: list[str], tmp_path: Path) -> None:
    code, _, err = _run(*args, "--out", str(tmp_path))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("raybench: error:")


def test_fuse_unavailable_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real way for FUSE to be unusable: the fusermount helper is not on PATH.
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = _run("--duration", "100ms", "--out", str(tmp_path))
    assert code == 3
    assert len(err.splitlines()) == 1 and "fusermount" in err
    assert list(tmp_path.iterdir()) == []
