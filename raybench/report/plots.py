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
    """A filled step per window (one artist however many windows: bars would be one each)."""
    if starts.size:
        step_fill(ax, np.append(starts, ends[-1]), y, alpha=0.8, **kw)


def _step_xy(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges, values = np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64)
    return np.repeat(edges, 2)[1:-1], np.repeat(values, 2)


def step_line(ax: Axes, edges: np.ndarray, values: np.ndarray, **kw: Any) -> None:
    """``values[i]`` held over ``[edges[i], edges[i+1])``, as one line (a gap where NaN). A line,
    not ``stairs``: matplotlib sizes the axes of a patch segment by segment, of a line at once."""
    ax.plot(*_step_xy(edges, values), **kw)


def step_fill(ax: Axes, edges: np.ndarray, top: np.ndarray, bottom: Any = 0.0, **kw: Any) -> None:
    """The area between ``bottom`` and ``top``, each held over its bucket (see :func:`step_line`)."""
    x, y = _step_xy(edges, top)
    low = np.repeat(np.broadcast_to(np.asarray(bottom, dtype=np.float64), np.shape(top)), 2)
    ax.fill_between(x, low, y, lw=0, **kw)


def log_scale(ax: Axes, axis: str = "y") -> None:
    """A log axis labelled in plain numbers (0.1, 1000; not 10³: mathtext costs ~30 ms an axis)."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return f"{x:g}"

    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(Plain())
    target.set_minor_formatter(Plain(labelOnlyBase=False))


def latency_over_time(
    series: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    sla_lines: Sequence[tuple[float, str, str]] = (),
    *,
    warmup_s: float = 0.0,
    styles: Mapping[str, dict[str, Any]] | None = None,
) -> bytes:
    """Latency (ms, log scale) per window, held over each window's span, one line per label in
    ``series`` (``(starts, ends, values)``); a dashed horizontal line per ``(ms, label, colour)`` in
    ``sla_lines`` (the caller gives only thresholds on a metric and scope drawn here, in the colour
    of that curve)."""
    fig, ax = _figure()
    _warmup(ax, warmup_s)
    for label, (s, e, y) in series.items():
        ax.plot(*_steps(s, e, y), label=label, **(styles or {}).get(label, {}))
    threshold_lines(ax, sla_lines)
    log_scale(ax, "y")
    _style(ax, "time since load start (s)", "latency (ms) per window")
    legend_outside(ax)
    return _png(fig)


def threshold_lines(ax: Axes, lines: Sequence[tuple[float, str, str]]) -> None:
    """A dashed horizontal line per ``(value, label, colour)``, labelled ``SLA <label>``."""
    for value, label, colour in lines:
        ax.axhline(value, ls="--", lw=1.2, color=colour, label=f"SLA {label}")


def legend_outside(ax: Axes, **kw: Any) -> None:
    """The legend right of the axes, never over a curve (constrained layout makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)


def legend_above(ax: Axes, handles: Sequence[Any] | None = None) -> None:
    """The legend in one row above the axes (for a figure of two panels side by side)."""
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=min(len(handles), 2),
                  borderaxespad=0, frameon=False)  # fmt: skip


