"""The report's per-region and per-node sections: one row per region (or node) of the non-warm-up
requests with requests, throughput, p50, p99 and error rate, and a figure when there is more
than one.

Computed from requests.arrow in one grouped pass (:func:`raybench.report.series.group`: one sort for
every group's exact percentiles). Throughput is a group's requests over the measured span, as in
the summary; error rate counts ``error`` and ``timeout`` (``denied`` is an answer), as the SLA does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raybench.judge.thresholds import ERROR_OUTCOMES
from raybench.report import plots_load
from raybench.report.data import RunData
from raybench.report.html import format_ms, img, note, num, pct, table
from raybench.report.render import figure
from raybench.report.series import group

#: Most groups drawn (the table lists all).
MAX_DRAWN = 40
#: Characters of a node id shown.
NODE_CHARS = 12


@dataclass(frozen=True)
class GroupStats:
    """Per group (aligned arrays): its name, requests, requests per second, p50, p99, error rate."""

    names: list[str]
    count: np.ndarray
    rate: np.ndarray
    p50: np.ndarray
    p99: np.ndarray
    error_rate: np.ndarray


def group_stats(run: RunData, column: str) -> GroupStats:
    """Statistics of the non-warm-up requests per value of ``column`` (``region``, ``node_id``),
    busiest first."""
    labels, codes = run.measured_codes(column)
    out_labels, out_codes = run.measured_codes("outcome")
    bad_codes = [i for i, o in enumerate(out_labels) if o in ERROR_OUTCOMES]
    n = len(labels)
    g = group(codes, run.measured_col("latency_ms"), n, run.measured_latency_order())
    ok = codes >= 0
    count = np.bincount(codes[ok], minlength=n)[:n]
    bad = np.bincount(codes[ok], weights=np.isin(out_codes[ok], bad_codes), minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(count > 0, bad / np.maximum(count, 1), np.nan)
    order = sorted(range(n), key=lambda i: (-int(count[i]), labels[i]))
    order = [i for i in order if count[i] > 0]
    idx = np.array(order, dtype=np.int64)
    rate = count / run.measured_s if run.measured_s > 0 else np.full(n, np.nan)
    p50, p99 = g.percentile(50.0), g.percentile(99.0)
    return GroupStats([labels[i] for i in order], count[idx], rate[idx], p50[idx], p99[idx], err[idx])


def _section(run: RunData, column: str, what: str, rename: Callable[[str], str] = str) -> str:
    if run.measured_col("latency_ms").size == 0:
        return note(f"No non-warm-up requests: nothing to break down per {what}.")
    st = group_stats(run, column)
    shown = [rename(n) for n in st.names]
    rows = [
        [label, f"{int(c):,}", num(r), format_ms(a), format_ms(b), pct(e)]
        for label, c, r, a, b, e in zip(shown, st.count, st.rate, st.p50, st.p99, st.error_rate, strict=True)
    ]
    parts = [table((what, "requests", "req/s", "p50", "p99", "error rate"), rows)]
    if len(st.names) > 1:
        k = min(len(st.names), MAX_DRAWN)
        png = figure(plots_load.groups, shown[:k], st.rate[:k], st.p50[:k], st.p99[:k], what)
        parts.insert(0, img(png, f"throughput and latency per {what}"))
        if k < len(st.names):
            parts.append(note(f"The figure shows the {k} busiest of {len(st.names)}; the table lists all."))
    else:
        parts.append(note(f"One {what} only: no figure (its row is the whole run)."))
    parts.append(
        note(
            "Non-warm-up requests; req/s over the measured span; exact nearest-rank percentiles; "
            "error rate = error + timeout."
        )
    )
    return "\n".join(parts)


def section_regions(run: RunData) -> str:
    """Requests, throughput, p50, p99 and error rate per region."""
    return _section(run, "region", "region")


def section_nodes(run: RunData) -> str:
    """Requests, throughput, p50, p99 and error rate per node (id shortened, address from the
    manifest's cluster when it has one)."""
    address = {
        str(n.get("node_id")): str(n.get("address", ""))
        for n in (run.manifest.get("cluster") or {}).get("nodes") or []
        if isinstance(n, dict)
    }
    return _section(run, "node_id", "node", lambda n: _node(n, address.get(n, "")))


def _node(node_id: str, address: str) -> str:
    short = node_id if len(node_id) <= NODE_CHARS else node_id[:NODE_CHARS] + "…"
    return f"{short} ({address})" if address else short
