"""``raybench show RUN``: the summary of a finished run, recomputed from its files."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def command(run_dir: Path) -> None:
    """Print the summary table of a run folder, computed from its Arrow files."""
    from raybench.judge import summary
    from raybench.results import store

    manifest = store.load_manifest(run_dir)
    if manifest.get("kind") == "fuse":  # a `raybench fuse` folder: its per-operation table
        from fuse_bench.opstats import format_op_stats, op_stats

        click.echo(f"{manifest['run_id']}: raybench fuse, started {manifest['started_utc']}")
        for line in format_op_stats(op_stats(store.read_table(run_dir, "fuse_ops"))):
            click.echo(line)
        return
    sc = manifest["scenario"]
    from raybench.config.scenario import Scenario

    scenario = Scenario.from_dict(sc)
    from raybench.results.windows import load_span

    requests = store.read_table(run_dir, "requests")
    span = load_span(manifest, duration_s=scenario.run.duration, warmup_s=scenario.run.warmup)
    ran = f"{scenario.run.duration:g}s"
    if span.stopped_early:
        ran = f"{span.ran_s:.1f}s of {ran} planned"
    click.echo(
        f"{manifest['run_id']}: {scenario.name}, {scenario.run.agents:,} agents, {ran}, "
        f"status {manifest['status']}, started {manifest['started_utc']}"
    )
    for line in summary.format_summary(summary.summarize(requests, span.measured_s, end_ns=span.end_ns)):
        click.echo(line)
    for line in summary.format_resources(summary.resource_growth(store.read_table(run_dir, "resources"))):
        click.echo(line)
    from raybench.engine.finalize import harness_section
    from raybench.judge.harness import format_harness

    section = manifest.get("harness")
    if section is None:  # a folder from before harness checks: judged from its files now
        section = harness_section(scenario, requests, store.read_table(run_dir, "resources"), manifest)
    click.echo(format_harness(section))
