"""The Ray transport: every hot call is a Ray actor call (``state.transport = "ray"``).

Batches are ``apply_async`` calls on the shard's actor (a Ray actor runs one call of a coroutine
without an ``await`` start to end, so a batch is atomic; one caller's calls to an actor start in
the order submitted), lease waits are ``wait_lease`` calls and consultations ``consult`` calls on
the expert pool. Nothing to open or close: Ray keeps the connections (and, for a shard Ray
restarted, a call made while it comes back raises ``ActorUnavailableError``: it fails visibly).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from raybench.actors.transport.protocol import Op, Result


class RayTransport:
    """The data plane as Ray actor calls.

    Args:
        shards: Ray actor handles of the state shards.
        experts: the expert pool's handle (None when nothing consults it).
    """

    name = "ray"

    def __init__(self, shards: Sequence[Any], experts: Any) -> None:
        self._shards = list(shards)
        self._experts = experts
        self.shard_count = len(self._shards)

    async def connect(self) -> None:
        return None

    def apply(self, shard: int, ops: list[Op]) -> Awaitable[list[Result]]:
        return self._shards[shard].apply_async.remote(ops)  # an ObjectRef

    def wait_lease(self, shard: int, key: int, owner: int, ttl_ns: int, timeout_s: float) -> Awaitable[Result]:
        return self._shards[shard].wait_lease.remote(key, owner, ttl_ns, timeout_s)

    def consult(self, expert_ms: float, extra_ms: float) -> Awaitable[tuple[float, float]]:
        if self._experts is None:
            raise RuntimeError("this transport has no expert pool to consult")
        return self._experts.consult.remote(expert_ms, extra_ms)

    def close(self) -> None:
        return None
