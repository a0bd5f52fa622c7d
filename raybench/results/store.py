"""The run folder on disk: run ids, Arrow streams during a run, Arrow files after it, the manifest.

Layout of ``<out>/<run_id>/`` (schema in ``results/README.md``)::

    manifest.json          written last, atomically; its presence with a status means "finalized"
    <table>.arrows         Arrow IPC stream, appended to during the run (readable after a crash)
    <table>.arrow          Arrow IPC file (zstd), rewritten from the stream at the end, atomically

Rules: a run folder is never overwritten (``create_run_dir`` refuses an existing one); every file is
written under a temporary name and ``os.replace``-d into place; a stream cut short by a crash is read
up to its last complete record batch.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raybench.errors import ResultsError, UsageError
from raybench.results import schema as sch

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST = "manifest.json"
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_run_id(now: float | None = None) -> str:
    """A sortable run id: UTC timestamp plus a short random suffix, e.g. ``20261201T121400Z-3fa9c1``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


def check_run_id(run_id: str) -> str:
    """Validate a user-chosen run id (letters, digits, '.', '_', '-'; at most 128 characters)."""
    if not _RUN_ID_RE.match(run_id) or run_id in {".", ".."}:
        raise UsageError(
            f"--run-id {run_id!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id


def check_new_run_dir(root: Path, run_id: str) -> Path:
    """Return ``root/run_id`` after checking that it does not exist yet (nothing is created)."""
    path = Path(root) / check_run_id(run_id)
    if path.exists():
        raise UsageError(f"run folder {path} already exists; choose another --run-id (runs are never overwritten)")
    if Path(root).exists() and not Path(root).is_dir():
        raise UsageError(f"--out {root} is not a directory")
    return path


def create_run_dir(root: Path, run_id: str) -> Path:
    """Create ``root/run_id``; refuse if it exists (atomic: ``mkdir`` without ``exist_ok``)."""
    path = check_new_run_dir(root, run_id)
    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise UsageError(f"run folder {path} already exists; choose another --run-id") from None
    return path


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class StreamAppender:
    """Appends record batches of one table to ``<table>.arrows`` as they arrive.

    Each batch is written and flushed to the OS at once, so a process killed later leaves every
    batch written so far readable.
    """

    def __init__(self, run_dir: Path, table: str) -> None:
        import pyarrow as pa

        self.table = table
        self.path = Path(run_dir) / f"{table}.arrows"
        self.schema = sch.schema(table, final=False)
        self.rows = 0
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if batch.schema != self.schema:
            batch = batch.select(self.schema.names).cast(self.schema)
        self._writer.write(batch)
        self._sink.flush()
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = None


def iter_stream(path: Path) -> Iterator[pa.RecordBatch]:
    """Yield the complete record batches of an Arrow stream, stopping quietly at a torn tail."""
    import pyarrow as pa

    # A plain file, not a memory map: a map of a long stream would count every page read towards
    # the process's RSS, while reading batch by batch keeps memory flat in the number of rows.
    try:
        reader = pa.ipc.open_stream(pa.OSFile(str(path), "rb"))
    except (pa.ArrowInvalid, OSError):
        return  # empty or torn before the first message
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError):
            return  # crash left a partial message: everything before it is intact
        yield batch


def _encode(batch: pa.RecordBatch, final: pa.Schema, dictionaries: dict[str, pa.Array]) -> pa.RecordBatch:
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for field in final:
        col = batch.column(field.name)
        if field.name in dictionaries:
            values = dictionaries[field.name]
            col = pa.DictionaryArray.from_arrays(pc.index_in(col, value_set=values).cast(pa.int32()), values)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=final)


#: Rows per record batch of a finalized file (at least; a larger streamed batch is kept whole).
#: A run's stream holds one batch per host flush, often a few hundred rows, and encoding and
#: compressing small batches one by one costs several times more per row than large ones, so
#: finalize gathers them first; larger chunks were no faster and only raised the peak memory
#: (``python -m bench.bench_finalize``; figures in docs/performance.md, "Finalize gathers the
#: streamed batches").
CHUNK_ROWS = 8192


