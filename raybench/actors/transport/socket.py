"""The socket transport: a host's connections to the shared actors' TCP ports (the client side of
:mod:`raybench.actors.wire`), ``state.transport = "socket"``, the default.

:class:`SocketTransport` keeps, per shard, one :class:`Connection` for the ordered batches and one
:class:`CallConnection` for the concurrent lease waits, and one :class:`CallConnection` to the
expert pool. The actors' addresses come from their ``endpoint`` methods (Ray calls: Ray still
places and restarts the actors). A connection to a shard that is lost (the shard died; Ray restarts
it empty, on a new port) fails what was in flight with :class:`ConnectionLost` and is opened again
by the next call; the expert pool is not restarted, so once its connection is lost every later
consultation fails visibly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any

from raybench.actors import wire
from raybench.actors.transport.protocol import ConnectionLost, Op, Result

#: The connections a transport keeps: per shard ordered batches and concurrent lease waits; the pool.
_KINDS = ("batches", "calls", "experts")


class _Client:
    """What both connection kinds share: the reply reader and failing everything on loss."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.lost: BaseException | None = None
        self._task = asyncio.ensure_future(self._read_replies())

    def _lost_error(self) -> ConnectionLost:
        return ConnectionLost(f"connection to the actor lost: {self.lost!r}")

    def _failed(self) -> asyncio.Future[Any] | None:
        if self.lost is None:
            return None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_exception(self._lost_error())
        return fut

    def _deliver(self, reply: Any) -> None:
        raise NotImplementedError

    def _waiting(self) -> list[asyncio.Future[Any]]:
        raise NotImplementedError

    async def _read_replies(self) -> None:
        try:
            while True:
                self._deliver(await wire.read_frame(self._reader))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self.lost = exc
        except asyncio.CancelledError:
            self.lost = ConnectionError("connection closed")
        finally:
            if self.lost is None:
                self.lost = ConnectionError("connection closed")
            for fut in self._waiting():
                if not fut.done():
                    fut.set_exception(self._lost_error())
            self._writer.close()

    def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()


class Connection(_Client):
    """A host's connection to one shard: :meth:`call` sends a batch at once and returns a future
    of its results; replies arrive in the order the batches were sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._queue: deque[asyncio.Future[list[Any]]] = deque()
        super().__init__(reader, writer)

    @classmethod
    async def open(cls, host: str, port: int, token: bytes) -> Connection:
        return cls(*await wire.open_stream(host, port, token))

    def call(self, ops: list[Any]) -> asyncio.Future[list[Any]]:
        failed = self._failed()
        if failed is not None:
            return failed
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._writer.write(wire.frame(ops))
        self._queue.append(fut)
        return fut

    def _deliver(self, reply: Any) -> None:
        fut = self._queue.popleft()
        if not fut.done():
            fut.set_result(reply)

    def _waiting(self) -> list[asyncio.Future[Any]]:
        waiting, self._queue = list(self._queue), deque()
        return waiting


class CallConnection(_Client):
    """A host's connection to a call service: :meth:`call` returns a future of the call's result
    (a failed call raises ``RuntimeError`` with the remote error text)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        super().__init__(reader, writer)

    @classmethod
    async def open(cls, host: str, port: int, token: bytes) -> CallConnection:
        return cls(*await wire.open_stream(host, port, token))

    def call(self, *args: Any) -> asyncio.Future[Any]:
        failed = self._failed()
        if failed is not None:
            return failed
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = fut
        self._writer.write(wire.frame((call_id, args)))
        return fut

    def _deliver(self, reply: Any) -> None:
        call_id, ok, value = reply
        fut = self._pending.pop(call_id, None)
        if fut is not None and not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(RuntimeError(value))

    def _waiting(self) -> list[asyncio.Future[Any]]:
        waiting, self._pending = list(self._pending.values()), {}
        return waiting


