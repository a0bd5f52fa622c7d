"""Capacity planning: run one scenario at several fleet sizes and find the largest that holds the SLA.

Method:

* Each size ``N`` is a full run (:func:`raybench.engine.run.execute`) of the scenario with ``agents = N``,
  written to ``<out>/<sweep_id>/agents-<N>/``; the sweep reuses one Ray (started once) for all sizes.
* A size *holds* when its run completed and every SLA threshold of the scenario passed (the run's
  own whole-run verdict). Without thresholds the verdict is unknown and no capacity is claimed.
* With ``search``, after the given sizes the sweep bisects between the largest size that held and
  the smallest larger size that did not, until they are within ``resolution`` (relative) of each
  other or ``max_runs`` runs were made.
* Growth: least-squares slopes against ``N`` of p99 latency, throughput, memory (the sum over all
  raybench processes of each one's peak RSS) and CPU (sum over processes of each one's median CPU %:
  a median, because a process's first psutil sample can be far off), from the
  rows each run wrote (latency and throughput as in ``raybench compare``, non-warm-up rows).
* The knee is attributed to what it hit (:func:`attribute`): the *harness*, when the broken size's
  run judged its own harness saturated (manifest ``harness``, :mod:`raybench.judge.harness`), or a
  resource of the *system*: one the scenario offers more than its capacity
  (manifest ``scenario_capacity``, :mod:`raybench.judge.capacity`), an expert queue whose wait p99 is
  longer than a mean consultation (:data:`EXPERT_QUEUE_P99_FACTOR`), a state shard or FUSE server
  out of CPU (the ``system`` list of the harness section).
* The sweep stops at harness saturation: no size at or above one whose harness saturated is run
  (its figures would measure raybench on this machine, not the system).
* ``sweep.arrow`` has one row per size, sorted by ``N``; its metadata holds the slopes and the
  recommendation.

The analysis (:func:`analyze`, :func:`next_search_size`, :func:`format_sweep`) is pure; only
:func:`run_sweep` touches Ray (through :mod:`raybench.engine.run`, imported when called).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raybench.errors import ResultsError, UsageError
from raybench.judge.capacity import format_rate
from raybench.judge.harness import SYSTEM_ROLES, reason_text
from raybench.results.schema import SCHEMA_VERSION
from raybench.results.store import write_arrow_file

if TYPE_CHECKING:
    import pyarrow as pa

    from raybench.config.scenario import Scenario

#: Name of the sweep table in its schema metadata.
TABLE = "sweep"
#: Default relative gap between a held and a broken size at which ``search`` stops.
DEFAULT_RESOLUTION = 0.1
#: Default largest number of runs in one sweep (given sizes plus search steps).
DEFAULT_MAX_RUNS = 12
#: Metrics whose growth with N is fitted: (attribute, unit per agent).
GROWTH = (("p99_ms", "ms"), ("throughput_rps", "req/s"), ("memory_mib", "MiB"), ("cpu_percent", "% CPU"))
#: An expert queue wait p99 longer than this many mean consultations means the pool did not keep up:
#: below its capacity a pool of many experts hardly queues (at 200 experts and 79% busy, Erlang C
#: gives a wait on under 1% of consultations); over it the queue grows for as long as the load lasts.
EXPERT_QUEUE_P99_FACTOR = 1.0
#: The ``limit`` of a size whose harness saturated.
HARNESS = "harness"


@dataclass(frozen=True)
class SweepPoint:
    """One fleet size: what its run measured (NaN where the run has no data)."""

    agents: int
    run_id: str
    status: str
    sla_pass: bool | None
    offered_rps: float
    throughput_rps: float
    p50_ms: float
    p99_ms: float
    error_rate: float
    memory_mib: float
    cpu_percent: float
    harness_status: str = "unknown"  # ok | saturated | unknown (a run folder without the section)
    limit: str = ""  # "harness", or the system resources at their limit ("expert pool, state shard"), or ""
    limit_detail: str = ""  # the evidence: bounds crossed, offered vs capacity, queue waits
    expert_queue_p99_ms: float = math.nan  # escalated non-warm-up requests' wait for an expert

    @property
    def held(self) -> bool | None:
        """True when the run completed and passed every threshold; None when there were none."""
        if self.status != "completed":
            return False
        return self.sla_pass


@dataclass(frozen=True)
class Analysis:
    """Slopes per agent, the largest size that held, the first that broke, and a recommendation."""

    slopes: dict[str, float]
    largest_held: int | None
    first_broken: int | None
    recommendation: str
    notes: tuple[str, ...] = field(default=())
    limit: str = ""  # what the knee hit (see SweepPoint.limit); "" when unknown or no knee
    harness_ceiling: int | None = None  # smallest size whose harness saturated (the sweep stopped there)


def parse_sizes(text: str) -> list[int]:
    """``'500,1000,2000'`` -> ``[500, 1000, 2000]`` (sorted, unique, each >= 1).

    Raises:
        UsageError: not a comma-separated list of positive integers.
    """
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--agents {text!r} is not a list of agent counts; use e.g. 500,1000,2000") from None
    if not sizes or sizes[0] < 1:
        raise UsageError(f"--agents {text!r}: give one or more agent counts, each at least 1")
    return sizes


def point_from_run(run_dir: Path, agents: int, status: str, sla_pass: bool | None) -> SweepPoint:
    """Measure one finished run folder for the sweep table.

    Raises:
        ResultsError: the folder cannot be read.
    """
    from raybench.judge.compare_data import load_run, metric_value
    from raybench.results import store

    manifest = store.load_manifest(run_dir)
    nan = math.nan
    try:
        run = load_run(run_dir)
        values = {m: metric_value(run, m) for m in ("throughput_rps", "p50_ms", "p99_ms", "error_rate")}
    except ResultsError:
        values = dict.fromkeys(("throughput_rps", "p50_ms", "p99_ms", "error_rate"), nan)
    harness_status, limit, detail, queue_p99 = _limits(run_dir, manifest)
    res = store.read_table(run_dir, "resources", columns=["node_id", "pid", "rss_bytes", "cpu_percent"])
    memory = cpu = nan
    if res.num_rows:
        import pyarrow as pa

        keys = res.select(["node_id", "pid"]).cast(pa.schema([("node_id", pa.string()), ("pid", pa.int32())]))
        per = keys.append_column("rss", res.column("rss_bytes")).append_column("cpu", res.column("cpu_percent"))
        grouped = per.group_by(["node_id", "pid"]).aggregate([("rss", "max"), ("cpu", "approximate_median")])
        memory = float(np.sum(grouped.column("rss_max").to_numpy())) / 2**20
        cpu = float(np.sum(grouped.column("cpu_approximate_median").to_numpy()))
    return SweepPoint(
        agents=agents,
        run_id=str(manifest.get("run_id", run_dir.name)),
        status=status,
        sla_pass=sla_pass,
        offered_rps=float(manifest.get("offered_rate") or nan),
        memory_mib=memory,
        cpu_percent=cpu,
        harness_status=harness_status,
        limit=limit,
        limit_detail=detail,
        expert_queue_p99_ms=queue_p99,
        **values,
    )


def _limits(run_dir: Path, manifest: dict[str, Any]) -> tuple[str, str, str, float]:
    """:func:`attribute` of a run folder, and its expert queue wait p99 (ms)."""
    import pyarrow.compute as pc

    from raybench.config.scenario import Scenario
    from raybench.judge import capacity
    from raybench.judge.stats import percentile
    from raybench.results import store

    sc = Scenario.from_dict(manifest["scenario"])
    found = manifest.get("scenario_capacity")
    if found is None:  # a folder from before the capacity check: the same computation now
        found = [f.to_dict() for f in capacity.findings(sc)]
    req = store.read_table(run_dir, "requests", columns=["warmup", "expert_queue_ms"])
    queue = req.filter(pc.invert(req.column("warmup"))).column("expert_queue_ms").drop_null()
    queue_p99 = percentile(queue.to_numpy(), 99.0) if len(queue) else math.nan
    status, limit, detail = attribute(manifest.get("harness"), found, queue_p99, sc.stages.expert.mean)
    return status, limit, detail, queue_p99


def attribute(
    harness: Mapping[str, Any] | None,
    capacity_findings: Sequence[Mapping[str, Any]],
    expert_queue_p99_ms: float,
    expert_mean_ms: float,
) -> tuple[str, str, str]:
    """What limited one size: ``(harness_status, limit, detail)``.

    ``limit`` is :data:`HARNESS` when the run's harness saturated (its figures include raybench's own
    delay, whatever else happened); else the system's resources at their limit, comma-separated:
    those the scenario offers more than their capacity, the expert pool when its queue wait p99 is
    over :data:`EXPERT_QUEUE_P99_FACTOR` mean consultations, the system's processes out of CPU;
    else "". ``detail`` gives the evidence of each (system signs too when the harness saturated).
    """
    status = str((harness or {}).get("status") or "unknown")
    system: dict[str, list[str]] = {}
    for f in capacity_findings:
        if f.get("over"):
            system.setdefault(str(f["resource"]), []).append(
                f"offered {format_rate(f['offered'])} {f['unit']} at the peak > capacity {format_rate(f['capacity'])}"
            )
    if expert_mean_ms > 0 and expert_queue_p99_ms > EXPERT_QUEUE_P99_FACTOR * expert_mean_ms:
        system.setdefault("expert pool", []).append(
            f"queue wait p99 {expert_queue_p99_ms:,.0f} ms > {EXPERT_QUEUE_P99_FACTOR * expert_mean_ms:,.0f} ms"
        )
    for r in (harness or {}).get("system") or []:
        name = SYSTEM_ROLES.get(str(r.get("role")), str(r.get("role") or "system process"))
        system.setdefault(name, []).append(f"CPU median {r.get('observed', 0):.0f}% of a core")
    sys_text = "; ".join(f"{name}: {', '.join(ev)}" for name, ev in system.items())
    if status == "saturated":
        detail = "; ".join(reason_text(r) for r in (harness or {}).get("reasons") or [])
        return status, HARNESS, detail + (f" (system: {sys_text})" if sys_text else "")
    return status, ", ".join(system), sys_text


def next_search_size(points: Sequence[SweepPoint], resolution: float = DEFAULT_RESOLUTION) -> int | None:
    """The next size to try when bisecting, or None when done.

    Bisects between the largest size that held below the smallest size that broke. Done when either
    is missing, or they are within ``resolution`` (relative to the held size) or 1 agent apart. Never
    proposes a size at or above the :func:`harness_ceiling`.
    """
    ceiling = harness_ceiling(points)
    broken = [p.agents for p in points if p.held is False]
    if not broken:
        return None
    held = [p.agents for p in points if p.held and p.agents < min(broken)]
    if not held:
        return None
    lo, hi = max(held), min(broken)
    if hi - lo <= max(1, resolution * lo):
        return None
    mid = (lo + hi) // 2
    return mid if ceiling is None or mid < ceiling else None


def harness_ceiling(points: Sequence[SweepPoint]) -> int | None:
    """The smallest size whose run judged its harness saturated (None: none did). Sizes at or above
    it are not run: their figures would measure raybench on this machine, not the system."""
    saturated = [p.agents for p in points if p.harness_status == "saturated"]
    return min(saturated) if saturated else None


def fit_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` against ``x`` over the finite pairs; NaN with fewer than 2 x values."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(xa) & np.isfinite(ya)
    if np.unique(xa[ok]).size < 2:
        return math.nan
    return float(np.polyfit(xa[ok], ya[ok], 1)[0])


def analyze(points: Sequence[SweepPoint]) -> Analysis:
    """Slopes, the SLA break and a recommendation consistent with the rows.

    Args:
        points: one per size, any order.

    Returns:
        The :class:`Analysis`. ``largest_held`` is the largest size that held with every smaller size
        holding too; ``first_broken`` is the smallest size above it that did not hold; ``limit`` is
        what that size hit (its :attr:`SweepPoint.limit`), or :data:`HARNESS` when every size held
        up to one whose harness saturated (where the sweep stops).
    """
    pts = sorted(points, key=lambda p: p.agents)
    slopes = {name: fit_slope([p.agents for p in pts], [getattr(p, name) for p in pts]) for name, _ in GROWTH}
    notes = []
    ceiling = harness_ceiling(pts)
    if any(p.held is None for p in pts):
        text = "the scenario has no SLA thresholds, so no capacity is claimed; add an [sla] table"
        if ceiling is not None:
            text += f"; raybench's harness saturated at {ceiling} agents, where the sweep stopped"
        return Analysis(slopes, None, None, text, limit=HARNESS if ceiling else "", harness_ceiling=ceiling)
    largest = first_broken = None
    for p in pts:
        if p.held:
            largest = p.agents
        else:
            first_broken = p.agents
            break
    later_held = [p.agents for p in pts if first_broken is not None and p.agents > first_broken and p.held]
    if later_held:
        notes.append(
            f"{', '.join(map(str, later_held))} agents held again above {first_broken}: the SLA verdict is noisy "
            "near the limit; repeat those sizes"
        )
    limit = ""
    if largest is None:
        text = f"no size held the SLA, not even the smallest ({pts[0].agents} agents); try smaller fleets"
        text += _why(pts[0])
        limit = pts[0].limit
    elif first_broken is None and ceiling is not None:
        sat = next(p for p in pts if p.agents == ceiling)
        text = (
            f"every size held the SLA up to {largest} agents, but raybench's harness saturated at {ceiling} agents "
            f"({sat.limit_detail}), so the sweep stopped there: larger sizes would measure raybench on this "
            "machine, not the system; more cores for the harness would find the system's limit"
        )
        limit = HARNESS
    elif first_broken is None:
        text = f"every size held the SLA up to {largest} agents; the limit is above that, try larger sizes"
    else:
        best = next(p for p in pts if p.agents == largest)
        broken = next(p for p in pts if p.agents == first_broken)
        text = (
            f"run at most {largest} agents on this cluster: the largest size that held every SLA threshold "
            f"(p99 {best.p99_ms:.1f} ms, {best.throughput_rps:.0f} req/s); it broke at {first_broken} agents"
        ) + _why(broken)
        limit = broken.limit
    if ceiling is not None and limit != HARNESS:
        notes.append(f"raybench's harness saturated at {ceiling} agents: figures from there up measure raybench")
    return Analysis(slopes, largest, first_broken, text, tuple(notes), limit, ceiling)


def _why(p: SweepPoint) -> str:
    """What a broken size hit, as the end of the recommendation."""
    if p.limit == HARNESS:
        return (
            f", where raybench's harness saturated ({p.limit_detail}): that knee is the harness's on this "
            "machine, not the system's"
        )
    if p.limit:
        return f", at the system's {p.limit} ({p.limit_detail}): the scenario's own limit, not this machine's"
    if p.harness_status == "ok":
        return (
            ", with no harness bound crossed and no scenario resource at its limit: see that run's stage times "
            "(`raybench report`)"
        )
    return ""


def sweep_schema() -> pa.Schema:
    """Arrow schema of ``sweep.arrow`` (metadata: ``schema_version``, ``table``)."""
    import pyarrow as pa

    f = pa.float64()
    fields = [
        pa.field("agents", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("sla_pass", pa.bool_()),
        *(pa.field(name, f) for name in ("offered_rps", "throughput_rps", "p50_ms", "p99_ms", "error_rate")),
        pa.field("memory_mib", f),
        pa.field("cpu_percent", f),
        pa.field("harness_status", pa.string(), nullable=False),
        pa.field("limit", pa.string()),
        pa.field("limit_detail", pa.string()),
        pa.field("expert_queue_p99_ms", f),
    ]
    meta = {b"schema_version": str(SCHEMA_VERSION).encode(), b"table": TABLE.encode()}
    return pa.schema(fields, metadata=meta)


def write_sweep(path: Path, points: Sequence[SweepPoint], analysis: Analysis) -> Path:
    """Write ``sweep.arrow`` (rows sorted by agents; slopes and recommendation in the metadata),
    through a temporary file and ``os.replace``."""
    import pyarrow as pa

    schema = sweep_schema()
    rows = [asdict(p) for p in sorted(points, key=lambda p: p.agents)]
    cols = {name: [_cell(r[name], schema.field(name).nullable) for r in rows] for name in schema.names}
    extra = {
        b"slopes_per_agent": json.dumps({k: (None if math.isnan(v) else v) for k, v in analysis.slopes.items()}),
        b"recommendation": analysis.recommendation,
        b"limit": analysis.limit,
        b"harness_ceiling": "" if analysis.harness_ceiling is None else str(analysis.harness_ceiling),
    }
    table = pa.Table.from_pydict(cols, schema=schema.with_metadata({**schema.metadata, **extra}))
    return write_arrow_file(path, table)


def _cell(value: Any, nullable: bool) -> Any:
    """A table cell: NaN, and an empty string in a nullable column, are null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return None if nullable and value == "" else value


