"""Export the result tables of a run folder to Parquet or CSV, for tools that want those.

Contract of :func:`export`:

* One output file per result table present in the run folder (``<table>.arrow``, or the
  ``.arrows`` stream of a run that is still going or died), named ``<table>.parquet`` /
  ``<table>.csv``; tables the folder lacks are skipped. ``manifest.json`` is not a table and is
  not exported.
* Parquet keeps the Arrow schema (types, dictionary columns, the ``schema_version`` and ``table``
  metadata). CSV has a header row, dictionary columns decoded to plain strings, null written as an
  empty unquoted field and every string quoted (so an empty string and a null stay apart),
  floats with enough digits to read back the same value.
* Nothing is overwritten unless ``force``: if any output file exists already, :class:`UsageError`
  names it (and ``--force``) and nothing is written. Every file is first written under a temporary
  name; only when all of them are written are they ``os.replace``-d into place, so a failure
  (unreadable table, full disk) leaves the folder as it was: no new file, no replaced one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from raybench.errors import ResultsError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("parquet", "csv")


def tables_in(run_dir: Path) -> list[str]:
    """The result tables present in ``run_dir`` (file or stream), in schema order."""
    from raybench.results.schema import TABLES

    run_dir = Path(run_dir)
    return [t for t in TABLES if (run_dir / f"{t}.arrow").exists() or (run_dir / f"{t}.arrows").exists()]


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """The same table with every dictionary column cast to its value type (plain strings)."""
    import pyarrow as pa

    fields = [
        pa.field(f.name, f.type.value_type, f.nullable, f.metadata) if pa.types.is_dictionary(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _write(table: pa.Table, fmt: str, path: Path) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, str(path), compression="zstd")
    else:
        import pyarrow.csv as pcsv

        options = pcsv.WriteOptions(include_header=True, quoting_style="needed")
        pcsv.write_csv(decode_dictionaries(table), str(path), write_options=options)


def export(run_dir: Path, fmt: str, out_dir: Path | None = None, *, force: bool = False) -> list[Path]:
    """Write each result table of ``run_dir`` as ``<table>.<fmt>`` into ``out_dir``.

    Args:
        run_dir: a run folder (``manifest.json`` is not required: a died run's streams export too).
        fmt: ``parquet`` or ``csv``.
        out_dir: where to write; default ``run_dir`` itself. Created if missing.
        force: replace output files that exist already (else they are refused).

    Returns:
        The paths written, in schema order.

    Raises:
        UsageError: unknown format, an output file exists already (without ``force``), ``out_dir``
            is not a directory.
        ResultsError: ``run_dir`` is not a folder or holds no result table, or a table is unreadable.
    """
    from raybench.results import store

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not allowed; use one of: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run folder (no such directory)")
    tables = tables_in(run_dir)
    if not tables:
        raise ResultsError(f"{run_dir} holds no result table (*.arrow or *.arrows)")
    out = Path(out_dir) if out_dir is not None else run_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is not a directory")
    targets = [out / f"{t}.{fmt}" for t in tables]
    _refuse_existing(targets, force)
    # Read everything before writing anything: an unreadable table leaves no partial export.
    data = [store.read_table(run_dir, t) for t in tables]
    out.mkdir(parents=True, exist_ok=True)
    temps = [path.with_name(f".{path.name}.tmp") for path in targets]
    written: list[Path] = []
    try:
        for table, tmp in zip(data, temps, strict=True):
            _write(table, fmt, tmp)
        _refuse_existing(targets, force)  # one appeared while we were writing: still never overwrite
        for tmp, path in zip(temps, targets, strict=True):
            os.replace(tmp, path)
            written.append(path)
    except BaseException:
        if not force:  # new files only: take them away again (replaced ones cannot come back)
            for path in written:
                path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return written


def _refuse_existing(targets: list[Path], force: bool) -> None:
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise UsageError(
            f"{', '.join(existing)} {verb} already; exports never overwrite unless --force (or use -o DIR)"
        )
