"""The report's figures: matplotlib (Agg, no pyplot, no global state) drawing arrays it is given.

Every function takes plain, already-computed data (numpy arrays, dicts of them) and returns the
figure as PNG bytes; nothing here reads a run folder or computes a statistic beyond placing points.
Times are seconds since the load start ``t0`` of the run. matplotlib is imported lazily; without
it :func:`require` raises a one-line :class:`~raybench.errors.UsageError` naming the extra.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "install the report extra: pip install 'raybench[report]'"
#: Width of a full-width figure, inches (at DPI this is the pixel width in the page).
WIDTH_IN = 9.0
DPI = 100
#: Colours of the current and baseline runs in comparison figures.
CURRENT, BASELINE = "#1f77b4", "#ff7f0e"


def require() -> None:
    """Raise :class:`UsageError` (one line) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise UsageError(f"matplotlib is not installed; {INSTALL_HINT}") from None


def _figure(height_in: float = 3.2, ncols: int = 1, width_in: float = WIDTH_IN) -> tuple[Figure, Any]:
    require()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes if ncols > 1 else axes[0]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # The Agg canvas explicitly, so the user's configured backend never matters.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _style(ax: Axes, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)


def _warmup(ax: Axes, warmup_s: float) -> None:
    if warmup_s > 0:
        ax.axvspan(0, warmup_s, color="0.85", alpha=0.6, lw=0, label="warm-up")


def _steps(starts: np.ndarray, ends: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a line holding each window's value over the window's span."""
    return np.column_stack([starts, ends]).ravel(), np.repeat(np.asarray(y, dtype=np.float64), 2)


def _window_bars(ax: Axes, starts: np.ndarray, ends: np.ndarray, y: np.ndarray, **kw: Any) -> None:
    ax.bar(starts, y, width=(ends - starts) * 0.92, align="edge", **kw)


def latency_over_time(
    series: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    sla_lines: Sequence[tuple[float, str]] = (),
    *,
    warmup_s: float = 0.0,
    styles: Mapping[str, dict[str, Any]] | None = None,
) -> bytes:
    """Latency (ms, log scale) per window, held over each window's span, one line per label in
    ``series`` (``(starts, ends, values)``); a dashed horizontal line per ``(ms, label)`` in
    ``sla_lines``."""
    fig, ax = _figure()
    _warmup(ax, warmup_s)
    for label, (s, e, y) in series.items():
        ax.plot(*_steps(s, e, y), label=label, **(styles or {}).get(label, {}))
    for i, (ms, label) in enumerate(sla_lines):
        ax.axhline(ms, ls="--", lw=1.2, color=f"C{3 + i}", label=f"SLA {label}")
    ax.set_yscale("log")
    _style(ax, "time since load start (s)", "latency (ms) per window")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def cdf(
    samples: Mapping[str, np.ndarray],
    sla_lines: Sequence[tuple[float, str]] = (),
    *,
    styles: Mapping[str, dict[str, Any]] | None = None,
) -> bytes:
    """Empirical CDF (step: share of requests with latency <= x) per label, log x axis."""
    fig, ax = _figure(3.6)
    for label, values in samples.items():
        v = np.sort(np.asarray(values, dtype=np.float64))
        if v.size == 0:
            continue
        y = np.arange(1, v.size + 1) / v.size
        ax.step(v, y, where="post", label=f"{label} (n={v.size:,})", **(styles or {}).get(label, {}))
    for i, (ms, label) in enumerate(sla_lines):
        ax.axvline(ms, ls="--", lw=1.2, color=f"C{3 + i}", label=f"SLA {label}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    _style(ax, "latency (ms)", "share of requests <= latency")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def stage_bars(groups: Sequence[str], stages: Sequence[str], means: np.ndarray, totals: np.ndarray) -> bytes:
    """Stacked horizontal bars: ``means[g, s]`` ms of stage ``s`` per request of group ``g``; a black
    tick at ``totals[g]`` (mean end-to-end latency)."""
    fig, ax = _figure(0.6 + 0.55 * max(len(groups), 1))
    y = np.arange(len(groups))
    left = np.zeros(len(groups))
    for j, stage in enumerate(stages):
        ax.barh(y, means[:, j], left=left, label=stage, color=f"C{j}")
        left = left + means[:, j]
    ax.scatter(totals, y, marker="|", s=400, color="black", zorder=3, label="mean latency")
    ax.set_yticks(y, list(groups))
    ax.invert_yaxis()
    _style(ax, "mean ms per request (a stage that did not run counts 0)", "")
    ax.legend(fontsize=8, ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(groups) < 4 else -0.2))
    return _png(fig)


def escalation_queue(
    t: np.ndarray,
    wait: np.ndarray,
    windows: tuple[np.ndarray, np.ndarray],
    win_p99: np.ndarray,
    win_count: np.ndarray,
    *,
    warmup_s: float,
) -> bytes:
    """Left: each escalated request's expert-queue wait against when it was escalated, with the
    p99 per window; right: escalations per window."""
    fig, (ax, ax2) = _figure(3.2, ncols=2)
    _warmup(ax, warmup_s)
    ax.scatter(t, wait, s=6, alpha=0.5, label="request")
    if windows[0].size:
        ax.plot(*_steps(*windows, win_p99), color="C3", lw=1.5, label="p99 per window")
    ax.set_ylim(bottom=0)
    _style(ax, "time since load start (s)", "expert queue wait (ms)")
    ax.legend(fontsize=8)
    _warmup(ax2, warmup_s)
    _window_bars(ax2, *windows, win_count, color="C1")
    _style(ax2, "time since load start (s)", "escalations per window")
    return _png(fig)


def contention(
    windows: tuple[np.ndarray, np.ndarray],
    conflicts: np.ndarray,
    wait_p99: np.ndarray,
    keys: Sequence[str],
    key_conflicts: np.ndarray,
    *,
    warmup_s: float,
) -> bytes:
    """Left: lease conflicts per window (bars) and lease-wait p99 per window (line, right axis);
    right: the hottest keys by conflicts."""
    fig, (ax, ax2) = _figure(3.2, ncols=2)
    _warmup(ax, warmup_s)
    _window_bars(ax, *windows, conflicts, color="C0", label="conflicts")
    _style(ax, "time since load start (s)", "lease conflicts per window")
    twin = ax.twinx()
    twin.plot(*_steps(*windows, wait_p99), color="C3", lw=1.5, label="lease wait p99")
    twin.set_ylabel("lease wait p99 (ms)")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0], fontsize=8)
    y = np.arange(len(keys))
    ax2.barh(y, key_conflicts, color="C2")
    ax2.set_yticks(y, list(keys))
    ax2.invert_yaxis()
    _style(ax2, "conflicts", "file key", "hottest keys")
    return _png(fig)


def fuse_ops(ops: Sequence[str], stats: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Grouped bars per operation: p50 (solid) and p99 (hatched) latency in µs per target
    (``stats[target] = (p50s, p99s)`` aligned with ``ops``), log scale."""
    fig, ax = _figure(3.4)
    x = np.arange(len(ops))
    n = max(len(stats), 1)
    w = 0.8 / (2 * n)
    for i, (target, (p50, p99)) in enumerate(stats.items()):
        base = x - 0.4 + 2 * i * w
        ax.bar(base, p50, width=w, align="edge", color=f"C{i}", label=f"{target} p50")
        ax.bar(base + w, p99, width=w, align="edge", color=f"C{i}", alpha=0.5, hatch="//", label=f"{target} p99")
    ax.set_xticks(x, list(ops))
    ax.set_yscale("log")
    _style(ax, "operation", "latency (µs)")
    ax.legend(fontsize=8, ncols=2)
    return _png(fig)


def histogram(values: np.ndarray, xlabel: str) -> bytes:
    """Histogram of ``values`` on log-spaced bins (linear bins when a value is <= 0)."""
    fig, ax = _figure(3.0)
    v = np.asarray(values, dtype=np.float64)
    if v.size and v.min() > 0 and v.max() > v.min():
        bins: Any = np.geomspace(v.min(), v.max(), 40)
        ax.set_xscale("log")
    else:
        bins = 40
    ax.hist(v, bins=bins, color="C0")
    _style(ax, xlabel, "requests")
    return _png(fig)


def resources(
    series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], roles: Sequence[str], *, warmup_s: float
) -> bytes:
    """Per process ``(role, t, rss_mib, cpu_percent)``: RSS (left) and CPU (right) over time,
    coloured by role."""
    fig, (ax, ax2) = _figure(3.4, ncols=2)
    colour = {r: f"C{i % 10}" for i, r in enumerate(roles)}
    seen: set[str] = set()
    for role, t, rss, cpu in series:
        label = role if role not in seen else None
        seen.add(role)
        ax.plot(t, rss, color=colour[role], lw=1, label=label)
        ax2.plot(t, cpu, color=colour[role], lw=1, label=label)
    for a in (ax, ax2):
        _warmup(a, warmup_s)
    _style(ax, "time since load start (s)", "RSS (MiB) per process")
    _style(ax2, "time since load start (s)", "CPU (% of one core) per process")
    ax.legend(fontsize=8)
    return _png(fig)


