"""Baseline vs current: per-metric change, confidence interval, significance test and verdict.

Method, for every metric in :data:`~raybench.compare_metrics.METRICS`, overall and per request class
(``cls``); rows, windows and metric definitions are in :mod:`raybench.compare_metrics`:

* **Value.** The metric over all non-warm-up rows of the run (percentiles are exact nearest-rank,
  :mod:`raybench.stats`); ``change`` is ``(current - baseline) / |baseline|``.
* **Significance.** :func:`mann_whitney_u`, two-sided, on the *per-window* values of the two runs
  (rows within a run are autocorrelated; windows much less so, so they are the unit of the test,
  as in Google Benchmark's ``compare.py`` which tests per-repetition values). One comparison runs
  one test per metric and scope (about 40), so the p-values are Holm–Bonferroni adjusted
  (:func:`holm`) over the whole comparison: the chance that two runs of the same system show *any*
  significant change stays below ``alpha``, which is what a CI gate on the exit code needs.
* **Confidence interval.** A seeded block bootstrap: windows (not rows) are resampled with
  replacement in each run, the metric is recomputed over the rows of the resampled windows, and the
  2.5/97.5 nearest-rank percentiles of the replicated relative changes give the 95 % interval.
* **Verdict** (:func:`verdict`): ``regression`` when the change is worse than the threshold in the
  metric's bad direction *and* significant (adjusted ``p < alpha`` and the interval excludes 0 on
  that side); ``improvement`` likewise in the good direction; ``insignificant change`` when the
  change passes the threshold but is not significant; ``same`` when it is within the threshold;
  ``n/a`` when either run has no data for the metric (e.g. no escalations, no FUSE stage).

Pure module: no Ray, no click; pyarrow only where files are read or written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench import stats
from raybench.compare_metrics import DEFAULT_WINDOW_S, METRICS, RunData, load_run, sample
from raybench.errors import UsageError
from raybench.schema import SCHEMA_VERSION
from raybench.units import format_ms

if TYPE_CHECKING:
    import pyarrow as pa

#: Default relative change beyond which a significant change is a regression (or improvement).
DEFAULT_THRESHOLD = 0.10
#: Default family-wise significance level (Holm-adjusted Mann–Whitney p-values of one comparison).
DEFAULT_ALPHA = 0.05
#: Default number of bootstrap replicates.
DEFAULT_BOOTSTRAP = 1000
#: Exact (permutation) distribution of the U test when both samples together have at most this many.
EXACT_MAX_N = 40
#: Scenario keys that differ between runs of the same scenario and are not reported as differences
#: (``metrics``: the live Prometheus view is no part of the load).
SCENARIO_IGNORED_KEYS = frozenset({"seed", "run_id", "out", "metrics"})
#: Verdicts, from worst to most neutral.
VERDICTS = ("regression", "improvement", "insignificant change", "same", "n/a")
#: Name of the comparison table in its schema metadata.
TABLE = "comparison"


# --------------------------------------------------------------------------------------------------
# Mann–Whitney U


@dataclass(frozen=True)
class MannWhitney:
    """Result of :func:`mann_whitney_u`: ``u`` of the first sample, two-sided ``p_value``, ``method``."""

    u: float
    p_value: float
    method: str


def mann_whitney_u(x: Any, y: Any, *, exact_max_n: int = EXACT_MAX_N) -> MannWhitney:
    """Two-sided Mann–Whitney U (Wilcoxon rank-sum) test of ``x`` against ``y``.

    Method: values are ranked together, ties get their mid-rank. When ``len(x) + len(y) <=
    exact_max_n`` the p-value is exact: the null distribution of the rank sum of the smaller sample
    over all ways to split the observed (tied) ranks is counted by dynamic programming, and ``p`` is
    the probability of a rank sum at least as far from its mean as the observed one (for untied
    data this equals scipy's ``method='exact'``). Otherwise the normal approximation with tie
    correction and continuity correction is used:
    ``sigma^2 = n1*n2/12 * ((n+1) - sum(t^3 - t) / (n(n-1)))``,
    ``z = (|U - n1*n2/2| - 0.5) / sigma``, ``p = erfc(z / sqrt(2))``.

    Args:
        x: first sample (e.g. per-window values of the baseline).
        y: second sample.
        exact_max_n: largest combined size for which the exact distribution is computed.

    Returns:
        :class:`MannWhitney` with ``U`` of ``x`` (``R_x - n1(n1+1)/2``), the p-value and the method
        (``exact`` or ``normal``). Identical samples (all values tied) give ``p = 1``.

    Raises:
        ValueError: a sample is empty or holds NaN.
    """
    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("mann_whitney_u needs two non-empty samples")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("mann_whitney_u: samples must not contain NaN")
    n1, n2 = a.size, b.size
    n = n1 + n2
    both = np.concatenate([a, b])
    uniq, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    twice_rank = (2 * upper - counts + 1)[inverse]  # 2 * mid-rank, an integer
    u = float(twice_rank[:n1].sum()) / 2.0 - n1 * (n1 + 1) / 2.0
    if uniq.size == 1:
        return MannWhitney(u, 1.0, "exact" if n <= exact_max_n else "normal")
    if n <= exact_max_n:
        small = twice_rank[:n1] if n1 <= n2 else twice_rank[n1:]
        return MannWhitney(u, _exact_p(twice_rank, small), "exact")
    ties = float((counts.astype(np.float64) ** 3 - counts).sum())
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    z = max(abs(u - n1 * n2 / 2.0) - 0.5, 0.0) / sigma
    return MannWhitney(u, min(1.0, math.erfc(z / math.sqrt(2.0))), "normal")


def _exact_p(twice_rank: np.ndarray, small: np.ndarray) -> float:
    """Exact two-sided p of the rank sum of ``small`` among all ``len(small)``-subsets of ranks."""
    k, n = small.size, twice_rank.size
    total = int(twice_rank.sum())
    # ways[j, s]: number of j-subsets of the ranks seen so far whose doubled rank sum is s.
    ways = np.zeros((k + 1, total + 1), dtype=np.float64)
    ways[0, 0] = 1.0
    top = 0  # largest sum reachable so far
    for i, r in enumerate(sorted(twice_rank.tolist())):
        j = min(i + 1, k)  # subsets of more than i + 1 ranks are not reachable yet
        ways[1 : j + 1, r : top + r + 1] += ways[:j, : top + 1].copy()
        top += r
    dist = ways[k]
    mean2 = k * (n + 1)  # E[2 * rank sum] = k(n+1), an integer
    dev = np.abs(np.arange(total + 1) - mean2)
    observed = abs(int(small.sum()) - mean2)
    return float(min(1.0, dist[dev >= observed].sum() / dist.sum()))


# --------------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class CompareConfig:
    """How to compare. ``threshold`` and ``alpha`` are fractions; ``confidence`` of the interval."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    window_s: float = DEFAULT_WINDOW_S
    bootstrap: int = DEFAULT_BOOTSTRAP
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.threshold < 10):
            raise UsageError(f"--threshold {self.threshold:.0%} is not allowed; use e.g. 10% (0% to 1000%)")
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha {self.alpha} must be between 0 and 1")
        if not self.window_s > 0:
            raise UsageError(f"--window {self.window_s}s must be positive")
        if self.bootstrap < 10:
            raise UsageError(f"bootstrap replicates {self.bootstrap} must be at least 10")
        if not 0 < self.confidence < 1:
            raise UsageError(f"confidence {self.confidence} must be between 0 and 1")


