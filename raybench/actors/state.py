"""Shared coordination state: leases with TTL, versioned values, an event log — sharded.

:class:`StateShard` is the logic of one shard, a plain class made a Ray actor by ``run.py``. A Ray
actor runs one method at a time, so each :meth:`StateShard.apply` batch is atomic: the invariants
below hold without locks.

Invariants of a shard:

* a key has at most one lease holder at a time; a lease is granted only when the key is free or
  its previous lease has expired (``ttl``), and the takeover of an expired lease is counted;
* a key's version increases by one on each successful compare-and-set and never otherwise;
* event sequence numbers increase by one per appended event;
* waiters for a held key (``wait_lease``) are granted in FIFO order the moment the key is released
  or its lease expires, never by polling.

:class:`StateClient` lives in an agent host's event loop and batches the operations of all its
agents: at most ``max_inflight`` batches per shard are in flight; operations submitted meanwhile
wait for the next batch, which leaves when the loop next runs (or after ``interval`` seconds, or
at ``max_ops`` operations). Under light load an operation goes out at once; under heavy load the
batches grow and the call rate stays far below the operation rate. How a batch travels (the
shard's socket, a Ray actor call, or a plain call in tests) is its :mod:`raybench.actors.transport`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raybench.actors.transport.protocol import Transport

# Operation codes; an operation is a tuple (code, key, owner, arg).
ACQUIRE, READ_RELEASE, CAS_RELEASE, APPEND, RELEASE = 0, 1, 2, 3, 4
EVENT_LOG_LIMIT = 100_000


def _reconstructed() -> bool:
    try:
        import ray

        return bool(ray.is_initialized() and ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # outside an actor
        return False


def shard_of(key: int, shards: int) -> int:
    """Shard of a key: a multiplicative hash so neighbouring (hot) keys spread over shards."""
    return ((key * 2654435761) & 0xFFFFFFFF) % shards


class StateShard:
    """One shard of the coordination state (plain class; a Ray actor at run time)."""

    def __init__(self, shard_id: int, token: bytes = b"") -> None:
        self.shard_id = shard_id
        self._endpoint: Any = None  # raybench.actors.wire.Endpoint, made on first use
        self._calls_endpoint: Any = None  # the same for wait_lease
        self._token = token
        self.leases: dict[int, tuple[int, int]] = {}  # key -> (owner, expires_ns)
        self.versions: dict[int, int] = {}
        self.events: deque[tuple[int, int, int, int, int]] = deque(maxlen=EVENT_LOG_LIMIT)
        self.seq = 0
        self.counters = dict.fromkeys(
            ("batches", "ops", "grants", "refusals", "expired_takeovers", "cas_ok", "cas_conflict",
             "reads", "releases", "lost_releases", "events"),
            0,
        )  # fmt: skip
        self._sampler: Any = None
        # A shard restarted by Ray after its process died starts empty: every lease it held and every
        # version are gone. That is counted (stats "restarted"); requests caught in it fail visibly.
        self.counters["restarted"] = int(_reconstructed())
        # key -> FIFO of (owner, ttl_ns, future) waiting for the lease
        self._waiters: dict[int, deque[tuple[int, int, asyncio.Future[tuple[bool, int, int]]]]] = {}

    def apply(self, ops: list[tuple[int, int, int, int]]) -> list[tuple[Any, ...]]:
        """Apply a batch of operations in order; returns one result tuple per operation.

        * ``(ACQUIRE, key, owner, ttl_ns)`` -> ``(granted, version, shard_ns)``
        * ``(READ_RELEASE, key, owner, 0)`` -> ``(held, version, shard_ns)``: read, then release
        * ``(CAS_RELEASE, key, owner, expected)`` -> ``(ok, version, shard_ns)``: set version to
          expected + 1 if the caller holds the lease and the version is ``expected``; then release
        * ``(APPEND, key, owner, 0)`` -> ``(seq, shard_ns)``: logs (owner, key, current version)
        * ``(RELEASE, key, owner, 0)`` -> ``(held, 0, shard_ns)``

        ``shard_ns`` is the shard's wall clock when it applied the operation: the lease interval of
        a request is [grant shard_ns, release shard_ns] in the shard's own time.
        """
        c = self.counters
        c["batches"] += 1
        c["ops"] += len(ops)
        out: list[tuple[Any, ...]] = []
        leases, versions = self.leases, self.versions
        for code, key, owner, arg in ops:
            now = time.time_ns()
            if code == ACQUIRE:
                held = leases.get(key)
                free = held is None or held[0] == owner or held[1] <= now
                # FIFO fairness: while others queue for the key, a newcomer does not jump the queue
                if free and (held is None or held[0] != owner) and self._waiters.get(key):
                    free = False
                if free:
                    if held is not None and held[0] != owner:
                        c["expired_takeovers"] += 1
                    leases[key] = (owner, now + arg)
                    c["grants"] += 1
                    out.append((True, versions.get(key, 0), now))
                else:
                    c["refusals"] += 1
                    out.append((False, versions.get(key, 0), now))
            elif code == APPEND:
                self.seq += 1
                c["events"] += 1
                self.events.append((self.seq, now, owner, key, versions.get(key, 0)))
                out.append((self.seq, now))
            else:
                held = leases.get(key)
                holds = held is not None and held[0] == owner and held[1] > now
                version = versions.get(key, 0)
                ok = holds
                if code == CAS_RELEASE:
                    if holds and version == arg:
                        version = versions[key] = version + 1
                        c["cas_ok"] += 1
                    else:
                        ok = False
                        c["cas_conflict"] += 1
                elif code == READ_RELEASE:
                    c["reads"] += 1
                if held is not None and held[0] == owner:
                    del leases[key]
                    self._hand_over(key, now)
                if holds:
                    c["releases"] += 1
                else:
                    c["lost_releases"] += 1
                out.append((ok, version, now))
        return out

    async def apply_async(self, ops: list[tuple[int, int, int, int]]) -> list[tuple[Any, ...]]:
        """:meth:`apply` as a coroutine: the actor is async (it parks lease waiters), and a
        coroutine without an ``await`` still runs start to end without interleaving."""
        return self.apply(ops)

    async def endpoint(self) -> tuple[str, int]:
        """Host and port of this shard's socket data plane (:mod:`raybench.actors.wire`), serving
        :meth:`apply` in this actor's event loop; started on the first call (a shard restarted by
        Ray serves on a new port)."""
        if self._endpoint is None:
            from raybench.actors import wire

            self._endpoint = wire.Endpoint(lambda host: wire.serve(self.apply, self._token, host))
        return await self._endpoint.address()

    async def calls_endpoint(self) -> tuple[str, int]:
        """Host and port where :meth:`wait_lease` is served as concurrent calls (a refused lease's
        wait in the key's queue, off Ray like the batches); started on the first call."""
        if self._calls_endpoint is None:
            from raybench.actors import wire

            self._calls_endpoint = wire.Endpoint(lambda host: wire.serve_calls(self.wait_lease, self._token, host))
        return await self._calls_endpoint.address()

    async def wait_lease(self, key: int, owner: int, ttl_ns: int, timeout_s: float) -> tuple[bool, int, int]:
        """Wait in the key's FIFO queue until the lease is granted or ``timeout_s`` passes.

        Returns ``(granted, version, shard_ns)`` like ``ACQUIRE``. Tried once more on arrival, so a
        release between the caller's refused ACQUIRE and this call is not missed.
        """
        c = self.counters
        granted = self.apply([(ACQUIRE, key, owner, ttl_ns)])[0]
        if granted[0]:
            return granted
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[bool, int, int]] = loop.create_future()
        queue = self._waiters.setdefault(key, deque())
        queue.append((owner, ttl_ns, fut))
        c["queued"] = c.get("queued", 0) + 1
        c["max_queue"] = max(c.get("max_queue", 0), len(queue))
        self._watch_expiry(key)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            if fut.done() and not fut.cancelled():  # granted at the last moment: give it back
                self.apply([(RELEASE, key, owner, 0)])
            self._drop_waiter(key, fut)
            return (False, self.versions.get(key, 0), time.time_ns())

    def _drop_waiter(self, key: int, fut: asyncio.Future[Any]) -> None:
        queue = self._waiters.get(key)
        if queue:
            for item in list(queue):
                if item[2] is fut:
                    queue.remove(item)
            if not queue:
                del self._waiters[key]

    def _hand_over(self, key: int, now: int) -> None:
        """The key is free: grant it to the first waiter still waiting."""
        queue = self._waiters.get(key)
        while queue:
            owner, ttl_ns, fut = queue.popleft()
            if fut.done():
                continue
            self.leases[key] = (owner, now + ttl_ns)
            self.counters["grants"] += 1
            fut.set_result((True, self.versions.get(key, 0), now))
            self._watch_expiry(key)
            break
        if queue is not None and not queue:
            self._waiters.pop(key, None)

    def _watch_expiry(self, key: int) -> None:
        """Wake the queue of ``key`` when its current lease's TTL runs out (holder gone silent)."""
        held = self.leases.get(key)
        if held is None or not self._waiters.get(key):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        owner, expires = held
        delay = max(0.0, (expires - time.time_ns()) / 1e9)

        def check() -> None:
            now = time.time_ns()
            current = self.leases.get(key)
            if current is None or current[0] != owner:
                return  # released (and handed over) meanwhile
            if current[1] > now:  # renewed, or the loop's timer fired early (uvloop): look again
                loop.call_later((current[1] - now) / 1e9 + 0.001, check)
                return
            del self.leases[key]
            self.counters["expired_takeovers"] += 1
            self._hand_over(key, now)

        loop.call_later(delay + 0.001, check)

    def stats(self) -> dict[str, Any]:
        """Counters, number of keys and leases held, event log length."""
        return {
            "shard": self.shard_id,
            **self.counters,
            "keys": len(self.versions),
            "leases_held": len(self.leases),
            "event_log": len(self.events),
            "last_seq": self.seq,
        }

    def sample_resources(self, role: str = "shard") -> tuple[Any, ...]:
        from raybench.actors.sampler import ProcessSampler

        if self._sampler is None:
            self._sampler = ProcessSampler(role)
        return self._sampler.sample()


