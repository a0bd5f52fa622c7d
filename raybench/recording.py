"""Row buffers: rows accumulate as tuples in the process that measured them and leave as Arrow
record batches.

A tuple per row is the cheapest thing to append on the hot path; the transpose into columns and
the Arrow conversion happen once per flush, off the request's timed path.
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
        columns = list(zip(*rows, strict=True))
        arrays = [pa.array(col, type=field.type) for col, field in zip(columns, self.schema, strict=True)]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
