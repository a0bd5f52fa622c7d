"""``raybench history RUN...``: one metric over a series of runs, and where a shift began."""

from __future__ import annotations

from pathlib import Path

import click

from raybench.cli.params import LEVEL, POSITIVE_DURATION, json_option


@click.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...", type=click.Path(path_type=Path))
@click.option("--metric", "metrics", multiple=True, default=("p99",), show_default=True, metavar="METRIC",
              help="Metric (repeatable; listed below).")  # fmt: skip
@click.option("--scope", default="all", show_default=True, metavar="all|cls=CLASS", help="Requests the metric covers.")
@click.option(
    "--window", type=POSITIVE_DURATION, default="5s", show_default=True, help="Window length (as in compare)."
)
@click.option("--alpha", type=LEVEL, default="0.01", show_default=True, help="Significance of a change point.")
@click.option("--min-size", default=3, show_default=True, metavar="N", type=int,
              help="Fewest runs on each side of a change.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, metavar="N", type=int, help="Seed of the permutation test.")
@json_option
def command(
    runs: tuple[Path, ...],
    metrics: tuple[str, ...],
    scope: str,
    window: float,
    alpha: float,
    min_size: int,
    seed: int,
    as_json: bool,
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

    if not (scope == "all" or scope.startswith("cls=")):
        raise UsageError(f"--scope {scope!r} is not allowed; use 'all' or 'cls=<class>'")
    chosen = [resolve_metric(m) for m in metrics]
    loaded = [load_run(r, window_s=window) for r in runs]
    run_ids = [r.run_id for r in loaded]
    lines: list[str] = []
    found_json: list[dict[str, object]] = []
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
        if as_json:
            from raybench.cli import jsonout

            found_json.append(
                jsonout.history_metric(
                    metric.name,
                    metric.unit,
                    scope,
                    run_ids,
                    values,
                    points,
                    runs_with_metric=len(present),
                    min_size=min_size,
                )
            )
            continue
        label = f"{metric.name} ({scope})" if scope != "all" else metric.name
        lines += changepoint.format_history(
            label, run_ids, values, points, fmt=lambda v, u=metric.unit: format_value(v, u)
        )
        if len(present) < 2 * min_size:
            lines.append(f"(change points need at least {2 * min_size} runs with this metric; got {len(present)})")
    if as_json:
        from raybench.cli import jsonout

        body = {
            "run_ids": run_ids,
            "scope": scope,
            "window_ms": jsonout.ms(window),
            "alpha": alpha,
            "min_size": min_size,
            "seed": seed,
            "metrics": found_json,
        }
        jsonout.emit("history", body, 0)
        return
    for line in lines:
        click.echo(line)
