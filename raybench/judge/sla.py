"""SLA evaluation over time: windows, the live monitor with initial delay and grace, verdicts.

Threshold expressions and the evaluation of one threshold on a set of rows live in
:mod:`raybench.judge.thresholds` (grammar in its docstring); the ``[sla]`` scenario table is validated by
:mod:`raybench.config.sla`; this module judges them window by window and
over the whole run. The live run (driver loop) and the offline ``raybench sla`` both go through
:class:`SlaMonitor`, so the two give the same verdicts for the same rows and settings.

Windows: window ``k`` of length ``W`` covers the rows with ``ts_end_ns`` in
``[t0 + k*W, t0 + (k+1)*W)``, where ``t0`` is the run's load start (manifest ``load_start_ns``);
see :func:`split_windows`.

Monitor rules (:class:`SlaMonitor`):

* windows that start before ``initial_delay_s`` (counted from ``t0``) are not judged;
* a window whose observation has ``passed is None`` (no data in scope) neither counts as failed nor
  breaks a run of consecutive failures;
* ``counting="consecutive"``: a violation is declared when ``grace_windows`` windows in a row have
  failed; ``"cumulative"``: when ``grace_windows`` windows have failed in all. Each threshold
  is declared violated at most once; its actions are returned with it;
* relative throughput (``throughput>=95%``) of window ``k`` needs every request *intended* in that
  window, and a slow one ends (and is fed) in a later window; so it is judged when window
  ``k + settle_windows`` is observed (and at :meth:`SlaMonitor.finalize`), unless the caller passes
  the ``offered`` count with the window.

Whole-run verdict (a row of ``sla.arrow``): the threshold evaluated on every non-warm-up row of the
run (throughput over the span after the last window that held warm-up rows), and
``passed = whole-run verdict is True and no violation was declared in windows``.

Not applicable: a threshold on a stage that the scenario switched off (``p99{stage=fuse}<5ms`` with
``fuse.mode = off``, see :meth:`raybench.config.scenario.Scenario.stages_off`) can have no data by design.
It is not judged in any window, and its row says ``applicable = False`` with the reason; it neither
passes nor fails the run. No data for any other reason is ``passed = False`` (never a silent pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from raybench.judge.thresholds import Observation, Threshold

if TYPE_CHECKING:
    import pyarrow as pa

    from raybench.config.sla import SlaConfig

#: Defaults of the ``lighthouse`` preset (issue 4).
LIGHTHOUSE_THRESHOLDS: tuple[str, ...] = (
    "share(latency<100ms){escalated=false}>=99%",
    "p50{escalated=false}<50ms",
    "mean<60ms",
    "error_rate<0.1%",
    "throughput>=95%",
    "p95{escalated=true}<1.5s",
    "p99{stage=fuse}<5ms",
    "growth(rss)<10%",
)
#: What a violation can trigger.
ACTIONS = ("record", "alert", "rollback", "abort")
COUNTING = ("consecutive", "cumulative")
DEFAULT_WINDOW_S = 30.0


@dataclass(frozen=True)
class Window:
    """Rows of one window: ``requests`` are those with ``ts_end_ns`` in ``[start_ns, end_ns)``."""

    k: int
    start_ns: int
    end_ns: int
    requests: pa.Table


@dataclass(frozen=True)
class Violation:
    """A threshold declared violated (after its grace) in window ``k``.

    ``actions`` are what the driver must do: record an event, alert, roll back, abort the run.
    ``start_ns``/``end_ns`` bound window ``k`` (the failed window that completed the grace);
    ``declared_ns`` is the end of the window being observed when it was declared (later than
    ``end_ns`` only for relative throughput, which waits ``settle_windows``).
    """

    threshold_id: str
    expression: str
    scope: str
    k: int
    start_ns: int
    end_ns: int
    observed: float | None
    target: float
    count: int
    windows_failed: int
    actions: tuple[str, ...]
    declared_ns: int
    run_id: str = ""

    @property
    def ts_ns(self) -> int:
        """When the violation became known: the end of the window being observed then."""
        return self.declared_ns

    def to_detail(self) -> dict[str, Any]:
        """JSON-ready details (events.arrow ``detail``, alert payloads, rollback stdin)."""
        return {
            "run_id": self.run_id,
            "threshold": self.threshold_id,
            "expression": self.expression,
            "scope": self.scope,
            "window": self.k,
            "window_start_ns": self.start_ns,
            "window_end_ns": self.end_ns,
            "declared_ns": self.declared_ns,
            "observed": self.observed,
            "target": self.target,
            "count": self.count,
            "windows_failed": self.windows_failed,
            "actions": list(self.actions),
        }

    def summary(self) -> str:
        obs = "no data" if self.observed is None else f"{self.observed:.6g}"
        return (
            f"raybench SLA violated: {self.threshold_id} (observed {obs}, target {self.target:.6g}) "
            f"in window {self.k} after {self.windows_failed} failed window(s)"
            + (f", run {self.run_id}" if self.run_id else "")
        )


def split_windows(requests: pa.Table, t0_ns: int, window_s: float, *, end_ns: int | None = None) -> list[Window]:
    """Cut ``requests`` into consecutive windows of ``window_s`` from ``t0_ns`` by ``ts_end_ns``.

    Every window from 0 up to the last one holding a row is returned, empty ones included (no
    completions is a measurement). With ``end_ns``, windows stop there: the last one is cut short
    at ``end_ns`` and rows ending at or after it belong to no window. Rows ending before ``t0_ns``
    belong to no window.
    """
    import pyarrow.compute as pc

    w_ns = _window_ns(window_s)
    ts = requests.column("ts_end_ns")
    if end_ns is None:
        last = pc.max(ts).as_py() if requests.num_rows else None
        if last is None or last < t0_ns:
            return []
        n = (last - t0_ns) // w_ns + 1
        stop = t0_ns + n * w_ns
    else:
        if end_ns <= t0_ns:
            return []
        n = -(-(end_ns - t0_ns) // w_ns)
        stop = end_ns
    idx = pc.divide(pc.subtract(ts, t0_ns), w_ns)  # integer division (floor for >= 0)
    keep = pc.and_(pc.greater_equal(ts, t0_ns), pc.less(ts, stop))
    out = []
    for k in range(n):
        start = t0_ns + k * w_ns
        rows = requests.filter(pc.and_(keep, pc.equal(idx, k)))
        out.append(Window(k, start, min(start + w_ns, stop), rows))
    return out


@dataclass
class _State:
    threshold: Threshold
    actions: tuple[str, ...]
    failed: int = 0
    streak: int = 0
    judged: int = 0
    violated_at: int | None = None  # ts_ns of the declaration
    # relative throughput: window k -> (start, end, completed); and intended counts per window
    pending: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    intended: dict[int, int] = field(default_factory=dict)


class SlaMonitor:
    """Judges thresholds window by window; pure (no Ray, no I/O), fed by the driver.

    Feed windows in order with :meth:`observe_window`, each once every row ending in it has
    arrived; act on the :class:`Violation` s it returns; call :meth:`finalize` at the end for the
    rows of ``sla.arrow``.
    """

    def __init__(
        self,
        thresholds: Sequence[Threshold],
        *,
        t0_ns: int,
        window_s: float,
        initial_delay_s: float = 0.0,
        grace_windows: int = 1,
        counting: str = "consecutive",
        settle_windows: int = 1,
        actions: Sequence[str] | Mapping[str, Sequence[str]] = ("record",),
        run_id: str = "",
        stages_off: Mapping[str, str] | None = None,
    ) -> None:
        """
        Args:
            thresholds: parsed thresholds (:func:`raybench.judge.thresholds.parse_thresholds`).
            t0_ns: the load start (UTC ns); windows and the initial delay count from it.
            window_s: window length in seconds (> 0).
            initial_delay_s: windows starting earlier than this after ``t0_ns`` are not judged.
            grace_windows: failed windows (>= 1) that make a violation, see ``counting``.
            counting: ``consecutive`` or ``cumulative``.
            settle_windows: windows to wait before judging relative throughput (>= 0).
            actions: actions for every threshold, or a mapping from threshold id or expression to
                its actions (thresholds not in it get ``("record",)``).
            stages_off: stages the scenario switched off, each with the reason; thresholds scoped
                to one of them are not applicable (see the module docstring).

        Raises:
            ValueError: a setting out of range.
        """
        if grace_windows < 1:
            raise ValueError(f"grace_windows must be >= 1, not {grace_windows}")
        if counting not in COUNTING:
            raise ValueError(f"counting must be one of {', '.join(COUNTING)}, not {counting!r}")
        if settle_windows < 0:
            raise ValueError(f"settle_windows must be >= 0, not {settle_windows}")
        self.t0_ns = int(t0_ns)
        self.w_ns = _window_ns(window_s)
        self.window_s = self.w_ns / 1e9
        self.delay_ns = round(initial_delay_s * 1e9)
        self.grace_windows = grace_windows
        self.counting = counting
        self.settle_windows = settle_windows
        self.run_id = run_id
        self.not_applicable = not_applicable(thresholds, stages_off or {})
        self._states: list[_State] = []
        for th in thresholds:
            if isinstance(actions, Mapping):
                acts = actions.get(th.id, actions.get(th.expression, ("record",)))
            else:
                acts = actions
            bad = [a for a in acts if a not in ACTIONS]
            if bad:
                raise ValueError(f"unknown action {bad[0]!r}; allowed: {', '.join(ACTIONS)}")
            self._states.append(_State(th, tuple(acts)))
        self._last_k = -1
        self._first_start: int | None = None
        self._last_end: int | None = None
        self._last_warm_end: int | None = None
        #: Violations found by :meth:`finalize` in windows still waiting to settle.
        self.late_violations: list[Violation] = []
        #: Observations of the most recent window judged per threshold (for a status line).
        self.last_observations: dict[str, Observation] = {}

    @property
    def thresholds(self) -> tuple[Threshold, ...]:
        return tuple(s.threshold for s in self._states)

    def observe_window(
        self,
        k: int,
        start_ns: int,
        end_ns: int,
        requests_window: pa.Table,
        resources: pa.Table | None = None,
        *,
        offered: int | None = None,
    ) -> list[Violation]:
        """Judge every threshold on window ``k``; return the violations declared now.

        Args:
            k: the window index; strictly increasing from call to call (gaps allowed).
            start_ns, end_ns: the window's bounds (``end_ns`` may be cut short at the load end).
            requests_window: the requests with ``ts_end_ns`` in ``[start_ns, end_ns)``.
            resources: resource samples with ``ts_ns`` in the window (for ``growth(rss)``).
            offered: requests whose intended start is in the window, if the caller counts them;
                unscoped relative throughput is then judged at once instead of after
                ``settle_windows`` (scoped ones always wait).
        """
        import pyarrow.compute as pc

        if k <= self._last_k:
            raise ValueError(f"window {k} comes after window {self._last_k}; feed windows in order")
        self._last_k = k
        if self._first_start is None:
            self._first_start = start_ns
        self._last_end = end_ns
        if requests_window.num_rows and pc.any(requests_window.column("warmup")).as_py():
            self._last_warm_end = end_ns
        judged = start_ns - self.t0_ns >= self.delay_ns
        out: list[Violation] = []
        for st in self._states:
            th = st.threshold
            if th.id in self.not_applicable:
                continue
            if th.metric == "throughput" and th.relative and (offered is None or th.scope):
                self._count_intended(st, requests_window)
                if judged:
                    rows = requests_window.filter(pc.invert(requests_window.column("warmup")))
                    done = _filter_scope_count(th, rows)
                    st.pending[k] = (start_ns, end_ns, done)
                out.extend(self._settle(st, upto=k - self.settle_windows, now_end=end_ns))
                continue
            if not judged:
                continue
            obs = th.evaluate(
                requests_window,
                resources=resources,
                span_s=(end_ns - start_ns) / 1e9,
                span_ns=(start_ns, end_ns),
                offered=offered,
            )
            v = self._record(st, k, start_ns, end_ns, obs, now_end=end_ns)
            if v:
                out.append(v)
        return out

    def finalize(
        self,
        all_requests: pa.Table,
        resources: pa.Table | None = None,
        *,
        span_ns: tuple[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Judge pending windows and every threshold over the whole run; rows for ``sla.arrow``.

        Args:
            all_requests: every request row of the run.
            resources: every resource sample of the run.
            span_ns: the span for whole-run throughput; by default from the end of the last window
                that held warm-up rows (or the first window's start) to the last window's end.

        Returns:
            One dict per threshold with the ``sla`` table's columns plus ``cumulative_passed``
            (the whole-run verdict, None without data), ``violated`` and ``count``.
            Pending-window violations found here are in :attr:`late_violations`.
        """
        self.late_violations = []
        for st in self._states:
            if st.pending:
                end = self._last_end if self._last_end is not None else 0
                self.late_violations.extend(self._settle(st, upto=math.inf, now_end=end))
        if span_ns is None and self._first_start is not None and self._last_end is not None:
            start = self._last_warm_end if self._last_warm_end is not None else self._first_start
            span_ns = (start, self._last_end)
        rows = []
        for st in self._states:
            th = st.threshold
            if th.id in self.not_applicable:
                rows.append(self._not_applicable_row(th))
                continue
            if th.metric == "throughput" and span_ns is None:
                obs = Observation(th.id, None, th.target, None, 0, "no windows observed")
            else:
                obs = th.evaluate(all_requests, resources=resources, span_ns=span_ns)
            violated = st.violated_at is not None
            rows.append(
                {
                    "run_id": self.run_id,
                    "id": th.id,
                    "expression": th.expression,
                    "scope": th.scope_text,
                    "observed": obs.observed,
                    "target": th.target,
                    "passed": bool(obs.passed) and not violated,
                    "windows_failed": st.failed,
                    "windows_total": st.judged,
                    "first_violation_ns": st.violated_at,
                    "cumulative_passed": obs.passed,
                    "violated": violated,
                    "count": obs.count,
                    "note": obs.note,
                    "applicable": True,
                }
            )
        return rows

    def _not_applicable_row(self, th: Threshold) -> dict[str, Any]:
        why = self.not_applicable[th.id]
        return {
            "run_id": self.run_id,
            "id": th.id,
            "expression": th.expression,
            "scope": th.scope_text,
            "observed": None,
            "target": th.target,
            "passed": True,  # it does not fail the run; ``applicable`` says it was not judged
            "windows_failed": 0,
            "windows_total": 0,
            "first_violation_ns": None,
            "cumulative_passed": None,
            "violated": False,
            "count": 0,
            "note": f"not applicable: {why}",
            "applicable": False,
        }

    # -- internals ---------------------------------------------------------------------------

    def _record(
        self, st: _State, k: int, start_ns: int, end_ns: int, obs: Observation, *, now_end: int
    ) -> Violation | None:
        self.last_observations[st.threshold.id] = obs
        if obs.passed is None:
            return None
        st.judged += 1
        if obs.passed:
            st.streak = 0
            return None
        st.failed += 1
        st.streak += 1
        reached = (st.streak if self.counting == "consecutive" else st.failed) >= self.grace_windows
        if not reached or st.violated_at is not None:
            return None
        st.violated_at = now_end
        th = st.threshold
        return Violation(
            threshold_id=th.id,
            expression=th.expression,
            scope=th.scope_text,
            k=k,
            start_ns=start_ns,
            end_ns=end_ns,
            declared_ns=now_end,
            observed=obs.observed,
            target=th.target,
            count=obs.count,
            windows_failed=st.failed,
            actions=st.actions,
            run_id=self.run_id,
        )

    def _count_intended(self, st: _State, rows: pa.Table) -> None:
        import numpy as np
        import pyarrow.compute as pc

        rows = rows.filter(pc.invert(rows.column("warmup")))
        if not rows.num_rows:
            return
        from raybench.judge.thresholds import _filter_requests

        rows = _filter_requests(rows, st.threshold.scope)
        ts = np.asarray(rows.column("ts_intended_ns").to_numpy(), dtype=np.int64)
        ks = (ts[ts >= self.t0_ns] - self.t0_ns) // self.w_ns
        for kk, c in zip(*np.unique(ks, return_counts=True), strict=True):
            st.intended[int(kk)] = st.intended.get(int(kk), 0) + int(c)

    def _settle(self, st: _State, *, upto: float, now_end: int) -> list[Violation]:
        out = []
        for k in sorted(j for j in st.pending if j <= upto):
            start, end, done = st.pending.pop(k)
            offered = st.intended.get(k, 0)
            th = st.threshold
            if offered <= 0:
                obs = Observation(th.id, None, th.target, None, done, "no offered load in the span")
            else:
                obs = Observation(th.id, done / offered, th.target, th.compare(done / offered), done)
            # declared when known: at the end of the window being observed now
            v = self._record(st, k, start, end, obs, now_end=max(now_end, end))
            if v:
                out.append(v)
        return out