class StateClient:
    """Batches state operations of one host's agents; one instance per event loop.

    Args:
        transport: how the batches and lease waits reach the shards
            (:mod:`raybench.actors.transport`); its owner connects and closes it.
        max_ops: a batch leaves at once when it reaches this many operations.
        interval: seconds to wait for more operations before sending (0: until the loop next runs).
        max_inflight: batches per shard awaiting their reply before new ones are held back.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        max_ops: int = 256,
        interval: float = 0.0,
        max_inflight: int = 2,
    ) -> None:
        self.transport = transport
        n = self.shard_count = transport.shard_count
        self.max_ops = max_ops
        self.interval = interval
        self.max_inflight = max_inflight
        self._pending: list[list[tuple[tuple[int, int, int, int], asyncio.Future[Any]]]] = [[] for _ in range(n)]
        self._inflight = [0] * n
        self._scheduled = [False] * n
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.ops = 0

    def submit(self, key: int, code: int, owner: int, arg: int = 0) -> asyncio.Future[Any]:
        """Queue one operation on the key's shard; the future resolves to its result tuple."""
        loop = asyncio.get_running_loop()
        i = shard_of(key, self.shard_count)
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[i].append(((code, key, owner, arg), fut))
        if len(self._pending[i]) >= self.max_ops and self._inflight[i] < self.max_inflight:
            self._send(i)
        elif not self._scheduled[i]:
            self._scheduled[i] = True
            if self.interval > 0:
                loop.call_later(self.interval, self._tick, i)
            else:
                loop.call_soon(self._tick, i)
        return fut

    def _tick(self, i: int) -> None:
        self._scheduled[i] = False
        if self._pending[i] and self._inflight[i] < self.max_inflight:
            self._send(i)

    def _send(self, i: int) -> None:
        batch, self._pending[i] = self._pending[i][: self.max_ops], self._pending[i][self.max_ops :]
        self._inflight[i] += 1
        self.calls += 1
        self.ops += len(batch)
        call: Any
        try:
            call = self.transport.apply(i, [op for op, _ in batch])
        except Exception as exc:  # e.g. a dead actor's handle: every caller sees it, as from the reply
            call = asyncio.get_running_loop().create_future()
            call.set_exception(exc)
        task = asyncio.ensure_future(self._complete(i, call, [f for _, f in batch]))  # noqa: RUF006 (kept in _tasks)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_lease(self, key: int, owner: int, ttl_ns: int, timeout_s: float) -> tuple[bool, int, int]:
        """Wait in the key's queue on its shard (:meth:`StateShard.wait_lease`) until the lease is
        granted or ``timeout_s`` passes."""
        i = shard_of(key, self.shard_count)
        return await self.transport.wait_lease(i, key, owner, ttl_ns, timeout_s)

    async def _complete(self, i: int, call: Any, futures: list[asyncio.Future[Any]]) -> None:
        try:
            results = await call
        except Exception as exc:  # the shard died or the call failed: every caller sees it
            for f in futures:
                if not f.done():
                    f.set_exception(exc)
        else:
            for f, r in zip(futures, results, strict=True):
                if not f.done():
                    f.set_result(r)
        finally:
            self._inflight[i] -= 1
            if self._pending[i] and not self._scheduled[i]:
                self._send(i)
