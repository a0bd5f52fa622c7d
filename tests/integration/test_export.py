"""raybench export: Parquet and CSV round-trip to the values of the Arrow files; never overwrites."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from small_run import small_run
from synth_runs import write_run

from raybench.cli import cli
from raybench.errors import ResultsError, UsageError
from raybench.results import store
from raybench.results.export import decode_dictionaries, export, tables_in
from raybench.results.schema import SCHEMA_VERSION


def read_csv(path, schema: pa.Schema) -> pa.Table:
    """Read an exported CSV back with the types of ``schema`` (unquoted empty field = null)."""
    convert = pcsv.ConvertOptions(column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(newlines_in_values=True), convert_options=convert)


def assert_round_trip(run_dir, out_dir, fmt: str) -> None:
    for table in tables_in(run_dir):
        original = decode_dictionaries(store.read_table(run_dir, table))
        path = out_dir / f"{table}.{fmt}"
        back = pq.read_table(path) if fmt == "parquet" else read_csv(path, original.schema)
        back = decode_dictionaries(back)
        assert back.num_rows == original.num_rows, table
        assert back.schema.names == original.schema.names, table
        for name in original.schema.names:
            assert back.column(name).type == original.column(name).type, (table, name)
            assert back.column(name).to_pylist() == original.column(name).to_pylist(), (table, name)


@pytest.fixture(scope="module")
def run_dir(ray_local, tmp_path_factory):
    return small_run(tmp_path_factory)


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_round_trips_to_the_arrow_values(run_dir, tmp_path, fmt):
    written = export(run_dir, fmt, tmp_path / "out")
    tables = tables_in(run_dir)
    assert {"requests", "windows", "resources", "events"} <= set(tables)
    assert written == [tmp_path / "out" / f"{t}.{fmt}" for t in tables]
    assert_round_trip(run_dir, tmp_path / "out", fmt)
    if fmt == "parquet":  # the Arrow schema travels: dictionaries and the schema metadata
        schema = pq.read_schema(tmp_path / "out" / "requests.parquet")
        assert pa.types.is_dictionary(schema.field("cls").type)
        assert schema.metadata[b"schema_version"] == str(SCHEMA_VERSION).encode()
    else:  # dictionary columns are plain strings in the CSV
        head = (tmp_path / "out" / "requests.csv").read_text().splitlines()[1]
        assert any(c in head for c in ('"safe"', '"risky"', '"complex"'))
    assert not list((tmp_path / "out").glob(".*"))


@pytest.mark.ray
def test_cli_export_prints_paths_and_refuses_to_overwrite(run_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "csv"
    res = runner.invoke(cli, ["export", str(run_dir), "--format", "csv", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.split() == [str(out / f"{t}.csv") for t in tables_in(run_dir)]
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    res = runner.invoke(cli, ["export", str(run_dir), "--format", "csv", "-o", str(out)])
    assert res.exit_code == 2 and "never overwrite" in res.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


# ---------------------------------------------------------------------------------------------
# synthetic folders (no Ray)


def test_default_output_is_the_run_folder_and_one_existing_file_blocks_all(tmp_path):
    run = write_run(tmp_path, "syn", seed=1, windows=3)
    (run / "requests.parquet").write_text("mine")
    with pytest.raises(UsageError, match=r"requests\.parquet exists already"):
        export(run, "parquet")
    assert (run / "requests.parquet").read_text() == "mine"
    written = export(run, "csv")
    assert written == [run / "requests.csv"]
    assert_round_trip(run, run, "csv")


def test_bad_format_and_bad_folders(tmp_path):
    run = write_run(tmp_path, "syn", seed=1, windows=3)
    with pytest.raises(UsageError, match="parquet, csv"):
        export(run, "xlsx")
    with pytest.raises(ResultsError, match="not a run folder"):
        export(tmp_path / "missing", "csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="holds no result table"):
        export(tmp_path / "empty", "csv")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a directory"):
        export(run, "csv", tmp_path / "file")
    res = CliRunner().invoke(cli, ["export", str(run), "--format", "xlsx"])
    assert res.exit_code == 2
