"""The in-memory transport: the data plane as calls on plain objects in this process, for tests.

:class:`MemoryTransport` hands batches to plain :class:`~raybench.actors.state.StateShard` objects
and consultations to a plain :class:`~raybench.actors.experts.ExpertPool`, in the running event
loop, so a host, a client or a test runs without Ray and without sockets (as httpx's MockTransport
stands in for the network). It keeps the guarantees of the real transports: a batch is applied in
one piece (``StateShard.apply`` is synchronous) and batches to one shard in the order sent; the
reply comes on a later loop iteration (or ``delay_s`` later), never inside the caller's call; an
exception of the shard reaches the caller's awaitable. ``down`` makes shards fail like dead ones.

    shard, pool = StateShard(0), ExpertPool(4)
    transport = MemoryTransport([shard], pool)
    client = StateClient(transport)
    granted, version, shard_ns = await client.submit(key, ACQUIRE, owner, ttl_ns)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from raybench.actors.transport.protocol import ConnectionLost, Op, Result

if TYPE_CHECKING:
    from raybench.actors.experts import ExpertPool
    from raybench.actors.state import StateShard


class MemoryTransport:
    """The data plane to plain objects in this process (see the module docstring).

    Args:
        shards: the state shards (plain :class:`~raybench.actors.state.StateShard` objects).
        experts: the expert pool (a plain :class:`~raybench.actors.experts.ExpertPool`), or None.
        delay_s: each call reaches its shard or the pool this long after it is sent (a modelled
            network; 0: on the loop's next iteration).

    Attributes for a test to inspect: ``sent`` (every batch, in the order sent: ``(shard, ops)``),
    ``lease_waits`` and ``consultations`` (calls made), ``connects`` and ``closes``. ``down`` holds
    the indices of shards that are "dead": their calls fail with :class:`ConnectionLost`.
    """

    name = "memory"

    def __init__(
        self, shards: Sequence[StateShard], experts: ExpertPool | None = None, *, delay_s: float = 0.0
    ) -> None:
        if not shards:
            raise ValueError("a memory transport needs at least one shard")
        self.shards = list(shards)
        self.experts = experts
        self.shard_count = len(self.shards)
        self.delay_s = delay_s
        self.sent: list[tuple[int, list[Op]]] = []
        self.lease_waits = 0
        self.consultations = 0
        self.connects = 0
        self.closes = 0
        self.down: set[int] = set()
        # per shard, the batches sent and not applied yet, oldest first
        self._queues: list[deque[tuple[list[Op], asyncio.Future[list[Result]]]]] = [deque() for _ in self.shards]

    async def connect(self) -> None:
        self.connects += 1

    def apply(self, shard: int, ops: list[Op]) -> Awaitable[list[Result]]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Result]] = loop.create_future()
        ops = list(ops)  # what was sent is what is applied, whatever the caller does to its list
        self.sent.append((shard, ops))
        self._queues[shard].append((ops, fut))
        # Each delivery applies the oldest batch of the shard: the order sent, whatever the timers do.
        if self.delay_s > 0:
            loop.call_later(self.delay_s, self._deliver, shard)
        else:
            loop.call_soon(self._deliver, shard)
        return fut

    def _deliver(self, shard: int) -> None:
        ops, fut = self._queues[shard].popleft()
        try:  # applied even when the caller stopped waiting: it was sent
            self._check(shard)
            results = self.shards[shard].apply(ops)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
        else:
            if not fut.done():
                fut.set_result(results)

    async def wait_lease(self, shard: int, key: int, owner: int, ttl_ns: int, timeout_s: float) -> Result:
        self.lease_waits += 1
        await self._travel()
        self._check(shard)
        return await self.shards[shard].wait_lease(key, owner, ttl_ns, timeout_s)

    async def consult(self, expert_ms: float, extra_ms: float) -> tuple[float, float]:
        if self.experts is None:
            raise RuntimeError("this transport has no expert pool to consult")
        self.consultations += 1
        await self._travel()
        return await self.experts.consult(expert_ms, extra_ms)

    def close(self) -> None:
        self.closes += 1

    async def _travel(self) -> None:
        await asyncio.sleep(self.delay_s)  # 0: one loop iteration, as a reply over a socket takes

    def _check(self, shard: int) -> None:
        if shard in self.down:
            raise ConnectionLost(f"shard {shard} is down")
