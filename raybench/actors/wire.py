"""The data plane over sockets: length-prefixed frames between hosts and the shared actors.

A Ray actor call costs about 2 ms of round trip on a small machine and a millisecond or more of
CPU spread over caller and callee (most of it in Ray's C++ core worker); a request makes two state
round trips and, when escalated, one expert consultation. So the shared actors also serve their hot
path on a TCP port of their node, and each host keeps one connection per actor. Ray still places,
restarts and controls those actors (``wait_lease``, ``stats``, faults, the endpoint itself); only
the hot calls leave Ray. ``state.transport = "ray"`` keeps them all on Ray actor calls.

Two kinds of service:

* :func:`serve` / :class:`Connection` (state shards): a frame is a batch of operations, applied
  synchronously in the actor's event loop, so a batch is atomic exactly as a Ray call of
  ``apply_async`` is; batches of one connection are applied and answered in the order sent.
* :func:`serve_calls` / :class:`CallConnection` (the expert pool): a frame is one call
  ``(call_id, args)`` of a coroutine; calls run concurrently and are answered as they finish
  (``(call_id, ok, result or error text)``). When a connection is lost, its unfinished calls are
  cancelled on the serving side (a consultation frees its expert).

Frame: 4-byte big-endian length, then a pickle (protocol 5). A connection first sends the run's
token (random bytes handed to the actors and hosts through Ray); a wrong token closes it, so a
stray client cannot touch the run's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import pickle
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

_LEN = struct.Struct("!I")
#: Largest frame accepted (a batch of ``max_ops`` tuples is a few KiB).
MAX_FRAME = 64 * 1024 * 1024
TOKEN_BYTES = 16


class ConnectionLost(ConnectionError):
    """The connection to a shared actor broke (it died, or its node left); the fate of what was in
    flight is unknown, so every waiting operation fails visibly."""


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=5)
    return _LEN.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (n,) = _LEN.unpack(await reader.readexactly(4))
    if n > MAX_FRAME:
        raise ConnectionError(f"frame of {n} bytes exceeds {MAX_FRAME}")
    return pickle.loads(await reader.readexactly(n))


async def _start(
    session: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], token: bytes, host: str
) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if hmac.compare_digest(await reader.readexactly(len(token)), token):
                await session(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1]


async def serve(apply: Callable[[list[Any]], list[Any]], token: bytes, host: str) -> tuple[asyncio.Server, int]:
    """Serve the synchronous batch function ``apply`` on ``host`` at an ephemeral port in the
    running loop; returns the server and its port."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(_frame(apply(await _read_frame(reader))))
            await writer.drain()

    return await _start(session, token, host)


async def serve_calls(call: Callable[..., Awaitable[Any]], token: bytes, host: str) -> tuple[asyncio.Server, int]:
    """Serve the coroutine function ``call``: concurrent calls, answered as they finish."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        running: set[asyncio.Task[None]] = set()

        async def run(call_id: int, args: tuple[Any, ...]) -> None:
            try:
                reply = (call_id, True, await call(*args))
            except Exception as exc:
                reply = (call_id, False, f"{type(exc).__name__}: {exc}")
            writer.write(_frame(reply))

        try:
            while True:
                call_id, args = await _read_frame(reader)
                task = asyncio.ensure_future(run(call_id, args))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    return await _start(session, token, host)


async def _open(host: str, port: int, token: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(token)
    return reader, writer


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
                self._deliver(await _read_frame(self._reader))
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
        return cls(*await _open(host, port, token))

    def call(self, ops: list[Any]) -> asyncio.Future[list[Any]]:
        failed = self._failed()
        if failed is not None:
            return failed
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._writer.write(_frame(ops))
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
        return cls(*await _open(host, port, token))

    def call(self, *args: Any) -> asyncio.Future[Any]:
        failed = self._failed()
        if failed is not None:
            return failed
        call_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = fut
        self._writer.write(_frame((call_id, args)))
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


def node_ip() -> str:
    """The address other nodes reach this process at (loopback outside Ray)."""
    try:
        import ray

        if ray.is_initialized():
            return str(ray.util.get_node_ip_address())
    except Exception:
        pass
    return "127.0.0.1"


class Endpoint:
    """An actor's socket service, started on first use in the actor's event loop: ``start`` is
    :func:`serve` or :func:`serve_calls` bound to the actor's function and token."""

    def __init__(self, start: Callable[[str], Awaitable[tuple[asyncio.Server, int]]]) -> None:
        self._start = start
        self._task: asyncio.Task[tuple[str, int]] | None = None
        self.server: asyncio.Server | None = None

    async def address(self) -> tuple[str, int]:
        """``(host, port)``; concurrent first callers share one start."""
        if self._task is None:

            async def start() -> tuple[str, int]:
                host = node_ip()
                self.server, port = await self._start(host)
                return host, port

            self._task = asyncio.ensure_future(start())
        return await asyncio.shield(self._task)
