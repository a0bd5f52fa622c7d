"""``--json``: one JSON document on stdout for ``show``, ``sla``, ``compare``, ``sweep``, ``history``.

Conventions (documented in ``results/README.md``, section "JSON output"):

* Every document starts with ``schema`` (``raybench.<command>/1``; the number grows only when a key
  changes meaning or goes away, never when one is added) and ``raybench_version``, and ends with
  ``exit_code``: the code the command exits with, the same as without ``--json``.
* Durations and latencies are milliseconds in keys ending ``_ms``; rates per second end ``_per_s``;
  shares of 0 to 1 end ``_fraction``. A value that is missing or not finite (NaN, inf) is ``null``:
  JSON has no NaN.
* Nothing else is written to stdout; notes and progress go to stderr.

The functions below turn raybench's rows (dicts, dataclasses) into those documents; pure apart
from :func:`emit`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from raybench.engine.sweep import SweepPoint, SweepResult
    from raybench.judge.changepoint import ChangePoint
    from raybench.judge.compare import Comparison, MetricComparison

#: The version in every document's ``schema`` key.
VERSION = 1


def clean(obj: Any) -> Any:
    """``obj`` with NaN and inf as None, numpy scalars as Python numbers, paths as strings, tuples
    as lists: something :func:`json.dumps` writes with ``allow_nan=False``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalar
        return clean(obj.item())
    if hasattr(obj, "tolist"):  # numpy array
        return clean(obj.tolist())
    return str(obj)


def document(command: str, body: Mapping[str, Any], exit_code: int) -> dict[str, Any]:
    """The whole document of ``command``: ``schema``, ``raybench_version``, ``body``, ``exit_code``."""
    from raybench import __version__

    return clean({"schema": f"raybench.{command}/{VERSION}", "raybench_version": __version__, **body,
                  "exit_code": exit_code})  # fmt: skip


def dumps(doc: Mapping[str, Any]) -> str:
    """The document as text (indented, key order kept, never NaN)."""
    return json.dumps(clean(doc), indent=2, allow_nan=False, ensure_ascii=False)


def emit(command: str, body: Mapping[str, Any], exit_code: int) -> None:
    """Print the document of ``command`` on stdout (the only thing a ``--json`` command prints there)."""
    click.echo(dumps(document(command, body, exit_code)))


def ms(seconds: float | None) -> float | None:
    """Seconds -> milliseconds (None stays None)."""
    return None if seconds is None else float(seconds) * 1000.0


def _ms_keys(obj: Any) -> Any:
    """A manifest section with every ``<name>_s`` number turned into ``<name>_ms``."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith("_s") and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k[:-2] + "_ms"] = float(v) * 1000.0
            else:
                out[k] = _ms_keys(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_ms_keys(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------------
# show


def summary_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A row of :func:`raybench.judge.summary.summarize` in JSON names."""
    return {
        "scope": r["scope"],
        "count": r["count"],
        "throughput_per_s": r["throughput"],
        "mean_ms": r["mean_ms"],
        "p50_ms": r["p50_ms"],
        "p95_ms": r["p95_ms"],
        "p99_ms": r["p99_ms"],
        "max_ms": r["max_ms"],
        "error_fraction": r["error_rate"],
        "denied_fraction": r["denied_rate"],
        "escalation_fraction": r["escalation_rate"],
        "conflicts": r["conflicts"],
        "coord_p99_ms": r["coord_p99_ms"],
        "lag_p99_ms": r["lag_p99_ms"],
        "timing_err_p50_ms": r["timing_err_p50_ms"],
        "timing_err_p99_ms": r["timing_err_p99_ms"],
    }


def resource_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """A row of :func:`raybench.judge.summary.resource_growth` in JSON names."""
    return {
        "role": r["role"],
        "processes": r["processes"],
        "peak_rss_mib": r["peak_rss_mib"],
        "rss_growth_fraction": r["rss_growth"],
        "cpu_mean_percent": r["cpu_mean"],
        "cpu_peak_percent": r["cpu_peak"],
    }


def harness(section: Any) -> dict[str, Any] | None:
    """The manifest's ``harness`` section (``status``, ``reasons``, ``system``, ``observed``,
    ``bounds``, ``unchecked``), seconds turned into ``_ms``; None for a folder from before harness
    checks."""
    if section is None:
        return None
    if hasattr(section, "to_manifest"):
        section = section.to_manifest()
    return _ms_keys(dict(section))


