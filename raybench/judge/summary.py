"""The end-of-run summary, computed from the rows of a run folder (the same for ``run`` and
``show``). Pure: takes Arrow tables, returns rows (dicts) and lines; the CLI prints them.

* Latency figures leave out warm-up requests and are exact (nearest-rank, see stats.py).
* ``timing err`` is the harness's own error on modelled stages: measured − modelled think time of
  every policy, LLM and expert stage that ran (expert time measured inside the pool).
* ``coord`` is the coordination time of a request: lease wait + state operation + event append
  (modelled region round trips included; see ``rtt_model_ms``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.judge.stats import percentile, percentiles
from raybench.units import format_ms

if TYPE_CHECKING:
    import pyarrow as pa


def _np(table: pa.Table, col: str) -> np.ndarray:
    return table.column(col).to_numpy(zero_copy_only=False)


def _floats(table: pa.Table, col: str) -> np.ndarray:
    arr = table.column(col).to_numpy(zero_copy_only=False)
    return np.asarray(arr, dtype=np.float64)


def _timing_error(t: pa.Table) -> np.ndarray:
    parts = []
    for measured, modelled in (
        ("policy_ms", "policy_model_ms"),
        ("llm_ms", "llm_model_ms"),
        ("expert_ms", "expert_model_ms"),
    ):
        d = _floats(t, measured) - _floats(t, modelled)
        parts.append(d[~np.isnan(d)])
    return np.concatenate(parts) if parts else np.array([])


def _scope_row(scope: str, t: pa.Table, span_s: float, end_ns: int | None) -> dict[str, Any]:
    lat = _floats(t, "latency_ms")
    n = int(lat.size)
    done = n if end_ns is None else int(np.count_nonzero(_np(t, "ts_end_ns") < end_ns))
    ps = percentiles(lat, (50.0, 95.0, 99.0))
    outcome = np.asarray(t.column("outcome").cast("string").to_pylist(), dtype=object)
    coord = _floats(t, "lease_wait_ms") + _floats(t, "state_ms") + _floats(t, "event_ms")
    coord = coord[~np.isnan(coord)]
    terr = _timing_error(t)
    lag = _floats(t, "lag_ms")
    return {
        "scope": scope,
        "count": n,
        "throughput": done / span_s if span_s > 0 else float("nan"),
        "mean_ms": float(lat.mean()) if n else float("nan"),
        "p50_ms": ps[50.0],
        "p95_ms": ps[95.0],
        "p99_ms": ps[99.0],
        "max_ms": float(lat.max()) if n else float("nan"),
        "error_rate": float(np.isin(outcome, ["error", "timeout"]).mean()) if n else float("nan"),
        "denied_rate": float((outcome == "denied").mean()) if n else float("nan"),
        "escalation_rate": float(_np(t, "escalated").mean()) if n else float("nan"),
        "conflicts": int(_np(t, "conflicts").sum()),
        "coord_p99_ms": percentile(coord, 99.0),
        "lag_p99_ms": percentile(lag, 99.0),
        "timing_err_p50_ms": percentile(terr, 50.0),
        "timing_err_p99_ms": percentile(terr, 99.0),
    }


def summarize(requests: pa.Table, span_s: float, *, end_ns: int | None = None) -> list[dict[str, Any]]:
    """One row for all non-warm-up requests, then one per class (in order of first appearance).

    Args:
        requests: the requests table (stream or file form).
        span_s: the measured span (after the warm-up, to the load's end) used for throughput.
        end_ns: the load's end: throughput counts the requests that completed before it (the
            drain's completions are in every other figure, not in a rate over the span); None:
            every request.
    """
    import pyarrow.compute as pc

    t = requests.filter(pc.invert(requests.column("warmup")))
    rows = [_scope_row("all", t, span_s, end_ns)]
    classes = t.column("cls").cast("string")
    for name in dict.fromkeys(classes.to_pylist()):
        rows.append(_scope_row(f"cls={name}", t.filter(pc.equal(classes, name)), span_s, end_ns))
    return rows


def resource_growth(resources: pa.Table) -> list[dict[str, Any]]:
    """Per role: processes, peak RSS (MiB), RSS growth from the first to the last quarter of each
    process's samples (worst process; needs >= 4 samples), mean and peak CPU %."""
    if resources.num_rows == 0:
        return []
    roles = np.asarray(resources.column("role").cast("string").to_pylist(), dtype=object)
    pids = _np(resources, "pid")
    nodes = np.asarray(resources.column("node_id").cast("string").to_pylist(), dtype=object)
    ts = _np(resources, "ts_ns")
    rss = _floats(resources, "rss_bytes")
    cpu = _floats(resources, "cpu_percent")
    out = []
    for role in sorted(set(roles.tolist())):
        m = roles == role
        growths = []
        procs = set(zip(nodes[m].tolist(), pids[m].tolist(), strict=True))
        for node, pid in procs:
            pm = m & (pids == pid) & (nodes == node)
            order = np.argsort(ts[pm])
            r = rss[pm][order]
            if r.size >= 4:
                q = r.size // 4
                growths.append(r[-q:].mean() / r[:q].mean() - 1.0)
        out.append(
            {
                "role": role,
                "processes": len(procs),
                "peak_rss_mib": float(rss[m].max()) / 2**20,
                "rss_growth": max(growths) if growths else float("nan"),
                "cpu_mean": float(cpu[m].mean()),
                "cpu_peak": float(cpu[m].max()),
            }
        )
    return out


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.2f}%"


def format_summary(rows: list[dict[str, Any]]) -> list[str]:
    """The summary table as lines."""
    head = (
        f"{'scope':<14}{'count':>8}{'req/s':>9}{'mean':>9}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"
        f"{'errors':>8}{'escal.':>8}{'confl.':>7}{'coord99':>9}{'lag99':>9}{'terr50':>9}{'terr99':>9}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['scope']:<14}{r['count']:>8}{r['throughput']:>9.1f}{format_ms(r['mean_ms']):>9}"
            f"{format_ms(r['p50_ms']):>9}{format_ms(r['p95_ms']):>9}{format_ms(r['p99_ms']):>9}"
            f"{format_ms(r['max_ms']):>9}{_pct(r['error_rate']):>8}{_pct(r['escalation_rate']):>8}"
            f"{r['conflicts']:>7}{format_ms(r['coord_p99_ms']):>9}{format_ms(r['lag_p99_ms']):>9}"
            f"{format_ms(r['timing_err_p50_ms']):>9}{format_ms(r['timing_err_p99_ms']):>9}"
        )
    return lines


def format_resources(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [f"{'role':<12}{'procs':>6}{'peak RSS':>11}{'RSS growth':>12}{'CPU mean':>10}{'CPU peak':>10}"]
    for r in rows:
        growth = "-" if r["rss_growth"] != r["rss_growth"] else f"{100 * r['rss_growth']:+.1f}%"
        lines.append(
            f"{r['role']:<12}{r['processes']:>6}{r['peak_rss_mib']:>8.0f}MiB{growth:>12}"
            f"{r['cpu_mean']:>9.0f}%{r['cpu_peak']:>9.0f}%"
        )
    return lines
