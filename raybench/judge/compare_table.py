"""A comparison's presentation: text lines for the terminal and the ``comparison.arrow`` table.

The comparison itself (values, intervals, p-values, verdicts) is :mod:`raybench.judge.compare`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raybench.errors import UsageError
from raybench.judge.compare import PRIMARY, Comparison
from raybench.results.schema import SCHEMA_VERSION
from raybench.units import format_ms

if TYPE_CHECKING:
    import pyarrow as pa

#: Name of the comparison table in its schema metadata.
TABLE = "comparison"


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


def _level(level: float) -> str:
    return f"{level * 100:.10g}%"


def inconclusive_line(comp: Comparison) -> str | None:
    """The one line saying why the data cannot reach the primary level, or None when it can."""
    rows = comp.unreachable
    if not rows:
        return None
    worst = max(rows, key=lambda r: r.p_min)
    cfg = comp.config
    n1, n2, floor = worst.windows_baseline, worst.windows_current, worst.p_min
    by_windows = 2.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0
    how = "auto" if comp.window_auto else "--window"
    if by_windows >= floor:
        cause = f"{n1} and {n2} windows of {cfg.window_s:g}s ({how}) allow no p below {floor:.3g}"
        fix = "longer runs" if comp.window_auto else "longer runs or a shorter --window (or none)"
    else:
        cause = f"{cfg.bootstrap} bootstrap replicates allow no p below {floor:.3g}"
        fix = "more --bootstrap replicates"
    return (
        f"inconclusive: {cause}, but each primary metric needs p < {cfg.primary_alpha:.3g} (alpha {cfg.alpha:g} / "
        f"{len(PRIMARY)}), so no regression can be shown on this data; use {fix}"
    )


def format_comparison(comp: Comparison, *, all_rows: bool = False) -> list[str]:
    """Lines describing a comparison: header, warnings, a table (primary rows first), a summary.

    Args:
        comp: the comparison.
        all_rows: list every per-class row; by default they appear only when their verdict is not
            ``same`` or ``n/a``.
    """
    cfg = comp.config
    primary = comp.primary
    nb = max((r.windows_baseline for r in primary), default=0)
    nc = max((r.windows_current for r in primary), default=0)
    how = "chosen from the runs" if comp.window_auto else "from --window"
    lines = [
        f"baseline {comp.baseline_run_id}  vs  current {comp.current_run_id}  (threshold {cfg.threshold:.0%}, "
        f"alpha {cfg.alpha:g}; windows of {cfg.window_s:g}s {how}: {nb} and {nc}; {cfg.bootstrap} bootstrap "
        "replicates)"
    ]
    if comp.scenario_diff:
        lines.append(f"warning: the runs are of different scenarios; what differs ({len(comp.scenario_diff)}):")
        lines += [f"  {d}" for d in comp.scenario_diff]
    note = inconclusive_line(comp)
    if note:
        lines.append(note)
    header = ("scope", "metric", "baseline", "current", "change", "CI", "p (adj.)", "verdict")
    table: list[tuple[str, ...] | str] = [header]
    table.append(
        f"primary: decide the exit code; Bonferroni over {len(PRIMARY)}: {_level(1 - cfg.primary_alpha)} "
        f"intervals, p x {len(PRIMARY)}"
    )
    exploratory = [r for r in comp.rows if not r.primary and (all_rows or r.scope == "all" or r.verdict not in (
        "same", "n/a"))]  # fmt: skip
    for i, r in enumerate([*primary, *exploratory]):
        if i == len(primary):
            table.append(
                f"exploratory: each row on its own at alpha {cfg.alpha:g} ({_level(cfg.confidence)} intervals; "
                "with this many rows some change by chance); never in the exit code"
            )
        ci = "-" if math.isnan(r.ci_low) or not r.reachable else f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]"
        if math.isnan(r.p_adjusted):
            p = "-"
        elif not r.reachable:
            p = f">={r.p_min_adjusted:.2g}"
        else:
            p = f"{r.p_adjusted:.3g}"
        shown = r.verdict.upper() if r.primary and r.verdict in ("regression", "inconclusive") else r.verdict
        values = (format_value(r.baseline, r.unit), format_value(r.current, r.unit), _pct(r.change))
        table.append((r.scope, r.metric, *values, ci, p, shown))
    cells = [row for row in table if isinstance(row, tuple)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in table:
        if isinstance(row, str):
            lines.append(row)
        else:
            lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip())
    reg, imp = comp.regressions, comp.improvements
    lines.append(
        f"{len(reg)} regression(s), {len(imp)} improvement(s) in primary metrics"
        + (": " + ", ".join(r.metric for r in reg) if reg else "")
        + f"; exploratory: {len(comp.exploratory_regressions)} regression(s)"
        + f"; verdict: {comp.outcome}"
    )
    return lines


def comparison_schema() -> pa.Schema:
    """Arrow schema of ``comparison.arrow`` (metadata: ``schema_version``, ``table``)."""
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    fields = [
        ("baseline_run_id", s, False), ("current_run_id", s, False), ("scope", s, False),
        ("metric", s, False), ("role", s, False), ("unit", s, False), ("lower_is_better", pa.bool_(), False),
        ("baseline", f, True), ("current", f, True), ("change", f, True), ("ci_low", f, True),
        ("ci_high", f, True), ("ci_level", f, False), ("p_value", f, True), ("p_adjusted", f, True),
        ("p_min", f, True), ("test", s, False), ("window_s", f, False), ("windows_baseline", i, False),
        ("windows_current", i, False), ("threshold", f, False), ("alpha", f, False), ("verdict", s, False),
    ]  # fmt: skip
    meta = {b"schema_version": str(SCHEMA_VERSION).encode(), b"table": TABLE.encode()}
    return pa.schema([pa.field(n, t, nullable=z) for n, t, z in fields], metadata=meta)


def comparison_table(comp: Comparison) -> pa.Table:
    """The comparison as an Arrow table of :func:`comparison_schema` (NaN stored as null)."""
    import pyarrow as pa

    schema = comparison_schema()
    extra = {
        "baseline_run_id": comp.baseline_run_id,
        "current_run_id": comp.current_run_id,
        "threshold": comp.config.threshold,
        "alpha": comp.config.alpha,
        "window_s": comp.config.window_s,
    }
    data: dict[str, list[Any]] = {name: [] for name in schema.names}
    for r in comp.rows:
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
            raise UsageError(f"-o {path} already exists; comparisons are never overwritten")
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
    from raybench.results.store import write_arrow_file

    return write_arrow_file(path, comparison_table(comp))
