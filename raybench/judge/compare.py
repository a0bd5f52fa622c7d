"""Baseline vs current: per-metric change, confidence interval, p-value and verdict; the gate.

Method, for every metric in :data:`~raybench.judge.compare_data.METRICS`, overall and per request class
(``cls``); rows, windows and metric definitions are in :mod:`raybench.judge.compare_data`, the test
and its interval in :mod:`raybench.judge.significance`:

* **Value.** The metric over all non-warm-up rows of the run (percentiles are exact nearest-rank,
  :mod:`raybench.judge.stats`); ``change`` is ``(current - baseline) / |baseline|``.
* **Windows.** Rows within a run are autocorrelated (a GC pause or a busy node slows a stretch of
  requests), so they are not the unit of inference: consecutive windows of the measured load are.
  Unless ``--window`` is given, :func:`~raybench.judge.compare_data.auto_window_s` picks the window
  from the runs: 20 windows in the shorter run (a smoke run's 17 s: 0.85 s each), at most 5 s, at
  least 0.5 s and 50 requests. Correlation within a window is kept by the resampling; correlation
  between windows, and any difference between two runs of the same system that no run shows
  within itself (another machine, another day), is not. So when the latency level drifts over
  seconds, intervals are too narrow and p-values too small, and the threshold is what keeps the
  gate from failing on noise (tests/test_compare.py measures the gate's false-positive rate on
  synthetic smoke-like runs whose level drifts).
* **Bootstrap.** Windows (not rows) are resampled with replacement, independently in each run
  (``rng.multinomial``, seeded); the metric is recomputed over the rows of the resampled windows
  (exact nearest-rank again) and each replicate gives a relative change.
* **p-value and interval from the same replicates** (:func:`~raybench.judge.significance.bootstrap_test`):
  the interval at level ``1 - a`` excludes a value exactly when ``p < a`` for that value, so a
  verdict never disagrees with the interval printed beside it. The value tested is the threshold
  on the side of the change when the change is past it (is the change *beyond the threshold*?),
  else 0: a regression is a change whose whole interval lies past the threshold, so a +5 % change
  whose estimate noise lifted to +11 % is not one while its interval reaches back inside 10 %.
* **Primary and exploratory rows.** The gate (exit code) acts on :data:`PRIMARY` only: ``p50_ms``,
  ``p99_ms``, ``throughput_rps`` and ``error_rate`` in scope ``all``. They are one family under
  Bonferroni: each is tested at ``alpha / 4`` and printed with its ``1 - alpha/4`` interval (98.75 %
  for alpha 0.05), which makes the four intervals simultaneous and the chance that two runs of the
  same system fail the gate at most ``alpha``. (Holm's step-down rejects a little more often but
  has no intervals that agree with its decisions.) Every other row is *exploratory*: tested on its
  own at ``alpha`` with a ``1 - alpha`` interval, shown with its verdict, never in the exit code.
* **Reachability.** Windows are exchangeable units, so ``n1`` vs ``n2`` windows cannot support a
  p-value below ``2 / C(n1 + n2, n1)`` (3 vs 3: 0.1), nor ``B`` replicates one below ``2 / (B+1)``
  (:func:`~raybench.judge.significance.smallest_p`). When a primary row's floor is not below its level,
  no regression could be shown on that data: the comparison is ``inconclusive`` (exit 4), one line
  says why and with which smallest p, and such rows beyond the threshold get the verdict
  ``inconclusive`` (never a silent ``insignificant change``).
* **Verdict** (:func:`~raybench.judge.significance.verdict`): ``same`` within the threshold;
  beyond it ``inconclusive`` (see above), ``regression`` / ``improvement`` when the interval at the
  row's level lies wholly past the threshold, else ``insignificant change`` (past the threshold,
  but not significantly); ``n/a`` when a run has no data for the metric.
  :attr:`Comparison.outcome`: ``regression`` when a primary row regressed (wins over the rest),
  else ``inconclusive``, else ``pass``.

Presentation (text lines, ``comparison.arrow``) is :mod:`raybench.judge.compare_table`.

Pure module: no Ray, no click; pyarrow only where files are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from raybench.errors import UsageError
from raybench.judge.compare_data import MAX_WINDOWS, METRICS, Metric, RunData, Sample, auto_window_s, load_run, sample
from raybench.judge.significance import VERDICTS as VERDICTS  # re-exported: the verdicts of a row
from raybench.judge.significance import bootstrap_test, relative_change, smallest_p, verdict

#: Default relative change beyond which a significant change is a regression (or improvement).
DEFAULT_THRESHOLD = 0.10
#: Default family-wise significance level of the primary metrics (the gate).
DEFAULT_ALPHA = 0.05
#: Default number of bootstrap replicates.
DEFAULT_BOOTSTRAP = 1000
#: The metrics (scope ``all``) the gate acts on, tested as one Bonferroni family.
PRIMARY: tuple[str, ...] = ("p50_ms", "p99_ms", "throughput_rps", "error_rate")
#: Name of the test in the comparison table.
TEST = "block-bootstrap"
#: Scenario keys that differ between runs of the same scenario and are not reported as differences
#: (``metrics``: the live Prometheus view is no part of the load).
SCENARIO_IGNORED_KEYS = frozenset({"seed", "run_id", "out", "metrics"})


@dataclass(frozen=True)
class CompareConfig:
    """How to compare. ``threshold`` and ``alpha`` are fractions; ``window_s`` None: chosen per pair."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    window_s: float | None = None
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.threshold < 10):
            raise UsageError(f"--threshold {self.threshold:.0%} is not allowed; use e.g. 10% (0% to 1000%)")
        if not 0 < self.alpha < 1:
            raise UsageError(f"--alpha {self.alpha} must be between 0 and 1")
        if self.window_s is not None and not self.window_s > 0:
            raise UsageError(f"--window {self.window_s}s must be positive")
        if self.bootstrap < 10:
            raise UsageError(f"--bootstrap {self.bootstrap} must be at least 10")

    @property
    def primary_alpha(self) -> float:
        """Level of each primary row: ``alpha / len(PRIMARY)`` (Bonferroni)."""
        return self.alpha / len(PRIMARY)

    @property
    def confidence(self) -> float:
        """Level of an exploratory row's interval (primary rows: ``1 - primary_alpha``)."""
        return 1 - self.alpha