def show_run(
    manifest: Mapping[str, Any],
    *,
    scenario_name: str,
    agents: int,
    duration_s: float,
    warmup_s: float,
    ran_s: float,
    measured_s: float,
    stopped_early: bool,
    summary: Sequence[Mapping[str, Any]],
    resources: Sequence[Mapping[str, Any]],
    harness_section: Any,
) -> dict[str, Any]:
    """The body of ``show --json`` for a benchmark run folder."""
    return {
        "kind": "run",
        "run_id": manifest.get("run_id"),
        "scenario": scenario_name,
        "agents": agents,
        "status": manifest.get("status"),
        "started_utc": manifest.get("started_utc"),
        "duration_ms": ms(duration_s),
        "warmup_ms": ms(warmup_s),
        "ran_ms": ms(ran_s),
        "measured_ms": ms(measured_s),
        "stopped_early": stopped_early,
        "summary": [summary_row(r) for r in summary],
        "resources": [resource_row(r) for r in resources],
        "harness": harness(harness_section),
    }


def show_fuse(manifest: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The body of ``show --json`` for a ``raybench fuse`` folder: one row per (operation, target)."""
    rows = []
    for r in ops:
        rows.append({
            "op": r["op"], "target": r["target"], "count": r["count"], "errors": r["errors"],
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "p999_ms": r["p999_ms"], "max_ms": r["max_ms"],
            "ops_per_s": r["ops_per_s"], "ratio_p50": r.get("ratio_p50"), "ratio_p99": r.get("ratio_p99"),
        })  # fmt: skip
    return {
        "kind": "fuse",
        "run_id": manifest.get("run_id"),
        "status": manifest.get("status"),
        "started_utc": manifest.get("started_utc"),
        "ops": rows,
    }


# --------------------------------------------------------------------------------------------------
# sla


def sla_unit(th: Any) -> str:
    """The unit of a threshold's ``observed`` and ``target``: ``ms``, ``rps`` or ``fraction``."""
    if th.metric in ("percentile", "mean", "min", "max"):
        return "ms"
    if th.metric == "throughput" and not th.relative:
        return "rps"
    return "fraction"


def sla_verdict(r: Mapping[str, Any]) -> str:
    """``pass``, ``fail``, ``fail_windows`` (the whole run passes, windows in a row did not),
    ``no_data`` or ``not_applicable`` (the threshold's stage is off): the text table's verdict."""
    if not r.get("applicable", True):
        return "not_applicable"
    if r["cumulative_passed"] is None:
        return "no_data"
    if r["passed"]:
        return "pass"
    return "fail_windows" if r["violated"] and r["cumulative_passed"] else "fail"


def sla_row(r: Mapping[str, Any], th: Any, t0_ns: int) -> dict[str, Any]:
    """A row of :func:`raybench.judge.sla_replay.evaluate_run` in JSON names."""
    first = r.get("first_violation_ns")
    return {
        "id": r["id"],
        "expression": r["expression"],
        "metric": th.metric,
        "scope": r["scope"],
        "op": th.op,
        "unit": sla_unit(th),
        "observed": r["observed"],
        "target": r["target"],
        "verdict": sla_verdict(r),
        "passed": bool(r["passed"]),
        "applicable": bool(r.get("applicable", True)),
        "whole_run_passed": r.get("cumulative_passed"),
        "windows_violated": bool(r.get("violated", False)),
        "windows_failed": r["windows_failed"],
        "windows_total": r["windows_total"],
        "first_violation_ms": None if first is None else (int(first) - int(t0_ns)) / 1e6,
        "count": r.get("count"),
        "note": r.get("note") or None,
    }


# --------------------------------------------------------------------------------------------------
# compare


def comparison_row(r: MetricComparison) -> dict[str, Any]:
    """One row of a comparison (the columns of ``comparison.arrow`` that vary by row)."""
    return {
        "scope": r.scope,
        "metric": r.metric,
        "role": r.role,
        "unit": r.unit,
        "lower_is_better": r.lower_is_better,
        "baseline": r.baseline,
        "current": r.current,
        "change_fraction": r.change,
        "ci_low_fraction": r.ci_low if r.reachable else None,
        "ci_high_fraction": r.ci_high if r.reachable else None,
        "ci_level": r.ci_level,
        "p_value": r.p_value,
        "p_adjusted": r.p_adjusted,
        "p_min": r.p_min,
        "p_min_adjusted": r.p_min_adjusted,
        "reachable": r.reachable,
        "test": r.test,
        "windows_baseline": r.windows_baseline,
        "windows_current": r.windows_current,
        "verdict": r.verdict,
    }


def comparison(comp: Comparison, *, table_path: Path | None) -> dict[str, Any]:
    """The body of ``compare --json``: settings, outcome, every row (primary first)."""
    from raybench.judge.compare_table import inconclusive_line

    cfg = comp.config
    return {
        "baseline_run_id": comp.baseline_run_id,
        "current_run_id": comp.current_run_id,
        "outcome": comp.outcome,
        "threshold_fraction": cfg.threshold,
        "alpha": cfg.alpha,
        "primary_alpha": cfg.primary_alpha,
        "window_ms": ms(cfg.window_s),
        "window_auto": comp.window_auto,
        "bootstrap": cfg.bootstrap,
        "seed": cfg.seed,
        "scenario_diff": list(comp.scenario_diff),
        "inconclusive_reason": inconclusive_line(comp),
        "regressions": [r.metric for r in comp.regressions],
        "improvements": [r.metric for r in comp.improvements],
        "exploratory_regressions": [{"scope": r.scope, "metric": r.metric} for r in comp.exploratory_regressions],
        "rows": [comparison_row(r) for r in comp.rows],
        "comparison_table": table_path,
    }


# --------------------------------------------------------------------------------------------------
# history


def history_metric(
    metric: str, unit: str, scope: str, run_ids: Sequence[str], values: Sequence[float],
    points: Sequence[ChangePoint], *, runs_with_metric: int, min_size: int,
) -> dict[str, Any]:  # fmt: skip
    """One metric of ``history --json``: its value per run and the change points found."""
    return {
        "metric": metric,
        "unit": unit,
        "scope": scope,
        "values": [{"run_id": rid, "value": v} for rid, v in zip(run_ids, values, strict=True)],
        "runs_with_metric": runs_with_metric,
        "enough_runs": runs_with_metric >= 2 * min_size,
        "change_points": [
            {
                "index": p.index,
                "run_id": run_ids[p.index],
                "p_value": p.p_value,
                "mean_before": p.mean_before,
                "mean_after": p.mean_after,
                "change_fraction": p.change,
            }
            for p in points
        ],
    }


# --------------------------------------------------------------------------------------------------
# sweep


def sweep_point(p: SweepPoint) -> dict[str, Any]:
    """One fleet size of a sweep (a row of ``sweep.arrow``) in JSON names."""
    return {
        "agents": p.agents,
        "run_id": p.run_id,
        "status": p.status,
        "sla_pass": p.sla_pass,
        "held": p.held,
        "offered_per_s": p.offered_rps,
        "throughput_per_s": p.throughput_rps,
        "p50_ms": p.p50_ms,
        "p99_ms": p.p99_ms,
        "error_fraction": p.error_rate,
        "memory_mib": p.memory_mib,
        "cpu_percent": p.cpu_percent,
        "harness_status": p.harness_status,
        "limit": p.limit or None,
        "limit_detail": p.limit_detail or None,
        "expert_queue_p99_ms": p.expert_queue_p99_ms,
    }


#: sweep.arrow's growth metric -> its slope's key in JSON.
_SLOPE_KEYS = {
    "p99_ms": "p99_ms_per_agent",
    "throughput_rps": "throughput_per_s_per_agent",
    "memory_mib": "memory_mib_per_agent",
    "cpu_percent": "cpu_percent_per_agent",
}


def sweep(result: SweepResult) -> dict[str, Any]:
    """The body of ``sweep --json``: one row per size, the slopes and the recommendation."""
    a = result.analysis
    return {
        "sweep_id": Path(result.sweep_dir).name,
        "sweep_dir": result.sweep_dir,
        "sweep_table": Path(result.sweep_dir) / "sweep.arrow",
        "points": [sweep_point(p) for p in sorted(result.points, key=lambda p: p.agents)],
        "slopes": {_SLOPE_KEYS.get(k, f"{k}_per_agent"): v for k, v in a.slopes.items()},
        "largest_held_agents": a.largest_held,
        "first_broken_agents": a.first_broken,
        "limit": a.limit or None,
        "harness_ceiling_agents": a.harness_ceiling,
        "recommendation": a.recommendation,
        "notes": list(a.notes),
    }
