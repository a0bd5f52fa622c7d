"""AgentHost: one async Ray actor running many simulated agents as coroutines.

Timing model (see DESIGN "Rules of measurement"):

* Open loop (default). One dispatcher coroutine per host keeps every agent's next *intended*
  start time in a heap, sleeps until the earliest, and starts each due request as its own task —
  whether or not that agent's previous request has finished. ``lag = start - intended`` is the
  harness's own scheduling delay; ``latency = end - intended`` includes it, so a harness that falls
  behind shows up in latency instead of hiding it (no coordinated omission).
* Closed loop (option, flagged in the manifest): one coroutine per agent, request, think, repeat.
* Durations come from ``time.perf_counter_ns()``; wall timestamps are ``time.time_ns()`` read once
  at start plus the perf-counter offset, so they are monotonic within the process and line up
  across nodes to the accuracy of the nodes' clocks.

Pipeline of one request (the plan of every random choice is drawn at dispatch, see workload.py):
policy check and LLM review (modelled sleeps, in parallel when configured) -> denied? ->
escalation to the expert pool (real queue) -> lease on the file key (a refused request waits in
the shard's FIFO queue, or polls with back-off in ``retry`` mode; refusals counted) -> file
operation on this node's FUSE mount -> versioned read or compare-and-set, with the lease released
in the same operation -> event appended -> one row.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raybench.actors import state as st
from raybench.actors.file_handles import FileHandles, file_op, handle_capacity
from raybench.actors.transport import Transport, make_transport
from raybench.config.scenario import Scenario
from raybench.model.timing import sleep_until
from raybench.model.workload import Plan, Planner, agent_rng
from raybench.results.recording import NULL_INT, NULL_MS, OUTCOME_CODE, PackedRows, RequestRows

#: Most write batches to the aggregator allowed in flight before the host waits for the oldest.
MAX_PENDING_WRITES = 8
#: GIL switch interval in agent hosts (Python's default is 5 ms).
SWITCH_INTERVAL_S = 0.0002
#: Longest single sleep of the dispatcher, so a stop request is seen promptly.
MAX_DISPATCH_SLEEP_S = 0.1


class LeaseTimeout(Exception):
    """The lease was not granted within the scenario's lease_max_wait."""


class FuseError(Exception):
    """The request's file operation on the node's FUSE mount failed."""


async def _timed_sleep(ms: float) -> float:
    t0 = time.perf_counter_ns()
    await sleep_until(t0 + int(ms * 1e6))
    return (time.perf_counter_ns() - t0) / 1e6


async def _parallel_sleeps(a_ms: float, b_ms: float) -> tuple[float, float]:
    """Two stages that run in parallel (policy check and LLM review), in one coroutine: each is
    measured from the common start to its own end; the second sleep aims at the longer stage's
    absolute end, so it is not delayed by the first wake-up. Cheaper than two tasks and a gather."""
    t0 = time.perf_counter_ns()
    short, long_ = (a_ms, b_ms) if a_ms <= b_ms else (b_ms, a_ms)
    await sleep_until(t0 + int(short * 1e6))
    t1 = time.perf_counter_ns()
    await sleep_until(t0 + int(long_ * 1e6))
    t2 = time.perf_counter_ns()
    first, second = (t1 - t0) / 1e6, (t2 - t0) / 1e6
    return (first, second) if a_ms <= b_ms else (second, first)


