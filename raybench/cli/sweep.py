"""``raybench sweep --agents 500,1000,2000 [--search]``: capacity, the largest fleet that holds the SLA."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from raybench.cli.params import DURATION, PERCENT, json_option


@click.command()
@click.argument("scenario_file", required=False, metavar="[SCENARIO_FILE]", type=click.Path(path_type=Path))
@click.option("--preset", metavar="NAME", help="Built-in scenario; default lighthouse.")
@click.option(
    "--agents", "sizes", required=True, metavar="N,N,...", help="Fleet sizes to run, e.g. 500,1000,2000,4000."
)
@click.option("--search", is_flag=True, help="Then bisect to the largest size that holds every SLA threshold.")
@click.option("--resolution", type=PERCENT, default="10%", show_default=True,
              help="Stop bisecting when held/broken are this close (10% or 0.1).")  # fmt: skip
@click.option("--max-runs", default=12, show_default=True, metavar="N", type=int, help="Most runs in the sweep.")
@click.option("--duration", type=DURATION, help="Length of each run's load, e.g. 60s.")
@click.option("--warmup", type=DURATION, help="Warm-up of each run, e.g. 10s.")
@click.option("--seed", metavar="N", type=int, help="Seed of every run.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override a scenario key (repeatable).")
@click.option("--out", metavar="DIR", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Results root.")  # fmt: skip
@click.option("--sweep-id", metavar="ID", help="Name of the sweep folder under --out (refused if it exists).")
@click.option("--address", metavar="ADDRESS", help="Ray cluster to use; default: a local Ray.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@json_option
def command(
    scenario_file: Path | None,
    preset: str | None,
    sizes: str,
    search: bool,
    resolution: float,
    max_runs: int,
    duration: float | None,
    warmup: float | None,
    seed: int | None,
    assignments: tuple[str, ...],
    out: Path,
    sweep_id: str | None,
    address: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run the scenario at each fleet size and write OUT/SWEEP_ID/sweep.arrow (one row per size).

    Prints one line per size, how latency, throughput, memory and CPU grow with agents (least-squares
    slopes), the size where the SLA breaks, what it hit (raybench's harness, or a system resource such
    as the expert pool) and a capacity recommendation; the last line is the sweep folder. No size is
    run above one whose harness saturated. Exit 0 when every run finished, 3 when one failed, 130 when
    interrupted. With --json: one JSON document on stdout at the end, progress on stderr.
    """
    from raybench.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME
    from raybench.config import scenario as scn
    from raybench.engine import sweep
    from raybench.errors import ScenarioError, UsageError

    if scenario_file is not None and preset is not None:
        raise ScenarioError("give a scenario file or --preset, not both")
    agent_counts = sweep.parse_sizes(sizes)
    if max_runs < 1:
        raise UsageError(f"--max-runs {max_runs} must be at least 1")
    overrides: dict[str, object] = {"run.agents": agent_counts[0]}
    for key, value in (("run.duration", duration), ("run.warmup", warmup), ("run.seed", seed)):
        if value is not None:
            overrides[key] = value
    for text in assignments:
        key, value = scn.parse_assignment(text)
        overrides[key] = value
    sc = scn.load(scenario_file, preset, overrides)
    from raybench.cli.progress import Printer

    echo = Printer(sys.stderr, quiet=quiet)
    try:
        result = sweep.run_sweep(
            sc, agent_counts, out=out, sweep_id=sweep_id, search=search, resolution=resolution, max_runs=max_runs,
            address=address, progress=echo,
        )  # fmt: skip
    finally:
        echo.close()
    statuses = {p.status for p in result.points}
    code = EXIT_INTERRUPTED if "interrupted" in statuses else EXIT_RUNTIME if "failed" in statuses else EXIT_OK
    if as_json:
        from raybench.cli import jsonout

        jsonout.emit("sweep", jsonout.sweep(result), code)
        click.get_current_context().exit(code)
    for line in sweep.format_sweep(result.points, result.analysis):
        click.echo(line)
    click.echo(str(result.sweep_dir))
    click.get_current_context().exit(code)
