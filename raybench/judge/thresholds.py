"""SLA thresholds: the parsed :class:`Threshold`, its :class:`Observation`, and the evaluation of one
threshold on rows. Expressions are parsed by :mod:`raybench.judge.grammar` (the grammar is in its
docstring).

Semantics of evaluation (:meth:`Threshold.evaluate`), over the rows it is given:

* warm-up rows (``warmup``) are always left out, then the scope filters apply;
* ``error_rate``: share of rows whose outcome is ``error`` or ``timeout`` (``denied`` is an answer);
* ``throughput`` (absolute): rows that ended in the span / span seconds; not judged (``passed`` None)
  when the span holds warm-up rows, since the span's time would count load that is left out;
* ``throughput`` (relative, ``%``): rows that ended in the span / rows whose intended start is in the
  span (or the ``offered`` count given by the caller);
* ``growth(rss)``: per process ``(node_id, pid)`` of the resources table with at least
  :data:`GROWTH_MIN_SAMPLES` samples, mean ``rss_bytes`` over the last quarter of its samples' time
  range divided by the mean over the first quarter, minus 1 (quarters include their bounds:
  ``ts <= first + range/4`` and ``ts >= last - range/4``); the maximum over processes.

An :class:`Observation` has ``passed is None`` when there is nothing to judge (no rows in scope):
never a silent pass. Units of ``observed``/``target``: ms for latency metrics, a fraction for
error_rate, share, growth and relative throughput, requests per second for absolute throughput.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raybench.judge import stats

if TYPE_CHECKING:
    import pyarrow as pa

#: Pipeline stages whose measured time is a ``<stage>_ms`` column of the requests table.
STAGES = ("policy", "llm", "expert_queue", "expert", "lease_wait", "state", "fuse", "event")
#: Scope keys in their canonical (normalized) order.
SCOPE_KEYS = ("cls", "escalated", "node", "region", "role", "stage")
#: Request outcomes counted as errors by ``error_rate``.
ERROR_OUTCOMES = ("error", "timeout")
#: A process needs this many resource samples for ``growth(rss)``.
GROWTH_MIN_SAMPLES = 4
#: Comparison operators, two-character ones first (the order the parser tries them in).
OPS = ("<=", ">=", "<", ">")

_LATENCY_METRICS = ("percentile", "mean", "min", "max", "share")
#: A scope value written without quotes (anything but ``,{}=<>``, quotes and space).
BARE_VALUE_RE = re.compile(r"[^,{}=<>\s\"']+")


@dataclass(frozen=True)
class Observation:
    """One threshold judged on one span of rows.

    Attributes:
        threshold_id: :attr:`Threshold.id`.
        observed: the measured value (units: see module docstring); None when nothing was measured.
        target: the threshold's target, same unit.
        passed: True/False; None when there is no data in scope to judge (never a silent pass).
        count: rows (requests) or processes (growth) the value was computed from.
        note: why ``passed`` is None, or empty.
    """

    threshold_id: str
    observed: float | None
    target: float
    passed: bool | None
    count: int
    note: str = ""


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold expression. Build with :func:`raybench.judge.grammar.parse_threshold`.

    Attributes:
        expression: the text as written.
        metric: percentile, mean, min, max, error_rate, throughput, share or growth.
        op: one of ``<``, ``<=``, ``>``, ``>=``; passes when ``observed op target``.
        target: in ms (latency metrics), a fraction, or requests/s (absolute throughput).
        q: the percentile for ``percentile`` (0 < q <= 100), else None.
        relative: throughput given as a share of the offered load.
        share_op, share_limit_ms: the inner condition of ``share(latency<limit)``.
        scope: sorted ``(key, value)`` pairs.
    """

    expression: str
    metric: str
    op: str
    target: float
    q: float | None = None
    relative: bool = False
    share_op: str | None = None
    share_limit_ms: float | None = None
    scope: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        """Stable identifier: the normalized expression (same meaning -> same id)."""
        return f"{self._metric_text()}{self._scope_text()}{self.op}{self._target_text()}"

    @property
    def scope_text(self) -> str:
        """The scope as ``key=value,...``, or ``all``."""
        return ",".join(f"{k}={v}" for k, v in self.scope) or "all"

    @property
    def stage(self) -> str | None:
        return dict(self.scope).get("stage")

    @property
    def column(self) -> str:
        """The requests column latency metrics read."""
        stage = self.stage
        return f"{stage}_ms" if stage else "latency_ms"

    def _metric_text(self) -> str:
        if self.metric == "percentile":
            return f"p{_num(self.q)}"
        if self.metric == "share":
            return f"share(latency{self.share_op}{_num(self.share_limit_ms)}ms)"
        if self.metric == "growth":
            return "growth(rss)"
        return self.metric

    def _scope_text(self) -> str:
        return "{" + ",".join(f"{k}={_quote(v)}" for k, v in self.scope) + "}" if self.scope else ""

    def _target_text(self) -> str:
        if self.metric in ("percentile", "mean", "min", "max"):
            return f"{_num(self.target)}ms"
        if self.metric == "throughput" and not self.relative:
            return f"{_num(self.target)}/s"
        return f"{_num(round(self.target * 100, 9))}%"

    def compare(self, observed: float) -> bool:
        """``observed op target``."""
        return _compare(observed, self.op, self.target)

    def evaluate(
        self,
        requests: pa.Table,
        *,
        resources: pa.Table | None = None,
        span_s: float | None = None,
        span_ns: tuple[int, int] | None = None,
        offered: int | None = None,
    ) -> Observation:
        """Judge this threshold on ``requests`` (and ``resources`` for ``growth``).

        Args:
            requests: rows of the requests table (any schema version-1 variant: plain or
                dictionary strings). All rows given are used, except for throughput (below).
            resources: rows of the resources table; required for ``growth(rss)``.
            span_s: length of the span in seconds, for absolute throughput; defaults to the length
                of ``span_ns``.
            span_ns: ``[start, end)`` in UTC ns. For throughput, only rows with ``ts_end_ns`` in it
                are completions, and (relative) rows with ``ts_intended_ns`` in it are the offered
                load. Other metrics ignore it.
            offered: the offered load for relative throughput, overriding the count from rows.

        Raises:
            ValueError: absolute throughput without a span.
        """
        if self.metric == "growth":
            if resources is None or resources.num_rows == 0:
                return self._none(0, "no resource samples")
            return self._growth(resources)
        rows = filter_requests(requests, self.scope)
        if self.metric == "throughput":
            return self._throughput(requests, rows, span_s=span_s, span_ns=span_ns, offered=offered)
        import numpy as np

        if self.metric == "error_rate":
            outcomes = _strings(rows.column("outcome"))
            n = len(outcomes)
            if n == 0:
                return self._none(0, "no requests in scope")
            errors = sum(1 for o in outcomes if o in ERROR_OUTCOMES)
            return self._judge(errors / n, n)
        col = rows.column(self.column)
        values = col.drop_null().to_numpy() if col.null_count else col.to_numpy()
        values = np.asarray(values, dtype=np.float64)
        n = int(values.size)
        if n == 0:
            return self._none(0, "no requests in scope")
        if self.metric == "percentile":
            assert self.q is not None
            return self._judge(stats.percentile(values, self.q), n)
        if self.metric == "mean":
            return self._judge(float(values.mean()), n)
        if self.metric == "min":
            return self._judge(float(values.min()), n)
        if self.metric == "max":
            return self._judge(float(values.max()), n)
        assert self.share_op is not None and self.share_limit_ms is not None
        hits = int(np.count_nonzero(_OPS_NP[self.share_op](values, self.share_limit_ms)))
        return self._judge(hits / n, n)

    def _judge(self, observed: float, count: int) -> Observation:
        return Observation(self.id, observed, self.target, self.compare(observed), count)

    def _none(self, count: int, note: str, observed: float | None = None) -> Observation:
        return Observation(self.id, observed, self.target, None, count, note)

    def _throughput(
        self,
        requests: pa.Table,
        rows: pa.Table,
        *,
        span_s: float | None,
        span_ns: tuple[int, int] | None,
        offered: int | None,
    ) -> Observation:
        import pyarrow.compute as pc

        if span_ns is not None:
            start, end = span_ns
            ended = rows.filter(_in_span(rows.column("ts_end_ns"), start, end))
        else:
            ended = rows
        completed = ended.num_rows
        if self.relative:
            if offered is None:
                intended = rows.column("ts_intended_ns")
                offered = int(pc.sum(_in_span(intended, *span_ns)).as_py() or 0) if span_ns else rows.num_rows
            if offered <= 0:
                return self._none(completed, "no offered load in the span")
            return self._judge(completed / offered, completed)
        if span_s is None and span_ns is not None:
            span_s = (span_ns[1] - span_ns[0]) / 1e9
        if span_s is None:
            raise ValueError(f"{self.id} needs the length of the span")
        if span_s <= 0:
            return self._none(completed, "empty span")
        observed = completed / span_s
        # The span overlaps the warm-up when a warm-up request was intended in it: its completions
        # would be missing from the count. (Warm-up requests that only *end* in it do not count,
        # as in every other figure.)
        warm = requests.column("warmup")
        if span_ns is not None:
            warm = pc.filter(warm, pc.greater_equal(requests.column("ts_intended_ns"), span_ns[0]))
        if pc.any(warm).as_py():
            return self._none(completed, "span overlaps warm-up", observed)
        return self._judge(observed, completed)

    def _growth(self, resources: pa.Table) -> Observation:
        import numpy as np

        scope = dict(self.scope)
        nodes = _strings(resources.column("node_id"))
        roles = _strings(resources.column("role"))
        pids = resources.column("pid").to_pylist()
        ts = np.asarray(resources.column("ts_ns").to_numpy(), dtype=np.int64)
        rss = np.asarray(resources.column("rss_bytes").to_numpy(), dtype=np.float64)
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (node, role, pid) in enumerate(zip(nodes, roles, pids, strict=True)):
            if scope.get("node", node) != node or scope.get("role", role) != role:
                continue
            groups.setdefault((node, pid), []).append(i)
        worst: float | None = None
        counted = 0
        for idx in groups.values():
            if len(idx) < GROWTH_MIN_SAMPLES:
                continue
            t, r = ts[idx], rss[idx]
            lo, hi = int(t.min()), int(t.max())
            quarter = (hi - lo) / 4
            first, last = r[t <= lo + quarter], r[t >= hi - quarter]
            if first.size == 0 or last.size == 0 or first.mean() <= 0:
                continue
            growth = float(last.mean() / first.mean() - 1.0)
            counted += 1
            worst = growth if worst is None else max(worst, growth)
        if worst is None:
            return self._none(0, f"no process with {GROWTH_MIN_SAMPLES}+ resource samples")
        return self._judge(worst, counted)