class AgentHost:
    """Hosts agents ``agent_ids`` (plain class; an async Ray actor at run time).

    Args:
        host_id: index of this host in the run.
        agent_ids: global ids of the agents it runs.
        scenario: the resolved scenario, as validated where it was loaded (never re-parsed here).
        run_id: written into every row.
        shards, experts, aggregator: Ray actor handles.
        fuse_root: folder on this node's FUSE mount for the agents' files, or None (no FUSE stage).
        node_id: Ray node id of this host (rows carry it).
        wire_token: the run's token for the shards' and the expert pool's sockets (None unless the
            scenario's ``state.transport`` is ``socket``; see :mod:`raybench.actors.transport`).
        transport: the data plane to the shards and the pool (default: the scenario's
            ``state.transport`` to ``shards`` and ``experts``, :func:`make_transport`).
        ship: sends a flush's rows to the aggregator and returns an awaitable of its reply
            (default: ``aggregator.write_packed.remote``).

    ``transport`` and ``ship`` are the seams that let the plain class run in a test without Ray
    (``shards``, ``experts`` and ``aggregator`` unused then): tests/unit/test_host_memory.py.
    """

    def __init__(
        self,
        host_id: int,
        agent_ids: list[int],
        scenario: Scenario,
        run_id: str,
        shards: list[Any],
        experts: Any,
        aggregator: Any,
        fuse_root: str | None,
        node_id: str,
        wire_token: bytes | None = None,
        *,
        transport: Transport | None = None,
        ship: Callable[[PackedRows], Awaitable[Any]] | None = None,
    ) -> None:
        # The event loop shares the GIL with Ray's reply threads and the file-operation threads;
        # the default 5 ms switch interval would add up to 5 ms to every hand-over between them.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.host_id = host_id
        self.agent_ids = agent_ids
        self.sc = scenario
        self.run_id = run_id
        self.fuse_root = fuse_root
        self.node_id = node_id
        self.transport = (
            transport if transport is not None else make_transport(self.sc.state.transport, shards, experts, wire_token)
        )
        self._ship = ship if ship is not None else aggregator.write_packed.remote
        self.planner = Planner(self.sc)
        self.rngs = [agent_rng(self.sc.run.seed, a) for a in agent_ids]
        self.regions = [self.planner.region_of(a, self.sc.run.agents) for a in agent_ids]
        self.backoff_rng = random.Random(f"raybench-backoff:{self.sc.run.seed}:{host_id}")
        self.fault_rng = random.Random(f"raybench-faults:{self.sc.run.seed}:{host_id}")
        self.buffer = RequestRows(
            run_id, host_id, node_id, [r.name for r in self.sc.regions], [c.name for c in self.sc.classes]
        )
        self.payload = os.urandom(self.sc.fuse.file_bytes)
        self._stop = False
        self._tasks: dict[asyncio.Task[None], int] = {}  # in-flight request -> intended start
        self._overdue: set[asyncio.Task[None]] = set()
        self._writes: list[Any] = []
        self._seq = 0
        self.epoch = 0
        self.counters = {"dispatched": 0, "recorded": 0, "cancelled": 0, "max_inflight": 0, "leases_lost": 0}
        self._sampler: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self.opened_ahead: dict[str, Any] = {"files_opened_ahead": 0}
        self.handles = (
            None
            if (fuse_root is None or self.sc.fuse.open_per_request)
            else FileHandles(fuse_root, handle_capacity(self.sc.state.keys), create=not self.sc.fuse.prefill)
        )

    # -- control -------------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "pid": os.getpid(),
            "node_id": self.node_id,
            "agents": len(self.agent_ids),
            "nice": os.getpriority(os.PRIO_PROCESS, 0),  # Ray's worker niceness
        }

    async def open_files(self) -> dict[str, Any]:
        """Before the load (``fuse.open_ahead``, with the workspace prefilled): open this host's
        handle to every key's file (the most popular ``OPEN_AHEAD_MAX_FILES`` at most), so
        a request's FUSE stage is its file operation alone, the same in a run's first second as in
        its last, instead of including the LOOKUP and OPEN round trips of its key's first use on
        this host (how many of those a run has depends on its length). Not timed as any request;
        its duration is reported. On an error the rest open on first use, as without it."""
        if self.handles is None or not self.sc.fuse_opens_ahead:
            return {"files_opened_ahead": 0}
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self.handles.open_ahead, self.sc.state.keys)
            error = None
        except OSError as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:200]
        self.opened_ahead = {
            "files_opened_ahead": self.handles.opened,
            "open_ahead_s": round(time.perf_counter() - t0, 3),
        }
        if error is not None:
            self.opened_ahead["open_ahead_error"] = error
        return self.opened_ahead

    async def stop(self) -> None:
        """Stop dispatching new requests (abort or interrupt); in-flight ones drain as usual."""
        self._stop = True

    async def sample_resources(self) -> tuple[Any, ...]:
        from raybench.actors.sampler import ProcessSampler

        if self._sampler is None:
            self._sampler = ProcessSampler("host", self.node_id)
        return self._sampler.sample()

    async def sample_live(self) -> dict[str, Any]:
        """The driver's once-a-second sample of a host, one call: its resource row
        (``sample_resources``) and its requests in flight now (dispatched, no row yet)."""
        return {"row": await self.sample_resources(), "inflight": self.in_flight}

    @property
    def in_flight(self) -> int:
        """Requests started and not finished (open and closed loop alike)."""
        return self.counters["dispatched"] - self.counters["recorded"]

    async def run(self, load_start_ns: int, epoch: int = 0) -> dict[str, Any]:
        """Run the agents from wall time ``load_start_ns`` for the scenario's duration, drain, flush.

        ``epoch`` > 0 after Ray restarted this host (it died): the agents resume where their
        schedules are now; requests intended before now are not started again (the driver counts the
        ones that never got a row as lost). Returns the host's counters.
        """
        sc = self.sc
        self.epoch = epoch
        # Everything built so far (agents' RNGs, the planner) lives for the whole run: take it out
        # of the collector's reach so full collections stay short and do not stall requests.
        gc.collect()
        gc.freeze()
        self.loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="raybench-file")
        self.client = st.StateClient(
            self.transport,
            max_ops=sc.state.batch_max_ops,
            interval=sc.state.batch_interval,
            max_inflight=sc.state.batch_inflight,
        )
        await self.transport.connect()  # before the load starts: no request pays for a connection
        self.wall0, self.perf0 = time.time_ns(), time.perf_counter_ns()
        self.start_perf = self.perf0 + (load_start_ns - self.wall0)
        self.end_perf = self.start_perf + int(sc.run.duration * 1e9)
        self.warm_end_perf = self.start_perf + int(sc.run.warmup * 1e9)
        self.buffer.wall_offset_ns, self.buffer.warm_end_perf_ns = self.wall0 - self.perf0, self.warm_end_perf
        flusher = asyncio.ensure_future(self._flush_loop())
        reaper = asyncio.ensure_future(self._reaper())
        try:
            if sc.arrivals.open_loop:
                await self._dispatch_open()
            else:
                await asyncio.gather(*(self._closed_agent(i) for i in range(len(self.agent_ids))))
            await self._drain()
        finally:
            flusher.cancel()
            reaper.cancel()
            await self._flush()
            if self._writes:
                await asyncio.gather(*self._writes)
            self._pool.shutdown(wait=True)
            if self.handles is not None:
                self.handles.close()
            self.transport.close()
        return {
            "host_id": self.host_id,
            "epoch": self.epoch,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "agents": len(self.agent_ids),
            **self.counters,
            "state_calls": self.client.calls,
            "state_ops": self.client.ops,
            "files_opened": self.handles.opened if self.handles is not None else 0,
            **self.opened_ahead,
            "event_loop": type(self.loop).__module__.split(".")[0],  # uvloop, or asyncio (RAY_USE_UVLOOP=0)
        }

    # -- scheduling ----------------------------------------------------------------------------

    def _tz(self, i: int) -> float:
        return self.sc.regions[self.regions[i]].utc_offset

    async def _dispatch_open(self) -> None:
        # Heap entries carry the exact float time of the arrival process next to its nanosecond
        # deadline, so the chain of intended times is bit for bit the one workload.intended_schedule
        # replays (the driver matches rows against it after a host died).
        arrivals, duration = self.sc.arrivals, self.sc.run.duration
        heap: list[tuple[int, int, float]] = []
        resume_s = (time.perf_counter_ns() - self.start_perf) / 1e9 if self.epoch else -1.0
        for i, rng in enumerate(self.rngs):
            t = arrivals.first(rng, self._tz(i))
            while t < resume_s and t < duration:  # after a restart: skip the past, drawing as before
                self.planner.plan(rng, self.regions[i])
                t = arrivals.next(t, rng, self._tz(i))
            if t < duration:
                heap.append((self.start_perf + int(t * 1e9), i, t))
        heapq.heapify(heap)
        perf = time.perf_counter_ns
        while heap and not self._stop:
            now = perf()
            if heap[0][0] > now:
                await asyncio.sleep(min((heap[0][0] - now) / 1e9, MAX_DISPATCH_SLEEP_S))
                continue
            # Start every request that is due; each gets its own task (open loop).
            while heap and heap[0][0] <= now:
                t_next, i, t = heapq.heappop(heap)
                rng = self.rngs[i]
                plan = self.planner.plan(rng, self.regions[i])
                self._spawn(i, t_next, plan)
                t = arrivals.next(t, rng, self._tz(i))
                if t < duration:
                    heapq.heappush(heap, (self.start_perf + int(t * 1e9), i, t))

    async def _closed_agent(self, i: int) -> None:
        rng = self.rngs[i]
        think = self.sc.arrivals.think
        await sleep_until(self.start_perf + int(rng.uniform(0, think.mean / 1000.0) * 1e9))
        while not self._stop:
            now = time.perf_counter_ns()
            if now >= self.end_perf:
                return
            plan = self.planner.plan(rng, self.regions[i])
            self.counters["dispatched"] += 1
            await self._request(i, now, plan)
            await sleep_until(time.perf_counter_ns() + int(think.sample(rng) * 1e6))

    def _spawn(self, i: int, intended: int, plan: Plan) -> None:
        self.counters["dispatched"] += 1
        task = self.loop.create_task(self._request(i, intended, plan))
        self._tasks[task] = intended
        task.add_done_callback(self._forget)
        if len(self._tasks) > self.counters["max_inflight"]:
            self.counters["max_inflight"] = len(self._tasks)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._overdue.discard(task)

    async def _reaper(self) -> None:
        """Once a second, cancel requests running longer than request_timeout (they record
        themselves as timeouts); one sweep instead of a timer per request."""
        limit = int(self.sc.run.request_timeout * 1e9)
        while True:
            await asyncio.sleep(1.0)
            now = time.perf_counter_ns()
            for task, intended in list(self._tasks.items()):
                if now - intended > limit and task not in self._overdue:
                    self._overdue.add(task)
                    task.cancel()

    async def _drain(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.sc.run.drain_timeout)
            for task in pending:
                task.cancel()  # the request records itself as a timeout row
            self.counters["cancelled"] += len(pending)
            if pending:
                await asyncio.wait(pending, timeout=5.0)

    # -- one request ---------------------------------------------------------------------------

    def _extra_ms(self, stage: str, t_s: float) -> float:
        extra = 0.0
        for f in self.sc.faults:
            if f.kind == "slow_stage" and f.stage == stage and f.active(t_s) and f.extra is not None:
                extra += f.extra.sample(self.fault_rng)
        return extra

    def _injected_failure(self, t_s: float) -> bool:
        return any(f.kind == "fail" and f.active(t_s) and self.fault_rng.random() < f.share for f in self.sc.faults)

    async def _request(self, i: int, intended: int, plan: Plan) -> None:
        start = time.perf_counter_ns()
        sc = self.sc
        self._seq += 1
        rid = (self.host_id << 40) | (self.epoch << 32) | self._seq
        t_s = (intended - self.start_perf) / 1e9
        cls = sc.classes[plan.cls]
        # a stage that does not run keeps its null (recorded as such)
        policy_ms = llm_ms = queue_ms = expert_ms = lease_ms = state_ms = fuse_ms = event_ms = NULL_MS
        policy_model = llm_model = expert_model = NULL_MS
        rtt_total = 0.0
        outcome, error, conflicts = "ok", None, 0
        file_key = lease_start = lease_end = NULL_INT
        holds_lease = False
        try:
            if plan.policy_ms is not None:
                policy_model = plan.policy_ms + self._extra_ms("policy", t_s)
                if plan.llm_ms is not None:
                    llm_model = plan.llm_ms + self._extra_ms("llm", t_s)
                    if sc.stages.parallel_review:
                        policy_ms, llm_ms = await _parallel_sleeps(policy_model, llm_model)
                    else:
                        policy_ms = await _timed_sleep(policy_model)
                        llm_ms = await _timed_sleep(llm_model)
                else:
                    policy_ms = await _timed_sleep(policy_model)
            if self._injected_failure(t_s):
                raise RuntimeError("injected failure (scenario fault)")
            if plan.denied:
                outcome = "denied"
            else:
                if plan.expert_ms is not None:
                    extra = self._extra_ms("expert", t_s)
                    expert_model = plan.expert_ms + extra
                    # the pool is not restarted: once it is lost, every consultation fails visibly
                    queue_ms, expert_ms = await self.transport.consult(plan.expert_ms, extra)
                file_key = plan.key
                rtt_lease, rtt_state, _ = plan.rtt_ms
                # lease, with retry and exponential back-off (jittered) while another holds it
                t0 = time.perf_counter_ns()
                backoff = sc.state.lease_backoff
                ttl_ns = int(sc.state.lease_ttl * 1e9)
                deadline = t0 + int(sc.state.lease_max_wait * 1e9)
                while True:
                    if rtt_lease:
                        await asyncio.sleep(rtt_lease / 1000.0)
                        rtt_total += rtt_lease
                    granted, version, shard_ns = await self.client.submit(file_key, st.ACQUIRE, rid, ttl_ns)
                    if not granted and sc.state.lease_mode == "queue":
                        # held: wait in the shard's FIFO queue for the hand-over, no polling
                        conflicts += 1
                        left = max(0.0, (deadline - time.perf_counter_ns()) / 1e9)
                        granted, version, shard_ns = await self.client.wait_lease(file_key, rid, ttl_ns, left)
                        if not granted:
                            raise LeaseTimeout(f"lease on key {file_key} not granted within {sc.state.lease_max_wait}s")
                    if granted:
                        holds_lease, lease_start = True, shard_ns
                        break
                    conflicts += 1
                    if time.perf_counter_ns() >= deadline:
                        raise LeaseTimeout(f"lease on key {file_key} not granted within {sc.state.lease_max_wait}s")
                    await asyncio.sleep(backoff * (0.5 + self.backoff_rng.random()))
                    backoff = min(backoff * 2, sc.state.lease_backoff_max)
                lease_ms = (time.perf_counter_ns() - t0) / 1e6
                if self.fuse_root is not None:
                    try:
                        fuse_ms = await self.loop.run_in_executor(
                            self._pool, file_op, self.fuse_root, file_key, self.payload, cls.write, cls.stat,
                            self.handles, not self.sc.fuse.prefill,
                        )  # fmt: skip
                    except OSError as exc:  # e.g. ENOTCONN: the node's FUSE server died
                        if self.handles is not None:
                            self.handles.drop(file_key)
                        raise FuseError(f"FUSE {exc.__class__.__name__}: {exc}") from exc
                t0 = time.perf_counter_ns()
                if rtt_state:
                    await asyncio.sleep(rtt_state / 1000.0)
                    rtt_total += rtt_state
                code = st.CAS_RELEASE if cls.write else st.READ_RELEASE
                # The event append is pipelined with the commit: same key, same shard, same
                # batch, applied right after it; event_ms is the time from the commit's reply
                # to the append's (0 unless the two were split over two batches).
                commit = self.client.submit(file_key, code, rid, version)
                appended = self.client.submit(file_key, st.APPEND, rid, 0)
                ok, version, lease_end = await commit
                holds_lease = False
                t1 = time.perf_counter_ns()
                state_ms = (t1 - t0) / 1e6
                if not ok:
                    outcome, error = "error", "lease expired or version changed before commit"
                await appended
                event_ms = (time.perf_counter_ns() - t1) / 1e6
        except asyncio.CancelledError:
            if asyncio.current_task() in self._overdue:
                outcome, error = "timeout", f"request exceeded request_timeout {sc.run.request_timeout}s"
            else:
                outcome, error = "timeout", "still running at the drain deadline when the run ended"
        except LeaseTimeout as exc:
            outcome, error = "timeout", str(exc)
        except FuseError as exc:  # the lease is still held: released below, not lost
            outcome, error = "error", str(exc)[:300]
        except Exception as exc:
            outcome, error = "error", f"{type(exc).__name__}: {exc}"[:300]
            if holds_lease:  # e.g. the shard died under it (it restarts empty): the lease is lost
                self.counters["leases_lost"] += 1
        if holds_lease and file_key != NULL_INT:
            self.client.submit(file_key, st.RELEASE, rid)  # don't leave the key locked until its TTL
        end = time.perf_counter_ns()
        self.buffer.add_request(
            request_id=rid, perf_intended=intended, perf_start=start, perf_end=end,
            file_key=file_key, lease_start_ns=lease_start, lease_end_ns=lease_end,
            policy_ms=policy_ms, llm_ms=llm_ms, expert_queue_ms=queue_ms, expert_ms=expert_ms,
            lease_wait_ms=lease_ms, state_ms=state_ms, fuse_ms=fuse_ms, event_ms=event_ms,
            policy_model_ms=policy_model, llm_model_ms=llm_model, expert_model_ms=expert_model,
            rtt_model_ms=NULL_MS if file_key == NULL_INT else rtt_total,
            agent_id=self.agent_ids[i], conflicts=conflicts, region=self.regions[i], cls=plan.cls,
            outcome=OUTCOME_CODE[outcome], escalated=plan.expert_ms is not None, cache_hit=plan.cache_hit,
            error=error,
        )  # fmt: skip
        self.counters["recorded"] += 1

    # -- recording -----------------------------------------------------------------------------

    async def _flush(self) -> None:
        packed = self.buffer.take_packed()  # the aggregator makes the Arrow batch: not this loop
        if packed is None:
            return
        self._writes.append(self._ship(packed))
        if len(self._writes) > MAX_PENDING_WRITES:
            await self._writes.pop(0)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sc.run.flush_interval)
            await self._flush()