def events(kinds: Sequence[str], t: np.ndarray, kind_of: Sequence[str], *, warmup_s: float, end_s: float) -> bytes:
    """Events as markers on one row per kind, over the run's span (warm-up shaded)."""
    fig, ax = _figure(0.9 + 0.35 * max(len(kinds), 1))
    _warmup(ax, warmup_s)
    ax.axvline(end_s, color="0.3", ls=":", lw=1, label="planned end")
    if not kinds:
        ax.text(0.5, 0.5, "no events recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
    row = {k: i for i, k in enumerate(kinds)}
    for k in kinds:
        m = np.array([x == k for x in kind_of], dtype=bool)
        ax.scatter(t[m], np.full(int(m.sum()), row[k]), marker="D", s=30)
    ax.set_yticks(np.arange(len(kinds)), list(kinds))
    ax.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    ax.set_xlim(min(0.0, float(t.min()) if t.size else 0.0) - 0.5, max(end_s, float(t.max()) if t.size else 0.0) + 0.5)
    _style(ax, "time since load start (s)", "")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def paired_bars(labels: Sequence[str], base: np.ndarray, cur: np.ndarray, ylabel: str, names: tuple[str, str]) -> bytes:
    """Two bars per label, baseline and current (comparison report)."""
    fig, ax = _figure(3.2)
    x = np.arange(len(labels))
    ax.bar(x - 0.2, base, width=0.4, color=BASELINE, label=names[0])
    ax.bar(x + 0.2, cur, width=0.4, color=CURRENT, label=names[1])
    ax.set_xticks(x, list(labels))
    _style(ax, "", ylabel)
    ax.legend(fontsize=8)
    return _png(fig)
