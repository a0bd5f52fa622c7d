"""Every reader on a stored schema-v1 run folder (``tests/fixtures/run-v1``: a real 8 s smoke run
of 200 agents with FUSE on, 2 s windows): what raybench wrote once it must read for good.

Each test copies the folder first, so a reader that writes (``sla --write``, ``compare``, ``export``)
cannot change the fixture.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from raybench.cli import cli
from raybench.results import store
from raybench.results.schema import SCHEMA_VERSION, TABLES

STORED = Path(__file__).parents[1] / "fixtures" / "run-v1"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return Path(shutil.copytree(STORED, tmp_path / "run-v1"))


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_the_stored_folder_is_schema_v1_and_every_table_reads(run: Path):
    manifest = store.load_manifest(run)
    assert manifest["schema_version"] == 1 < SCHEMA_VERSION  # an older version, still read
    for table in TABLES:
        if (run / f"{table}.arrow").exists():
            t = store.read_table(run, table)
            assert t.num_rows == manifest["files"][table]
            assert t.schema.metadata[b"schema_version"] == b"1"


def test_show_recomputes_the_recorded_summary(run: Path):
    res = _invoke("show", str(run))
    assert res.exit_code == 0, res.output
    manifest = store.load_manifest(run)
    overall = manifest["summary"][0]
    line = next(x for x in res.output.splitlines() if x.startswith("all "))
    assert line.split()[1] == str(overall["count"])
    # Throughput: the requests that completed after the warm-up and before the load's end, over
    # that span (a folder of this age recorded every request over it, the drain included).
    req = store.read_table(run, "requests")
    warmup = manifest["scenario"]["run"]["warmup"]
    ends = req.column("ts_end_ns").to_numpy()[~req.column("warmup").to_numpy(zero_copy_only=False)]
    done = int((ends < manifest["load_end_ns"]).sum())
    span_s = (manifest["load_end_ns"] - manifest["load_start_ns"]) / 1e9 - float(str(warmup).rstrip("s"))
    assert line.split()[2] == f"{done / span_s:.1f}"
    assert done < overall["count"]  # the drain is left out of the rate
    assert any(x.startswith("harness: ") for x in res.output.splitlines())


def test_sla_offline_gives_the_recorded_verdicts(run: Path):
    res = _invoke("sla", str(run))
    manifest = store.load_manifest(run)
    recorded = {t["id"]: t["passed"] for t in manifest["sla"]["thresholds"]}
    assert res.exit_code == (0 if all(recorded.values()) else 1), res.output
    for tid, passed in recorded.items():
        line = next(x for x in res.output.splitlines() if x.startswith(tid))
        assert (" pass" in line) == passed, line


def test_compare_with_itself_finds_no_regression(run: Path, tmp_path: Path):
    twin = Path(shutil.copytree(run, tmp_path / "twin"))
    res = _invoke("compare", str(run), str(twin), "--no-write")
    assert res.exit_code in (0, 4), res.output  # 6 s measured: a window choice may leave too few windows
    assert "0 regression(s)" in res.output


def test_export_writes_every_table(run: Path, tmp_path: Path):
    res = _invoke("export", str(run), "--format", "parquet", "-o", str(tmp_path / "pq"))
    assert res.exit_code == 0, res.output
    import pyarrow.parquet as pq

    requests = pq.read_table(tmp_path / "pq" / "requests.parquet")
    assert requests.num_rows == store.read_table(run, "requests").num_rows


def test_history_and_recover_refusal(run: Path):
    res = _invoke("history", str(run))
    assert res.exit_code == 0, res.output
    again = _invoke("recover", str(run))
    assert again.exit_code == 2 and "already complete" in again.output


def test_report_renders_every_section(run: Path):
    pytest.importorskip("matplotlib")
    from raybench.report.single import SECTIONS, build_report

    html = build_report(run)
    for anchor, _ in SECTIONS:
        assert f'id="{anchor}"' in html


def test_the_manifest_scenario_rebuilds(run: Path):
    from raybench.config.scenario import Scenario

    manifest = json.loads((run / "manifest.json").read_text())
    sc = Scenario.from_dict(manifest["scenario"])
    assert sc.run.agents == 200 and sc.run.duration == 8.0
    assert pa.ipc.open_file(str(run / "requests.arrow")).read_all().num_rows > 0
