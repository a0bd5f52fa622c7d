"""``raybench sla RUN``: re-evaluate SLA thresholds offline from a run folder's files.

Thresholds and monitor settings default to those recorded in the run's manifest
(``manifest["scenario"]["sla"]``); ``--sla`` replaces the thresholds, ``--window`` the window. The
verdicts come from :func:`raybench.judge.sla_replay.evaluate_run`, the same code the live monitor
runs. Nothing is written into the run folder unless ``--write`` (then ``sla.arrow``, atomically).
``--json`` prints one JSON document instead of the table (keys: ``results/README.md``).

Exit code: 0 every threshold passes, 1 any fails (no data is a failure, unless the threshold's stage
is off in the run's scenario: then it is not applicable), 2 bad expression or folder.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from raybench.cli.params import POSITIVE_DURATION, json_option
from raybench.errors import ResultsError, ScenarioError, UsageError
from raybench.judge.sla_table import format_table

_JUDGING_KEYS = ("thresholds", "window", "initial_delay", "grace_windows", "counting", "settle_windows")


@click.command("sla")
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--sla", "exprs", multiple=True, metavar="EXPR", help="Threshold, e.g. 'p99<100ms' (repeatable).")
@click.option("--window", type=POSITIVE_DURATION, default=None, help="Window length (default: the run's, else 30s).")
@click.option("--write", is_flag=True, help="Write sla.arrow into the run folder (atomically).")
@json_option
@click.pass_context
def command(
    ctx: click.Context, run: Path, exprs: tuple[str, ...], window: float | None, write: bool, as_json: bool
) -> None:
    """Re-evaluate SLA thresholds of run folder RUN from its files."""
    import pyarrow as pa

    from raybench.config.sla import parse_sla_config
    from raybench.judge.grammar import parse_thresholds
    from raybench.judge.sla_replay import evaluate_run
    from raybench.results import schema, store

    manifest = store.load_manifest(run)
    recorded = (manifest.get("scenario") or {}).get("sla") or {}
    if not isinstance(recorded, dict):
        raise ResultsError(f"{run}: manifest scenario.sla is not a table")
    # Only what judges a window matters here; alerts, rollback and actions are the live run's.
    judging = {k: recorded[k] for k in _JUDGING_KEYS if k in recorded}
    try:
        cfg = parse_sla_config(judging, resolve_secrets=False, where="manifest scenario.sla")
    except ScenarioError as exc:
        raise ResultsError(f"{run}: {exc}") from None
    thresholds = parse_thresholds(list(exprs)) if exprs else cfg.thresholds
    if not thresholds:
        raise UsageError(f"{run} records no SLA thresholds; give some with --sla 'p99<100ms'")
    window_s = cfg.window if window is None else window
    t0 = manifest.get("load_start_ns")
    if not isinstance(t0, int):
        raise ResultsError(f"{run}: manifest has no load_start_ns (the load start, UTC ns)")
    end = manifest.get("load_end_ns")
    stopped = manifest.get("load_stopped_ns")  # a load stopped early: its windows end there
    if isinstance(stopped, int) and isinstance(end, int):
        end = min(end, stopped)
    stages_off: dict[str, str] = {}
    warmup_s = 0.0
    if isinstance(manifest.get("scenario"), dict):
        from raybench.config.scenario import Scenario

        # the stages need the load's tables only (the recorded [sla] table is redacted)
        load_tables = {k: v for k, v in manifest["scenario"].items() if k != "sla"}
        with contextlib.suppress(ScenarioError):  # unknown stages: every threshold is judged
            loaded = Scenario.from_dict(load_tables)
            stages_off, warmup_s = loaded.stages_off(), loaded.run.warmup
    requests = store.read_table(run, "requests")
    resources = store.read_table(run, "resources")
    rows, _violations = evaluate_run(
        thresholds,
        requests,
        resources,
        t0_ns=t0,
        window_s=window_s,
        end_ns=end if isinstance(end, int) else None,
        initial_delay_s=cfg.initial_delay,
        grace_windows=cfg.grace_windows,
        counting=cfg.counting,
        settle_windows=cfg.settle_windows,
        run_id=str(manifest.get("run_id", "")),
        stages_off=stages_off,
        warmup_s=warmup_s,
    )
    written = None
    if write:
        names = schema.column_names("sla")
        data = pa.Table.from_pylist([{k: r[k] for k in names} for r in rows], schema=schema.schema("sla", final=False))
        store.write_table(run, "sla", data)
        written = Path(run) / "sla.arrow"
    failed = sum(1 for r in rows if not r["passed"])
    off = sum(1 for r in rows if not r["applicable"])
    code = 1 if failed else 0
    if as_json:
        from raybench.cli import jsonout

        by_id = {t.id: t for t in thresholds}
        body = {
            "run_id": manifest.get("run_id"),
            "verdict": "fail" if failed else "pass",
            "thresholds_passed": len(rows) - failed - off,
            "thresholds_failed": failed,
            "thresholds_not_applicable": off,
            "window_ms": jsonout.ms(window_s),
            "initial_delay_ms": jsonout.ms(cfg.initial_delay),
            "grace_windows": cfg.grace_windows,
            "counting": cfg.counting,
            "settle_windows": cfg.settle_windows,
            "warmup_ms": jsonout.ms(warmup_s),
            "thresholds": [jsonout.sla_row(r, by_id[r["id"]], t0) for r in rows],
            "sla_table": written,
        }
        jsonout.emit("sla", body, code)
        ctx.exit(code)
    for line in format_table(rows, thresholds):
        click.echo(line)
    if written is not None:
        click.echo(f"wrote {written}")
    note = f" ({off} not applicable: their stage is off)" if off else ""
    click.echo(f"{len(rows) - failed - off}/{len(rows) - off} thresholds pass{note}")
    ctx.exit(code)
