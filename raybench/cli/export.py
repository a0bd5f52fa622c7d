"""``raybench export RUN --format parquet|csv [-o DIR] [--force]``: every result table of a run folder
as Parquet or CSV (see :mod:`raybench.results.export`). Prints each file written, one per line.
Existing files are refused (exit 2, nothing written) unless ``--force``, which replaces them.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(["parquet", "csv"]), help="Output format.")
@click.option("-o", "--output", "out_dir", metavar="DIR", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the run folder; created if missing).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace output files that exist already.")
def command(run: Path, fmt: str, out_dir: Path | None, force: bool) -> None:
    """Export the result tables of run folder RUN as Parquet or CSV files."""
    from raybench.results.export import export

    for path in export(run, fmt, out_dir, force=force):
        click.echo(str(path))
