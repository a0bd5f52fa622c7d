"""Row buffers: rows accumulate in the process that measured them and leave as Arrow record
batches, converted once per flush, off the request's timed path.

* :class:`RowBuffer` keeps plain tuples (one per row, in the table's column order) and converts
  them with Arrow's converter: simple, and fast enough for the small tables and the driver.
* :class:`RequestRows` is the ``requests`` table's buffer in the agent hosts, where rows come by
  the thousand per second: the values a host measured for a row (and nothing else) are packed
  into one binary record of a fixed layout (one ``struct.pack`` call); a flush ships the records
  (:class:`PackedRows`) and the aggregator turns them into columns with numpy (:func:`to_batch`).
  Values every row of a host shares (run, host, node) and values derived from others (latencies
  from the timestamps, the warm-up flag, wall-clock times, names from their indices) are filled in
  there rather than kept per row.

bench/bench_recording.py measures both.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raybench.results import schema as sch

if TYPE_CHECKING:
    import pyarrow as pa

#: The null of a packed float column (a stage that did not run): durations are never NaN.
NULL_MS = math.nan
#: The null of a packed integer column (no file key, no lease): keys and times are never negative.
NULL_INT = -1


class RowBuffer:
    """Collects rows (tuples in the column order of a result table) and turns them into batches."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.schema = sch.schema(table, final=False)
        self.rows: list[tuple[Any, ...]] = []
        self.total = 0
        self._struct: pa.StructType | None = None

    def append(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> pa.RecordBatch | None:
        """All buffered rows as one record batch (None when empty); the buffer is emptied."""
        if not self.rows:
            return None
        import pyarrow as pa

        rows, self.rows = self.rows, []
        self.total += len(rows)
        # One pass of Arrow's converter over the tuples as a struct array: no Python transpose of
        # the rows into columns (that zip cost as much as the conversion itself).
        if self._struct is None:
            self._struct = pa.struct(list(self.schema))
        struct = pa.array(rows, type=self._struct)
        return pa.RecordBatch.from_struct_array(struct).replace_schema_metadata(self.schema.metadata)


#: The packed record of one request row: (name, struct code), grouped by type (8-byte values first,
#: so that each group is one block of the record). Names are ``requests`` columns, except region,
#: cls and outcome (indices into the host's names and :data:`OUTCOME_CODE`) and the three
#: ``perf_*`` timestamps (the host's perf_counter_ns; wall-clock times and latencies are derived by
#: :func:`to_batch`).
PACKED = (
    ("request_id", "q"), ("perf_intended", "q"), ("perf_start", "q"), ("perf_end", "q"), ("file_key", "q"),
    ("lease_start_ns", "q"), ("lease_end_ns", "q"),
    ("policy_ms", "d"), ("llm_ms", "d"), ("expert_queue_ms", "d"), ("expert_ms", "d"), ("lease_wait_ms", "d"),
    ("state_ms", "d"), ("fuse_ms", "d"), ("event_ms", "d"), ("policy_model_ms", "d"), ("llm_model_ms", "d"),
    ("expert_model_ms", "d"), ("rtt_model_ms", "d"),
    ("agent_id", "i"), ("conflicts", "i"), ("region", "i"), ("cls", "i"),
    ("outcome", "B"), ("escalated", "?"), ("cache_hit", "?"),
)  # fmt: skip
#: The code of each outcome in a packed row.
OUTCOME_CODE = {name: i for i, name in enumerate(sch.OUTCOMES)}
_STRUCT = struct.Struct("<" + "".join(code for _, code in PACKED) + "5x")  # padded to 8-byte records
_NULLS = [NULL_MS if code == "d" else NULL_INT for _, code in PACKED]
_NUMPY = {"q": "<i8", "d": "<f8", "i": "<i4", "B": "u1", "?": "?"}
#: The packed values that may be null (nullable ``requests`` columns): every duration, and the file
#: key and lease times of a request that took no lease.
OPTIONAL = frozenset({name for name, code in PACKED if code == "d"} | {"file_key", "lease_start_ns", "lease_end_ns"})


def _add_request() -> Any:
    """:meth:`RequestRows.add_request`, written out from :data:`PACKED` (as ``namedtuple`` writes its
    class): keyword-only parameters, one per packed value, a null default for :data:`OPTIONAL`
    ones, packed in :data:`PACKED` order in one call. The one place a request row's values are put
    in order. Naming the values costs a little more per row than the positional :meth:`add`; the
    figures, against a host's CPU per request, are in docs/performance.md ("Recording")."""
    names = [name for name, _ in PACKED]
    null = {"d": "NULL_MS", "q": "NULL_INT"}
    params = ", ".join(f"{n}={null[c]}" if n in OPTIONAL else n for n, c in PACKED)
    values = ", ".join(names)
    source = (
        f"def add_request(self, *, {params}, error=None):\n"
        f"    try:\n"
        f"        self._records.append(pack({values}))\n"
        f"    except struct.error:  # a None among the values: pack it as its column's null\n"
        f"        self.add(({values},))\n"
        f"        return self.error(error) if error is not None else None\n"
        f"    if error is not None:\n"
        f"        self._errors.append((len(self._records) - 1, error))\n"
    )
    namespace = {"pack": _STRUCT.pack, "struct": struct, "NULL_MS": NULL_MS, "NULL_INT": NULL_INT}
    exec(compile(source, f"<{__name__}.add_request>", "exec"), namespace)
    return namespace["add_request"]


class RequestRows:
    """The ``requests`` buffer of one agent host (see the module docstring).

    A host adds one row per request with :meth:`add_request` (its values by name, as in
    :data:`PACKED`). A missing value may be None, but :data:`NULL_MS` (floats) and :data:`NULL_INT`
    (file key, lease times), the defaults of the :data:`OPTIONAL` values, keep to the fast path.
    :meth:`add` takes the values as one tuple in :data:`PACKED` order, :meth:`error` the error
    message of the row added last.

    Args:
        run_id, host_id, node_id: written into every row.
        regions, classes: the names of the region and class indices in the rows.

    Before the first :meth:`take_packed` (or :meth:`take`), set ``wall_offset_ns`` (wall clock
    minus perf_counter, ns) and ``warm_end_perf_ns`` (end of the warm-up on the perf_counter clock).
    With ``wall_offset_ns`` 0 the ``perf_*`` values are wall-clock times (the driver's rows for the
    requests of a host that died).
    """

    #: ``add_request(*, request_id, perf_intended, ..., cache_hit, error=None)``: one request's row,
    #: every :data:`PACKED` value by name (the :data:`OPTIONAL` ones default to null), and its error
    #: message (None: no error). ``outcome`` is an :data:`OUTCOME_CODE`, ``region`` and ``cls``
    #: indices into the buffer's names.
    add_request = _add_request()

    def __init__(self, run_id: str, host_id: int, node_id: str, regions: list[str], classes: list[str]) -> None:
        self.run_id, self.host_id, self.node_id = run_id, host_id, node_id
        self.regions, self.classes = regions, classes
        self.wall_offset_ns = 0
        self.warm_end_perf_ns = 0
        self.total = 0
        self._records: list[bytes] = []
        self._errors: list[tuple[int, str]] = []  # (row in the buffer, message)

    def __len__(self) -> int:
        return len(self._records)

    def add(self, values: tuple[Any, ...]) -> None:
        """One request's row. It is packed at once, while its values are still in the CPU's cache
        (packing them at the flush, thousands of rows later, costs twice as much)."""
        try:
            self._records.append(_STRUCT.pack(*values))
        except struct.error:  # a None among the values: pack it as its column's null
            self._records.append(_STRUCT.pack(*(_NULLS[j] if v is None else v for j, v in enumerate(values))))

    def error(self, message: str) -> None:
        """The error message of the row added last."""
        self._errors.append((len(self._records) - 1, message))

    def take_packed(self) -> PackedRows | None:
        """All buffered rows, still packed, with what :func:`to_batch` needs to make them a batch
        (None when empty); the buffer is emptied. Cheap: the host ships this and the aggregator
        builds the Arrow batch, so the hosts' event loops never spend a flush's milliseconds of
        numpy and Arrow calls (or Ray's serialization of a batch)."""
        if not self._records:
            return None
        import numpy as np

        records, errors, n = self._records, self._errors, len(self._records)
        self._records, self._errors = [], []
        self.total += n
        return PackedRows(
            np.frombuffer(b"".join(records), np.uint8), errors, self.run_id, self.host_id, self.node_id,
            self.regions, self.classes, self.wall_offset_ns, self.warm_end_perf_ns,
        )  # fmt: skip

    def take(self) -> pa.RecordBatch | None:
        """All buffered rows as one record batch (None when empty); the buffer is emptied."""
        packed = self.take_packed()
        return None if packed is None else to_batch(packed)


@dataclass(frozen=True)
class PackedRows:
    """Packed request rows of one host and the host's constants: what travels to the aggregator."""

    # The records as a numpy byte array (a view of the joined bytes): Ray ships a numpy array out of
    # band, one copy into the object store and none out of it; bytes would be copied into the
    # pickle stream first (bench_pipeline: 3-20% less host CPU per row, 2-17% more rows/s).
    records: Any
    errors: list[tuple[int, str]]  # (row, message)
    run_id: str
    host_id: int
    node_id: str
    regions: list[str]
    classes: list[str]
    wall_offset_ns: int
    warm_end_perf_ns: int


def to_batch(packed: PackedRows) -> pa.RecordBatch:
    """The ``requests`` record batch (stream schema) of packed rows."""
    import numpy as np
    import pyarrow as pa

    n = len(packed.records) // _STRUCT.size
    col = _columns(packed.records).__getitem__

    def names(values: list[str], codes: Any) -> pa.Array:
        return pa.array(values, pa.string()).take(pa.array(codes))

    def constant(value: str) -> pa.Array:
        return pa.repeat(pa.scalar(value, pa.string()), n)

    intended, start, end = col("perf_intended"), col("perf_start"), col("perf_end")
    message: list[str | None] = [None] * n
    for i, text in packed.errors:
        message[i] = text
    offset = packed.wall_offset_ns
    columns: dict[str, Any] = {
        "run_id": constant(packed.run_id),
        "host_id": np.full(n, packed.host_id, np.int32),
        "node_id": constant(packed.node_id),
        "region": names(packed.regions, col("region")),
        "cls": names(packed.classes, col("cls")),
        "warmup": intended < packed.warm_end_perf_ns,
        "ts_intended_ns": intended + offset,
        "ts_start_ns": start + offset,
        "ts_end_ns": end + offset,
        "latency_ms": (end - intended) / 1e6,
        "service_ms": (end - start) / 1e6,
        "lag_ms": (start - intended) / 1e6,
        "outcome": names(list(sch.OUTCOMES), col("outcome")),
        "error": pa.array(message, pa.string()),
    }
    schema = _request_schema()
    arrays = []
    for field in schema:
        value = columns.get(field.name)
        if value is None:  # packed as is; a float NaN or a negative integer is a null
            value = col(field.name)
            null = (np.isnan(value) if value.dtype.kind == "f" else value < 0) if field.nullable else None
            value = pa.array(value, field.type, mask=null if null is not None and null.any() else None)
        elif not isinstance(value, pa.Array):
            value = pa.array(value, field.type)
        arrays.append(value)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_SCHEMA: Any = None


def _request_schema() -> pa.Schema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = sch.schema("requests", final=False)
    return _SCHEMA


def _columns(records: Any) -> dict[str, Any]:
    """The packed records as one contiguous numpy array per field: each type group of the records
    is viewed as a 2-D array and transposed in one pass (a strided copy per column would pass over
    all the records once per column)."""
    import numpy as np

    groups: dict[str, list[str]] = {}
    for name, code in PACKED:
        groups.setdefault(code, []).append(name)
    offsets = [0]
    for code, names in groups.items():
        offsets.append(offsets[-1] + struct.calcsize(code) * len(names))
    layout = {"names": list(groups), "formats": [(_NUMPY[c], (len(n),)) for c, n in groups.items()],
              "offsets": offsets[:-1], "itemsize": _STRUCT.size}  # fmt: skip
    rec = np.frombuffer(records, np.dtype(layout))
    out: dict[str, Any] = {}
    for code, names in groups.items():
        out.update(zip(names, rec[code].T.copy(), strict=True))
    return out
