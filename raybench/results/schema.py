"""The result schema: one Arrow schema per result file, and its version.

SCHEMA_VERSION history (bump on any column change; readers keep accepting every earlier version):

* 1 — first version: requests, fuse_ops, windows, resources, sla, events (results/README.md).
* 2 — same columns and types; ``windows.arrow`` follows its definition (the drain is in no window,
  windows wholly in the warm-up are left out, ``throughput`` divides by the window's measured
  part), and the manifest's summary ``throughput`` counts what completed before the load's end.
  Version-1 folders read as before; their recorded figures keep the old meaning.

Every ``.arrow`` file raybench writes carries ``schema_version`` and ``table`` in its schema
metadata. Column meanings and units are documented in ``results/README.md``; this module is the
machine-readable half of that document and the two must agree (a test checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_VERSION = 2
#: Versions this code can read.
READABLE_VERSIONS = frozenset({1, 2})

#: Result tables, in the order they are documented.
TABLES = ("requests", "fuse_ops", "windows", "resources", "sla", "events")

#: Columns stored as dictionary-encoded strings in the final ``.arrow`` files. In the ``.arrows``
#: streams written during a run they are plain strings (every batch may see other values).
DICTIONARY_COLUMNS = {
    "requests": ("node_id", "region", "cls", "outcome"),
    "fuse_ops": ("node_id", "op", "target"),
    "resources": ("node_id", "role"),
}

#: Request outcomes.
OUTCOMES = ("ok", "denied", "error", "timeout")


def _fields() -> dict[str, list[tuple[str, pa.DataType, bool]]]:
    import pyarrow as pa

    s, i32, i64, f64, b = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
    return {
        "requests": [
            ("run_id", s, False),
            ("request_id", i64, False),
            ("agent_id", i32, False),
            ("host_id", i32, False),
            ("node_id", s, False),
            ("region", s, False),
            ("cls", s, False),
            ("warmup", b, False),
            ("ts_intended_ns", i64, False),
            ("ts_start_ns", i64, False),
            ("ts_end_ns", i64, False),
            ("latency_ms", f64, False),
            ("service_ms", f64, False),
            ("lag_ms", f64, False),
            ("outcome", s, False),
            ("error", s, True),
            ("escalated", b, False),
            ("cache_hit", b, False),
            ("policy_ms", f64, True),
            ("llm_ms", f64, True),
            ("expert_queue_ms", f64, True),
            ("expert_ms", f64, True),
            ("lease_wait_ms", f64, True),
            ("state_ms", f64, True),
            ("fuse_ms", f64, True),
            ("event_ms", f64, True),
            ("policy_model_ms", f64, True),
            ("llm_model_ms", f64, True),
            ("expert_model_ms", f64, True),
            ("rtt_model_ms", f64, True),
            ("file_key", i64, True),
            ("lease_start_ns", i64, True),
            ("lease_end_ns", i64, True),
            ("conflicts", i32, False),
        ],
        "fuse_ops": [
            ("run_id", s, False),
            ("ts_ns", i64, False),
            ("node_id", s, False),
            ("worker", i32, False),
            ("op", s, False),
            ("target", s, False),
            ("bytes", i64, False),
            ("latency_us", f64, False),
            ("ok", b, False),
            ("errno", i32, True),
        ],
        "windows": [
            ("run_id", s, False),
            ("window_start_ns", i64, False),
            ("window_end_ns", i64, False),
            ("scope", s, False),
            ("count", i64, False),
            ("throughput", f64, False),
            ("mean_ms", f64, True),
            ("p50_ms", f64, True),
            ("p90_ms", f64, True),
            ("p95_ms", f64, True),
            ("p99_ms", f64, True),
            ("p999_ms", f64, True),
            ("max_ms", f64, True),
            ("error_rate", f64, True),
            ("escalations", i64, False),
        ],
        "resources": [
            ("run_id", s, False),
            ("ts_ns", i64, False),
            ("node_id", s, False),
            ("role", s, False),
            ("pid", i32, False),
            ("cpu_percent", f64, False),
            ("rss_bytes", i64, False),
            ("threads", i32, False),
            ("open_fds", i32, False),
            ("gc_gen0", i64, False),
            ("gc_gen1", i64, False),
            ("gc_gen2", i64, False),
        ],
        "sla": [
            ("run_id", s, False),
            ("id", s, False),
            ("expression", s, False),
            ("scope", s, False),
            ("observed", f64, True),
            ("target", f64, False),
            ("passed", b, False),
            ("windows_failed", i64, False),
            ("windows_total", i64, False),
            ("first_violation_ns", i64, True),
        ],
        "events": [
            ("run_id", s, False),
            ("ts_ns", i64, False),
            ("kind", s, False),
            ("detail", s, False),
        ],
    }


def schema(table: str, *, final: bool = True) -> pa.Schema:
    """The Arrow schema of a result table.

    Args:
        table: one of :data:`TABLES`.
        final: True for the ``.arrow`` file (dictionary-encoded string columns, metadata);
            False for the ``.arrows`` stream written during a run (plain strings).
    """
    import pyarrow as pa

    fields = _fields()
    if table not in fields:
        raise KeyError(f"unknown result table {table!r}; known: {', '.join(TABLES)}")
    dict_cols = DICTIONARY_COLUMNS.get(table, ()) if final else ()
    out = []
    for name, typ, nullable in fields[table]:
        if name in dict_cols:
            typ = pa.dictionary(pa.int32(), pa.string())
        out.append(pa.field(name, typ, nullable=nullable))
    return pa.schema(out, metadata=metadata(table))


def conform(table: str, data: pa.Table, *, final: bool = False) -> pa.Table:
    """``data`` as result table ``table``: its columns picked by name, in order, cast to
    :func:`schema` (``final``: dictionary-encoded strings), with the schema's metadata.

    How rows from elsewhere (fuse_bench's workload rows, for ``fuse_ops``) become a result table.
    Raises KeyError for an unknown table or a missing column.
    """
    target = schema(table, final=final)
    missing = [name for name in target.names if name not in data.column_names]
    if missing:
        raise KeyError(f"rows for {table!r} lack the column(s) {', '.join(missing)}")
    return data.select(target.names).cast(target)


def metadata(table: str) -> dict[bytes, bytes]:
    """Schema metadata written into every result file."""
    return {b"schema_version": str(SCHEMA_VERSION).encode(), b"table": table.encode()}


def column_names(table: str) -> list[str]:
    """Names of the columns of ``table`` in order."""
    return [name for name, _, _ in _fields()[table]]