def not_applicable(thresholds: Sequence[Threshold], stages_off: Mapping[str, str]) -> dict[str, str]:
    """Threshold id -> why it is not applicable: it is scoped to a stage in ``stages_off``."""
    out = {}
    for th in thresholds:
        stage = th.stage
        if stage is not None and stage in stages_off:
            out[th.id] = f"stage {stage} is off ({stages_off[stage]})"
    return out


def judged_verdict(rows: Sequence[Mapping[str, Any]]) -> bool | None:
    """The run's SLA verdict from its ``sla`` rows: every applicable threshold passed; None when no
    threshold was applicable."""
    judged = [bool(r["passed"]) for r in rows if r.get("applicable", True)]
    return all(judged) if judged else None


def _filter_scope_count(th: Threshold, rows: pa.Table) -> int:
    from raybench.judge.thresholds import _filter_requests

    return _filter_requests(rows, th.scope).num_rows


def _window_ns(window_s: float) -> int:
    w_ns = round(float(window_s) * 1e9)
    if not w_ns > 0:
        raise ValueError(f"window must be > 0 s, not {window_s!r}")
    return w_ns


def evaluate_run(
    thresholds: Sequence[Threshold],
    requests: pa.Table,
    resources: pa.Table | None,
    *,
    t0_ns: int,
    window_s: float,
    end_ns: int | None = None,
    initial_delay_s: float = 0.0,
    grace_windows: int = 1,
    counting: str = "consecutive",
    settle_windows: int = 1,
    run_id: str = "",
    stages_off: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[Violation]]:
    """Replay a finished run through :class:`SlaMonitor` window by window (the offline verdict).

    Returns the ``sla.arrow`` rows and every violation, in the order the live monitor would have
    declared them.
    """
    import pyarrow.compute as pc

    mon = SlaMonitor(
        thresholds,
        t0_ns=t0_ns,
        window_s=window_s,
        initial_delay_s=initial_delay_s,
        grace_windows=grace_windows,
        counting=counting,
        settle_windows=settle_windows,
        run_id=run_id,
        stages_off=stages_off,
    )
    violations: list[Violation] = []
    for w in split_windows(requests, t0_ns, window_s, end_ns=end_ns):
        res = None
        if resources is not None and resources.num_rows:
            ts = resources.column("ts_ns")
            res = resources.filter(pc.and_(pc.greater_equal(ts, w.start_ns), pc.less(ts, w.end_ns)))
        violations.extend(mon.observe_window(w.k, w.start_ns, w.end_ns, w.requests, res))
    rows = mon.finalize(requests, resources)
    violations.extend(mon.late_violations)
    return rows, violations


