"""The tables of a scenario, one declaration per key: ``[run]``, ``[classes.NAME]``, ``[stages]``,
``[experts]``, ``[state]``, ``[fuse]``, ``[[regions]]`` and ``[[faults]]``. (``[arrivals]`` is
:class:`raybench.model.arrivals.Arrivals`, ``[sla]`` :class:`raybench.config.sla.SlaConfig`.)

Durations are held in seconds (``run.duration``), modelled times in milliseconds (distributions).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from raybench.config.types import Flag, Int, Number, Probability, Seconds, Table, Text, fail
from raybench.model.timing import Dist

Stage = Literal["policy", "llm", "expert"]
FuseMode = Literal["auto", "on", "off"]
FuseFs = Literal["memory", "passthrough"]
FuseBackend = Literal["fusepy", "mfusepy"]
LeaseMode = Literal["queue", "retry"]
#: How state batches and expert consultations travel: sockets served by the actors or Ray calls.
Transport = Literal["socket", "ray"]
ChaosTarget = Literal["hosts", "fuse", "both"]
STAGES, FUSE_MODES, FUSE_FILESYSTEMS, FUSE_BACKENDS = (
    get_args(Stage),
    get_args(FuseMode),
    get_args(FuseFs),
    get_args(FuseBackend),
)
LEASE_MODES, STATE_TRANSPORTS, CHAOS_TARGETS = get_args(LeaseMode), get_args(Transport), get_args(ChaosTarget)
FAULT_KINDS = ("slow_stage", "fail", "shrink_experts")
#: How often an agent host ships its rows to the aggregator unless `run.flush_interval` says otherwise.
DEFAULT_FLUSH_INTERVAL = "500ms"


class Run(Table):
    """``[run]``: the fleet, the load's length and the harness's own settings."""

    agents: Int = Field(1000, ge=1, description="agents in the fleet")
    duration: Seconds = Field("60s", gt=0, description="length of the load")
    warmup: Seconds = Field("0s", description="start of the load left out of the figures (< duration)")
    seed: Int = Field(1, description="seed of the agents' RNGs (each also seeded with its agent id)")
    hosts: Int = Field(0, ge=0, description="agent hosts (0: one per CPU of the cluster)")
    agents_per_host: Int = Field(0, ge=0, description="agents per host (0: spread evenly over the hosts)")
    shards: Int = Field(0, ge=0, description="state shards (0: one per 20,000 req/s offered, at most one per CPU)")
    window: Seconds = Field("5s", gt=0, description="length of a results window")
    flush_interval: Seconds = Field(DEFAULT_FLUSH_INTERVAL, gt=0, description="how often a host ships its rows")
    request_timeout: Seconds = Field("30s", gt=0, description="a request still running after this is a timeout")
    drain_timeout: Seconds = Field("10s", gt=0, description="how long hosts wait for requests in flight at the end")
    chaos: Seconds = Field("0s", description="kill something every this long of load (0: never)")
    chaos_target: ChaosTarget = Field("hosts", description="hosts, fuse (a node's FUSE server) or both")
    metrics: Flag = Field(False, description="live Prometheus metrics through ray.util.metrics")

    @model_validator(mode="after")
    def _warmup_inside(self) -> Run:
        if self.warmup >= self.duration:
            raise ValueError(f"warmup ({self.warmup}s) must be shorter than duration ({self.duration}s)")
        return self


class RequestClass(Table):
    """``[classes.NAME]``: a kind of command an agent issues, and the pipeline it goes through."""

    name: Text = Field(min_length=1, description="the table's name (classes.NAME)")
    weight: Probability = Field(0.0, description="share of the requests (the weights sum to 1)")
    llm: Flag = Field(False, description="LLM review besides the policy check")
    write: Flag = Field(False, description="versioned compare-and-set write (else a versioned read)")
    stat: Flag = Field(False, description="an extra stat of the file on the FUSE mount")
    escalation: Probability = Field(0.0, description="escalated to the expert pool (on a decision-cache miss)")
    deny: Probability = Field(0.0, description="the policy denies the command (no further stages)")


DEFAULT_CLASSES = {
    "safe": {"weight": 0.7, "escalation": 0.05},
    "risky": {"weight": 0.2, "llm": True, "write": True, "escalation": 0.35},
    "complex": {"weight": 0.1, "llm": True, "write": True, "stat": True, "escalation": 0.75},
}


def named_classes(raw: Any) -> Any:
    """``[classes]`` (a table of class tables) as the list the model holds, each with its name."""
    if not isinstance(raw, dict):
        if isinstance(raw, (list, tuple)) and all(isinstance(c, RequestClass) for c in raw):
            return raw
        raise fail("expected a table of class tables, e.g. [classes.safe]")
    if not raw:
        raise fail("expected at least one class table, e.g. [classes.safe]")
    out = []
    for name, table in raw.items():
        if isinstance(table, dict) and "name" in table:  # a class is named by its table
            allowed = tuple(k for k in RequestClass.toml_keys() if k != "name")
            raise PydanticCustomError(
                "unknown_key", "unknown key name", {"key": "name", "allowed": allowed, "under": name}
            )
        out.append({"name": name, **table} if isinstance(table, dict) else table)
    return out


class Stages(Table):
    """``[stages]``: the modelled times (ms) of the decision pipeline."""

    policy: Dist = Field({"dist": "uniform", "min": 5, "max": 25}, description="policy check, ms")
    llm: Dist = Field({"dist": "uniform", "min": 20, "max": 80}, description="LLM review, ms")
    expert: Dist = Field({"dist": "uniform", "min": 500, "max": 1200}, description="an expert's consultation, ms")
    parallel_review: Flag = Field(True, description="policy and LLM review run in parallel")
    cache_hit_rate: Probability = Field(0.0, description="decision-cache hits skip policy, LLM and experts")


class Experts(Table):
    """``[experts]``: the pool of human experts escalations wait for."""

    pool: Int = Field(200, ge=1, description="experts consulted at once")


class State(Table):
    """``[state]``: the shared, versioned state and its leases."""

    keys: Int = Field(10_000, ge=1, description="files (keys) of the workspace")
    zipf: Annotated[Number, Field(ge=0, le=5)] = Field(1.0, description="Zipf exponent of the key picked (0: uniform)")
    lease_ttl: Seconds = Field("5s", gt=0, description="a lease not released expires after this")
    lease_backoff: Seconds = Field("1ms", gt=0, description="retry mode: first back-off")
    lease_backoff_max: Seconds = Field("20ms", gt=0, description="retry mode: longest back-off")
    lease_max_wait: Seconds = Field("2s", gt=0, description="a lease not granted within this is an error")
    lease_mode: LeaseMode = Field("queue", description="queue: FIFO hand-over by the shard; retry: poll")
    transport: Transport = Field("socket", description="socket (actors.wire) or ray calls")
    batch_max_ops: Int = Field(256, ge=1, description="operations per state batch")
    batch_interval: Seconds = Field("0s", description="a batch waits this long for company (0: next loop turn)")
    batch_inflight: Int = Field(1, ge=1, description="batches per (host, shard) awaiting their reply")

    @model_validator(mode="after")
    def _backoff_ordered(self) -> State:
        if self.lease_backoff > self.lease_backoff_max:
            raise ValueError(f"lease_backoff ({self.lease_backoff}s) > lease_backoff_max ({self.lease_backoff_max}s)")
        return self


class Fuse(Table):
    """``[fuse]``: the FUSE view of the workspace every request touches."""

    mode: FuseMode = Field("auto", description="auto: FUSE where it works; on: required; off")
    backend: FuseBackend = Field("fusepy", description="the Python FUSE binding")
    fs: FuseFs = Field("memory", description="memory, or passthrough over the node's disk")
    file_bytes: Int = Field(4096, ge=0, description="bytes of each file")
    probe_workers: Int = Field(0, ge=0, description="workers of the FUSE probe workload per node (0: none)")
    direct_io: Flag = Field(True, description="every read and write reaches the filesystem (no page cache)")
    multithreaded: Flag = Field(False, description="libfuse's multithreaded loop")
    attr_timeout: Seconds = Field("0s", description="kernel caching of attributes (0: every stat crosses FUSE)")
    entry_timeout: Seconds = Field("0s", description="kernel caching of names")
    open_per_request: Flag = Field(False, description="open and close the file in every request")
    open_ahead: Flag = Field(True, description="hosts open their cached handles before the load")
    prefill: Flag = Field(True, description="the keys' files exist before the load starts")


class Region(Table):
    """``[[regions]]``: where agents run: their share, UTC offset and added round trip to the state."""

    name: Text = Field(min_length=1, description="unique name")
    weight: Probability = Field(1.0, description="share of the agents (default: an equal share)")
    utc_offset: Annotated[Number, Field(ge=-12, le=14)] = Field(0.0, description="hours; diurnal shapes follow it")
    rtt: Dist = Field(0, description="modelled round trip before a commit, ms")


def equal_weights(raw: Any) -> Any:
    """``[[regions]]`` with the weight of each region that gives none: an equal share."""
    if isinstance(raw, list):
        return [{"weight": 1.0 / len(raw), **r} if isinstance(r, dict) else r for r in raw]
    return raw


class _Fault(Table):
    kind: str
    start: Seconds = Field("0s", description="since the load's start")
    end: Seconds = Field(gt=0, description="since the load's start (default: the load's end)")

    @model_validator(mode="after")
    def _ordered(self) -> _Fault:
        if self.start >= self.end:
            raise ValueError(f"start {self.start}s must be before end {self.end}s")
        return self

    def active(self, t_s: float) -> bool:
        return self.start <= t_s < self.end


class SlowStage(_Fault):
    """A stage takes ``extra`` ms longer."""

    kind: Literal["slow_stage"] = "slow_stage"
    stage: Stage = Field(description="policy, llm or expert")
    extra: Dist = Field(0, description="ms added to the stage")


class Fail(_Fault):
    """A share of the requests fail."""

    kind: Literal["fail"] = "fail"
    share: Probability = Field(1.0, description="share of the requests that fail")


class ShrinkExperts(_Fault):
    """The expert pool shrinks to ``pool`` experts."""

    kind: Literal["shrink_experts"] = "shrink_experts"
    pool: Int = Field(1, ge=1, description="experts left")


def _fault_table(raw: Any) -> Any:
    if isinstance(raw, dict) and "kind" not in raw:
        raise fail(f"expected a table with kind = one of {', '.join(FAULT_KINDS)}")
    return raw


#: ``[[faults]]``: an injected fault between ``start`` and ``end`` of the load.
Fault = Annotated[
    Annotated[SlowStage | Fail | ShrinkExperts, Field(discriminator="kind")], BeforeValidator(_fault_table)
]
