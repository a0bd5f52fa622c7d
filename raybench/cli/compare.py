"""``raybench compare BASELINE CURRENT``: did the current run get worse? Exit 1 on a regression,
4 when the data cannot show one (inconclusive)."""

from __future__ import annotations

from pathlib import Path

import click


def _fraction(value: str, flag: str) -> float:
    from raybench.errors import UsageError
    from raybench.units import parse_percent

    try:
        return parse_percent(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


@click.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--threshold", default="10%", show_default=True, help="Smallest relative change that counts (10% or 0.1)."
)
@click.option("--baseline", "baseline_name", help="Compare CURRENT with this saved baseline (see `raybench baseline`).")
@click.option(
    "--out",
    "root",
    type=click.Path(path_type=Path),
    help="Results root holding .baselines (default: CURRENT's parent folder).",
)
@click.option(
    "--window",
    default="auto",
    show_default=True,
    help="Window length, the unit of the bootstrap (auto: 20 windows in the shorter run, 0.5s to 5s).",
)
@click.option(
    "--alpha", default="0.05", show_default=True, help="Family-wise level of the primary metrics (Bonferroni)."
)
@click.option(
    "--bootstrap", default=1000, show_default=True, type=int, help="Bootstrap replicates (interval and p-value)."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap.")
@click.option("--out-file", help="Comparison table file (default: comparison.arrow in CURRENT's folder).")
@click.option("--no-write", is_flag=True, help="Do not write the comparison table.")
@click.option("--all", "all_rows", is_flag=True, help="List every per-class row, not only the changed ones.")
def command(
    runs: tuple[Path, ...],
    threshold: str,
    baseline_name: str | None,
    root: Path | None,
    window: str,
    alpha: str,
    bootstrap: int,
    seed: int,
    out_file: str | None,
    no_write: bool,
    all_rows: bool,
) -> None:
    """Compare run CURRENT with BASELINE (a run folder) or with --baseline NAME.

    For every metric, overall and per class: both values, the change, a confidence interval and a
    p-value from one window block bootstrap (they always agree), and a verdict. The primary metrics
    (p50, p99, throughput, error rate, all requests) decide the exit code, as one Bonferroni family
    at --alpha; the other rows are exploratory. Exit 1 when a primary metric regressed (worse by
    more than --threshold and significant), 4 when the windows are too few to show a regression
    at all (inconclusive; one line says why), else 0.
    """
    from raybench.errors import UsageError
    from raybench.judge import baselines, compare_table
    from raybench.judge import compare as cmp
    from raybench.units import parse_duration

    if baseline_name is not None:
        if len(runs) != 1:
            raise UsageError("with --baseline NAME give exactly one run folder: CURRENT")
        current = runs[0]
        baseline_dir = baselines.resolve(root if root is not None else current.parent, baseline_name)
    else:
        if len(runs) != 2:
            raise UsageError("give two run folders, BASELINE and CURRENT (or --baseline NAME and CURRENT)")
        baseline_dir, current = runs
    window_s = None
    if window.strip().lower() != "auto":
        try:
            window_s = parse_duration(window)
        except ValueError as exc:
            raise UsageError(f"--window: {exc} (or auto)") from None
    config = cmp.CompareConfig(
        threshold=_fraction(threshold, "--threshold"),
        alpha=_fraction(alpha, "--alpha"),
        window_s=window_s,
        bootstrap=bootstrap,
        seed=seed,
    )
    comparison = cmp.compare_runs(baseline_dir, current, config)
    for line in compare_table.format_comparison(comparison, all_rows=all_rows):
        click.echo(line)
    if not no_write:
        where = compare_table.comparison_path(current, comparison.baseline_run_id, out_file)
        path = compare_table.write_comparison(comparison, where)
        click.echo(f"comparison table: {path}")
    from raybench.cli import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK

    codes = {"regression": EXIT_FAILED, "inconclusive": EXIT_INCONCLUSIVE}
    click.get_current_context().exit(codes.get(comparison.outcome, EXIT_OK))
