"""``--json`` on show, sla, compare, history and sweep, and the CLI's shared conventions (one-line
errors, parameter types, metavars, ``-o/--output``, ``export --force``), through click's CliRunner.

Every JSON check parses the *whole* stdout (nothing else may be there), refuses NaN/Infinity
(JSON has none), and compares the values with the text output or with values recomputed from the
run folder's files; exit codes must be the same with and without ``--json``.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner
from synth_runs import SMOKE, write_run

from raybench.cli import cli, jsonout
from raybench.results import store
from raybench.units import format_ms

STORED = Path(__file__).parents[1] / "fixtures" / "run-v1"


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _no_nan(token: str) -> Any:
    raise AssertionError(f"{token} in JSON output")


def parse(out: str) -> dict[str, Any]:
    """The whole stdout as one JSON document, refusing NaN and Infinity."""
    doc = json.loads(out, parse_constant=_no_nan)
    assert isinstance(doc, dict)
    return doc


def one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("raybench: error:") and fragment in err, err


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(STORED, tmp_path / "run-v1"))


# --------------------------------------------------------------------------------------------------
# jsonout: the conventions


def test_clean_turns_nan_inf_and_numpy_into_json_values() -> None:
    doc = jsonout.clean(
        {"a": math.nan, "b": math.inf, "c": np.float64(1.5), "d": np.int64(3), "e": (np.bool_(True), Path("/x"))}
    )
    assert doc == {"a": None, "b": None, "c": 1.5, "d": 3, "e": [True, "/x"]}
    text = jsonout.dumps(jsonout.document("show", {"x": -math.inf}, 0))
    assert parse(text) == {"schema": "raybench.show/1", "raybench_version": parse(text)["raybench_version"],
                           "x": None, "exit_code": 0}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# show


def test_show_json_values_are_the_text_values_and_the_rows(run: Path) -> None:
    code_t, text, _ = invoke("show", run)
    code, out, err = invoke("show", run, "--json")
    assert code == code_t == 0 and err == ""
    doc = parse(out)
    assert doc["schema"] == "raybench.show/1" and doc["exit_code"] == 0
    manifest = store.load_manifest(run)
    assert doc["run_id"] == manifest["run_id"] and doc["kind"] == "run" and doc["status"] == manifest["status"]
    assert doc["agents"] == 200 and doc["duration_ms"] == 8000.0 and doc["warmup_ms"] == 2000.0
    assert doc["measured_ms"] == pytest.approx(6000.0)
    # p99 of the non-warm-up rows, nearest rank, recomputed here from requests.arrow
    req = store.read_table(run, "requests")
    lat = req.filter(pc.invert(req.column("warmup"))).column("latency_ms").to_numpy()
    overall = doc["summary"][0]
    assert overall["scope"] == "all" and overall["count"] == lat.size
    assert overall["p99_ms"] == float(np.percentile(lat, 99, method="inverted_cdf"))
    assert overall["p50_ms"] == float(np.percentile(lat, 50, method="inverted_cdf"))
    assert overall["max_ms"] == float(lat.max())
    # ... and the text table shows the same figures
    for row in doc["summary"]:
        line = next(x for x in text.splitlines() if x.startswith(f"{row['scope']} "))
        cells = line.split()
        assert cells[1] == str(row["count"])
        assert cells[2] == f"{row['throughput_per_s']:.1f}"
        assert cells[6] == format_ms(row["p99_ms"])
    assert {r["role"] for r in doc["resources"]} == {r["role"] for r in manifest["resources"]}
    assert all(set(r) == {"role", "processes", "peak_rss_mib", "rss_growth_fraction", "cpu_mean_percent",
                          "cpu_peak_percent"} for r in doc["resources"])  # fmt: skip
    assert doc["harness"]["status"] == manifest["harness"]["status"]
    assert doc["harness"]["bounds"]["cpu_window_ms"] == 1000 * manifest["harness"]["bounds"]["cpu_window_s"]
    assert not any(k.endswith("_s") for k in doc["harness"]["bounds"])


def test_show_json_of_a_fuse_folder_gives_its_operation_rows(tmp_path: Path) -> None:
    from raybench.judge.stats import percentile
    from raybench.results import schema

    run = store.create_run_dir(tmp_path, "fuse1")
    rng = np.random.default_rng(0)
    n = 200
    ops = np.array(["read", "stat"])[rng.integers(0, 2, n)]
    target = np.where(np.arange(n) % 2 == 0, "fuse", "native")
    latency = np.where(target == "fuse", 200.0, 20.0) * rng.lognormal(0, 0.3, n)
    data = pa.table(
        {"run_id": ["fuse1"] * n, "ts_ns": np.arange(n, dtype=np.int64) * 1000, "node_id": ["n1"] * n,
         "worker": (np.arange(n) % 4).astype(np.int32), "op": ops, "target": target,
         "bytes": np.full(n, 4096), "latency_us": latency, "ok": np.ones(n, dtype=bool),
         "errno": pa.array(np.zeros(n, dtype=np.int32), mask=np.ones(n, dtype=bool))},
        schema=schema.schema("fuse_ops", final=False),
    )  # fmt: skip
    store.write_table(run, "fuse_ops", data)
    store.write_json_atomic(run / "manifest.json", {"schema_version": 1, "run_id": "fuse1", "kind": "fuse",
                                                    "status": "ok", "started_utc": "2026-01-01T00:00:00Z"})  # fmt: skip
    code, out, err = invoke("show", run, "--json")
    assert code == 0 and err == ""
    doc = parse(out)
    assert doc["kind"] == "fuse" and doc["run_id"] == "fuse1"
    read = next(r for r in doc["ops"] if (r["op"], r["target"]) == ("read", "fuse"))
    m = (ops == "read") & (target == "fuse")
    assert read["count"] == int(m.sum()) and read["p99_ms"] == pytest.approx(percentile(latency[m] / 1000, 99.0))
    assert next(r for r in doc["ops"] if r["target"] == "native")["ratio_p99"] is None


def test_show_of_the_results_root_names_its_runs(tmp_path: Path) -> None:
    root = tmp_path / "results"
    shutil.copytree(STORED, root / "20260101T000000Z-aaaaaa")
    shutil.copytree(STORED, root / "20260102T000000Z-bbbbbb")
    (root / "README.md").write_text("x")
    for extra in ((), ("--json",)):
        code, out, err = invoke("show", root, *extra)
        one_line_error(code, out, err, f"{root} is a results folder holding 2 runs, not a run folder")
        assert "give one of them, e.g. " in err and "recover" not in err
    code, out, err = invoke("show", tmp_path / "nope", "--json")
    one_line_error(code, out, err, "not a run folder")


# --------------------------------------------------------------------------------------------------
# sla


def test_sla_json_passing_and_failing_exit_codes_match_the_text(run: Path) -> None:
    for exprs, expected in ((("--sla", "p99<10s"), 0), (("--sla", "p99<100ms", "--sla", "error_rate<1%"), 1)):
        code_t, text, _ = invoke("sla", run, *exprs)
        code, out, err = invoke("sla", run, *exprs, "--json")
        assert code == code_t == expected, (text, out, err)
        doc = parse(out)
        assert doc["schema"] == "raybench.sla/1" and doc["exit_code"] == expected
        assert doc["verdict"] == ("pass" if expected == 0 else "fail")
        assert doc["run_id"] == "run-v1" and doc["sla_table"] is None
        assert doc["window_ms"] == 2000.0  # the run's recorded window
        for row in doc["thresholds"]:
            line = next(x for x in text.splitlines() if x.startswith(row["id"]))
            cells = line.split()
            assert cells[1] == (format_ms(row["observed"]) if row["unit"] == "ms" else cells[1])
            assert f"{row['windows_failed']}/{row['windows_total']}" in cells
            assert (" pass " in line) == (row["verdict"] == "pass")
        last = text.splitlines()[-1]
        assert last.startswith(f"{doc['thresholds_passed']}/{len(doc['thresholds'])} thresholds pass")
    p99 = next(r for r in doc["thresholds"] if r["id"] == "p99<100ms")
    assert p99["unit"] == "ms" and p99["target"] == 100.0 and p99["passed"] is False
    assert p99["verdict"] in ("fail", "fail_windows") and p99["first_violation_ms"] is not None
    err_rate = next(r for r in doc["thresholds"] if r["id"] == "error_rate<1%")
    assert err_rate["unit"] == "fraction" and err_rate["target"] == 0.01


def test_sla_json_write_reports_the_file(run: Path) -> None:
    code, out, _ = invoke("sla", run, "--write", "--json")
    doc = parse(out)
    assert doc["sla_table"] == str(run / "sla.arrow") and (run / "sla.arrow").exists()
    assert code == doc["exit_code"]


@pytest.mark.parametrize("extra", [(), ("--json",)])
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--window", "soon"), "--window: 'soon' is not a duration"),
        (("--window", "0s"), "--window must be > 0"),
        (("--sla", "p99<<1s"), "at position 4"),
        (("--bogus",), "No such option '--bogus'. (see 'raybench sla --help')"),
    ],
)
def test_sla_bad_input_one_line_exit_2_empty_stdout(run: Path, args: tuple[str, ...], fragment: str, extra) -> None:
    code, out, err = invoke("sla", run, *args, *extra)
    one_line_error(code, out, err, fragment)


# --------------------------------------------------------------------------------------------------
# compare


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    kw = {"rate_rps": 300.0, "windows": 12}
    write_run(root, "base", seed=1, **kw)
    write_run(root, "slower", seed=2, latency_scale=1.25, **kw)
    write_run(root, "same", seed=3, **kw)
    write_run(root, "short-base", seed=105, **{**SMOKE, "duration_s": 2.0})
    write_run(root, "short-slower", seed=106, latency_scale=1.3, **{**SMOKE, "duration_s": 2.0})
    return root


def test_compare_json_regression_exit_1_and_the_table_path(runs: Path, tmp_path: Path) -> None:
    cur = Path(shutil.copytree(runs / "slower", tmp_path / "slower"))
    code_t, text, _ = invoke("compare", runs / "base", cur, "--no-write")
    code, out, err = invoke("compare", runs / "base", cur, "--json")
    assert code == code_t == 1, (text, err)
    doc = parse(out)
    assert doc["schema"] == "raybench.compare/1" and doc["exit_code"] == 1 and doc["outcome"] == "regression"
    assert (doc["baseline_run_id"], doc["current_run_id"]) == ("base", "slower")
    assert doc["comparison_table"] == str(cur / "comparison.arrow") and (cur / "comparison.arrow").exists()
    assert "comparison table:" not in out + err
    assert doc["threshold_fraction"] == 0.1 and doc["alpha"] == 0.05 and doc["window_auto"] is True
    assert "p99_ms" in doc["regressions"]
    # every row of comparison.arrow, same values (null for NaN), primary rows first
    table = pa.ipc.open_file(str(cur / "comparison.arrow")).read_all().to_pylist()
    assert len(doc["rows"]) == len(table)
    assert [r["role"] for r in doc["rows"][:4]] == ["primary"] * 4
    for row, stored in zip(doc["rows"], table, strict=True):
        assert (row["scope"], row["metric"], row["verdict"]) == (stored["scope"], stored["metric"], stored["verdict"])
        assert row["baseline"] == stored["baseline"] and row["current"] == stored["current"]
        assert row["change_fraction"] == stored["change"] and row["p_value"] == stored["p_value"]
        assert doc["window_ms"] == pytest.approx(stored["window_s"] * 1000)
    # the text shows the same verdicts for the primary rows
    for row in doc["rows"][:4]:
        line = next(x for x in text.splitlines() if x.split()[:2] == ["all", row["metric"]])
        shown = row["verdict"].upper() if row["verdict"] in ("regression", "inconclusive") else row["verdict"]
        assert line.endswith(shown)


def test_compare_json_pass_0_and_inconclusive_4(runs: Path) -> None:
    code_t, _, _ = invoke("compare", runs / "base", runs / "same", "--no-write")
    code, out, _ = invoke("compare", runs / "base", runs / "same", "--no-write", "--json")
    assert code == code_t == 0
    doc = parse(out)
    assert doc["outcome"] == "pass" and doc["comparison_table"] is None and doc["inconclusive_reason"] is None
    args = (runs / "short-base", runs / "short-slower", "--no-write")
    code_t, text, _ = invoke("compare", *args)
    code, out, _ = invoke("compare", *args, "--json")
    assert code == code_t == 4
    doc = parse(out)
    assert doc["outcome"] == "inconclusive" and doc["exit_code"] == 4
    assert doc["inconclusive_reason"] in text.splitlines()
    assert doc["window_ms"] == 500.0


@pytest.mark.parametrize("extra", [(), ("--json",)])
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("base", "same", "--alpha", "x"), "--alpha: 'x' is not a percentage; use e.g. 10% or 0.1"),
        (("base", "same", "--threshold", "ten"), "--threshold: 'ten' is not a percentage"),
        (("base", "same", "--window", "soon"), "--window: 'soon' is not a duration"),
        (("base", "same", "--bootstrap", "x"), "'x' is not a valid integer. (see 'raybench compare --help')"),
        (("base",), "give two run folders"),
        (("missing", "base"), "is not a run folder"),
    ],
)
def test_compare_bad_input_one_line_exit_2(runs: Path, args: tuple[str, ...], fragment: str, extra) -> None:
    paths = [str(runs / a) if a in ("missing", "base", "same") else a for a in args]
    code, out, err = invoke("compare", *paths, *extra)
    one_line_error(code, out, err, fragment)


def test_compare_output_option_and_its_old_spelling(runs: Path, tmp_path: Path) -> None:
    cur = Path(shutil.copytree(runs / "same", tmp_path / "same"))
    code, out, _ = invoke("compare", runs / "base", cur, "-o", "mine.arrow")
    assert code == 0 and f"comparison table: {cur / 'mine.arrow'}" in out
    code, out, err = invoke("compare", runs / "base", cur, "--output", "mine.arrow", "--json")
    one_line_error(code, out, err, f"-o {cur / 'mine.arrow'} already exists")
    code, out, err = invoke("compare", runs / "base", cur, "--out-file", tmp_path / "old.arrow", "--json")
    assert code == 0 and parse(out)["comparison_table"] == str(tmp_path / "old.arrow")
    assert "--out-file is deprecated; use -o/--output" in err
    code, out, err = invoke("compare", runs / "base", cur, "-o", "a.arrow", "--out-file", "b.arrow")
    one_line_error(code, out, err, "not also its old spelling --out-file")


# --------------------------------------------------------------------------------------------------
# history


def test_history_json_names_the_shift_and_the_values(tmp_path: Path) -> None:
    from raybench.judge.compare_data import load_run, metric_value

    paths = [
        write_run(tmp_path, f"n{i:02d}", seed=100 + i, windows=2, rate_rps=200.0, latency_scale=1.0 if i < 6 else 1.5)
        for i in range(12)
    ]
    args = ("history", *paths, "--metric", "p50", "--metric", "throughput")
    code_t, text, _ = invoke(*args)
    code, out, err = invoke(*args, "--json")
    assert code == code_t == 0 and err == ""
    doc = parse(out)
    assert doc["schema"] == "raybench.history/1" and doc["run_ids"] == [p.name for p in paths]
    assert doc["window_ms"] == 5000.0 and doc["alpha"] == 0.01 and doc["scope"] == "all"
    p50, tp = doc["metrics"]
    assert (p50["metric"], p50["unit"], tp["metric"]) == ("p50_ms", "ms", "throughput_rps")
    assert [c["run_id"] for c in p50["change_points"]] == ["n06"] and "change point at run n06 (#6)" in text
    assert tp["change_points"] == [] and p50["enough_runs"] is True
    first = load_run(paths[0], window_s=5.0)
    assert p50["values"][0] == {"run_id": "n00", "value": metric_value(first, "p50_ms")}
    code, out, err = invoke("history", *paths[:2], "--metric", "p98", "--json")
    one_line_error(code, out, err, "did you mean")
    code, out, err = invoke("history", *paths[:2], "--alpha", "x", "--json")
    one_line_error(code, out, err, "--alpha: 'x' is not a percentage")


# --------------------------------------------------------------------------------------------------
# sweep: the pure document from run folders, and the command on a stand-in for the engine


def _sweep_result(tmp_path: Path, statuses: tuple[str, ...] = ("completed", "completed")):
    from raybench.engine import sweep

    sweep_dir = tmp_path / "sw"
    points = []
    for agents, status in zip((100, 200), statuses, strict=True):
        run_dir = Path(shutil.copytree(STORED, sweep_dir / f"agents-{agents:06d}"))
        points.append(sweep.point_from_run(run_dir, agents, status, True))
    analysis = sweep.analyze(points)
    sweep.write_sweep(sweep_dir / "sweep.arrow", points, analysis)
    return sweep.SweepResult(sweep_dir, tuple(points), analysis)


def test_sweep_document_from_stored_run_folders(tmp_path: Path) -> None:
    result = _sweep_result(tmp_path)
    doc = parse(jsonout.dumps(jsonout.document("sweep", jsonout.sweep(result), 0)))
    assert doc["schema"] == "raybench.sweep/1" and doc["sweep_id"] == "sw"
    assert doc["sweep_table"] == str(tmp_path / "sw" / "sweep.arrow")
    table = pa.ipc.open_file(doc["sweep_table"]).read_all().to_pylist()
    assert [p["agents"] for p in doc["points"]] == [r["agents"] for r in table] == [100, 200]
    for p, r in zip(doc["points"], table, strict=True):
        assert p["throughput_per_s"] == r["throughput_rps"] and p["p99_ms"] == r["p99_ms"]
        assert p["error_fraction"] == r["error_rate"] and p["held"] is True
    assert doc["largest_held_agents"] == 200 and doc["first_broken_agents"] is None
    assert doc["recommendation"] == result.analysis.recommendation
    assert set(doc["slopes"]) == {"p99_ms_per_agent", "throughput_per_s_per_agent", "memory_mib_per_agent",
                                  "cpu_percent_per_agent"}  # fmt: skip
    # the two sizes are the same folder: zero slopes, not NaN
    assert doc["slopes"]["p99_ms_per_agent"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("statuses", "expected"), [(("completed", "completed"), 0), (("completed", "failed"), 3)])
def test_sweep_command_json_on_a_stand_in_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statuses: tuple[str, ...], expected: int
) -> None:
    from raybench.engine import sweep

    result = _sweep_result(tmp_path, statuses)
    seen: dict[str, Any] = {}

    def fake_run_sweep(sc: Any, sizes: Any, **kw: Any) -> Any:
        seen.update(kw, sizes=sizes)
        kw["progress"]("sweep: 100 agents")
        return result

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    base = ("sweep", "--preset", "smoke", "--agents", "200,100", "--duration", "4s", "--resolution", "5%")
    code_t, text, _ = invoke(*base, "--out", tmp_path)
    code, out, err = invoke(*base, "--out", tmp_path, "--json")
    assert code == code_t == expected
    assert seen["sizes"] == [100, 200] and seen["resolution"] == 0.05
    doc = parse(out)
    assert doc["exit_code"] == expected and [p["status"] for p in doc["points"]] == list(statuses)
    assert "sweep: 100 agents" in err  # progress on stderr, never stdout
    assert text.splitlines()[-1] == str(result.sweep_dir)
    code, out, err = invoke("sweep", "--agents", "10", "--resolution", "fine", "--json", "--out", tmp_path)
    one_line_error(code, out, err, "--resolution: 'fine' is not a percentage")


# --------------------------------------------------------------------------------------------------
# One CLI: names, metavars, -o/--output


USAGE = {
    ("show",): "raybench show [OPTIONS] RUN",
    ("sla",): "raybench sla [OPTIONS] RUN",
    ("compare",): "raybench compare [OPTIONS] [BASELINE] CURRENT",
    ("history",): "raybench history [OPTIONS] RUN...",
    ("export",): "raybench export [OPTIONS] RUN",
    ("report",): "raybench report [OPTIONS] RUN [CURRENT]",
    ("recover",): "raybench recover [OPTIONS] RUN",
    ("baseline", "save"): "raybench baseline save [OPTIONS] RUN",
    ("baseline", "list"): "raybench baseline list [OPTIONS]",
    ("sweep",): "raybench sweep [OPTIONS] [SCENARIO_FILE]",
    ("fuse",): "raybench fuse [OPTIONS]",
}


@pytest.mark.parametrize("command", list(USAGE))
def test_help_names_runs_and_says_what_each_option_takes(command: tuple[str, ...]) -> None:
    code, out, _ = invoke(*command, "--help")
    assert code == 0
    assert out.splitlines()[0] == f"Usage: {USAGE[command]}"
    options = out.split("Options:")[1]
    for vague in (" TEXT", " INTEGER", " FLOAT", " PATH", "RUN_DIR"):
        assert vague not in options, (command, vague)
    if command[0] in ("compare", "report", "export"):
        assert "-o, --output" in options and "--out-file" not in options


@pytest.mark.parametrize("command", ["show", "sla", "compare", "history", "sweep"])
def test_every_json_command_has_the_flag(command: str) -> None:
    code, out, _ = invoke(command, "--help")
    assert code == 0 and "--json" in out


# --------------------------------------------------------------------------------------------------
# export --force, report without matplotlib


def test_export_force_replaces_and_refusal_points_at_it(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    code, first, _ = invoke("export", run, "--format", "csv", "-o", out)
    assert code == 0
    (out / "requests.csv").write_text("mine")
    code, stdout, err = invoke("export", run, "--format", "csv", "--output", out)
    one_line_error(code, stdout, err, "exports never overwrite unless --force")
    assert (out / "requests.csv").read_text() == "mine"
    code, again, _ = invoke("export", run, "--format", "csv", "-o", out, "--force")
    assert code == 0 and again == first
    assert (out / "requests.csv").read_text().startswith('"run_id"')
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(x).name for x in first.split())


def test_export_force_failure_leaves_every_file_as_it_was(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from raybench.results import export as ex

    out = tmp_path / "pq"
    ex.export(run, "parquet", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real, calls = ex._write, []

    def failing(table: pa.Table, fmt: str, path: Path) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(table, fmt, path)

    monkeypatch.setattr(ex, "_write", failing)
    with pytest.raises(OSError, match="disk full"):
        ex.export(run, "parquet", out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp file, nothing replaced


def test_report_without_matplotlib_names_the_extra(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = invoke("report", run)
    one_line_error(code, out, err, "pip install 'raybench[report]'")
    assert not (run / "report.html").exists()
