"""The report's time sections: throughput, latency and outcomes second by second, and latency per
SLA window per class.

The per-second series count every recorded request (warm-up included, over a shaded warm-up
span) in the 1 s bucket of its completion time ``ts_end_ns`` from the load start; a run longer than
:data:`~raybench.report.series.MAX_BUCKETS` seconds gets buckets of several whole seconds (the
figure says so). Percentiles per bucket are exact nearest-rank; every aggregate is one vectorised
pass over the rows (:mod:`raybench.report.series`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from raybench.report import plots, plots_load
from raybench.report.data import RunData, window_series
from raybench.report.html import img, kv, note, num, pct, table
from raybench.report.marks import percentile_marks
from raybench.report.render import figure
from raybench.report.series import Buckets, buckets, crosstab
from raybench.results.schema import OUTCOMES

#: Colours of the per-second p50 and p99 curves.
P50_COLOUR, P99_COLOUR = "C0", "C1"
#: Most error messages listed.
TOP_ERRORS = 10


def time_axis(run: RunData) -> Buckets:
    """The buckets of every per-second series: from the load start to the last completion or the
    end of the load, whichever is later."""
    end_ns = run.t0_ns + round(run.load_end_s * 1e9)
    return run.cached("buckets", lambda: buckets(run.t0_ns, run.all_col("ts_end_ns", np.int64), end_ns))


def throughput_series(run: RunData) -> tuple[Buckets, np.ndarray]:
    """Completions per second in each bucket (every request, warm-up included, by ``ts_end_ns``)."""
    b = time_axis(run)
    return b, b.per_second(run.all_col("ts_end_ns", np.int64))


def latency_series(run: RunData, qs: tuple[float, ...] = (50.0, 99.0)) -> tuple[Buckets, dict[float, np.ndarray]]:
    """Exact nearest-rank latency percentiles of the requests completed in each bucket (NaN when
    none completed)."""
    b = time_axis(run)
    return b, b.percentiles(run.all_col("ts_end_ns", np.int64), run.all_col("latency_ms"), qs, run.latency_order())


def outcome_names(labels: list[str]) -> list[str]:
    """Outcomes in the schema's order, then any other value."""
    return [o for o in OUTCOMES if o in labels] + sorted(o for o in labels if o not in OUTCOMES)


def _full_seconds(run: RunData, b: Buckets) -> np.ndarray:
    """Buckets wholly after the warm-up and before the end of the load."""
    s = b.starts_s()
    return (s >= run.warmup_s) & (s + b.bucket_s <= run.load_end_s + 1e-9)


def section_throughput(run: RunData) -> str:
    if run.requests.num_rows == 0:
        return note("No requests in this run folder: no throughput to draw.")
    b, per_s = throughput_series(run)
    offered = run.manifest.get("offered_rate")
    offered = float(offered) if isinstance(offered, (int, float)) and offered > 0 else None
    png = figure(
        plots_load.throughput,
        b.starts_s(),
        per_s,
        b.bucket_s,
        warmup_s=run.warmup_s,
        load_end_s=run.load_end_s,
        offered=offered,
    )
    full = per_s[_full_seconds(run, b)]
    unit = "second" if b.bucket_s == 1 else f"{b.bucket_s:g} s bucket"
    rows: list[tuple[str, Any]] = [
        ("offered load", f"{num(offered)} req/s" if offered else "-"),
        (
            f"completed per {unit} after the warm-up (mean / min / max)",
            f"{num(full.mean())} / {num(full.min())} / {num(full.max())} req/s" if full.size else "-",
        ),
        ("completed per second over the measured span", f"{num(_measured_rate(run))} req/s"),
    ]
    return "\n".join(
        [
            img(png, "requests completed per second"),
            kv(rows),
            note(
                f"Requests completed in each {b.bucket_s:g} s of completion time (every recorded request, "
                "warm-up shaded); dashed: end of the warm-up, dotted: end of the load. The min and max "
                "are over the whole buckets between the two."
            ),
        ]
    )


def _measured_rate(run: RunData) -> float:
    n = int(run.measured_col("latency_ms").size)
    return n / run.measured_s if run.measured_s > 0 else math.nan


def section_latency(run: RunData) -> str:
    """p50 and p99 per second (every request), then p50/p99 and per-class p99 per SLA window
    (windows.arrow); each threshold only on its own metric and scope."""
    if run.requests.num_rows == 0:
        return note("No requests in this run folder: no latency to draw.")
    b, ps = latency_series(run)
    lines = {"p50": (ps[50.0], P50_COLOUR), "p99": (ps[99.0], P99_COLOUR)}
    marks = [(m.value, m.label, P50_COLOUR) for m in percentile_marks(run.thresholds, 50.0)]
    marks += [(m.value, m.label, P99_COLOUR) for m in percentile_marks(run.thresholds, 99.0)]
    body = [
        img(
            figure(
                plots_load.latency_per_second,
                b.starts_s(),
                lines,
                b.bucket_s,
                warmup_s=run.warmup_s,
                load_end_s=run.load_end_s,
                sla_lines=marks,
            ),
            "latency p50 and p99 per second",
        ),
        note(
            f"Exact p50 and p99 of the requests completed in each {b.bucket_s:g} s (every recorded request, "
            "warm-up shaded). "
            + (
                "Dashed: the SLA thresholds on exactly these percentiles of all requests."
                if marks
                else "No SLA threshold is on the p50 or p99 of all requests, so none is drawn."
            )
        ),
    ]
    body.append(_latency_per_window(run))
    return "\n".join(body)


