"""A run's event log (``events.arrow``): what happened besides requests, in the driver's order.

Every event is kept here and streamed to the aggregator at once, so a run that dies keeps it in
``events.arrows``; at the end the driver rewrites ``events.arrow`` from this complete list
(:func:`raybench.engine.run._write_events`): the aggregator closes before the last events (late
SLA verdicts, alerts) happen. Alerts and rollbacks record their results from side threads: an
append to a list is atomic.
"""

from __future__ import annotations

import json
import time
from typing import Any

#: One event: ``(ts_ns, kind, detail as JSON)``.
Event = tuple[int, str, str]


class EventLog:
    """The events of run ``run_id``; streamed to the aggregator once :meth:`attach` named it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.rows: list[Event] = []
        self._cluster: Any = None
        self._aggregator: Any = None

    def attach(self, cluster: Any, aggregator: Any) -> None:
        """Stream every later event to ``aggregator`` (a :class:`~raybench.engine.cluster.Cluster` actor)."""
        self._cluster, self._aggregator = cluster, aggregator

    def record(self, kind: str, ts_ns: int | None = None, **detail: Any) -> None:
        """Record an event (now, unless ``ts_ns``); ``detail`` becomes its JSON."""
        row = (ts_ns or time.time_ns(), kind, json.dumps(detail, default=str))
        self.rows.append(row)
        if self._aggregator is not None:
            self._cluster.call(self._aggregator, "write_rows", "events", [(self.run_id, *row)])

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The details of every event of ``kind``, in the order recorded."""
        return [json.loads(d) for _, k, d in self.rows if k == kind]

    def __len__(self) -> int:
        return len(self.rows)
