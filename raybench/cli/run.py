"""``raybench run`` and ``raybench smoke``: parse, build the scenario, call the engine, print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from raybench.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME
from raybench.config import scenario as scn
from raybench.errors import ScenarioError, UsageError

_OVERRIDES = {
    "agents": "run.agents",
    "duration": "run.duration",
    "warmup": "run.warmup",
    "rate": "arrivals.rate",
    "seed": "run.seed",
    "hosts": "run.hosts",
    "agents_per_host": "run.agents_per_host",
    "shards": "run.shards",
    "chaos": "run.chaos",
}


def _common(f: Any) -> Any:
    options = [
        click.option("--agents", type=int, metavar="N", help="Number of simulated agents."),
        click.option("--duration", metavar="DURATION", help="Length of the load, e.g. 60s, 2m."),
        click.option("--warmup", metavar="DURATION", help="Warm-up: recorded, flagged, left out of SLA figures."),
        click.option("--rate", type=float, metavar="PER_S", help="Requests per agent per second (open loop)."),
        click.option("--seed", type=int, metavar="N", help="Seed of every random choice (classes, keys, think times)."),
        click.option("--hosts", type=int, metavar="N", help="Agent host actors (default: one per CPU in the cluster)."),
        click.option("--agents-per-host", type=int, metavar="N", help="Agents per host actor (1: one per agent)."),
        click.option("--shards", type=int, metavar="N", help="State shard actors."),
        click.option("--chaos", metavar="DURATION",
                     help="Kill a random agent host every DURATION of load (it restarts and resumes)."),
        click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                     help="Override any scenario key, e.g. --set stages.llm.max=120 (repeatable)."),
        click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
                     help="Results root; the run writes OUT/RUN_ID/."),
        click.option("--run-id", metavar="ID", help="Name of the run folder (refused if it exists)."),
        click.option("--address", metavar="ADDRESS", help="Ray cluster (auto, ray://host:10001, ...); default: local."),
        click.option("--ship-code", is_flag=True,
                     help="Send raybench to the cluster's workers in a runtime environment (not installed there)."),
        click.option("--metrics", is_flag=True,
                     help="Live Prometheus metrics via Ray's metrics agent (run.metrics = true; needs ray[default])."),
        click.option("--metrics-port", type=click.IntRange(1, 65535),
                     help="Port of a local Ray's metrics endpoint (implies --metrics; default: Ray's choice)."),
        click.option("--quiet", is_flag=True, help="No progress lines."),
        click.option("--baseline", metavar="NAME",
                     help="Compare with this saved baseline at the end (exit 1 on a regression)."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def _overrides(kw: dict[str, Any]) -> dict[str, Any]:
    out = {path: kw[name] for name, path in _OVERRIDES.items() if kw.get(name) is not None}
    for text in kw.get("assignments") or ():
        key, value = scn.parse_assignment(text)
        out[key] = value
    if kw.get("metrics") or kw.get("metrics_port") is not None:
        out["run.metrics"] = True
    return out


def verdict_line(result: Any, sc: scn.Scenario) -> str:
    """``SLA: PASS`` or ``SLA: FAIL``, saying what the verdict covers when the load did not run as
    planned (stopped early, or part of the fleet failed for good)."""
    from raybench.results.windows import load_span

    text = f"SLA: {'PASS' if result.verdict else 'FAIL'}"
    span = load_span(result.manifest, duration_s=sc.run.duration, warmup_s=sc.run.warmup)
    if span.stopped_early:
        text += f" (over {span.ran_s:.1f} s of {span.planned_s:g} s planned: the run was {result.status})"
    elif result.status == "degraded":
        text += " (covers only what ran: agent hosts failed for good and their agents stopped early)"
    elif result.status != "completed":
        text += f" (the run was {result.status})"
    return text


def _execute(sc: scn.Scenario, kw: dict[str, Any]) -> None:
    from raybench.engine import run as engine
    from raybench.judge.harness import format_harness, verdict_note
    from raybench.judge.summary import format_resources, format_summary
    from raybench.results import store

    if kw.get("run_id"):
        store.check_new_run_dir(kw["out"], kw["run_id"])
    if kw.get("metrics_port") is not None:
        from raybench.actors.metrics import check_port

        if kw.get("address"):
            raise UsageError("--metrics-port is for a local Ray; a cluster's nodes export on their own ports")
        check_port(kw["metrics_port"])
    baseline_dir = None
    if kw.get("baseline"):
        from raybench.judge import baselines

        baseline_dir = baselines.resolve(kw["out"], kw["baseline"])  # checked before the run starts
    from raybench.cli.progress import Printer

    echo = Printer(sys.stderr, quiet=bool(kw.get("quiet")))
    try:
        result = engine.execute(
            sc, out=kw["out"], run_id=kw.get("run_id"), address=kw.get("address"), progress=echo,
            ship_code=bool(kw.get("ship_code")), metrics_port=kw.get("metrics_port"),
        )  # fmt: skip
    finally:
        echo.close()
    m = result.manifest
    click.echo(f"{sc.name}: {sc.run.agents:,} agents, {sc.run.duration:g}s ({sc.run.warmup:g}s warm-up), "
               f"offered {m['offered_rate']:,.0f} req/s, status {result.status}")  # fmt: skip
    if m.get("error"):
        click.echo(f"error: {m['error']}")
    for line in format_summary(result.summary_rows):
        click.echo(line)
    for line in format_resources(result.resource_rows):
        click.echo(line)
    click.echo(format_harness(m.get("harness")))
    fuse = m.get("fuse", {})
    click.echo("FUSE: " + ("on" if fuse.get("enabled") else f"off ({fuse.get('reason', 'n/a')})"))
    if sc.run.metrics:
        live = m.get("metrics", {})
        where = f"exported at {live['url']}" if live.get("enabled") else f"off ({live.get('reason')})"
        click.echo(f"metrics: {where}")
    if result.sla_rows:
        from raybench.judge.grammar import parse_thresholds
        from raybench.judge.sla_table import format_table

        ths = parse_thresholds([r["expression"] for r in result.sla_rows])
        for line in format_table(result.sla_rows, ths):
            click.echo(line)
    if result.verdict is not None:
        click.echo(verdict_line(result, sc) + verdict_note(m.get("harness")))
    regression = inconclusive = False
    if baseline_dir is not None and result.status in ("completed", "aborted"):
        # The same comparison as `raybench compare` (windows chosen from the runs): a regression of
        # a primary metric fails the run; too few windows to show one makes it inconclusive.
        from raybench.judge.compare import compare_runs
        from raybench.judge.compare_table import comparison_path, format_comparison, write_comparison

        comparison = compare_runs(baseline_dir, result.run_dir)
        for line in format_comparison(comparison):
            click.echo(line)
        write_comparison(comparison, comparison_path(result.run_dir, comparison.baseline_run_id))
        regression = comparison.outcome == "regression"
        inconclusive = comparison.outcome == "inconclusive"
    click.echo(str(result.run_dir))
    if result.status == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if result.status in ("failed", "degraded"):
        sys.exit(EXIT_RUNTIME)
    failed = result.verdict is False or result.status == "aborted" or regression
    if failed:
        sys.exit(EXIT_FAILED)
    from raybench.cli import EXIT_INCONCLUSIVE

    # Inconclusive only where the run would otherwise pass: a failed SLA or regression says more.
    sys.exit(EXIT_INCONCLUSIVE if inconclusive else EXIT_OK)


@click.command()
@click.argument("scenario_file", required=False, type=click.Path(path_type=Path))
@click.option(
    "--preset", metavar="NAME", help=f"Built-in scenario ({', '.join(scn.preset_names())}); default lighthouse."
)
@_common
def run(scenario_file: Path | None, preset: str | None, **kw: Any) -> None:
    """Run a scenario (a TOML file or a preset) and write every request to Arrow files.

    Exit codes: 0 SLA held, 1 SLA failed, run aborted or (with --baseline) a regression, 2 bad
    input, 3 runtime failure (also: agent hosts failed for good), 4 the --baseline comparison was
    inconclusive, 130 interrupted (results so far are kept and valid).
    """
    if scenario_file is not None and preset is not None:
        raise ScenarioError("give a scenario file or --preset, not both")
    sc = scn.load(scenario_file, preset, _overrides(kw))
    _execute(sc, kw)


@click.command()
@_common
def smoke(**kw: Any) -> None:
    """The quick check: 1,000 agents for 20 s on a local Ray (the `smoke` preset), FUSE when available."""
    sc = scn.load(None, "smoke", _overrides(kw))
    _execute(sc, kw)
