"""``raybench history RUN...``: one metric over a series of runs, and where a shift began."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--metric", "metrics", multiple=True, default=("p99",), show_default=True, help="Metric (repeatable).")
@click.option("--scope", default="all", show_default=True, help="'all' or 'cls=<class>'.")
@click.option("--window", default="5s", show_default=True, help="Window length (as in compare).")
@click.option("--alpha", default=0.01, show_default=True, type=float, help="Significance of a change point.")
@click.option("--min-size", default=3, show_default=True, type=int, help="Fewest runs on each side of a change.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the permutation test.")
def command(
    runs: tuple[Path, ...], metrics: tuple[str, ...], scope: str, window: str, alpha: float, min_size: int, seed: int
) -> None:
    """Show a metric for each run in the order given (e.g. nightly runs) and name the runs where a
    shift began (E-divisive means with a permutation test).

    Metrics: p50, p90, p99, mean, throughput, error_rate, escalation_p95, conflict_rate, fuse_p99,
    llm_timing_error_p99, policy_timing_error_p99.
    """
    import math

    from raybench.errors import UsageError
    from raybench.judge import changepoint
    from raybench.judge.compare_data import load_run, metric_value, resolve_metric
    from raybench.judge.compare_table import format_value
    from raybench.units import parse_duration

    if not (scope == "all" or scope.startswith("cls=")):
        raise UsageError(f"--scope {scope!r} is not allowed; use 'all' or 'cls=<class>'")
    try:
        window_s = parse_duration(window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    chosen = [resolve_metric(m) for m in metrics]
    loaded = [load_run(r, window_s=window_s) for r in runs]
    run_ids = [r.run_id for r in loaded]
    for metric in chosen:
        values = [metric_value(r, metric.name, scope) for r in loaded]
        present = [i for i, v in enumerate(values) if not math.isnan(v)]
        try:
            found = changepoint.detect([values[i] for i in present], alpha=alpha, min_size=min_size, seed=seed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        # Map indices back from the runs that have the metric to the whole series.
        points = [
            changepoint.ChangePoint(present[p.index], p.p_value, p.mean_before, p.mean_after, p.change) for p in found
        ]
        label = f"{metric.name} ({scope})" if scope != "all" else metric.name
        lines = changepoint.format_history(
            label, run_ids, values, points, fmt=lambda v, u=metric.unit: format_value(v, u)
        )
        if len(present) < 2 * min_size:
            lines.append(f"(change points need at least {2 * min_size} runs with this metric; got {len(present)})")
        for line in lines:
            click.echo(line)
