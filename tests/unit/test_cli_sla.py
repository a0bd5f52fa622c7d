"""``raybench sla RUN``: offline re-evaluation of a run folder, in-process with click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import synth_requests as synth
from click.testing import CliRunner
from synth_requests import MS, T0_NS, S

from raybench.cli import cli
from raybench.judge.grammar import parse_thresholds
from raybench.judge.sla import SlaMonitor
from raybench.judge.sla_replay import split_windows
from raybench.results import schema, store

SLA = {
    "thresholds": ["p99<100ms", "error_rate<1%", "growth(rss)<10%"],
    "window": "1s",
    "grace_windows": 2,
    "counting": "consecutive",
    "actions": ["record", "alert"],
    "webhooks": [{"kind": "slack", "url": "<redacted>", "url_env": "SLACK_HOOK"}],
}


def _requests(slow_windows=(5, 6)):
    lat, ends = [], []
    for k in range(10):
        for i in range(20):
            lat.append(500.0 if k in slow_windows else 5.0 + i)
            ends.append(T0_NS + k * S + (i + 1) * 40 * MS)
    return synth.requests(lat, ends_ns=ends, outcome=["ok"] * len(lat))


def _make_run(root: Path, *, sla=SLA, requests=None, manifest_extra=None) -> Path:
    run = root / "20261201T000000Z-abcdef"
    run.mkdir()
    store.write_table(run, "requests", _requests() if requests is None else requests)
    samples = [("n1", 7, T0_NS + i * S, 1000 + i) for i in range(10)]
    store.write_table(run, "resources", synth.resources(samples))
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "run_id": run.name,
        "status": "completed",
        "load_start_ns": T0_NS,
        "load_end_ns": T0_NS + 10 * S,
        "scenario": {"sla": sla},
    } | (manifest_extra or {})
    store.write_json_atomic(run / store.MANIFEST, manifest)
    return run


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["sla", *args])


def test_recorded_thresholds_fail_exit_1_and_nothing_written(tmp_path):
    run = _make_run(tmp_path)
    before = sorted(p.name for p in run.iterdir())
    res = _invoke(str(run))
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["threshold", "observed", "target", "verdict", "windows", "failed", "count"]
    p99 = next(line for line in lines if line.startswith("p99<100ms"))
    assert "FAIL" in p99 and "2/10" in p99 and "500ms" in p99
    err = next(line for line in lines if line.startswith("error_rate<1%"))
    assert " pass " in err and "0/10" in err
    assert next(line for line in lines if line.startswith("growth(rss)<10%")).split()[4] == "pass"
    assert lines[-1] == "2/3 thresholds pass"
    assert sorted(p.name for p in run.iterdir()) == before


def test_sla_option_replaces_thresholds_and_passes(tmp_path):
    run = _make_run(tmp_path)
    res = _invoke(str(run), "--sla", "mean<1s", "--sla", "p50{escalated=false}<=600ms")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[-1] == "2/2 thresholds pass"


def test_window_option_changes_windows(tmp_path):
    run = _make_run(tmp_path)
    res = _invoke(str(run), "--window", "2s", "--sla", "max<100ms")
    # 2 s windows: 5 windows, windows 2 and 3 hold the slow seconds 5 and 6 -> 2 failed in a row
    line = next(x for x in res.stdout.splitlines() if x.startswith("max<100ms"))
    assert "2/5" in line and res.exit_code == 1


def test_write_gives_sla_arrow_matching_the_live_monitor(tmp_path):
    run = _make_run(tmp_path)
    res = _invoke(str(run), "--write")
    assert res.exit_code == 1 and "wrote" in res.stdout
    table = store.read_table(run, "sla")
    assert table.schema.metadata[b"table"] == b"sla"
    rows = {r["id"]: r for r in table.to_pylist()}
    # the live monitor, fed the same windows, must give the same verdicts
    requests, resources = store.read_table(run, "requests"), store.read_table(run, "resources")
    mon = SlaMonitor(parse_thresholds(SLA["thresholds"]), t0_ns=T0_NS, window_s=1.0, grace_windows=2, run_id=run.name)
    declared = []
    for w in split_windows(requests, T0_NS, 1.0, end_ns=T0_NS + 10 * S):
        res_w = resources.filter(
            [w.start_ns <= t < w.end_ns for t in resources.column("ts_ns").to_pylist()]  # plain Python
        )
        declared += mon.observe_window(w.k, w.start_ns, w.end_ns, w.requests, res_w)
    live = {r["id"]: r for r in mon.finalize(requests, resources)}
    for tid, row in rows.items():
        for col in schema.column_names("sla"):
            assert row[col] == live[tid][col], (tid, col)
    assert [v.threshold_id for v in declared] == ["p99<100ms"]
    assert rows["p99<100ms"]["first_violation_ns"] == T0_NS + 7 * S
    assert rows["p99<100ms"]["passed"] is False and rows["error_rate<1%"]["passed"] is True
    assert rows["growth(rss)<10%"]["observed"] == pytest.approx(1008 / 1001 - 1)  # quarters of 0..9 s: 0-2 s vs 7-9 s


def test_no_data_is_a_failure(tmp_path):
    run = _make_run(tmp_path)
    res = _invoke(str(run), "--sla", "p99{cls=risky}<1s")
    assert res.exit_code == 1 and "NO DATA" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sla", "p99<<1s"], "at position 4"),
        (["--sla", "p99<1s", "--sla", "p99<1000ms"], "given twice"),
        (["--window", "soon"], "--window"),
    ],
)
def test_bad_expression_or_option_exit_2_one_line(tmp_path, args, message):
    run = _make_run(tmp_path)
    res = _invoke(str(run), *args)
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("raybench: error:")


def test_bad_folder_exit_2(tmp_path):
    res = _invoke(str(tmp_path / "nope"))
    assert res.exit_code == 2 and "not a run folder" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _invoke(str(empty)).exit_code == 2
    run = _make_run(tmp_path, manifest_extra={"load_start_ns": None})
    res = _invoke(str(run))
    assert res.exit_code == 2 and "load_start_ns" in res.stderr


def test_run_without_recorded_thresholds_asks_for_some(tmp_path):
    run = _make_run(tmp_path, sla={})
    res = _invoke(str(run))
    assert res.exit_code == 2 and "--sla" in res.stderr
    bad = tmp_path / "b"
    bad.mkdir()
    run = _make_run(bad, sla={"thresholds": ["p99<1s"], "windw": "1s"})
    res = _invoke(str(run), "--sla", "p99<1s")
    assert res.exit_code == 0  # unknown non-judging keys are the live run's business
    assert json.loads((run / "manifest.json").read_text())["scenario"]["sla"]["windw"] == "1s"
