"""What an agent host needs from the coordination layer's data plane: :class:`Transport`.

A transport carries a host's hot calls to the shared actors: batches of state operations to one
shard (:meth:`Transport.apply`), a refused lease's wait in its key's queue
(:meth:`Transport.wait_lease`) and consultations of the expert pool (:meth:`Transport.consult`).
It does not batch, route keys to shards or measure anything: :class:`raybench.actors.state.StateClient`
batches and routes, the host measures.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

#: One state operation ``(code, key, owner, arg)`` (codes in :mod:`raybench.actors.state`).
Op = tuple[int, int, int, int]
#: One operation's result tuple (see :meth:`raybench.actors.state.StateShard.apply`).
Result = tuple[Any, ...]


class ConnectionLost(ConnectionError):
    """The connection to a shared actor broke (it died, or its node left), or the transport was
    closed; the fate of what was in flight is unknown, so every waiting operation fails visibly."""


class Transport(Protocol):
    """The data plane between one host and the shared actors (one instance per host event loop).

    Implementations: :class:`~raybench.actors.transport.ray.RayTransport` (Ray actor calls),
    :class:`~raybench.actors.transport.socket.SocketTransport` (the actors' TCP ports, see
    :mod:`raybench.actors.wire`), :class:`~raybench.actors.transport.memory.MemoryTransport` (plain
    objects in this process, for tests). Built by :func:`raybench.actors.transport.make_transport`.
    """

    #: The scenario's ``state.transport`` value this implements ("memory" for the in-process fake).
    name: str
    #: How many state shards it reaches (shard indices are ``0 .. shard_count - 1``).
    shard_count: int

    async def connect(self) -> None:
        """Open whatever is not open yet, so that no request pays for it (and reopen what was lost
        or closed). Calls made without it open their connection on first use."""

    def apply(self, shard: int, ops: list[Op]) -> Awaitable[list[Result]]:
        """Send a batch of operations to ``shard`` now; the awaitable gives one result per
        operation, in order. Batches to one shard are applied atomically, each in one piece, in the
        order sent. A lost shard or connection raises from the awaitable, never silently."""
        ...

    def wait_lease(self, shard: int, key: int, owner: int, ttl_ns: int, timeout_s: float) -> Awaitable[Result]:
        """Wait in ``key``'s FIFO queue on ``shard`` until the lease is granted or ``timeout_s``
        passes: ``(granted, version, shard_ns)`` (:meth:`raybench.actors.state.StateShard.wait_lease`)."""
        ...

    def consult(self, expert_ms: float, extra_ms: float) -> Awaitable[tuple[float, float]]:
        """One consultation of the expert pool: ``(queue_ms, expert_ms)`` as measured in the pool
        (:meth:`raybench.actors.experts.ExpertPool.consult`)."""
        ...

    def close(self) -> None:
        """Close the connections (:meth:`connect` opens them again)."""