def format_sweep(points: Sequence[SweepPoint], analysis: Analysis) -> list[str]:
    """Lines: one per size, the slopes, the recommendation."""
    header = ("agents", "status", "SLA", "offered", "throughput", "p50", "p99", "errors", "memory", "CPU", "harness",
              "limit")  # fmt: skip
    rows = [header]
    for p in sorted(points, key=lambda p: p.agents):
        sla = "-" if p.sla_pass is None else ("pass" if p.sla_pass else "FAIL")
        rows.append((
            str(p.agents), p.status, sla, f"{p.offered_rps:.0f}/s", f"{p.throughput_rps:.0f}/s",
            f"{p.p50_ms:.1f}ms", f"{p.p99_ms:.1f}ms", f"{p.error_rate:.2%}", f"{p.memory_mib:.0f}MiB",
            f"{p.cpu_percent:.0f}%", p.harness_status, p.limit or "-",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    growth = ", ".join(
        f"{name} {analysis.slopes[name] * 1000:+.3g} {unit} per 1,000 agents"
        for name, unit in GROWTH
        if not math.isnan(analysis.slopes[name])
    )
    if growth:
        lines.append(f"growth (least squares): {growth}")
    lines += [f"note: {n}" for n in analysis.notes]
    lines.append(f"recommendation: {analysis.recommendation}")
    return lines


@dataclass(frozen=True)
class SweepResult:
    """The sweep folder, its points and their analysis."""

    sweep_dir: Path
    points: tuple[SweepPoint, ...]
    analysis: Analysis


def run_sweep(
    scenario: Scenario,
    sizes: Sequence[int],
    *,
    out: Path,
    sweep_id: str | None = None,
    search: bool = False,
    resolution: float = DEFAULT_RESOLUTION,
    max_runs: int = DEFAULT_MAX_RUNS,
    address: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Run ``scenario`` at each size (and, with ``search``, bisect), write ``sweep.arrow``.

    Args:
        scenario: the scenario; only ``agents`` changes between runs.
        sizes: agent counts to run, in any order.
        out: results root; the sweep writes ``out/<sweep_id>/`` (refused if it exists).
        sweep_id: the sweep folder's name (default: a new run id).
        search: bisect between the largest size that held and the smallest that broke.
        resolution: stop bisecting when the two are this close (relative).
        max_runs: most runs in total.
        address: Ray cluster address; default a local Ray.
        progress: receives progress lines.

    Returns:
        The :class:`SweepResult`.

    Raises:
        UsageError: the sweep folder exists, or no sizes.
        RayFailure: Ray could not be started or reached.
    """
    from raybench.engine import run as engine
    from raybench.judge import capacity
    from raybench.results import store

    if not sizes:
        raise UsageError("give at least one agent count")
    say = progress or (lambda line: None)
    sweep_id = sweep_id or store.new_run_id()
    sweep_dir = store.check_new_run_dir(out, sweep_id)
    owns_ray = engine.connect(address)
    store.create_run_dir(out, sweep_id)
    points: list[SweepPoint] = []
    queue = sorted(set(sizes))
    try:
        while queue and len(points) < max_runs:
            n = queue.pop(0)
            say(f"sweep: {n} agents")
            sized = scenario.with_overrides({"run.agents": n})
            for over in (f for f in capacity.findings(sized) if f.over):
                say(f"sweep: {n} agents: {capacity.format_finding(over)}")
            result = engine.execute(sized, out=sweep_dir, run_id=f"agents-{n:06d}", address=address)
            point = point_from_run(result.run_dir, n, result.status, result.verdict)
            points.append(point)
            if result.status == "interrupted":
                break
            if point.harness_status == "saturated":
                skipped = [m for m in queue if m >= n]
                queue = [m for m in queue if m < n]
                say(f"sweep: raybench's harness saturated at {n} agents ({point.limit_detail}); "
                    f"no larger size is run{f' (skipped: {skipped})' if skipped else ''}")  # fmt: skip
            if not queue and search:
                nxt = next_search_size(points, resolution)
                if nxt is not None and all(p.agents != nxt for p in points):
                    queue.append(nxt)
    finally:
        if owns_ray:
            import ray

            ray.shutdown()
    analysis = analyze(points)
    write_sweep(sweep_dir / "sweep.arrow", points, analysis)
    return SweepResult(sweep_dir, tuple(sorted(points, key=lambda p: p.agents)), analysis)
