"""The SLA verdict table, as text lines for printing (``raybench run``, ``raybench sla``)."""

from __future__ import annotations

import math
from typing import Any

from raybench.units import format_ms


def _fmt_value(value: float | None, th: Any, target: float | None = None) -> str:
    """``value`` for the verdict table; a fraction gets as many digits as it takes not to read
    the same as a different ``target`` (98.99% against 99%, not 99% against 99%)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if th.metric in ("percentile", "mean", "min", "max"):
        return format_ms(value)
    if th.metric == "throughput" and not th.relative:
        return f"{value:.1f}/s"
    digits = 3
    while target is not None and value != target and digits < 8:
        if f"{value * 100:.{digits}g}" != f"{target * 100:.{digits}g}":
            break
        digits += 1
    return f"{value * 100:.{digits}g}%"


def format_table(rows: list[dict[str, Any]], thresholds: Any) -> list[str]:
    """Lines of the verdict table (one row per threshold), for printing."""
    by_id = {t.id: t for t in thresholds}
    header = ("threshold", "observed", "target", "verdict", "windows failed", "count")
    body = []
    for r in rows:
        th = by_id[r["id"]]
        if not r.get("applicable", True):
            verdict = "n/a (stage off)"
        elif r["cumulative_passed"] is None:
            verdict = "NO DATA"
        elif r["passed"]:
            verdict = "pass"
        elif r["violated"] and r["cumulative_passed"]:
            verdict = "FAIL (windows)"
        else:
            verdict = "FAIL"
        body.append(
            (
                r["id"],
                _fmt_value(r["observed"], th, r["target"]),
                f"{th.op} {_fmt_value(r['target'], th)}",
                verdict,
                f"{r['windows_failed']}/{r['windows_total']}",
                str(r["count"]),
            )
        )
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]]
