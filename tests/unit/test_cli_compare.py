"""``raybench compare``, ``baseline`` and ``history`` through click's CliRunner on the real CLI group."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from click.testing import CliRunner
from synth_runs import SMOKE, write_run

from raybench.cli import cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    kw = {"rate_rps": 300.0, "windows": 12}
    write_run(root, "base", seed=1, **kw)
    write_run(root, "slower", seed=2, latency_scale=1.25, **kw)
    write_run(root, "same", seed=3, **kw)
    return root


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Smoke-like runs (200 req/s, 3 s warm-up, 17 s measured): the length the issue was about."""
    root = tmp_path_factory.mktemp("smoke")
    write_run(root, "base", seed=101, **SMOKE)
    write_run(root, "slower30", seed=102, latency_scale=1.3, **SMOKE)
    write_run(root, "slower5", seed=103, latency_scale=1.05, **SMOKE)
    write_run(root, "times3", seed=104, latency_scale=3.0, **SMOKE)
    write_run(root, "short-base", seed=105, **{**SMOKE, "duration_s": 2.0})
    write_run(root, "short-slower", seed=106, latency_scale=1.3, **{**SMOKE, "duration_s": 2.0})
    return root


def invoke(*args: str | Path) -> tuple[int, str, str]:
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
        (("base", "same", "--window", "1ms"), "windows; at most 2000 are allowed"),
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


@pytest.mark.parametrize("current", ["slower30", "times3"])
def test_smoke_runs_regression_exits_1(smoke: Path, current: str) -> None:
    code, out, _ = invoke("compare", smoke / "base", smoke / current, "--no-write")
    assert code == 1, out
    assert "windows of 0.85s chosen from the runs: 20 and 20" in out
    lines = out.splitlines()
    primary = lines.index(next(line for line in lines if line.startswith("primary:")))
    assert lines[primary + 1].split()[:2] == ["all", "p50_ms"] and lines[primary + 1].endswith("REGRESSION")
    assert lines[primary + 2].split()[:2] == ["all", "p99_ms"] and lines[primary + 2].endswith("REGRESSION")
    assert "verdict: regression" in lines[-1]


def test_smoke_runs_5_percent_slower_exits_0(smoke: Path) -> None:
    code, out, _ = invoke("compare", smoke / "base", smoke / "slower5", "--no-write")
    assert code == 0, out
    assert "0 regression(s), 0 improvement(s) in primary metrics" in out


def test_smoke_runs_with_3_windows_are_inconclusive_exit_4(smoke: Path) -> None:
    code, out, _ = invoke("compare", smoke / "base", smoke / "slower30", "--window", "5s")
    assert code == 4, out
    notes = [line for line in out.splitlines() if line.startswith("inconclusive:")]
    assert len(notes) == 1
    assert "3 and 3 windows of 5s (--window) allow no p below 0.1" in notes[0]
    assert "insignificant" not in out.split("exploratory:")[0]
    assert "INCONCLUSIVE" in out and "verdict: inconclusive" in out
    # the table is written all the same, with the verdicts
    table = pa.ipc.open_file(str(smoke / "slower30" / "comparison.arrow")).read_all()
    rows = [r for r in table.to_pylist() if r["role"] == "primary"]
    assert {r["metric"]: r["verdict"] for r in rows}["p50_ms"] == "inconclusive"
    assert rows[0]["p_min"] == pytest.approx(0.1) and rows[0]["window_s"] == 5.0


def test_smoke_runs_with_2_seconds_of_load_are_inconclusive_exit_4(smoke: Path) -> None:
    code, out, _ = invoke("compare", smoke / "short-base", smoke / "short-slower", "--no-write", "--window", "auto")
    assert code == 4, out
    assert "4 and 4 windows of 0.5s (auto) allow no p below 0.0286" in out


@pytest.mark.parametrize(
    "args,message",
    [(("--alpha", "2"), "--alpha 2.0 must be between 0 and 1"), (("--bootstrap", "3"), "--bootstrap 3")],
)
def test_bad_alpha_or_bootstrap_exit_2(smoke: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke("compare", smoke / "base", smoke / "slower5", "--no-write", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# `raybench run --baseline NAME`: the same comparison and exit codes, on a stand-in for the engine


class FakeEngine:
    """Stands in for raybench.engine.run.execute: each "run" copies the smoke fixture's folder ``source``
    into the results root and reports the SLA ``verdict`` it is given (None: no thresholds)."""

    def __init__(self, smoke: Path) -> None:
        self.smoke, self.source = smoke, ""
        self.verdict: bool | None = None

    def __call__(self, sc: object, *, out: Path, run_id: str, **_: object) -> SimpleNamespace:
        run_dir = Path(out) / run_id
        shutil.copytree(self.smoke / self.source, run_dir)
        return SimpleNamespace(
            manifest={"offered_rate": 200.0}, status="completed", summary_rows=[], resource_rows=[],
            sla_rows=[], verdict=self.verdict, run_dir=run_dir,
        )  # fmt: skip


@pytest.fixture
def fake_engine(smoke: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    import raybench.engine.run as engine

    fake = FakeEngine(smoke)
    monkeypatch.setattr(engine, "execute", fake)
    root = tmp_path / "results"
    for name in ("base", "short-base"):
        shutil.copytree(smoke / name, root / f"baseline-{name}")
        code, out, _ = invoke("baseline", "save", root / f"baseline-{name}", "--name", name)
        assert code == 0, out
    return fake


def run_with_baseline(fake: FakeEngine, root: Path, baseline: str, current: str) -> tuple[int, str]:
    fake.source = current
    run_id = f"run-{len(list(root.iterdir()))}"
    code, out, _ = invoke("run", "--preset", "smoke", "--out", root, "--run-id", run_id, "--baseline", baseline)
    return code, out


def test_run_with_baseline_exit_codes(fake_engine: FakeEngine, tmp_path: Path) -> None:
    root = tmp_path / "results"
    code, out = run_with_baseline(fake_engine, root, "base", "slower30")
    assert code == 1, out
    assert "verdict: regression" in out and (Path(out.splitlines()[-1]) / "comparison.arrow").exists()
    code, out = run_with_baseline(fake_engine, root, "base", "slower5")
    assert code == 0, out
    code, out = run_with_baseline(fake_engine, root, "short-base", "short-slower")
    assert code == 4, out
    assert "4 and 4 windows of 0.5s (auto) allow no p below 0.0286" in out
    # inconclusive only where the run would otherwise pass: a failed SLA still exits 1
    fake_engine.verdict = False
    code, out = run_with_baseline(fake_engine, root, "short-base", "short-slower")
    assert code == 1, out
