"""``raybench compare BASELINE CURRENT``: did the current run get worse? Exit 1 on a regression,
4 when the data cannot show one (inconclusive). ``--json``: one JSON document instead of the table."""

from __future__ import annotations

from pathlib import Path

import click

from raybench.cli.params import DURATION_OR_AUTO, LEVEL, PERCENT, json_option


@click.command()
@click.argument("runs", nargs=-1, metavar="[BASELINE] CURRENT", type=click.Path(path_type=Path))
@click.option("--threshold", type=PERCENT, default="10%", show_default=True,
              help="Smallest relative change that counts (10% or 0.1).")  # fmt: skip
@click.option(
    "--baseline",
    "baseline_name",
    metavar="NAME",
    help="Compare CURRENT with this saved baseline (see `raybench baseline`).",
)
@click.option(
    "--out",
    "root",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Results root holding .baselines (default: CURRENT's parent folder).",
)
@click.option(
    "--window",
    type=DURATION_OR_AUTO,
    default="auto",
    show_default=True,
    help="Window length, the unit of the bootstrap (auto: 20 windows in the shorter run, 0.5s to 5s).",
)
@click.option(
    "--alpha",
    type=LEVEL,
    default="0.05",
    show_default=True,
    help="Family-wise level of the primary metrics (Bonferroni).",
)
@click.option("--bootstrap", default=1000, show_default=True, metavar="N", type=int,
              help="Bootstrap replicates (interval and p-value).")  # fmt: skip
@click.option("--seed", default=0, show_default=True, metavar="N", type=int, help="Seed of the bootstrap.")
@click.option(
    "-o", "--output", metavar="FILE", help="Comparison table file (default: comparison.arrow in CURRENT's folder)."
)
@click.option("--out-file", "out_file", metavar="FILE", hidden=True, help="Deprecated spelling of --output.")
@click.option("--no-write", is_flag=True, help="Do not write the comparison table.")
@click.option("--all", "all_rows", is_flag=True, help="List every per-class row, not only the changed ones.")
@json_option
def command(
    runs: tuple[Path, ...],
    threshold: float,
    baseline_name: str | None,
    root: Path | None,
    window: float | None,
    alpha: float,
    bootstrap: int,
    seed: int,
    output: str | None,
    out_file: str | None,
    no_write: bool,
    all_rows: bool,
    as_json: bool,
) -> None:
    """Compare run CURRENT with BASELINE (a run folder) or with --baseline NAME.

    For every metric, overall and per class: both values, the change, a confidence interval and a
    p-value from one window block bootstrap (they always agree), and a verdict. The primary metrics
    (p50, p99, throughput, error rate, all requests) decide the exit code, as one Bonferroni family
    at --alpha; the other rows are exploratory. Exit 1 when a primary metric regressed (worse by
    more than --threshold and significant), 4 when the windows are too few to show a regression
    at all (inconclusive; one line says why), else 0. With --json, every row (--all is implied).
    """
    from raybench.errors import UsageError
    from raybench.judge import baselines, compare_table
    from raybench.judge import compare as cmp

    if out_file is not None:
        if output is not None:
            raise UsageError("give -o/--output, not also its old spelling --out-file")
        click.echo("raybench: note: --out-file is deprecated; use -o/--output", err=True)
        output = out_file
    if baseline_name is not None:
        if len(runs) != 1:
            raise UsageError("with --baseline NAME give exactly one run folder: CURRENT")
        current = runs[0]
        baseline_dir = baselines.resolve(root if root is not None else current.parent, baseline_name)
    else:
        if len(runs) != 2:
            raise UsageError("give two run folders, BASELINE and CURRENT (or --baseline NAME and CURRENT)")
        baseline_dir, current = runs
    if output and not no_write:  # refused before the minutes of bootstrap, not after
        named = Path(output)
        path = named if named.is_absolute() or named.parent != Path() else Path(current) / named
        if path.exists():
            raise UsageError(f"-o {path} already exists; comparisons are never overwritten (choose another file)")
    config = cmp.CompareConfig(threshold=threshold, alpha=alpha, window_s=window, bootstrap=bootstrap, seed=seed)
    comparison = cmp.compare_runs(baseline_dir, current, config)
    if not as_json:
        for line in compare_table.format_comparison(comparison, all_rows=all_rows):
            click.echo(line)
    written = None
    if not no_write:
        where = compare_table.comparison_path(current, comparison.baseline_run_id, output)
        written = compare_table.write_comparison(comparison, where)
    from raybench.cli import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK

    codes = {"regression": EXIT_FAILED, "inconclusive": EXIT_INCONCLUSIVE}
    code = codes.get(comparison.outcome, EXIT_OK)
    if as_json:
        from raybench.cli import jsonout

        jsonout.emit("compare", jsonout.comparison(comparison, table_path=written), code)
    elif written is not None:
        click.echo(f"comparison table: {written}")
    click.get_current_context().exit(code)
