"""The report's figures of the load as a Locust or k6 user reads it: throughput, latency and
outcomes per second, the percentile distribution with its tail, and per region or node bars.

Same contract as :mod:`raybench.report.plots`: plain, already-aggregated arrays in (per-second
buckets, a quantile grid: never one point per request), PNG bytes out. Times are seconds since
the load start; every time figure shades the warm-up and marks the end of the load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.report.plots import (
    _figure,
    _png,
    _style,
    _warmup,
    legend_outside,
    log_scale,
    step_fill,
    step_line,
    threshold_lines,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Colours of the outcomes (others cycle through the default colours).
OUTCOME_COLOURS = {"ok": "#2ca02c", "denied": "#9467bd", "error": "#d62728", "timeout": "#ff7f0e"}
#: Ticks of the percentile distribution's x axis: the percentile and its position ``1/(1-q)``.
TAIL_TICKS = ((50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%"))


def _load_span(ax: Axes, warmup_s: float, load_end_s: float) -> None:
    """Warm-up shaded, and dotted lines at its end and at the end of the load."""
    _warmup(ax, warmup_s)
    if warmup_s > 0:
        ax.axvline(warmup_s, color="0.45", ls="--", lw=0.9, label="warm-up end")
    if load_end_s > 0:
        ax.axvline(load_end_s, color="0.2", ls=":", lw=1.2, label="load end")


def _bucket_label(bucket_s: float) -> str:
    return "second" if bucket_s == 1 else f"{bucket_s:g} s"


def throughput(
    starts: np.ndarray,
    per_s: np.ndarray,
    bucket_s: float,
    *,
    warmup_s: float,
    load_end_s: float,
    offered: float | None = None,
) -> bytes:
    """Completions per second per bucket (a step over each bucket), the offered rate as a line."""
    fig, ax = _figure(3.0)
    _load_span(ax, warmup_s, load_end_s)
    x = np.append(starts, starts[-1] + bucket_s) if starts.size else starts
    step_line(ax, x, per_s, color="C0", lw=1.6, label="completed / s")
    if offered:
        ax.axhline(offered, color="0.4", ls="-.", lw=1, label=f"offered {offered:,.1f}/s")
    ax.set_ylim(bottom=0)
    _style(ax, "time since load start (s)", f"requests completed per {_bucket_label(bucket_s)}")
    legend_outside(ax)
    return _png(fig)


def latency_per_second(
    starts: np.ndarray,
    lines: Mapping[str, tuple[np.ndarray, str]],
    bucket_s: float,
    *,
    warmup_s: float,
    load_end_s: float,
    sla_lines: Sequence[tuple[float, str, str]] = (),
) -> bytes:
    """Latency percentiles per bucket of completion time (``lines[label] = (values, colour)``),
    log scale, with the thresholds on exactly those percentiles (colour of their curve)."""
    fig, ax = _figure(3.2)
    _load_span(ax, warmup_s, load_end_s)
    x = np.append(starts, starts[-1] + bucket_s) if starts.size else starts
    for label, (values, colour) in lines.items():
        step_line(ax, x, values, color=colour, lw=1.5, label=label)
    threshold_lines(ax, sla_lines)
    log_scale(ax, "y")
    _style(ax, "time since load start (s)", f"latency (ms) per {_bucket_label(bucket_s)}")
    legend_outside(ax)
    return _png(fig)


def outcomes(
    starts: np.ndarray,
    counts: np.ndarray,
    names: Sequence[str],
    bucket_s: float,
    *,
    warmup_s: float,
    load_end_s: float,
) -> bytes:
    """Requests per second by outcome (``counts[bucket, outcome]``): ok as a line, every other
    outcome as stacked bars on a second axis scaled to them (errors are few and must show)."""
    fig, ax = _figure(3.2)
    _load_span(ax, warmup_s, load_end_s)
    x = np.append(starts, starts[-1] + bucket_s) if starts.size else starts
    rate = counts / bucket_s
    bad = [i for i, n in enumerate(names) if n != "ok"]
    if "ok" in names:
        step_line(ax, x, rate[:, list(names).index("ok")], color=OUTCOME_COLOURS["ok"], lw=1.5, label="ok")
    ax.set_ylim(bottom=0)
    _style(ax, "time since load start (s)", f"ok per {_bucket_label(bucket_s)}")
    if bad:
        twin = ax.twinx()
        bottom = np.zeros(starts.size)
        for j, i in enumerate(bad):
            colour = OUTCOME_COLOURS.get(names[i], f"C{(j + 4) % 10}")
            top = bottom + rate[:, i]
            step_fill(twin, x, top, bottom, color=colour, alpha=0.75, label=names[i])
            bottom = top
        twin.set_ylim(0, max(float(bottom.max()), 1.0) * 1.1)
        twin.set_ylabel(f"other outcomes per {_bucket_label(bucket_s)}")
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.08, 1.0), borderaxespad=0)
    else:
        legend_outside(ax)
    return _png(fig)


def percentile_distribution(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]],
    points: Sequence[tuple[float, float, str, str]] = (),
) -> bytes:
    """HdrHistogram-style: latency (log y) against percentile on a ``1/(1-q)`` log x axis, so the
    tail (99 %, 99.9 %, 99.99 %) gets as much room as the body. ``curves[label] = (q_percent,
    values_ms, style)``; a marker per ``(q_percent, target_ms, label, colour)`` in ``points`` (a
    percentile threshold of the scope of the curve in that colour)."""
    fig, ax = _figure(3.6)
    top = 2.0
    for label, (q, v, style) in curves.items():
        qs = np.asarray(q, dtype=np.float64)
        if qs.size == 0:
            continue
        xs = 1.0 / (1.0 - np.minimum(qs, 99.9999) / 100.0)
        top = max(top, float(xs.max()))
        ax.step(xs, v, where="post", label=label, **style)
    for q_point, target, label, colour in points:
        x = 1.0 / (1.0 - min(float(q_point), 99.9999) / 100.0)
        top = max(top, x)
        ax.plot([x], [target], marker="X", ms=9, ls="none", color=colour, mec="black", label=f"SLA {label}")
    log_scale(ax, "x")
    log_scale(ax, "y")
    ticks = [(1.0 / (1.0 - q / 100.0), text) for q, text in TAIL_TICKS]
    ticks = [(x, text) for x, text in ticks if x <= top * 1.5]
    ax.set_xticks([x for x, _ in ticks], [text for _, text in ticks])
    ax.minorticks_off()
    ax.set_xlim(1.0, top * 1.2)
    _style(ax, "percentile (log scale of 1/(1 - q): each step a tenth of the requests left)", "latency (ms)")
    legend_outside(ax)
    return _png(fig)


def groups(names: Sequence[str], rate: np.ndarray, p50: np.ndarray, p99: np.ndarray, what: str) -> bytes:
    """Per region or node: throughput (left) and p50 / p99 latency (right, log)."""
    fig, (ax, ax2) = _figure(0.9 + 0.32 * max(len(names), 1), ncols=2)
    y = np.arange(len(names))
    ax.barh(y, rate, color="C0")
    ax.set_yticks(y, list(names))
    ax.invert_yaxis()
    _style(ax, "requests / s (non-warm-up)", what)
    ax2.barh(y - 0.2, p50, height=0.4, color="C2", label="p50")
    ax2.barh(y + 0.2, p99, height=0.4, color="C1", label="p99")
    ax2.set_yticks(y, [""] * len(names))
    ax2.invert_yaxis()
    log_scale(ax2, "x")
    _style(ax2, "latency (ms)", "")
    legend_outside(ax2)
    return _png(fig)
