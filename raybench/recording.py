"""Row buffers: rows accumulate as tuples in the process that measured them and leave as Arrow
record batches.

A tuple per row is the cheapest thing to append on the hot path; the Arrow conversion happens
once per flush, off the request's timed path. Its cost is Arrow's per-value conversion of Python
objects (~40-70 ns a value, 34 values a request row): bench/bench_recording.py measures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raybench import schema as sch

if TYPE_CHECKING:
    import pyarrow as pa


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
