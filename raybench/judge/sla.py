"""The live SLA monitor: thresholds judged window by window with initial delay and grace, and the
verdicts of a run.

Threshold expressions are parsed by :mod:`raybench.judge.grammar`; one threshold is evaluated on a
set of rows by :mod:`raybench.judge.thresholds`; the ``[sla]`` scenario table is validated by
:mod:`raybench.config.sla`. The live run (driver loop) and the offline ``raybench sla``
(:func:`raybench.judge.sla_replay.evaluate_run`) both go through :class:`SlaMonitor`, so the two
give the same verdicts for the same rows and settings. Window ``k`` of length ``W`` covers the rows
with ``ts_end_ns`` in ``[t0 + k*W, t0 + (k+1)*W)``, where ``t0`` is the run's load start
(:func:`raybench.results.windows.window_index`).

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
run, and ``passed = whole-run verdict is True and no violation was declared in windows``.
Throughput is a rate over the measured span, from the warm-up's end (``warmup_s``) to the load's
end: it counts the non-warm-up requests that completed in that span, so its ``count`` leaves out
the drain (requests that completed after the load's end), which every other row counts.

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

from raybench.judge.thresholds import Observation, Threshold, filter_requests
from raybench.results.windows import window_index, window_ns

if TYPE_CHECKING:
    import pyarrow as pa

#: What a violation can trigger.
ACTIONS = ("record", "alert", "rollback", "abort")
COUNTING = ("consecutive", "cumulative")
DEFAULT_WINDOW_S = 30.0


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
        warmup_s: float = 0.0,
    ) -> None:
        """
        Args:
            thresholds: parsed thresholds (:func:`raybench.judge.grammar.parse_thresholds`).
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
            warmup_s: the load's warm-up; whole-run throughput is measured from its end.

        The settings are validated where they are read (:class:`raybench.config.sla.SlaConfig`);
        here they are only asserted.
        """
        assert grace_windows >= 1 and counting in COUNTING and settle_windows >= 0, "SLA settings out of range"
        self.t0_ns = int(t0_ns)
        self.w_ns = window_ns(window_s)
        self.window_s = self.w_ns / 1e9
        self.delay_ns = round(initial_delay_s * 1e9)
        self.grace_windows = grace_windows
        self.counting = counting
        self.settle_windows = settle_windows
        self.run_id = run_id
        self.warm_end_ns = self.t0_ns + round(warmup_s * 1e9)
        self.not_applicable = not_applicable(thresholds, stages_off or {})
        self._states: list[_State] = []
        for th in thresholds:
            if isinstance(actions, Mapping):
                acts = actions.get(th.id, actions.get(th.expression, ("record",)))
            else:
                acts = actions
            assert all(a in ACTIONS for a in acts), f"unknown action in {acts!r}"
            self._states.append(_State(th, tuple(acts)))
        self._last_k = -1
        self._first_start: int | None = None
        self._last_end: int | None = None
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
                    done = filter_requests(rows, th.scope).num_rows
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
            span_ns: the span for whole-run throughput; by default from the warm-up's end (or the
                first window's start, if later) to the last window's end.

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
            span_ns = (max(self.warm_end_ns, self._first_start), self._last_end)
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
        rows = filter_requests(rows, st.threshold.scope)
        ts = np.asarray(rows.column("ts_intended_ns").to_numpy(), dtype=np.int64)
        ks = window_index(ts[ts >= self.t0_ns], self.t0_ns, self.w_ns)
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
