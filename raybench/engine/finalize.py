"""Turning a run folder's rows into its final form: files, windows, summary, manifest.

Used at the end of every run and by ``raybench recover`` for a run that died: whatever streams are
left are rewritten into ``.arrow`` files, then ``windows.arrow`` and the manifest are computed from
the rows. ``started.json``, written when a run starts, holds what the manifest needs beyond the
rows (the resolved scenario, versions, the load's t0), so a folder can be finalized without the
process that started it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from raybench import __version__
from raybench.config.scenario import Scenario
from raybench.errors import ResultsError
from raybench.judge import summary
from raybench.results import store, windows
from raybench.results.schema import SCHEMA_VERSION, TABLES

STARTED = "started.json"


def utc(ns: int) -> str:
    """ISO 8601 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / 1e9)) + f".{(ns // 1_000_000) % 1000:03d}Z"


def started_manifest(
    sc: Scenario,
    run_id: str,
    started_ns: int,
    sla_settings: dict[str, Any] | None,
    scenario_capacity: list[dict[str, Any]],
) -> dict[str, Any]:
    """What ``started.json`` holds when a run starts (the load's times and the cluster are added
    when the load starts): the resolved scenario, its SLA settings and its own limits
    (:mod:`raybench.judge.capacity`), the versions of everything that ran."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_utc": utc(started_ns),
        "load_start_ns": None,
        "load_end_ns": None,
        "closed_loop": not sc.arrivals.open_loop,
        "offered_rate": sc.offered_rate,
        "expected_requests": sc.offered_rate * sc.run.duration,
        "scenario": sc.to_dict(),
        "sla_settings": sla_settings,
        "scenario_capacity": scenario_capacity,
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import pyarrow
    import ray

    return {
        "raybench": __version__,
        "ray": ray.__version__,
        "pyarrow": pyarrow.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def write_started(run_dir: Path, base: dict[str, Any]) -> None:
    store.write_json_atomic(Path(run_dir) / STARTED, base)


def read_started(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STARTED
    if not path.exists():
        raise ResultsError(f"{run_dir} has no {STARTED}: not a raybench run folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is not readable JSON: {exc}") from None


def _count_rows(path: Path) -> int:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def finalize_folder(
    run_dir: Path,
    *,
    status: str,
    error: str | None,
    extra: dict[str, Any] | None = None,
    sla_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Finish a run folder and write its manifest (atomically, last). Returns the manifest.

    Args:
        run_dir: the run folder (has ``started.json``).
        status: completed | interrupted | aborted | failed.
        error: what went wrong, or None.
        extra: more manifest keys (hosts, shards, experts, fuse, late_rows, flush_age_ms, sla
            verdict...); the ``harness`` section is judged from the rows and these.
        sla_rows: rows of ``sla.arrow`` to write, if any.
    """
    import pyarrow as pa

    run_dir = Path(run_dir)
    base = read_started(run_dir)
    sc = Scenario.from_dict(base["scenario"])
    for table in TABLES:  # streams the aggregator could not finalize (crash, recover)
        stream = run_dir / f"{table}.arrows"
        if stream.exists():
            store.finalize_stream(run_dir, table)
            stream.unlink()
    span = windows.load_span(
        {**base, **(extra or {})}, duration_s=sc.run.duration, warmup_s=sc.run.warmup, now_ns=time.time_ns()
    )
    requests = store.read_table(run_dir, "requests")
    win_rows = windows.compute(
        requests,
        base["run_id"],
        span.start_ns,
        sc.run.window,
        span.windows(sc.run.window),
        warmup_s=sc.run.warmup,
        end_ns=span.end_ns,
    )
    if win_rows:
        store.write_table(run_dir, "windows", pa.Table.from_pylist(win_rows))
    if sla_rows:
        store.write_table(run_dir, "sla", pa.Table.from_pylist(sla_rows))
    summary_rows = summary.summarize(requests, span.measured_s, end_ns=span.end_ns)
    resources = store.read_table(run_dir, "resources")
    resource_rows = summary.resource_growth(resources)
    files = {t: _count_rows(run_dir / f"{t}.arrow") for t in TABLES if (run_dir / f"{t}.arrow").exists()}
    manifest: dict[str, Any] = {
        **base,
        "status": status,
        "error": error,
        "ended_utc": utc(time.time_ns()),
        "files": files,
        "summary": summary_rows,
        "resources": resource_rows,
        "harness": harness_section(sc, requests, resources, extra or {}),
        **(extra or {}),
    }
    store.write_json_atomic(run_dir / store.MANIFEST, manifest)
    return manifest


def harness_section(sc: Scenario, requests: Any, resources: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``harness`` section: the one ``extra`` (or a manifest) holds already, else
    :func:`raybench.judge.harness.judge` of the rows and what the run's driver knew (``flush_age_ms``,
    ``late_rows``, ``lost_requests``; a recovered run lacks them: those bounds are listed as
    unchecked). The one place a run's harness is judged (``raybench show`` uses it for old folders)."""
    from raybench.judge import harness

    if "harness" in extra:
        return dict(extra["harness"])
    age = (extra.get("flush_age_ms") or {}).get("p99")
    verdict = harness.judge(
        requests,
        resources,
        flush_interval_s=sc.run.flush_interval,
        flush_age_p99_ms=float(age) if age is not None else None,
        late_rows=extra.get("late_rows"),
        lost_requests=int(extra.get("lost_requests") or 0),
    )
    return verdict.to_manifest()


def recover(run_dir: Path) -> dict[str, Any]:
    """Finalize the folder of a run that died (streams -> files, manifest with status ``failed``).

    Raises:
        ResultsError: not a run folder, or it already has a manifest.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run folder (no such directory)")
    if (run_dir / store.MANIFEST).exists():
        raise ResultsError(f"{run_dir} is already complete (it has a {store.MANIFEST}); nothing to recover")
    read_started(run_dir)
    return finalize_folder(
        run_dir,
        status="failed",
        error="recovered by `raybench recover` after the run's driver died",
        extra={"recovered": True},
    )