class SocketTransport:
    """The data plane over the actors' sockets (see the module docstring).

    Args:
        shards: Ray actor handles of the state shards (``endpoint`` and ``calls_endpoint`` are
            called on them: anything whose ``.endpoint.remote()`` gives an awaitable address does).
        experts: the expert pool's handle (``endpoint``), or None when nothing consults it.
        token: the run's data-plane token, sent first on every connection.
    """

    name = "socket"

    def __init__(self, shards: Sequence[Any], experts: Any, token: bytes) -> None:
        self._shards = list(shards)
        self._experts = experts
        self.token = token
        self.shard_count = len(self._shards)
        sizes = {"batches": self.shard_count, "calls": self.shard_count, "experts": 1}
        # per kind of connection, per shard (one for the pool)
        self._conns: dict[str, list[Any]] = {kind: [None] * n for kind, n in sizes.items()}
        self._connecting: dict[str, list[asyncio.Task[Any] | None]] = {kind: [None] * n for kind, n in sizes.items()}

    async def connect(self) -> None:
        opens = [self._connection(i, kind) for i in range(self.shard_count) for kind in ("batches", "calls")]
        if self._experts is not None and self._conns["experts"][0] is None:
            opens.append(self._connection(0, "experts"))
        await asyncio.gather(*opens)

    def apply(self, shard: int, ops: list[Op]) -> Awaitable[list[Result]]:
        conn = self._conns["batches"][shard]
        if conn is not None and conn.lost is None and self._connecting["batches"][shard] is None:
            return conn.call(ops)  # the hot path: the frame is written now, no coroutine
        return self._apply_opening(shard, ops)

    async def _apply_opening(self, shard: int, ops: list[Op]) -> list[Result]:
        conn = await self._connection(shard, "batches")
        return await conn.call(ops)

    async def wait_lease(self, shard: int, key: int, owner: int, ttl_ns: int, timeout_s: float) -> Result:
        conn = self._conns["calls"][shard]
        if conn is None or conn.lost is not None:
            conn = await self._connection(shard, "calls")
        return tuple(await conn.call(key, owner, ttl_ns, timeout_s))

    def consult(self, expert_ms: float, extra_ms: float) -> Awaitable[tuple[float, float]]:
        conn = self._conns["experts"][0]
        if conn is not None:  # lost or not: the pool is not restarted, a lost one fails visibly
            return conn.call(expert_ms, extra_ms)
        return self._consult_opening(expert_ms, extra_ms)

    async def _consult_opening(self, expert_ms: float, extra_ms: float) -> tuple[float, float]:
        conn = await self._connection(0, "experts")
        return await conn.call(expert_ms, extra_ms)

    def close(self) -> None:
        for conns in self._conns.values():
            for i, conn in enumerate(conns):
                if conn is not None:
                    conn.close()
                    conns[i] = None

    async def _connection(self, i: int, kind: str) -> Any:
        """The live connection of ``kind`` to shard ``i`` (the pool: 0), opened once however many
        callers wait for it."""
        conn = self._conns[kind][i]
        if conn is not None and conn.lost is None:
            return conn
        connecting = self._connecting[kind]
        task = connecting[i]
        if task is None:
            task = connecting[i] = asyncio.ensure_future(self._open(i, kind))
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and connecting[i] is task:
                connecting[i] = None  # a failed open is tried again by the next caller

    async def _open(self, i: int, kind: str) -> Any:
        if kind == "experts":
            if self._experts is None:
                raise RuntimeError("this transport has no expert pool to consult")
            endpoint = self._experts.endpoint
        else:  # while Ray restarts a dead shard this raises (ActorUnavailableError): the caller fails visibly
            shard = self._shards[i]
            endpoint = shard.endpoint if kind == "batches" else shard.calls_endpoint
        host, port = await endpoint.remote()
        kind_of = Connection if kind == "batches" else CallConnection
        conn = self._conns[kind][i] = await kind_of.open(host, port, self.token)
        return conn
