"""The ``raybench`` command line: a click group; each command is a module of this package, loaded on first use.

Exit codes: 0 pass; 1 SLA failed or regression found; 2 usage or scenario error (one line, no
traceback); 3 runtime failure (Ray, FUSE, disk) or an unexpected error; 4 inconclusive (a comparison
whose data cannot reach its significance level); 130 interrupted (results so far kept and valid).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import click

from fuse_bench import errors as fuse_errors
from raybench import __version__
from raybench.errors import RuntimeFailure, UsageError

#: fuse_bench's errors mean to the CLI what raybench's of the same name do (exit codes 2 and 3).
_USAGE_ERRORS = (UsageError, fuse_errors.UsageError)
_RUNTIME_FAILURES = (RuntimeFailure, fuse_errors.RuntimeFailure)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RUNTIME, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

#: command name -> module:attribute in this package; loaded on first use.
COMMANDS: dict[str, str] = {
    "run": "raybench.cli.run:run",
    "smoke": "raybench.cli.run:smoke",
    "show": "raybench.cli.show:command",
    "recover": "raybench.cli.recover:command",
    "fuse": "raybench.cli.fuse:command",
    "sla": "raybench.cli.sla:command",
    "compare": "raybench.cli.compare:command",
    "baseline": "raybench.cli.baseline:command",
    "history": "raybench.cli.history:command",
    "report": "raybench.cli.report:command",
    "export": "raybench.cli.export:command",
    "sweep": "raybench.cli.sweep:command",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr or "command")

    def invoke(self, ctx: click.Context) -> Any:
        # Map raybench's own errors (and fuse_bench's) to one line and an exit code here, not in
        # main(), so that click's CliRunner (used by the tests) sees exactly what a user sees.
        try:
            return super().invoke(ctx)
        except _USAGE_ERRORS as exc:
            click.echo(f"raybench: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
        except _RUNTIME_FAILURES as exc:
            click.echo(f"raybench: failed: {exc}", err=True)
            ctx.exit(EXIT_RUNTIME)
        except KeyboardInterrupt:
            click.echo("raybench: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (`raybench show RUN | head -1`): nothing more to say, as Unix
            # tools do. Later writes and the interpreter's final flush go to /dev/null.
            _silence_stdout()
            ctx.exit(EXIT_OK)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group given no command: its help
        except click.exceptions.UsageError as exc:
            # click's own parse errors (unknown option, missing argument, a value that is not an
            # integer): one line and exit 2 as well, and where to look.
            msg = " ".join(exc.format_message().split())
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"raybench: error: {msg}{where}", err=True)
            ctx.exit(EXIT_USAGE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            path = write_crash_report(exc)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            click.echo(
                f"raybench: unexpected error: {type(exc).__name__}: {first} (a bug in raybench; "
                f"the full traceback is in {path})",
                err=True,
            )
            ctx.exit(EXIT_RUNTIME)


def write_crash_report(exc: BaseException) -> Path:
    """Write ``exc``'s traceback, with the command line, to a new file in the temporary folder."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    fd, name = tempfile.mkstemp(prefix=f"raybench-error-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"raybench {__version__}: {' '.join(sys.argv)}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    return Path(name)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (click's test runner)
        pass


@click.group(cls=_LazyGroup, name="raybench", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="raybench")
def cli() -> None:
    """raybench: does your agent-coordination layer hold its SLA at N agents?"""


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="raybench")


if __name__ == "__main__":
    main()
