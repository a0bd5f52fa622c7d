"""``raybench baseline save RUN --name NAME`` and ``raybench baseline list``: named reference runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def command() -> None:
    """Save and list named baselines (<out>/.baselines/NAME.json) for `compare --baseline NAME`."""


@command.command("save")
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--name", required=True, metavar="NAME", help="Baseline name: letters, digits, '.', '_', '-'.")
@click.option(
    "--out",
    "root",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Results root holding .baselines (default: RUN's parent).",
)
@click.option("--force", is_flag=True, help="Replace an existing baseline of that name.")
def save(run: Path, name: str, root: Path | None, force: bool) -> None:
    """Save run folder RUN as baseline NAME (never replaces one without --force)."""
    from raybench.judge import baselines

    baseline = baselines.save(run, name, root=root, force=force)
    click.echo(f"baseline {baseline.name!r} -> run {baseline.run_id} ({baseline.run_dir})")
    click.echo(str(baseline.path))


@command.command("list")
@click.option(
    "--out",
    "root",
    metavar="DIR",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Results root.",
)
def list_(root: Path) -> None:
    """List the baselines saved under the results root."""
    from raybench.judge import baselines

    for line in baselines.format_baselines(baselines.list_baselines(root)):
        click.echo(line)