def _latency_per_window(run: RunData) -> str:
    if run.windows is None or run.windows.num_rows == 0:
        return note("windows.arrow is missing or empty: no per-window statistics to draw.")
    series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    styles: dict[str, dict[str, Any]] = {}
    marks: list[tuple[float, str, str]] = []
    for i, scope in enumerate(["all", *[f"cls={c}" for c in run.classes]]):
        s, e, w = window_series(run, scope)
        if s.size == 0:
            continue
        if scope == "all":
            series["p50 (all)"], series["p99 (all)"] = (s, e, w["p50_ms"]), (s, e, w["p99_ms"])
            styles["p50 (all)"], styles["p99 (all)"] = {"color": P50_COLOUR, "lw": 2}, {"color": P99_COLOUR, "lw": 2}
            marks += [(m.value, m.label, P50_COLOUR) for m in percentile_marks(run.thresholds, 50.0)]
            marks += [(m.value, m.label, P99_COLOUR) for m in percentile_marks(run.thresholds, 99.0)]
        else:
            colour = f"C{(i + 1) % 10}"
            series[f"p99 {scope}"] = (s, e, w["p99_ms"])
            styles[f"p99 {scope}"] = {"lw": 1, "ls": ":", "color": colour}
            marks += [(m.value, m.label, colour) for m in percentile_marks(run.thresholds, 99.0, scope)]
    if not series:
        return note("windows.arrow has no window of these scopes.")
    n = int((run.windows.strings("scope") == "all").sum())
    return "\n".join(
        [
            img(
                figure(plots.latency_over_time, series, marks, warmup_s=run.warmup_s, styles=styles),
                "latency per window",
            ),
            note(
                f"{n} SLA windows of {run.window_s:g}s (windows.arrow: non-warm-up requests); each step is the "
                "window's exact percentile, held over the window's span. "
                + (
                    "Dashed: the SLA thresholds on exactly one of these curves (its metric and scope), in its colour."
                    if marks
                    else "No SLA threshold is on a percentile and scope drawn here, so none is drawn."
                )
            ),
        ]
    )


def section_outcomes(run: RunData) -> str:
    """Outcomes per second (every request), outcome x class counts and the most frequent errors
    (non-warm-up requests)."""
    if run.requests.num_rows == 0:
        return note("No requests in this run folder: no outcomes to count.")
    labels, codes = run.requests.codes("outcome")
    names = outcome_names(labels)
    order = np.array([labels.index(n) for n in names])
    remap = np.empty(len(labels), dtype=np.int64)
    remap[order] = np.arange(len(names))
    tables = [_by_class(run, names, remap), _errors(run)]
    if names == ["ok"]:
        return "\n".join(
            [
                note(
                    "Every request ended ok: no error, timeout or denial to draw over time (the throughput "
                    "figure above is the rate of ok requests)."
                ),
                *tables,
            ]
        )
    b = time_axis(run)
    per_bucket = b.crosstab(run.all_col("ts_end_ns", np.int64), remap[codes], len(names))
    png = figure(
        plots_load.outcomes,
        b.starts_s(),
        per_bucket,
        names,
        b.bucket_s,
        warmup_s=run.warmup_s,
        load_end_s=run.load_end_s,
    )
    return "\n".join(
        [
            img(png, "outcomes per second"),
            *tables,
            note(
                f"Figure: requests per {b.bucket_s:g} s of completion time by outcome (every recorded request); "
                "outcomes other than ok are stacked on the right axis, scaled to them so that a few errors "
                "show. Tables: non-warm-up requests; error rate = error + timeout (denied is an answer)."
            ),
        ]
    )


def _by_class(run: RunData, names: list[str], remap: np.ndarray) -> str:
    codes = run.measured_codes("outcome")[1]
    cls_labels, cls_codes = run.measured_codes("cls")
    classes = [cls_labels.index(c) for c in run.classes]
    ct = crosstab(cls_codes, len(cls_labels), remap[codes] if codes.size else codes, len(names))
    bad = [i for i, n in enumerate(names) if n in ("error", "timeout")]
    rows = []
    for name, counts in [(c, ct[i]) for c, i in zip(run.classes, classes, strict=True)] + [("all", ct.sum(axis=0))]:
        total = int(counts.sum())
        rate = float(counts[bad].sum()) / total if total else math.nan
        rows.append([name, f"{total:,}", *(f"{int(x):,}" for x in counts), pct(rate)])
    return table(("class", "requests", *names, "error rate"), rows)


def _errors(run: RunData) -> str:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = run.requests.table.column("error")
    measured = pa.array(run.measured)
    errs = pc.filter(col, measured).drop_null()
    if len(errs) == 0:
        return note("No non-warm-up request recorded an error message.")
    counts = pc.value_counts(errs).to_pylist()
    counts.sort(key=lambda r: (-r["counts"], str(r["values"])))
    rows = [[_clip(str(r["values"])), f"{r['counts']:,}"] for r in counts[:TOP_ERRORS]]
    more = f" ({len(counts) - TOP_ERRORS} more messages not listed)" if len(counts) > TOP_ERRORS else ""
    return table(("error message", "requests"), rows) + (note(f"Most frequent first{more}.") if more else "")


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
