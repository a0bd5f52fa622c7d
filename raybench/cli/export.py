"""``raybench export RUN --format parquet|csv [-o DIR]``: every result table of a run folder as
Parquet or CSV (see :mod:`raybench.results.export`). Prints each file written, one per line. Existing files
are never overwritten (exit 2, nothing written).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(["parquet", "csv"]), help="Output format.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the run folder).")  # fmt: skip
def command(run: Path, fmt: str, out_dir: Path | None) -> None:
    """Export the result tables of RUN as Parquet or CSV files."""
    from raybench.results.export import export

    for path in export(run, fmt, out_dir):
        click.echo(str(path))
