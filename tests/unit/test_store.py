from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pytest

from raybench.errors import ResultsError, UsageError
from raybench.results import schema, store
from raybench.results.recording import RowBuffer


def _rows(n: int, start: int = 0) -> pa.RecordBatch:
    buf = RowBuffer("fuse_ops")
    for i in range(start, start + n):
        buf.append(("r", i, "node-a" if i % 2 else "node-b", i % 3, "stat", "fuse", 0, 0.1 * i, True, None))
    batch = buf.take()
    assert batch is not None
    return batch


def test_stream_then_finalize_gives_a_dictionary_encoded_zstd_file(tmp_path: Path):
    app = store.StreamAppender(tmp_path, "fuse_ops")
    for k in range(3):
        app.write(_rows(10, 10 * k))
    app.close()
    assert store.finalize_stream(tmp_path, "fuse_ops") == 30
    reader = pa.ipc.open_file(str(tmp_path / "fuse_ops.arrow"))
    assert reader.schema.metadata[b"schema_version"] == str(schema.SCHEMA_VERSION).encode()
    t = reader.read_all()
    assert t.num_rows == 30
    assert pa.types.is_dictionary(t.schema.field("node_id").type)
    assert t.column("worker").to_pylist()[:4] == [0, 1, 2, 0]
    # readable by other tools' entry points too
    assert feather.read_table(str(tmp_path / "fuse_ops.arrow")).num_rows == 30
    assert store.read_table(tmp_path, "fuse_ops").column("latency_us").to_pylist()[29] == pytest.approx(2.9)


def test_finalize_gathers_small_streamed_batches_into_large_ones_in_order(tmp_path: Path):
    app = store.StreamAppender(tmp_path, "fuse_ops")
    sizes = [30, 0, 50, 30, 200, 7, 30, 30, 5]  # an empty batch, and one larger than a chunk
    start = 0
    for n in sizes:
        if n:
            app.write(_rows(n, start))
        else:  # the appender skips empty batches; other writers may not
            app._writer.write(_rows(1).slice(0, 0))
        start += n
    app.close()
    assert store.finalize_stream(tmp_path, "fuse_ops", chunk_rows=100) == sum(sizes)
    reader = pa.ipc.open_file(str(tmp_path / "fuse_ops.arrow"))
    # 30+50+30 -> 110, 200 whole, 7+30+30+5 -> 72 (the rest)
    assert [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)] == [110, 200, 72]
    t = reader.read_all()
    assert t.column("worker").to_pylist() == [i % 3 for i in range(sum(sizes))]
    assert t.column("latency_us").to_pylist() == pytest.approx([0.1 * i for i in range(sum(sizes))])
    node = t.column("node_id").combine_chunks()
    assert node.dictionary.to_pylist() == ["node-a", "node-b"]  # one dictionary for the whole file
    # as streamed (chunk_rows=1): the same rows, one file batch per non-empty streamed batch
    (tmp_path / "fuse_ops.arrow").unlink()
    assert store.finalize_stream(tmp_path, "fuse_ops", chunk_rows=1) == sum(sizes)
    reader = pa.ipc.open_file(str(tmp_path / "fuse_ops.arrow"))
    assert reader.num_record_batches == len([n for n in sizes if n])
    assert reader.read_all().equals(t)


def test_a_torn_stream_reads_up_to_its_last_complete_batch(tmp_path: Path):
    app = store.StreamAppender(tmp_path, "fuse_ops")
    app.write(_rows(5))
    app.write(_rows(5, 5))
    # a crash mid-write: no end-of-stream marker and half a message
    app._sink.write(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage")
    app._sink.flush()
    t = store.read_table(tmp_path, "fuse_ops")
    assert t.num_rows == 10
    assert store.finalize_stream(tmp_path, "fuse_ops") == 10


def test_unknown_schema_version_is_refused(tmp_path: Path):
    sch = store.sch.schema("events").with_metadata({b"schema_version": b"99", b"table": b"events"})
    with pa.OSFile(str(tmp_path / "events.arrow"), "wb") as sink, pa.ipc.new_file(sink, sch):
        pass
    with pytest.raises(ResultsError, match="schema_version 99"):
        store.read_table(tmp_path, "events")
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ResultsError, match="schema_version 99"):
        store.load_manifest(tmp_path)


def test_missing_manifest_points_to_recover(tmp_path: Path):
    with pytest.raises(ResultsError, match="raybench recover"):
        store.load_manifest(tmp_path)
    with pytest.raises(ResultsError, match="no such directory"):
        store.load_manifest(tmp_path / "nope")


def test_run_dirs_are_never_reused(tmp_path: Path):
    store.create_run_dir(tmp_path, "a")
    with pytest.raises(UsageError, match="already exists"):
        store.create_run_dir(tmp_path, "a")
    for bad in ("", "../x", "a/b", ".hidden", "x" * 200):
        with pytest.raises(UsageError):
            store.check_run_id(bad)
    ids = {store.new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(store.check_run_id(i) for i in ids)


def test_json_is_replaced_atomically(tmp_path: Path):
    p = tmp_path / "m.json"
    store.write_json_atomic(p, {"a": 1})
    store.write_json_atomic(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_results_readme_documents_every_column():
    readme = (Path(__file__).parents[2] / "results" / "README.md").read_text()
    for table in schema.TABLES:
        assert f"`{table}" in readme, table
        for col in schema.column_names(table):
            assert f"`{col}`" in readme, f"{table}.{col} undocumented"