def time_unit(values: np.ndarray) -> tuple[float, str]:
    """``(factor, unit)`` to show ms values in: µs (factor 1000) when every finite value is below
    1 ms, else ms."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return (1000.0, "µs") if v.size and float(np.abs(v).max()) < 1.0 else (1.0, "ms")


def cdf(
    samples: Mapping[str, np.ndarray],
    points: Sequence[tuple[float, float, str, str]] = (),
    *,
    styles: Mapping[str, dict[str, Any]] | None = None,
) -> bytes:
    """Empirical CDF (step: share of requests with latency <= x) per label, log x axis; ``samples``
    are sorted values at evenly spaced ranks (:func:`raybench.report.data.cdf_points`) with the
    row count in the label. A marker per ``(limit_ms, share, label, colour)`` in ``points``: a
    ``share(latency<limit)>=share`` threshold of the scope of the curve in that colour. The legend
    sits right of the axes."""
    fig, ax = _figure(3.6)
    for label, values in samples.items():
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            continue
        y = np.arange(1, v.size + 1) / v.size
        ax.step(v, y, where="post", label=label, **(styles or {}).get(label, {}))
    for limit_ms, share, label, colour in points:
        ax.plot([limit_ms], [share], marker="X", ms=9, ls="none", color=colour, mec="black", label=f"SLA {label}")
    log_scale(ax, "x")
    ax.set_ylim(0, 1.01)
    _style(ax, "latency (ms)", "share of requests <= latency")
    legend_outside(ax)
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
    sla_lines: Sequence[tuple[float, str, str]] = (),
) -> bytes:
    """Left: escalated requests' expert-queue wait (ms given; drawn in µs when every value is below
    1 ms) against when they were escalated, with the p99 per window and the thresholds on that p99;
    right: escalations per window."""
    fig, (ax, ax2) = _figure(3.2, ncols=2)
    factor, unit = time_unit(np.concatenate([np.asarray(wait, float), np.asarray(win_p99, float)]))
    _warmup(ax, warmup_s)
    ax.scatter(t, np.asarray(wait) * factor, s=6, alpha=0.5, label="request", rasterized=True)
    if windows[0].size:
        ax.plot(*_steps(*windows, np.asarray(win_p99) * factor), color="C3", lw=1.5, label="p99 per window")
    threshold_lines(ax, [(v * factor, label, colour) for v, label, colour in sla_lines])
    ax.set_ylim(bottom=0)
    _style(ax, "time since load start (s)", f"expert queue wait ({unit})")
    legend_above(ax)
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
    sla_lines: Sequence[tuple[float, str, str]] = (),
) -> bytes:
    """Left: lease conflicts per window (bars) and lease-wait p99 per window (line, right axis, with
    the thresholds on that p99); right: the hottest keys by conflicts. Only for a run with
    conflicts (the caller says "no lease conflicts" instead of drawing empty axes)."""
    fig, (ax, ax2) = _figure(3.2, ncols=2)
    _warmup(ax, warmup_s)
    _window_bars(ax, *windows, conflicts, color="C0", label="conflicts")
    _style(ax, "time since load start (s)", "lease conflicts per window")
    twin = ax.twinx()
    factor, unit = time_unit(wait_p99)
    twin.plot(*_steps(*windows, np.asarray(wait_p99) * factor), color="C3", lw=1.5, label="lease wait p99")
    threshold_lines(twin, [(v * factor, label, colour) for v, label, colour in sla_lines])
    twin.set_ylim(bottom=0)
    twin.set_ylabel(f"lease wait p99 ({unit})")
    legend_above(ax, ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0])
    y = np.arange(len(keys))
    ax2.barh(y, key_conflicts, color="C2")
    ax2.set_yticks(y, list(keys))
    ax2.invert_yaxis()
    _style(ax2, "conflicts", "file key", "hottest keys by conflicts")
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
    log_scale(ax, "y")
    _style(ax, "operation", "latency (µs)")
    ax.legend(fontsize=8, ncols=2)
    return _png(fig)


def histogram(edges: np.ndarray, counts: np.ndarray, log: bool, xlabel: str) -> bytes:
    """A histogram already binned (:func:`raybench.report.data.histogram_bins`): ``counts[i]`` values
    in ``[edges[i], edges[i+1])``; log x axis when ``log``."""
    fig, ax = _figure(3.0)
    step_fill(ax, edges, counts, color="C0")
    ax.set_ylim(bottom=0)
    if log:
        log_scale(ax, "x")
    _style(ax, xlabel, "requests")
    return _png(fig)


def resources(series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], *, warmup_s: float) -> bytes:
    """Per process ``(label, t, rss_mib, cpu_percent)``: RSS (left) and CPU (right) over time, one
    colour per process (20 colours, then the line style changes too), the legend below."""
    fig, (ax, ax2) = _figure(3.6 + 0.18 * -(-len(series) // 4), ncols=2)
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"]
    palette = [tab20(i) for i in range(20)] if len(series) > 10 else [f"C{i}" for i in range(10)]
    styles = ("-", "--", ":", "-.")
    for i, (label, t, rss, cpu) in enumerate(series):
        kw = {"color": palette[i % len(palette)], "ls": styles[(i // len(palette)) % len(styles)], "lw": 1.2}
        ax.plot(t, rss, label=label, **kw)
        ax2.plot(t, cpu, **kw)
    for a in (ax, ax2):
        _warmup(a, warmup_s)
    _style(ax, "time since load start (s)", "RSS (MiB) per process")
    _style(ax2, "time since load start (s)", "CPU (% of one core) per process")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncols=4)
    return _png(fig)


def events(kinds: Sequence[str], t: np.ndarray, kind_of: Sequence[str], *, warmup_s: float, end_s: float) -> bytes:
    """Events as markers on one row per kind, over the run's span (warm-up shaded). Only for a
    run with events (the caller says so in a sentence otherwise)."""
    fig, ax = _figure(0.9 + 0.35 * max(len(kinds), 1))
    _warmup(ax, warmup_s)
    ax.axvline(end_s, color="0.3", ls=":", lw=1, label="planned end")
    row = {k: i for i, k in enumerate(kinds)}
    kind_arr = np.asarray(list(kind_of), dtype=object)
    for k in kinds:
        m = kind_arr == k
        ax.scatter(t[m], np.full(int(m.sum()), row[k]), marker="D", s=30)
    ax.set_yticks(np.arange(len(kinds)), list(kinds))
    ax.set_ylim(-0.7, max(len(kinds), 1) - 0.3)
    ax.set_xlim(min(0.0, float(t.min()) if t.size else 0.0) - 0.5, max(end_s, float(t.max()) if t.size else 0.0) + 0.5)
    _style(ax, "time since load start (s)", "")
    legend_outside(ax)
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