@dataclass(frozen=True)
class MetricComparison:
    """One row of a comparison: a metric in a scope, both values, change, interval, test, verdict."""

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


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`: one :class:`MetricComparison` per metric and scope."""

    baseline_run_id: str
    current_run_id: str
    config: CompareConfig
    rows: tuple[MetricComparison, ...]
    scenario_diff: tuple[str, ...] = field(default=())

    @property
    def regressions(self) -> list[MetricComparison]:
        """Rows whose verdict is ``regression``."""
        return [r for r in self.rows if r.verdict == "regression"]

    @property
    def improvements(self) -> list[MetricComparison]:
        """Rows whose verdict is ``improvement``."""
        return [r for r in self.rows if r.verdict == "improvement"]

    def row(self, metric: str, scope: str = "all") -> MetricComparison:
        """The row of ``metric`` in ``scope``; raises KeyError when absent."""
        for r in self.rows:
            if r.metric == metric and r.scope == scope:
                return r
        raise KeyError(f"{metric} in {scope}")


def relative_change(current: Any, baseline: Any) -> Any:
    """``(current - baseline) / |baseline|``; 0 when both are 0; ±inf when only the baseline is 0."""
    cur, base = np.asarray(current, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (cur - base) / np.abs(base)
    out = np.where((base == 0) & (cur == 0), 0.0, out)
    return float(out) if out.ndim == 0 else out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN entries stay NaN and are not counted).

    Method: sort the ``m`` finite p-values ascending; the ``i``-th (0-based) becomes
    ``max_{j<=i} min(1, (m - j) * p_(j))``. Rejecting where the adjusted value is below ``alpha``
    keeps the chance of any false positive among the ``m`` tests at most ``alpha``, whatever their
    dependence.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def verdict(
    change: float,
    p_value: float,
    ci: tuple[float, float],
    *,
    threshold: float,
    alpha: float,
    lower_is_better: bool,
) -> str:
    """The verdict of one metric (see the module docstring).

    Args:
        change: relative change, current vs baseline.
        p_value: two-sided p-value of the per-window test.
        ci: confidence interval of ``change``.
        threshold: smallest relative change that matters (0.1 = 10 %).
        alpha: significance level.
        lower_is_better: True for latency-like metrics, False for throughput.

    Returns:
        ``regression``, ``improvement``, ``insignificant change``, ``same`` or ``n/a``.
    """
    if math.isnan(change):
        return "n/a"
    if abs(change) <= threshold:
        return "same"
    up = change > 0
    # The interval must exclude 0 on the side of the change.
    excludes = ci[0] > 0 if up else ci[1] < 0
    if not (p_value < alpha and excludes):
        return "insignificant change"
    return "regression" if up == lower_is_better else "improvement"


def compare(baseline: RunData, current: RunData, config: CompareConfig | None = None) -> Comparison:
    """Compare two loaded runs metric by metric, overall and per class.

    Args:
        baseline: the reference run.
        current: the run under test.
        config: thresholds, window, bootstrap size and seed (defaults: :class:`CompareConfig`).

    Returns:
        A :class:`Comparison`; ``scenario_diff`` names scenario keys that differ.
    """
    config = config or CompareConfig()
    rng = np.random.default_rng(config.seed)
    draws = {}
    for name, run in (("b", baseline), ("c", current)):
        k = run.lengths.size
        draws[name] = rng.multinomial(k, np.full(k, 1.0 / k), size=config.bootstrap).astype(np.float64)
    tail = (1 - config.confidence) / 2 * 100
    scopes = ["all"] + [f"cls={c}" for c in sorted(set(baseline.classes) | set(current.classes))]
    partial = []
    for scope in scopes:
        for m in METRICS:
            sb, sc = sample(baseline, m.name, scope), sample(current, m.name, scope)
            base, cur = sb.point(), sc.point()
            wb, wc = sb.per_window(), sc.per_window()
            change, lo, hi, p, test = math.nan, math.nan, math.nan, math.nan, "-"
            if not (math.isnan(base) or math.isnan(cur)):
                change = relative_change(cur, base)
                reps = relative_change(sc.replicate(draws["c"]), sb.replicate(draws["b"]))
                reps = reps[~np.isnan(reps)]
                if reps.size >= config.bootstrap // 2:
                    lo, hi = stats.percentiles(reps, (tail, 100 - tail)).values()
                mw = mann_whitney_u(wb, wc)
                p, test = mw.p_value, f"mann-whitney-{mw.method}"
            partial.append((scope, m, base, cur, change, lo, hi, p, test, int(wb.size), int(wc.size)))
    adjusted = holm([row[7] for row in partial])
    rows = []
    for (scope, m, base, cur, change, lo, hi, p, test, nb, nc), p_adj in zip(partial, adjusted, strict=True):
        v = verdict(
            change, p_adj, (lo, hi), threshold=config.threshold, alpha=config.alpha, lower_is_better=m.lower_is_better
        )
        values = (base, cur, change, lo, hi, p, float(p_adj))
        rows.append(MetricComparison(scope, m.name, m.unit, m.lower_is_better, *values, test, nb, nc, v))
    diff = scenario_diff(baseline.manifest.get("scenario") or {}, current.manifest.get("scenario") or {})
    return Comparison(baseline.run_id, current.run_id, config, tuple(rows), tuple(diff))


def compare_runs(baseline_dir: Path | str, current_dir: Path | str, config: CompareConfig | None = None) -> Comparison:
    """Load two run folders and :func:`compare` them.

    Raises:
        ResultsError: a folder is missing, unreadable or has no non-warm-up rows.
    """
    config = config or CompareConfig()
    base = load_run(baseline_dir, window_s=config.window_s)
    cur = load_run(current_dir, window_s=config.window_s)
    return compare(base, cur, config)


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


# --------------------------------------------------------------------------------------------------
# Presentation and the comparison.arrow table


def format_value(value: float, unit: str) -> str:
    """A metric value for a table."""
    if value is None or math.isnan(value):
        return "-"
    if unit == "ms":
        return format_ms(value)
    if unit == "rps":
        return f"{value:.1f}/s"
    if unit == "fraction":
        return f"{value * 100:.2f}%"
    return f"{value:.3f}"


def _pct(x: float) -> str:
    if math.isnan(x):
        return "-"
    return "+inf%" if x == math.inf else ("-inf%" if x == -math.inf else f"{x * 100:+.1f}%")


def format_comparison(comp: Comparison, *, all_rows: bool = False) -> list[str]:
    """Lines describing a comparison: warnings, a table, a summary.

    Args:
        comp: the comparison.
        all_rows: list every scope's rows; by default per-class rows appear only when their verdict
            is not ``same`` or ``n/a``.
    """
    cfg = comp.config
    lines = [
        f"baseline {comp.baseline_run_id}  vs  current {comp.current_run_id}  "
        f"(threshold {cfg.threshold:.0%}, alpha {cfg.alpha}, window {cfg.window_s:g}s, "
        f"{cfg.confidence:.0%} CI from {cfg.bootstrap} window-bootstrap replicates)"
    ]
    if comp.scenario_diff:
        lines.append(f"warning: the runs are of different scenarios; what differs ({len(comp.scenario_diff)}):")
        lines += [f"  {d}" for d in comp.scenario_diff]
    header = ("scope", "metric", "baseline", "current", "change", "95% CI", "p (Holm)", "verdict")
    table = [header]
    for r in comp.rows:
        if not all_rows and r.scope != "all" and r.verdict in ("same", "n/a"):
            continue
        ci = "-" if math.isnan(r.ci_low) else f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]"
        p = "-" if math.isnan(r.p_adjusted) else f"{r.p_adjusted:.3g}"
        shown = r.verdict.upper() if r.verdict == "regression" else r.verdict
        values = (format_value(r.baseline, r.unit), format_value(r.current, r.unit), _pct(r.change))
        table.append((r.scope, r.metric, *values, ci, p, shown))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    reg, imp = comp.regressions, comp.improvements
    lines.append(
        f"{len(reg)} regression(s), {len(imp)} improvement(s)"
        + (": " + ", ".join(f"{r.metric} ({r.scope})" for r in reg) if reg else "")
    )
    return lines


def comparison_schema() -> pa.Schema:
    """Arrow schema of ``comparison.arrow`` (metadata: ``schema_version``, ``table``)."""
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    fields = [
        ("baseline_run_id", s, False), ("current_run_id", s, False), ("scope", s, False),
        ("metric", s, False), ("unit", s, False), ("lower_is_better", pa.bool_(), False),
        ("baseline", f, True), ("current", f, True), ("change", f, True), ("ci_low", f, True),
        ("ci_high", f, True), ("p_value", f, True), ("p_adjusted", f, True), ("test", s, False),
        ("windows_baseline", i, False), ("windows_current", i, False), ("threshold", f, False),
        ("alpha", f, False), ("verdict", s, False),
    ]  # fmt: skip
    meta = {b"schema_version": str(SCHEMA_VERSION).encode(), b"table": TABLE.encode()}
    return pa.schema([pa.field(n, t, nullable=z) for n, t, z in fields], metadata=meta)


def comparison_table(comp: Comparison) -> pa.Table:
    """The comparison as an Arrow table of :func:`comparison_schema` (NaN stored as null)."""
    import pyarrow as pa

    schema = comparison_schema()
    data: dict[str, list[Any]] = {name: [] for name in schema.names}
    for r in comp.rows:
        extra = {
            "baseline_run_id": comp.baseline_run_id,
            "current_run_id": comp.current_run_id,
            "threshold": comp.config.threshold,
            "alpha": comp.config.alpha,
        }
        for name in schema.names:
            val = extra[name] if name in extra else getattr(r, name)
            if isinstance(val, float) and math.isnan(val):
                val = None
            data[name].append(val)
    return pa.Table.from_pydict(data, schema=schema)


def comparison_path(run_dir: Path, baseline_run_id: str, name: str | None = None) -> Path:
    """Where to write a comparison in ``run_dir`` without overwriting anything.

    With ``name`` given, that file (relative names are inside ``run_dir``); it must not exist.
    Otherwise ``comparison.arrow``, else ``comparison-<baseline_run_id>.arrow``, else the same with
    ``-2``, ``-3``, ... appended.

    Raises:
        UsageError: ``name`` names an existing file.
    """
    if name:
        path = Path(name) if Path(name).is_absolute() or Path(name).parent != Path() else run_dir / name
        if path.exists():
            raise UsageError(f"--out-file {path} already exists; comparisons are never overwritten")
        return path
    candidates = [run_dir / "comparison.arrow", run_dir / f"comparison-{baseline_run_id}.arrow"]
    n = 2
    while all(c.exists() for c in candidates):
        candidates.append(run_dir / f"comparison-{baseline_run_id}-{n}.arrow")
        n += 1
    return next(c for c in candidates if not c.exists())


def write_comparison(comp: Comparison, path: Path) -> Path:
    """Write ``comp`` to ``path`` as a zstd Arrow IPC file, through a temporary file and ``os.replace``.

    Returns:
        ``path``.
    """
    from raybench.store import write_arrow_file

    return write_arrow_file(path, comparison_table(comp))