def _chunks(batches: Iterator[pa.RecordBatch], rows: int = CHUNK_ROWS) -> Iterator[pa.RecordBatch]:
    """The batches, in order, gathered into batches of at least ``rows`` rows (the last may have fewer)."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
            pending, count = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def finalize_stream(run_dir: Path, table: str, chunk_rows: int = CHUNK_ROWS) -> int:
    """Rewrite ``<table>.arrows`` into ``<table>.arrow`` (zstd, dictionaries, metadata), atomically.

    Two passes over the stream, so memory stays flat in the number of rows: the first collects the
    distinct values of dictionary columns (one dictionary for the whole file), the second writes
    the rows in order, in batches of at least ``chunk_rows`` rows (1: as they were streamed).
    Returns the number of rows written.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    run_dir = Path(run_dir)
    src = run_dir / f"{table}.arrows"
    final = sch.schema(table, final=True)
    dict_cols = sch.DICTIONARY_COLUMNS.get(table, ())
    seen: dict[str, set[str]] = {c: set() for c in dict_cols}
    if src.exists():
        for batch in iter_stream(src):
            for c in dict_cols:
                seen[c].update(v for v in pc.unique(batch.column(c)).to_pylist() if v is not None)
    dictionaries = {c: pa.array(sorted(v), pa.string()) for c, v in seen.items()}
    dst = run_dir / f"{table}.arrow"
    tmp = run_dir / f".{table}.arrow.tmp"
    rows = 0
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, final, options=options) as writer:
        if src.exists():
            for batch in _chunks(iter_stream(src), chunk_rows):
                writer.write_batch(_encode(batch, final, dictionaries))
                rows += batch.num_rows
    os.replace(tmp, dst)
    return rows


def write_arrow_file(path: Path, data: pa.Table) -> Path:
    """Write a table with its own schema (metadata included) to an Arrow IPC file (zstd), through a
    temporary file and ``os.replace``. For tables outside the result schema (comparison, sweep)."""
    import pyarrow as pa

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, data.schema, options=options) as w:
        w.write_table(data)
    os.replace(tmp, path)
    return path


def write_table(run_dir: Path, table: str, data: pa.Table) -> int:
    """Write a whole (small) table straight to ``<table>.arrow``, atomically."""
    import pyarrow as pa

    data = sch.conform(table, data)
    plain = data.schema
    tmp_stream = Path(run_dir) / f".{table}.arrows.tmp"
    with pa.OSFile(str(tmp_stream), "wb") as sink, pa.ipc.new_stream(sink, plain) as w:
        for batch in data.to_batches():
            w.write_batch(batch)
    os.replace(tmp_stream, Path(run_dir) / f"{table}.arrows")
    rows = finalize_stream(run_dir, table)
    (Path(run_dir) / f"{table}.arrows").unlink()
    return rows


def _check_version(path: Path, meta: dict[bytes, bytes] | None) -> int:
    raw = (meta or {}).get(b"schema_version")
    if raw is None:
        raise ResultsError(f"{path} has no schema_version in its metadata; not a raybench result file")
    version = int(raw)
    if version not in sch.READABLE_VERSIONS:
        raise ResultsError(
            f"{path} has schema_version {version}; this raybench reads versions "
            f"{', '.join(map(str, sorted(sch.READABLE_VERSIONS)))}"
        )
    return version


def read_table(run_dir: Path, table: str, columns: list[str] | None = None) -> pa.Table:
    """Read one result table of a run folder.

    Prefers the finalized ``.arrow`` file; falls back to the ``.arrows`` stream of a run that is
    still going or died (complete batches only). A missing table gives an empty table.
    """
    import pyarrow as pa

    run_dir = Path(run_dir)
    path = run_dir / f"{table}.arrow"
    if path.exists():
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
        except (pa.ArrowInvalid, OSError) as exc:
            raise ResultsError(f"{path} is not a readable Arrow file: {exc}") from None
        _check_version(path, reader.schema.metadata)
        data = reader.read_all()
    else:
        stream = run_dir / f"{table}.arrows"
        batches = list(iter_stream(stream)) if stream.exists() else []
        schema_ = batches[0].schema if batches else sch.schema(table, final=False)
        data = pa.Table.from_batches(batches, schema=schema_)
    if columns is not None:
        data = data.select(columns)
    return data


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a run folder, with a one-line error if it is not there."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run folder (no such directory)")
    path = run_dir / MANIFEST
    if not path.exists():
        runs = _runs_in(run_dir)
        if runs:  # the results root (or a sweep folder), not one of its runs
            latest = max(runs, key=lambda d: ((d / MANIFEST).stat().st_mtime_ns, d.name))
            raise ResultsError(
                f"{run_dir} is a results folder holding {len(runs)} run{'s' if len(runs) != 1 else ''}, not a run "
                f"folder; give one of them, e.g. {latest}"
            )
        raise ResultsError(
            f"{run_dir} has no {MANIFEST}: the run is still going or died; `raybench recover {run_dir}` "
            "turns its streams into files"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is not readable JSON: {exc}") from None
    version = manifest.get("schema_version")
    if version not in sch.READABLE_VERSIONS:
        raise ResultsError(
            f"{path} has schema_version {version!r}; this raybench reads "
            f"{', '.join(map(str, sorted(sch.READABLE_VERSIONS)))}"
        )
    return manifest


def _runs_in(folder: Path) -> list[Path]:
    """The finished run folders directly inside ``folder`` (those with a manifest), by name."""
    try:
        return sorted(d for d in folder.iterdir() if d.is_dir() and (d / MANIFEST).is_file())
    except OSError:
        return []
