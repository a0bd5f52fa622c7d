"""``raybench recover RUN``: finalize the folder of a run whose driver died."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def command(run_dir: Path) -> None:
    """Turn a dead run's Arrow streams into files and write its manifest (status failed)."""
    from raybench.engine.finalize import recover

    manifest = recover(run_dir)
    rows = manifest["files"].get("requests", 0)
    click.echo(f"recovered {rows:,} request rows; status {manifest['status']}")
    click.echo(str(run_dir))
