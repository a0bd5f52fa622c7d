"""``raybench report RUN [CURRENT] [-o report.html] [--force]``: the HTML report of a run folder, or
of a baseline (RUN) and a current run (CURRENT) side by side.

Default output: ``RUN/report.html``; with CURRENT, ``CURRENT/report-vs-<RUN's folder name>.html``.
An existing file is refused (exit 2) unless ``--force``. The file is written to a temporary name and
renamed into place; the path is printed on the last line. Exit codes: 0 written; 2 bad folder,
existing output, or matplotlib missing (the ``report`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from raybench.errors import UsageError


def default_output(run: Path, current: Path | None) -> Path:
    """Where the report goes when ``-o`` is not given."""
    if current is None:
        return Path(run) / "report.html"
    return Path(current) / f"report-vs-{Path(run).resolve().name}.html"


def write_text_atomic(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``; refuse an existing
    file unless ``force``."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists already; use --force to replace it or -o to choose another file")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@click.command("report")
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@click.argument("current", metavar="[CURRENT]", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", metavar="FILE", type=click.Path(path_type=Path), default=None,
              help="Output HTML file (default: RUN/report.html, or CURRENT/report-vs-RUN.html).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def command(run: Path, current: Path | None, output: Path | None, force: bool) -> None:
    """Write an HTML report of run folder RUN, or of baseline RUN against CURRENT side by side.

    Needs matplotlib, the report extra: pip install 'raybench[report]'.
    """
    from raybench.report import plots

    plots.require()  # without matplotlib: one line naming the extra, before anything else
    from raybench.report.comparison import build_comparison
    from raybench.report.single import build_report

    path = output if output is not None else default_output(run, current)
    if path.exists() and not force:  # checked first: no minutes of plotting before a refusal
        raise UsageError(f"{path} exists already; use --force to replace it or -o to choose another file")
    html = build_report(run) if current is None else build_comparison(run, current)
    write_text_atomic(path, html, force=force)
    click.echo(str(path))