def parse_config(table: Mapping[str, Any], **kwargs: Any) -> SlaConfig:
    """Validate a scenario's ``[sla]`` table: :func:`raybench.config.sla.parse_sla_config`."""
    from raybench.config.sla import parse_sla_config

    return parse_sla_config(table, **kwargs)


def _fmt_value(value: float | None, th: Any, target: float | None = None) -> str:
    """``value`` for the verdict table; a fraction gets as many digits as it takes not to read
    the same as a different ``target`` (98.99% against 99%, not 99% against 99%)."""
    from raybench.units import format_ms

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if th.metric in ("percentile", "mean", "min", "max"):
        return format_ms(value)
    if th.metric == "throughput" and not th.relative:
        return f"{value:.1f}/s"
    digits = 3
    while target is not None and value != target and digits < 8:
        if f"{value * 100:.{digits}g}" != f"{target * 100:.{digits}g}":
            break
        digits += 1
    return f"{value * 100:.{digits}g}%"


def format_table(rows: list[dict[str, Any]], thresholds: Any) -> list[str]:
    """Lines of the verdict table (one row per threshold), for printing."""
    by_id = {t.id: t for t in thresholds}
    header = ("threshold", "observed", "target", "verdict", "windows failed", "count")
    body = []
    for r in rows:
        th = by_id[r["id"]]
        if not r.get("applicable", True):
            verdict = "n/a (stage off)"
        elif r["cumulative_passed"] is None:
            verdict = "NO DATA"
        elif r["passed"]:
            verdict = "pass"
        elif r["violated"] and r["cumulative_passed"]:
            verdict = "FAIL (windows)"
        else:
            verdict = "FAIL"
        body.append(
            (
                r["id"],
                _fmt_value(r["observed"], th, r["target"]),
                f"{th.op} {_fmt_value(r['target'], th)}",
                verdict,
                f"{r['windows_failed']}/{r['windows_total']}",
                str(r["count"]),
            )
        )
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]]