def _num(x: float | None) -> str:
    assert x is not None
    return f"{x:.12g}"


def _quote(v: str) -> str:
    return v if BARE_VALUE_RE.fullmatch(v) else '"' + v + '"'


def _compare(a: float, op: str, b: float) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _np_op(op: str) -> Any:
    import operator

    return {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]


_OPS_NP = {op: _np_op(op) for op in OPS}


def _strings(col: Any) -> list[str]:
    """A (possibly dictionary-encoded, possibly chunked) string column as Python strings."""
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return col.to_pylist()


def _in_span(col: Any, start: int, end: int) -> Any:
    import pyarrow.compute as pc

    return pc.and_(pc.greater_equal(col, start), pc.less(col, end))


def filter_requests(requests: pa.Table, scope: tuple[tuple[str, str], ...]) -> pa.Table:
    """Non-warm-up rows matching every scope pair (``stage`` is applied by the column choice)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = pc.invert(requests.column("warmup"))
    for key, value in scope:
        if key == "escalated":
            col = requests.column("escalated")
            mask = pc.and_(mask, col if value == "true" else pc.invert(col))
        elif key in ("cls", "node", "region"):
            col = requests.column("node_id" if key == "node" else key)
            if pa.types.is_dictionary(col.type):
                col = col.cast(pa.string())
            mask = pc.and_(mask, pc.equal(col, value))
    return requests.filter(mask)
