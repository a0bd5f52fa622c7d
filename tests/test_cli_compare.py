"""``raybench compare``, ``baseline`` and ``history`` through click's CliRunner on the real CLI group."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from synth_runs import write_run

from raybench.cli import cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    kw = {"rate_rps": 300.0, "windows": 12}
    write_run(root, "base", seed=1, **kw)
    write_run(root, "slower", seed=2, latency_scale=1.25, **kw)
    write_run(root, "same", seed=3, **kw)
    return root


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_regression_exits_1_and_writes_the_table(runs: Path) -> None:
    code, out, _ = invoke("compare", runs / "base", runs / "slower", "--threshold", "10%")
    assert code == 1, out
    assert "REGRESSION" in out
    assert f"comparison table: {runs / 'slower' / 'comparison.arrow'}" in out
    table = pa.ipc.open_file(str(runs / "slower" / "comparison.arrow")).read_all()
    assert "regression" in table.column("verdict").to_pylist()
    # A second comparison never overwrites the first.
    code, out, _ = invoke("compare", runs / "base", runs / "slower")
    assert code == 1
    assert (runs / "slower" / "comparison-base.arrow").exists()


def test_no_regression_exits_0(runs: Path) -> None:
    code, out, _ = invoke("compare", runs / "base", runs / "same", "--no-write")
    assert code == 0, out
    assert "0 regression(s)" in out
    assert not (runs / "same" / "comparison.arrow").exists()
    # A large threshold turns the slower run into "insignificant"/"same": exit 0.
    code, out, _ = invoke("compare", runs / "base", runs / "slower", "--threshold", "50%", "--no-write")
    assert code == 0, out


@pytest.mark.parametrize(
    "args,message",
    [
        (("missing", "base"), "is not a run folder"),
        (("base", "same", "--threshold", "ten"), "--threshold: 'ten' is not a percentage"),
        (("base", "same", "--threshold", "-5%"), "--threshold -5% is not allowed"),
        (("base",), "give two run folders"),
        (("base", "same", "--window", "soon"), "--window"),
    ],
)
def test_usage_errors_exit_2_with_one_line(runs: Path, args: tuple[str, ...], message: str) -> None:
    paths = [str(runs / a) if a in ("missing", "base", "same") else a for a in args]
    code, out, err = invoke("compare", *paths)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_baseline_save_list_and_compare_by_name(runs: Path) -> None:
    code, out, _ = invoke("baseline", "save", runs / "base", "--name", "nightly")
    assert code == 0, out
    assert out.splitlines()[-1] == str(runs / ".baselines" / "nightly.json")
    code, _, err = invoke("baseline", "save", runs / "same", "--name", "nightly")
    assert code == 2 and "use --force" in err
    code, out, _ = invoke("baseline", "list", "--out", runs)
    assert code == 0 and "nightly" in out
    code, out, _ = invoke("compare", "--baseline", "nightly", runs / "slower", "--no-write")
    assert code == 1 and "baseline base  vs  current slower" in out
    code, _, err = invoke("compare", "--baseline", "nope", runs / "same")
    assert code == 2 and "no baseline 'nope'" in err


def test_history_names_the_shift(tmp_path: Path) -> None:
    paths = [
        write_run(tmp_path, f"n{i:02d}", seed=100 + i, windows=2, rate_rps=200.0, latency_scale=1.0 if i < 6 else 1.5)
        for i in range(12)
    ]
    code, out, _ = invoke("history", *paths, "--metric", "p50", "--metric", "throughput")
    assert code == 0, out
    assert "change point at run n06 (#6)" in out
    assert out.count("no change point") == 1  # throughput did not move
    code, _, err = invoke("history", *paths[:2], "--metric", "p98")
    assert code == 2 and "did you mean" in err
