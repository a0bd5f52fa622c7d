"""The expert pool: a bounded number of experts and a real FIFO queue in front of them.

:class:`ExpertPool` is a plain class made an async Ray actor by ``run.py``. A consultation waits in
the queue until one of ``capacity`` experts is free, then holds that expert for the modelled expert
time. Queue wait and expert time are measured apart, inside the pool, so the request row can show
where an escalation's time went. ``set_capacity`` changes the pool size while it runs (fault
injection: a smaller pool from time A to time B); a shrink never interrupts consultations already
in progress. Hosts consult over the pool's socket (:meth:`ExpertPool.endpoint`,
:mod:`raybench.actors.wire`) or, with ``state.transport = "ray"``, by Ray calls of :meth:`consult`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from raybench.actors.clock import sleep_until


class ExpertPool:
    def __init__(self, capacity: int, token: bytes = b"") -> None:
        if capacity < 1:
            raise ValueError("an expert pool needs at least one expert")
        self.capacity = capacity
        self._token = token
        self._endpoint: Any = None  # raybench.actors.wire.Endpoint, made on first use
        self.busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.consultations = 0
        self.max_queue = 0
        self.queue_ns_total = 0
        self._sampler: Any = None

    async def consult(self, expert_ms: float, extra_ms: float = 0.0) -> tuple[float, float]:
        """Wait for a free expert, hold it for ``expert_ms`` (+ injected ``extra_ms``).

        Returns:
            ``(queue_ms, expert_ms)`` as measured inside the pool.
        """
        t0 = time.perf_counter_ns()
        if self.busy < self.capacity and not self._waiters:
            self.busy += 1
        else:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            self.max_queue = max(self.max_queue, len(self._waiters))
            try:
                await fut  # the releaser counted us as busy before waking us
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()
                else:
                    self._waiters.remove(fut)
                raise
        t1 = time.perf_counter_ns()
        try:
            await sleep_until(t1 + int((expert_ms + extra_ms) * 1e6))
        finally:
            self._release()
        t2 = time.perf_counter_ns()
        self.consultations += 1
        self.queue_ns_total += t1 - t0
        return (t1 - t0) / 1e6, (t2 - t1) / 1e6

    async def endpoint(self) -> tuple[str, int]:
        """Host and port where :meth:`consult` is served as concurrent calls (:mod:`raybench.actors.wire`)."""
        if self._endpoint is None:
            from raybench.actors import wire

            self._endpoint = wire.Endpoint(lambda host: wire.serve_calls(self.consult, self._token, host))
        return await self._endpoint.address()

    def _release(self) -> None:
        self.busy -= 1
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.busy < self.capacity:
            fut = self._waiters.popleft()
            if not fut.done():
                self.busy += 1
                fut.set_result(None)

    async def set_capacity(self, capacity: int) -> int:
        """Resize the pool; returns the previous capacity."""
        previous, self.capacity = self.capacity, max(1, capacity)
        self._grant()
        return previous

    async def stats(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "busy": self.busy,
            "queued": len(self._waiters),
            "max_queue": self.max_queue,
            "consultations": self.consultations,
            "mean_queue_ms": self.queue_ns_total / 1e6 / self.consultations if self.consultations else 0.0,
        }

    async def sample_resources(self) -> tuple[Any, ...]:
        from raybench.actors.sampler import ProcessSampler

        if self._sampler is None:
            self._sampler = ProcessSampler("experts")
        return self._sampler.sample()
