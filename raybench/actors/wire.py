"""The data plane's wire protocol, and its serving side: length-prefixed frames on TCP.

A Ray actor call costs about 2 ms of round trip on a small machine and a millisecond or more of
CPU spread over caller and callee (most of it in Ray's C++ core worker); a request makes two state
round trips and, when escalated, one expert consultation. So the shared actors also serve their hot
path on a TCP port of their node, and each host keeps one connection per actor (the client side:
:mod:`raybench.actors.transport.socket`, ``state.transport = "socket"``). Ray still places, restarts
and controls those actors (``stats``, faults, the endpoint itself); only the hot calls leave Ray.
``state.transport = "ray"`` keeps them all on Ray actor calls.

Two kinds of service:

* :func:`serve` (state shards): a frame is a batch of operations, applied synchronously in the
  actor's event loop, so a batch is atomic exactly as a Ray call of ``apply_async`` is; batches of
  one connection are applied and answered in the order sent.
* :func:`serve_calls` (the expert pool, a shard's lease waits): a frame is one call
  ``(call_id, args)`` of a coroutine; calls run concurrently and are answered as they finish
  (``(call_id, ok, result or error text)``). When a connection is lost, its unfinished calls are
  cancelled on the serving side (a consultation frees its expert).

Frame: 4-byte big-endian length, then a pickle (protocol 5). A connection first sends the run's
token (random bytes handed to the actors and hosts through Ray); a wrong token closes it, so a
stray client cannot touch the run's state.
"""

from __future__ import annotations

import asyncio
import hmac
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

_LEN = struct.Struct("!I")
#: Largest frame accepted (a batch of ``max_ops`` tuples is a few KiB).
MAX_FRAME = 64 * 1024 * 1024
TOKEN_BYTES = 16


def frame(obj: Any) -> bytes:
    """``obj`` as one frame: its length, then its pickle."""
    data = pickle.dumps(obj, protocol=5)
    return _LEN.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's object (``asyncio.IncompleteReadError`` when the stream ends)."""
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
            writer.write(frame(apply(await read_frame(reader))))
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
            writer.write(frame(reply))

        try:
            while True:
                call_id, args = await read_frame(reader)
                task = asyncio.ensure_future(run(call_id, args))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    return await _start(session, token, host)


async def open_stream(host: str, port: int, token: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The client's side of a connection: connect (no Nagle delay) and send the token first."""
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(token)
    return reader, writer


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