@dataclass(frozen=True)
class MetricComparison:
    """One row of a comparison: a metric in a scope, both values, change, interval, test, verdict.

    ``role`` is ``primary`` or ``exploratory``; ``row_alpha`` the level the row is tested at (its
    interval ``ci_low``/``ci_high`` is at ``ci_level = 1 - row_alpha``);
    ``p_adjusted`` the p-value compared with ``alpha`` (primary: ``p_value * len(PRIMARY)``, capped
    at 1; exploratory: ``p_value``); ``p_min`` the smallest p-value the row's data allow
    (:func:`~raybench.judge.significance.smallest_p`).
    """

    scope: str
    metric: str
    unit: str
    lower_is_better: bool
    baseline: float
    current: float
    change: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    test: str
    windows_baseline: int
    windows_current: int
    verdict: str
    role: str = "exploratory"
    row_alpha: float = math.nan
    p_min: float = math.nan

    @property
    def primary(self) -> bool:
        """True for a row the gate acts on."""
        return self.role == "primary"

    @property
    def ci_level(self) -> float:
        """Confidence level of ``ci_low``/``ci_high``."""
        return 1 - self.row_alpha

    @property
    def p_min_adjusted(self) -> float:
        """``p_min`` on the scale of ``p_adjusted``."""
        return min(1.0, self.p_min * len(PRIMARY)) if self.primary else self.p_min

    @property
    def reachable(self) -> bool:
        """False when the data cannot give a p-value below the row's level (NaN ``p_min``: no test)."""
        return not self.p_min >= self.row_alpha


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`; ``config.window_s`` is the window used (``window_auto``: chosen)."""

    baseline_run_id: str
    current_run_id: str
    config: CompareConfig
    rows: tuple[MetricComparison, ...]
    scenario_diff: tuple[str, ...] = field(default=())
    window_auto: bool = True

    @property
    def primary(self) -> list[MetricComparison]:
        """The rows the gate acts on."""
        return [r for r in self.rows if r.primary]

    @property
    def regressions(self) -> list[MetricComparison]:
        """Primary rows whose verdict is ``regression`` (these fail the gate)."""
        return [r for r in self.primary if r.verdict == "regression"]

    @property
    def improvements(self) -> list[MetricComparison]:
        """Primary rows whose verdict is ``improvement``."""
        return [r for r in self.primary if r.verdict == "improvement"]

    @property
    def exploratory_regressions(self) -> list[MetricComparison]:
        """Exploratory rows whose verdict is ``regression`` (shown, not in the exit code)."""
        return [r for r in self.rows if not r.primary and r.verdict == "regression"]

    @property
    def unreachable(self) -> list[MetricComparison]:
        """Primary rows with a change whose data cannot reach the row's level."""
        return [r for r in self.primary if not math.isnan(r.change) and not r.reachable]

    @property
    def outcome(self) -> str:
        """``regression`` (a primary row regressed), else ``inconclusive`` (a primary row cannot
        reach its level, so no regression could have been shown), else ``pass``."""
        if self.regressions:
            return "regression"
        return "inconclusive" if self.unreachable else "pass"

    def row(self, metric: str, scope: str = "all") -> MetricComparison:
        """The row of ``metric`` in ``scope``; raises KeyError when absent."""
        for r in self.rows:
            if r.metric == metric and r.scope == scope:
                return r
        raise KeyError(f"{metric} in {scope}")


def _windows_with_data(s: Sample) -> int:
    if s.kind == "rate":
        return int(s.lengths.size)
    return int(np.count_nonzero(np.bincount(s.window, minlength=s.lengths.size)))


def _row(
    m: Metric, scope: str, sb: Sample, sc: Sample, draws: dict[str, np.ndarray], config: CompareConfig, role: str
) -> MetricComparison:
    """One row: value, change, bootstrap interval and p-value at the role's level, verdict."""
    row_alpha = config.primary_alpha if role == "primary" else config.alpha
    base, cur = sb.point(), sc.point()
    nb, nc = _windows_with_data(sb), _windows_with_data(sc)
    change = lo = hi = p = p_adj = p_min = math.nan
    if not (math.isnan(base) or math.isnan(cur)):
        change = relative_change(cur, base)
        # Beyond the threshold the question is "is the change beyond the threshold?", not "is
        # there a change?": test the replicates against the threshold on the change's side, so
        # that p < level exactly when the printed interval lies wholly beyond the threshold.
        margin = math.copysign(config.threshold, change) if abs(change) > config.threshold else 0.0
        reps = relative_change(sc.replicate(draws["c"]), sb.replicate(draws["b"]))
        test = bootstrap_test(reps - margin, row_alpha)
        lo, hi, p = test.ci_low + margin, test.ci_high + margin, test.p_value
        p_adj = min(1.0, p * len(PRIMARY)) if role == "primary" else p
        p_min = smallest_p(nb, nc, test.replicates)
    v = verdict(change, p, p_min, threshold=config.threshold, alpha=row_alpha, lower_is_better=m.lower_is_better)
    values = (base, cur, change, lo, hi, p, p_adj)
    return MetricComparison(scope, m.name, m.unit, m.lower_is_better, *values, TEST, nb, nc, v, role, row_alpha, p_min)


def compare(baseline: RunData, current: RunData, config: CompareConfig | None = None) -> Comparison:
    """Compare two loaded runs metric by metric, overall and per class (see the module docstring).

    Args:
        baseline: the reference run (any window grid: it is re-cut).
        current: the run under test.
        config: threshold, alpha, window (None: chosen from the runs), bootstrap size and seed.

    Returns:
        A :class:`Comparison`, primary rows first; its ``config.window_s`` is the window used.
    """
    config = config or CompareConfig()
    auto = config.window_s is None
    window_s = auto_window_s(baseline, current) if config.window_s is None else config.window_s
    config = replace(config, window_s=window_s)
    baseline, current = baseline.with_window(window_s), current.with_window(window_s)
    for run in (baseline, current):
        if run.lengths.size > MAX_WINDOWS:
            raise UsageError(
                f"--window {window_s:g}s cuts run {run.run_id} ({run.measured_s:.0f}s of load) into "
                f"{run.lengths.size} windows; at most {MAX_WINDOWS} are allowed (or leave --window out)"
            )
    rng = np.random.default_rng(config.seed)
    draws = {}
    for name, run in (("b", baseline), ("c", current)):
        k = run.lengths.size
        draws[name] = rng.multinomial(k, np.full(k, 1.0 / k), size=config.bootstrap).astype(np.float64)
    by_name = {m.name: m for m in METRICS}
    order = [("all", by_name[name], "primary") for name in PRIMARY]
    order += [("all", m, "exploratory") for m in METRICS if m.name not in PRIMARY]
    classes = sorted(set(baseline.classes) | set(current.classes))
    order += [(f"cls={c}", m, "exploratory") for c in classes for m in METRICS]
    rows = tuple(
        _row(m, scope, sample(baseline, m.name, scope), sample(current, m.name, scope), draws, config, role)
        for scope, m, role in order
    )
    diff = scenario_diff(baseline.manifest.get("scenario") or {}, current.manifest.get("scenario") or {})
    return Comparison(baseline.run_id, current.run_id, config, rows, tuple(diff), auto)


def compare_runs(baseline_dir: Path | str, current_dir: Path | str, config: CompareConfig | None = None) -> Comparison:
    """Load two run folders and :func:`compare` them.

    Raises:
        ResultsError: a folder is missing, unreadable or has no non-warm-up rows.
    """
    return compare(load_run(baseline_dir), load_run(current_dir), config)


def scenario_diff(a: dict[str, Any], b: dict[str, Any], ignore: frozenset[str] = SCENARIO_IGNORED_KEYS) -> list[str]:
    """Dotted keys whose values differ between two scenario dicts, as ``key: a -> b`` lines.

    Keys named in ``ignore`` (at any depth) are skipped; a key present on one side only shows
    ``<absent>`` on the other.
    """

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, val in (d or {}).items():
            if key in ignore:
                continue
            name = f"{prefix}{key}"
            if isinstance(val, dict):
                out.update(flat(val, name + "."))
            else:
                out[name] = val
        return out

    fa, fb = flat(a), flat(b)
    absent = "<absent>"
    return [
        f"{key}: {fa.get(key, absent)!r} -> {fb.get(key, absent)!r}"
        for key in sorted(set(fa) | set(fb))
        if fa.get(key, absent) != fb.get(key, absent)
    ]
