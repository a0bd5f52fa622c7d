"""``raybench fuse``: FUSE against native on this machine, per operation, without Ray.

Runs :func:`fuse_bench.vs_native.run_comparison`, writes its rows as ``fuse_ops.arrow`` (the
result schema applied here) and ``manifest.json`` into a new run folder, prints the per-op table
and, last, the run folder's path.
Exit codes: 0 done; 2 bad flags (one line); 3 FUSE unavailable (the probe's reason, one line).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from raybench.cli.params import DURATION
from raybench.errors import UsageError


class _OneLineErrors(click.Command):
    """Turn click's own parse errors (unknown flag, missing value) into raybench's one-line
    UsageError, so that every bad flag gives one line and exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise UsageError(exc.format_message()) from None


def _clean(value: Any) -> Any:
    # JSON has no NaN: missing figures are null.
    return None if isinstance(value, float) and math.isnan(value) else value


@click.command(cls=_OneLineErrors)
@click.option("--workers", default=32, show_default=True, metavar="N", help="Concurrent closed-loop workers.")
@click.option(
    "--duration", type=DURATION, default="10s", show_default=True, help="Timed load per target, e.g. 10s, 500ms."
)
@click.option(
    "--mix",
    default=None,
    metavar="OP=WEIGHT,...",
    help="Operation weights over stat, read, write, create, unlink, readdir, rename, fsync.",
)
@click.option("--backend", default="fusepy", show_default=True, metavar="fusepy|mfusepy",
              help="fusepy (libfuse 2) or mfusepy (libfuse 3).")  # fmt: skip
@click.option("--mode", default="memory", show_default=True, metavar="memory|passthrough",
              help="memory or passthrough (over the native folder).")  # fmt: skip
@click.option("--processes", default=0, show_default=True, metavar="N",
              help="Spread workers over N processes (0: threads).")  # fmt: skip
@click.option(
    "--files", default=16, show_default=True, metavar="N", help="Files in the (shared or per-worker) file set."
)
@click.option("--file-size", default=4096, show_default=True, metavar="BYTES", help="Bytes per file and per write.")
@click.option("--private", is_flag=True, help="One file set per worker instead of one shared set.")
@click.option("--attr-timeout", type=DURATION, default="0s", show_default=True, help="Kernel attribute cache time.")
@click.option("--entry-timeout", type=DURATION, default="0s", show_default=True, help="Kernel name cache time.")
@click.option(
    "--single-threaded/--multithreaded",
    default=True,
    show_default=True,
    help="libfuse's loop: one thread (default: the Python handlers hold the GIL anyway) or many.",
)
@click.option("--direct-io", is_flag=True, help="Bypass the kernel page cache for file data.")
@click.option(
    "--mounts",
    default=1,
    show_default=True,
    metavar="N",
    help="Filesystem processes: spread the workers over N mounts (1-16).",
)
@click.option("--seed", default=0, show_default=True, metavar="N", help="Seed of the workers' choices.")
@click.option("--out", "out", default="results", show_default=True, metavar="DIR", type=click.Path(path_type=Path),
              help="Results root.")  # fmt: skip
@click.option("--run-id", default=None, metavar="ID", help="Run folder name (default: timestamp + random suffix).")
def command(
    workers: int,
    duration: float,
    mix: str | None,
    backend: str,
    mode: str,
    processes: int,
    files: int,
    file_size: int,
    private: bool,
    attr_timeout: float,
    entry_timeout: float,
    single_threaded: bool,
    direct_io: bool,
    mounts: int,
    seed: int,
    out: Path,
    run_id: str | None,
) -> None:
    """Time file operations on a FUSE mount and on a native folder, side by side."""
    from fuse_bench.mount import BACKENDS, MODES
    from fuse_bench.opstats import format_op_stats, op_stats
    from fuse_bench.vs_native import MountOptions, run_comparison
    from fuse_bench.workload import DEFAULT_MIX, Workload, parse_mix
    from raybench.errors import nearest
    from raybench.results import schema, store

    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r} is not known{nearest(backend, BACKENDS)}; use fusepy or mfusepy")
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r} is not known{nearest(mode, MODES)}; use memory or passthrough")
    workload = Workload(
        workers=workers,
        duration_s=duration,
        mix=parse_mix(mix) if mix is not None else dict(DEFAULT_MIX),
        file_size=file_size,
        files=files,
        shared=not private,
        processes=processes,
        seed=seed,
    )
    options = MountOptions(
        backend=backend,
        mode=mode,
        attr_timeout=attr_timeout,
        entry_timeout=entry_timeout,
        multithreaded=not single_threaded,
        direct_io=direct_io,
        mounts=mounts,
    )
    run_id = store.check_run_id(run_id) if run_id else store.new_run_id()
    store.check_new_run_dir(out, run_id)  # refuse before spending the run's time, not after

    params = dict(click.get_current_context().params)
    started = time.time()
    from fuse_bench.mount import probe

    reason = probe(backend)
    if reason is not None:  # one line and exit 3, before any progress output
        from raybench.errors import FuseUnavailable

        raise FuseUnavailable(reason)
    on = "the FUSE mount" if mounts == 1 else f"{mounts} FUSE mounts (one filesystem process each)"
    click.echo(
        f"FUSE vs native: {workload.workers} workers, {workload.duration_s:g}s on {on}, then "
        f"{workload.duration_s:g}s on a native folder ({backend})",
        err=True,
    )
    result = _with_progress(lambda: run_comparison(workload, options, run_id=run_id), 2 * workload.duration_s)
    ops = schema.conform("fuse_ops", result.table)
    rows = op_stats(ops)

    run_dir = store.create_run_dir(out, run_id)
    store.write_table(run_dir, "fuse_ops", ops)
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "kind": "fuse",
        "run_id": run_id,
        "status": "ok",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in params.items()},
        **result.info,
        "rows": ops.num_rows,
        "summary": [{k: _clean(v) for k, v in r.items()} for r in rows],
    }
    store.write_json_atomic(run_dir / store.MANIFEST, manifest)

    click.echo(
        f"FUSE ({backend}, {mode}, attr/entry timeout {options.attr_timeout:g}/{options.entry_timeout:g}s) "
        f"vs native ({result.info['native_dir_fstype']}): {workers} workers, {workload.duration_s:g}s each"
    )
    for line in format_op_stats(rows):
        click.echo(line)
    click.echo(str(run_dir))


def _with_progress(work: Any, expected_s: float) -> Any:
    """Run ``work()`` while a status line shows the elapsed and expected time (in place on a
    terminal, a line every few seconds in a log)."""
    import threading

    from raybench.cli.progress import Printer

    printer = Printer(sys.stderr)
    done = threading.Event()
    started = time.time()

    def tick() -> None:
        every = 1.0 if printer.tty else 5.0
        while not done.wait(every):
            elapsed = time.time() - started
            printer.status(f"[{elapsed:6.1f}s] FUSE vs native, about {max(0.0, expected_s - elapsed):.0f}s left")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        return work()
    finally:
        done.set()
        thread.join()
        printer.close()
