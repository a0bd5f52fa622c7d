"""``raybench show RUN [--json]``: the summary of a finished run, recomputed from its files."""

from __future__ import annotations

from pathlib import Path

import click

from raybench.cli.params import json_option


@click.command()
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@json_option
def command(run: Path, as_json: bool) -> None:
    """Print the summary table of run folder RUN, computed from its Arrow files."""
    from raybench.judge import summary
    from raybench.results import store

    manifest = store.load_manifest(run)
    if manifest.get("kind") == "fuse":  # a `raybench fuse` folder: its per-operation table
        from fuse_bench.opstats import format_op_stats, op_stats

        ops = op_stats(store.read_table(run, "fuse_ops"))
        if as_json:
            from raybench.cli import jsonout

            jsonout.emit("show", jsonout.show_fuse(manifest, ops), 0)
            return
        click.echo(f"{manifest['run_id']}: raybench fuse, started {manifest['started_utc']}")
        for line in format_op_stats(ops):
            click.echo(line)
        return
    sc = manifest["scenario"]
    from raybench.config.scenario import Scenario

    scenario = Scenario.from_dict(sc)
    from raybench.results.windows import load_span

    requests = store.read_table(run, "requests")
    resources = store.read_table(run, "resources")
    span = load_span(manifest, duration_s=scenario.run.duration, warmup_s=scenario.run.warmup)
    rows = summary.summarize(requests, span.measured_s, end_ns=span.end_ns)
    growth = summary.resource_growth(resources)
    from raybench.engine.finalize import harness_section
    from raybench.judge.harness import format_harness

    section = manifest.get("harness")
    if section is None:  # a folder from before harness checks: judged from its files now
        section = harness_section(scenario, requests, resources, manifest)
    if as_json:
        from raybench.cli import jsonout

        body = jsonout.show_run(
            manifest, scenario_name=scenario.name, agents=scenario.run.agents, duration_s=scenario.run.duration,
            warmup_s=scenario.run.warmup, ran_s=span.ran_s, measured_s=span.measured_s,
            stopped_early=span.stopped_early, summary=rows, resources=growth, harness_section=section,
        )  # fmt: skip
        jsonout.emit("show", body, 0)
        return
    ran = f"{scenario.run.duration:g}s"
    if span.stopped_early:
        ran = f"{span.ran_s:.1f}s of {ran} planned"
    click.echo(
        f"{manifest['run_id']}: {scenario.name}, {scenario.run.agents:,} agents, {ran}, "
        f"status {manifest['status']}, started {manifest['started_utc']}"
    )
    for line in summary.format_summary(rows):
        click.echo(line)
    for line in summary.format_resources(growth):
        click.echo(line)
    click.echo(format_harness(section))
