"""``raybench recover RUN``: finalize the folder of a run whose driver died."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
def command(run: Path) -> None:
    """Turn the Arrow streams of dead run RUN into files and write its manifest (status failed)."""
    from raybench.engine.finalize import recover

    manifest = recover(run)
    rows = manifest["files"].get("requests", 0)
    click.echo(f"recovered {rows:,} request rows; status {manifest['status']}")
    click.echo(str(run))
