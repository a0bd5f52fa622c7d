"""Scenarios: what a run offers to the coordination layer, as one frozen, validated value.

A scenario comes from a TOML file or a built-in preset (``raybench/presets/*.toml``), then
command-line overrides (``--agents``, ``--set stages.llm.max=120`` ...) are applied to the raw
tables *before* validation, so every input goes through the same checks. ``Scenario.to_dict()``
gives the resolved scenario in the same layout as the TOML input; it is written into the manifest
and ``Scenario.from_dict`` reads it back, so a run can be repeated from its own manifest.

Every invalid input raises :class:`~raybench.errors.ScenarioError` with the key, the value and
what is allowed (the nearest valid key for a typo). Presets may ``extends = "other"``: the other
preset's tables are deep-merged under this one's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from raybench.config import checks
from raybench.config.files import apply_overrides, load_raw
from raybench.config.files import parse_assignment as parse_assignment  # re-exported for the CLI
from raybench.config.files import preset_names as preset_names  # re-exported for the CLI
from raybench.errors import ScenarioError
from raybench.model import timing
from raybench.model.arrivals import PROCESSES, SHAPES, Arrivals, Shape
from raybench.model.timing import Distribution

#: Keys allowed in each table; a value of ``None`` means "any sub-keys" (validated elsewhere).
_SPEC: dict[str, Any] = {
    "name": None,
    "description": None,
    "extends": None,
    "run": {
        "agents": None,
        "duration": None,
        "warmup": None,
        "seed": None,
        "hosts": None,
        "agents_per_host": None,
        "shards": None,
        "window": None,
        "flush_interval": None,
        "request_timeout": None,
        "drain_timeout": None,
        "chaos": None,
        "chaos_target": None,
        "metrics": None,
    },
    "arrivals": {"process": None, "rate": None, "shape": None, "think": None},
    "classes": None,
    "stages": {"policy": None, "llm": None, "expert": None, "parallel_review": None, "cache_hit_rate": None},
    "experts": {"pool": None},
    "state": {
        "keys": None,
        "zipf": None,
        "lease_ttl": None,
        "lease_backoff": None,
        "lease_backoff_max": None,
        "lease_max_wait": None,
        "lease_mode": None,
        "transport": None,
        "batch_max_ops": None,
        "batch_interval": None,
        "batch_inflight": None,
    },
    "fuse": {
        "mode": None,
        "backend": None,
        "fs": None,
        "file_bytes": None,
        "probe_workers": None,
        "direct_io": None,
        "multithreaded": None,
        "attr_timeout": None,
        "entry_timeout": None,
        "open_per_request": None,
        "open_ahead": None,
        "prefill": None,
    },
    "regions": None,
    "sla": None,
    "faults": None,
}
_CLASS_KEYS = ("weight", "llm", "write", "stat", "escalation", "deny")
_REGION_KEYS = ("name", "weight", "utc_offset", "rtt")
_SHAPE_KEYS = ("kind", "ramp_from", "ramp_time", "steps", "day", "amplitude", "peak_hour", "start_hour")
_FAULT_KEYS = ("kind", "start", "end", "stage", "extra", "share", "pool")
FAULT_KINDS = ("slow_stage", "fail", "shrink_experts")
STAGES = ("policy", "llm", "expert")
FUSE_MODES = ("auto", "on", "off")
FUSE_FILESYSTEMS = ("memory", "passthrough")
LEASE_MODES = ("queue", "retry")
#: How state batches and expert consultations travel: sockets served by the actors (raybench.actors.wire) or Ray calls.
STATE_TRANSPORTS = ("socket", "ray")
#: How often an agent host ships its rows to the aggregator unless `run.flush_interval` says otherwise.
DEFAULT_FLUSH_INTERVAL = "500ms"
CHAOS_TARGETS = ("hosts", "fuse", "both")
FUSE_BACKENDS = ("fusepy", "mfusepy")


@dataclass(frozen=True)
class RequestClass:
    """A kind of command an agent issues, and the pipeline it goes through."""

    name: str
    weight: float
    llm: bool  # LLM review besides the policy check
    write: bool  # versioned compare-and-set write (else a versioned read)
    stat: bool  # an extra stat of the file on the FUSE mount
    escalation: float  # probability of escalation to the expert pool (on a decision-cache miss)
    deny: float  # probability that the policy denies the command (no further stages)


@dataclass(frozen=True)
class Region:
    """Where an agent runs: its share of agents, UTC offset and added round trip to the shared state."""

    name: str
    weight: float
    utc_offset: float
    rtt: Distribution


@dataclass(frozen=True)
class Fault:
    """An injected fault between ``start_s`` and ``end_s`` of the load (seconds since load start)."""

    kind: str
    start_s: float
    end_s: float
    stage: str = ""
    extra: Distribution | None = None
    share: float = 0.0
    pool: int = 0

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "start": f"{self.start_s}s", "end": f"{self.end_s}s"}
        if self.kind == "slow_stage":
            out |= {"stage": self.stage, "extra": self.extra.to_dict() if self.extra else 0}
        elif self.kind == "fail":
            out["share"] = self.share
        else:
            out["pool"] = self.pool
        return out


@dataclass(frozen=True)
class Scenario:
    """A fully resolved, validated scenario. Durations in seconds, think times in milliseconds."""

    name: str
    description: str
    agents: int
    duration_s: float
    warmup_s: float
    seed: int
    hosts: int  # 0: one agent host per CPU of the cluster
    agents_per_host: int  # 0: agents spread evenly over the hosts
    shards: int
    window_s: float
    flush_interval_s: float
    request_timeout_s: float
    drain_timeout_s: float
    chaos_s: float  # kill something every chaos_s seconds of load (0: never)
    chaos_target: str  # hosts: a random agent host; fuse: a random node's FUSE server; both: alternate
    metrics: bool  # live Prometheus metrics through ray.util.metrics (raybench.actors.metrics)
    arrivals: Arrivals
    classes: tuple[RequestClass, ...]
    policy: Distribution
    llm: Distribution
    expert: Distribution
    parallel_review: bool
    cache_hit_rate: float
    experts: int
    keys: int
    zipf: float
    lease_ttl_s: float
    lease_backoff_s: float
    lease_backoff_max_s: float
    lease_max_wait_s: float
    lease_mode: str  # queue: FIFO hand-over by the shard; retry: poll with jittered exponential back-off
    state_transport: str  # socket: state batches and expert consultations over TCP (actors.wire); ray: Ray calls
    batch_max_ops: int
    batch_interval_s: float
    batch_inflight: int  # batches per (host, shard) awaiting their reply before the next leaves
    fuse_mode: str
    fuse_backend: str
    fuse_fs: str  # memory: files held by the FUSE server; passthrough: over a folder on the node's disk
    file_bytes: int
    fuse_probe_workers: int
    fuse_direct_io: bool  # every read and write reaches the filesystem (no page cache)
    fuse_multithreaded: bool  # libfuse's multithreaded loop (default: single-threaded, faster here)
    fuse_attr_timeout_s: float  # kernel caching of attributes / names (0: every stat crosses FUSE)
    fuse_entry_timeout_s: float
    fuse_open_per_request: bool  # open+close the file in every request (else a cached handle)
    fuse_open_ahead: bool  # cached handles to the prefilled files are opened before the load
    fuse_prefill: bool  # the keys' files exist (file_bytes each) before the load starts
    regions: tuple[Region, ...]
    sla: Mapping[str, Any]
    faults: tuple[Fault, ...]

    @property
    def fuse_opens_ahead(self) -> bool:
        """Hosts open their handles to the prefilled files before the load (see AgentHost.open_files)."""
        return self.fuse_open_ahead and self.fuse_prefill and not self.fuse_open_per_request and self.fuse_mode != "off"

    def stages_off(self) -> dict[str, str]:
        """Request stages this scenario switched off, each with the setting that did it: an SLA
        threshold on such a stage is not applicable (it can have no data), not failed."""
        off: dict[str, str] = {}
        if self.fuse_mode == "off":
            off["fuse"] = "fuse.mode = off"
        weighted = [c for c in self.classes if c.weight > 0]
        if not any(c.llm for c in weighted):
            off["llm"] = "no request class has llm = true"
        if not any(c.escalation > 0 for c in weighted):
            off["expert"] = off["expert_queue"] = "no request class escalates (escalation = 0)"
        return off

    @property
    def offered_rate(self) -> float:
        """Mean offered load over the run, requests per second (open loop; shape included)."""
        tzs = [r.utc_offset for r in self.regions]
        weights = [r.weight for r in self.regions]
        per_tz = [self.arrivals.expected_count(self.duration_s, [tz]) for tz in tzs]
        per_agent = sum(w * c for w, c in zip(weights, per_tz, strict=True))
        return self.agents * per_agent / self.duration_s

    def with_overrides(self, **kw: Any) -> Scenario:
        """A copy with dataclass fields replaced (already validated values only)."""
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario in TOML layout (``from_dict(to_dict())`` gives it back)."""
        return {
            "name": self.name,
            "description": self.description,
            "run": {
                "agents": self.agents,
                "duration": f"{self.duration_s}s",
                "warmup": f"{self.warmup_s}s",
                "seed": self.seed,
                "hosts": self.hosts,
                "agents_per_host": self.agents_per_host,
                "shards": self.shards,
                "window": f"{self.window_s}s",
                "flush_interval": f"{self.flush_interval_s}s",
                "request_timeout": f"{self.request_timeout_s}s",
                "drain_timeout": f"{self.drain_timeout_s}s",
                "chaos": f"{self.chaos_s}s",
                "chaos_target": self.chaos_target,
                "metrics": self.metrics,
            },
            "arrivals": self.arrivals.to_dict(),
            "classes": {
                c.name: {
                    "weight": c.weight,
                    "llm": c.llm,
                    "write": c.write,
                    "stat": c.stat,
                    "escalation": c.escalation,
                    "deny": c.deny,
                }
                for c in self.classes
            },
            "stages": {
                "policy": self.policy.to_dict(),
                "llm": self.llm.to_dict(),
                "expert": self.expert.to_dict(),
                "parallel_review": self.parallel_review,
                "cache_hit_rate": self.cache_hit_rate,
            },
            "experts": {"pool": self.experts},
            "state": {
                "keys": self.keys,
                "zipf": self.zipf,
                "lease_ttl": f"{self.lease_ttl_s}s",
                "lease_backoff": f"{self.lease_backoff_s}s",
                "lease_backoff_max": f"{self.lease_backoff_max_s}s",
                "lease_max_wait": f"{self.lease_max_wait_s}s",
                "lease_mode": self.lease_mode,
                "transport": self.state_transport,
                "batch_max_ops": self.batch_max_ops,
                "batch_interval": f"{self.batch_interval_s}s",
                "batch_inflight": self.batch_inflight,
            },
            "fuse": {
                "mode": self.fuse_mode,
                "backend": self.fuse_backend,
                "fs": self.fuse_fs,
                "file_bytes": self.file_bytes,
                "probe_workers": self.fuse_probe_workers,
                "direct_io": self.fuse_direct_io,
                "multithreaded": self.fuse_multithreaded,
                "attr_timeout": f"{self.fuse_attr_timeout_s}s",
                "entry_timeout": f"{self.fuse_entry_timeout_s}s",
                "open_per_request": self.fuse_open_per_request,
                "open_ahead": self.fuse_open_ahead,
                "prefill": self.fuse_prefill,
            },
            "regions": [
                {"name": r.name, "weight": r.weight, "utc_offset": r.utc_offset, "rtt": r.rtt.to_dict()}
                for r in self.regions
            ],
            "sla": _redacted(self.sla),
            "faults": [f.to_dict() for f in self.faults],
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Scenario:
        """Validate raw tables (TOML layout) into a Scenario. Raises ScenarioError."""
        return _build(raw)


#: Keys of the ``[sla]`` table whose values are secrets: never written to a manifest or a log.
SECRET_KEYS = ("url", "routing_key")


def _redacted(sla: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[sla]`` table with webhook URLs and routing keys replaced (use ``*_env`` keys to keep
    secrets out of scenario files altogether)."""
    out = copy.deepcopy(dict(sla))
    for hook in out.get("webhooks", []) or []:
        if isinstance(hook, dict):
            for key in SECRET_KEYS:
                if key in hook:
                    hook[key] = "<redacted>"
    return out


# ---------------------------------------------------------------------------------------------
# loading (reading the TOML: raybench.config.files)


def load(path: Path | None = None, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load, override and validate a scenario. Raises ScenarioError."""
    return _build(apply_overrides(load_raw(path, preset), overrides or {}))


# ---------------------------------------------------------------------------------------------
# validation


def _shape(raw: Any) -> Shape:
    if raw is None:
        return Shape()
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, Mapping):
        raise ScenarioError('arrivals.shape: expected a table like {kind = "ramp", ramp_time = "10s"}')
    where = "arrivals.shape"
    checks.known_keys(raw, _SHAPE_KEYS, where)
    kind = checks.one_of(raw, "kind", "flat", SHAPES, where)
    steps: list[tuple[float, float]] = []
    for i, step in enumerate(raw.get("steps", [])):
        if not isinstance(step, list) or len(step) != 2:
            raise ScenarioError(f"{where}.steps[{i}]: expected [time, factor]")
        t = checks.duration({"t": step[0]}, "t", 0, f"{where}.steps[{i}]", positive=False)
        steps.append((t, checks.number({"f": step[1]}, "f", 1.0, f"{where}.steps[{i}]")))
    if kind == "step" and not steps:
        raise ScenarioError(f'{where}: kind = "step" needs steps = [[time, factor], ...]')
    return Shape(
        kind=kind,
        ramp_from=checks.number(raw, "ramp_from", 0.1, where),
        ramp_time=checks.duration(raw, "ramp_time", "10s", where),
        steps=tuple(sorted(steps)),
        day=checks.duration(raw, "day", "60s", where),
        amplitude=checks.number(raw, "amplitude", 0.5, where, hi=1.0),
        peak_hour=checks.number(raw, "peak_hour", 14.0, where, hi=24.0),
        start_hour=checks.number(raw, "start_hour", 0.0, where, hi=24.0),
    )


def _classes(raw: Any) -> tuple[RequestClass, ...]:
    if raw is None:
        raw = {
            "safe": {"weight": 0.7, "escalation": 0.05},
            "risky": {"weight": 0.2, "llm": True, "write": True, "escalation": 0.35},
            "complex": {"weight": 0.1, "llm": True, "write": True, "stat": True, "escalation": 0.75},
        }
    if not isinstance(raw, Mapping) or not raw:
        raise ScenarioError("[classes] must hold at least one class table, e.g. [classes.safe]")
    out = []
    for name, table in raw.items():
        where = f"classes.{name}"
        if not isinstance(table, Mapping):
            raise ScenarioError(f"[{where}] must be a table")
        checks.known_keys(table, _CLASS_KEYS, where)
        out.append(
            RequestClass(
                name=str(name),
                weight=checks.probability(table, "weight", 0.0, where),
                llm=checks.flag(table, "llm", False, where),
                write=checks.flag(table, "write", False, where),
                stat=checks.flag(table, "stat", False, where),
                escalation=checks.probability(table, "escalation", 0.0, where),
                deny=checks.probability(table, "deny", 0.0, where),
            )
        )
    checks.weights_sum_to_one([c.weight for c in out], "classes")
    return tuple(out)


#: Most bytes a prefilled workspace may hold (every node's FUSE server holds a copy in memory).
MAX_PREFILL_BYTES = 1 << 30


def _check_prefill(state: dict[str, Any], fuse: dict[str, Any]) -> None:
    if fuse.get("mode") == "off" or not checks.flag(fuse, "prefill", True, "fuse"):
        return
    keys = checks.integer(state, "keys", 10_000, "state", minimum=1)
    size = keys * checks.integer(fuse, "file_bytes", 4096, "fuse", minimum=0)
    if size > MAX_PREFILL_BYTES:
        raise ScenarioError(
            f"fuse.prefill: state.keys × fuse.file_bytes = {size:,} bytes, more than the "
            f"{MAX_PREFILL_BYTES:,} allowed in every node's FUSE server; use fewer keys, smaller files, "
            "or fuse.prefill = false (agents then create the files on first use)"
        )


def _regions(raw: Any) -> tuple[Region, ...]:
    if raw is None:
        raw = [{"name": "local", "weight": 1.0, "utc_offset": 0, "rtt": 0}]
    if not isinstance(raw, list) or not raw:
        raise ScenarioError("[[regions]] must be a non-empty list of tables")
    out = []
    for i, table in enumerate(raw):
        where = f"regions[{i}]"
        if not isinstance(table, Mapping):
            raise ScenarioError(f"{where} must be a table")
        checks.known_keys(table, _REGION_KEYS, where)
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{where}.name: expected a non-empty string")
        out.append(
            Region(
                name=name,
                weight=checks.probability(table, "weight", 1.0 / len(raw), where),
                utc_offset=checks.number(table, "utc_offset", 0.0, where, lo=-12.0, hi=14.0),
                rtt=timing.parse(table.get("rtt", 0), f"{where}.rtt"),
            )
        )
    if len({r.name for r in out}) != len(out):
        raise ScenarioError("regions: names must be unique")
    checks.weights_sum_to_one([r.weight for r in out], "regions")
    return tuple(out)


def _faults(raw: Any, duration_s: float) -> tuple[Fault, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ScenarioError("[[faults]] must be a list of tables")
    out = []
    for i, table in enumerate(raw):
        where = f"faults[{i}]"
        if not isinstance(table, Mapping):
            raise ScenarioError(f"{where} must be a table")
        checks.known_keys(table, _FAULT_KEYS, where)
        kind = checks.one_of(table, "kind", "", FAULT_KINDS, where)
        start = checks.duration(table, "start", 0, where, positive=False)
        end = checks.duration(table, "end", f"{duration_s}s", where)
        if start >= end:
            raise ScenarioError(f"{where}: start {start}s must be before end {end}s")
        fault = Fault(kind=kind, start_s=start, end_s=end)
        if kind == "slow_stage":
            stage = checks.one_of(table, "stage", "", STAGES, where)
            fault = replace(fault, stage=stage, extra=timing.parse(table.get("extra", 0), f"{where}.extra"))
        elif kind == "fail":
            fault = replace(fault, share=checks.probability(table, "share", 1.0, where))
        else:
            fault = replace(fault, pool=checks.integer(table, "pool", 1, where, minimum=1))
        out.append(fault)
    return tuple(out)


def _sla(raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ScenarioError("[sla] must be a table")
    try:
        from raybench.judge.sla import parse_config
    except ImportError:  # pragma: no cover - the SLA engine ships with raybench
        return dict(raw)
    # Validate the shape only: secrets (url_env, routing_key_env) are resolved where the alerts are
    # sent, by the driver, not wherever a scenario is read back (workers, `raybench show`).
    parse_config(raw, resolve_secrets=False)  # raises ScenarioError with the key and what is allowed
    return copy.deepcopy(dict(raw))


def _build(raw: Mapping[str, Any]) -> Scenario:
    checks.known_keys(raw, _SPEC, "")
    for key, sub in _SPEC.items():
        if isinstance(sub, dict) and key in raw:
            checks.known_keys(checks.table(raw, key), sub, key)
    run = checks.table(raw, "run")
    arr = checks.table(raw, "arrivals")
    stages = checks.table(raw, "stages")
    state = checks.table(raw, "state")
    fuse = checks.table(raw, "fuse")
    agents = checks.integer(run, "agents", 1000, "run", minimum=1)
    duration = checks.duration(run, "duration", "60s", "run")
    warmup = checks.duration(run, "warmup", "0s", "run", positive=False)
    if warmup >= duration:
        raise ScenarioError(f"run.warmup ({warmup}s) must be shorter than run.duration ({duration}s)")
    seed = run.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"run.seed = {seed!r}: expected an integer")
    process = checks.one_of(arr, "process", "poisson", PROCESSES, "arrivals")
    rate = checks.number(arr, "rate", 1.0, "arrivals")
    if rate <= 0:
        raise ScenarioError(f"arrivals.rate = {rate}: requests per agent per second must be > 0")
    think = timing.parse(arr.get("think", {"dist": "constant", "value": 1000}), "arrivals.think")
    backoff = checks.duration(state, "lease_backoff", "1ms", "state")
    backoff_max = checks.duration(state, "lease_backoff_max", "20ms", "state")
    if backoff > backoff_max:
        raise ScenarioError(f"state.lease_backoff ({backoff}s) > state.lease_backoff_max ({backoff_max}s)")
    _check_prefill(state, fuse)
    return Scenario(
        name=str(raw.get("name", "custom")),
        description=str(raw.get("description", "")),
        agents=agents,
        duration_s=duration,
        warmup_s=warmup,
        seed=seed,
        hosts=checks.integer(run, "hosts", 0, "run", minimum=0),
        agents_per_host=checks.integer(run, "agents_per_host", 0, "run", minimum=0),
        shards=checks.integer(run, "shards", 4, "run", minimum=1),
        window_s=checks.duration(run, "window", "5s", "run"),
        flush_interval_s=checks.duration(run, "flush_interval", DEFAULT_FLUSH_INTERVAL, "run"),
        request_timeout_s=checks.duration(run, "request_timeout", "30s", "run"),
        drain_timeout_s=checks.duration(run, "drain_timeout", "10s", "run"),
        chaos_s=checks.duration(run, "chaos", "0s", "run", positive=False),
        chaos_target=checks.one_of(run, "chaos_target", "hosts", CHAOS_TARGETS, "run"),
        metrics=checks.flag(run, "metrics", False, "run"),
        arrivals=Arrivals(process=process, rate=rate, shape=_shape(arr.get("shape")), think=think),
        classes=_classes(raw.get("classes")),
        policy=timing.parse(stages.get("policy", {"dist": "uniform", "min": 5, "max": 25}), "stages.policy"),
        llm=timing.parse(stages.get("llm", {"dist": "uniform", "min": 20, "max": 80}), "stages.llm"),
        expert=timing.parse(stages.get("expert", {"dist": "uniform", "min": 500, "max": 1200}), "stages.expert"),
        parallel_review=checks.flag(stages, "parallel_review", True, "stages"),
        cache_hit_rate=checks.probability(stages, "cache_hit_rate", 0.0, "stages"),
        experts=checks.integer(checks.table(raw, "experts"), "pool", 200, "experts", minimum=1),
        keys=checks.integer(state, "keys", 10_000, "state", minimum=1),
        zipf=checks.number(state, "zipf", 1.0, "state", hi=5.0),
        lease_ttl_s=checks.duration(state, "lease_ttl", "5s", "state"),
        lease_backoff_s=backoff,
        lease_backoff_max_s=backoff_max,
        lease_max_wait_s=checks.duration(state, "lease_max_wait", "2s", "state"),
        lease_mode=checks.one_of(state, "lease_mode", "queue", LEASE_MODES, "state"),
        state_transport=checks.one_of(state, "transport", "socket", STATE_TRANSPORTS, "state"),
        batch_max_ops=checks.integer(state, "batch_max_ops", 256, "state", minimum=1),
        batch_interval_s=checks.duration(state, "batch_interval", "0s", "state", positive=False),
        batch_inflight=checks.integer(state, "batch_inflight", 1, "state", minimum=1),
        fuse_mode=checks.one_of(fuse, "mode", "auto", FUSE_MODES, "fuse"),
        fuse_backend=checks.one_of(fuse, "backend", "fusepy", FUSE_BACKENDS, "fuse"),
        fuse_fs=checks.one_of(fuse, "fs", "memory", FUSE_FILESYSTEMS, "fuse"),
        file_bytes=checks.integer(fuse, "file_bytes", 4096, "fuse", minimum=0),
        fuse_probe_workers=checks.integer(fuse, "probe_workers", 0, "fuse", minimum=0),
        fuse_direct_io=checks.flag(fuse, "direct_io", True, "fuse"),
        fuse_multithreaded=checks.flag(fuse, "multithreaded", False, "fuse"),
        fuse_attr_timeout_s=checks.duration(fuse, "attr_timeout", "0s", "fuse", positive=False),
        fuse_entry_timeout_s=checks.duration(fuse, "entry_timeout", "0s", "fuse", positive=False),
        fuse_open_per_request=checks.flag(fuse, "open_per_request", False, "fuse"),
        fuse_open_ahead=checks.flag(fuse, "open_ahead", True, "fuse"),
        fuse_prefill=checks.flag(fuse, "prefill", True, "fuse"),
        regions=_regions(raw.get("regions")),
        sla=_sla(raw.get("sla")),
        faults=_faults(raw.get("faults"), duration),
    )
