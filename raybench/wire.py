"""The state data plane over a socket: length-prefixed batches between hosts and shards.

A Ray actor call costs about 2 ms of round trip and a few hundred microseconds of CPU spread over
the caller, the raylet-free direct path and the callee on a small machine; a request makes two or
three state round trips. So each :class:`~raybench.state.StateShard` also serves its ``apply`` on
a TCP port of its node, and a host's :class:`~raybench.state.StateClient` keeps one connection per
shard: a batch is one frame out, its results one frame back, in order. Ray still places, restarts
and controls the shards (``wait_lease``, ``stats``, the endpoint itself); only the hot
``apply`` path leaves Ray. ``state.transport = "ray"`` keeps every batch on Ray actor calls.

Frame: 4-byte big-endian length, then a pickle (protocol 5) of the batch (a list of operation
tuples) or of its results. A connection first sends the run's token (random bytes handed to the
shards and hosts through Ray); a wrong token closes it, so a stray client cannot touch the state.
The shard applies each batch synchronously in its event loop, so a batch is atomic exactly as a
Ray call of ``apply_async`` is, and batches of one connection are applied in the order sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import pickle
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

_LEN = struct.Struct("!I")
#: Largest frame accepted (a batch of ``max_ops`` tuples is a few KiB).
MAX_FRAME = 64 * 1024 * 1024
TOKEN_BYTES = 16


class ShardConnectionLost(ConnectionError):
    """The connection to a shard broke (the shard died, or its node left); the batch's fate is
    unknown, so every operation in it fails visibly."""


async def serve(apply: Callable[[list[Any]], list[Any]], token: bytes, host: str) -> tuple[asyncio.Server, int]:
    """Serve ``apply`` on ``host`` at an ephemeral port in the running loop; returns the server and
    its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            got = await reader.readexactly(len(token))
            if not hmac.compare_digest(got, token):
                return
            while True:
                (n,) = _LEN.unpack(await reader.readexactly(4))
                if n > MAX_FRAME:
                    return
                ops = pickle.loads(await reader.readexactly(n))
                out = pickle.dumps(apply(ops), protocol=5)
                writer.write(_LEN.pack(len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1]


class Connection:
    """A client's connection to one shard: :meth:`call` sends a batch at once and returns a future
    of its results; replies arrive in the order the batches were sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._waiting: deque[asyncio.Future[list[Any]]] = deque()
        self.lost: BaseException | None = None
        self._task = asyncio.ensure_future(self._read_replies())

    @classmethod
    async def open(cls, host: str, port: int, token: bytes) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(token)
        return cls(reader, writer)

    def call(self, ops: list[Any]) -> asyncio.Future[list[Any]]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.lost is not None:
            fut.set_exception(ShardConnectionLost(f"connection to the shard lost: {self.lost!r}"))
            return fut
        data = pickle.dumps(ops, protocol=5)
        self._writer.write(_LEN.pack(len(data)) + data)
        self._waiting.append(fut)
        return fut

    async def _read_replies(self) -> None:
        try:
            while True:
                (n,) = _LEN.unpack(await self._reader.readexactly(4))
                results = pickle.loads(await self._reader.readexactly(n))
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_result(results)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self.lost = exc
        except asyncio.CancelledError:
            self.lost = ConnectionError("connection closed")
        finally:
            if self.lost is None:
                self.lost = ConnectionError("connection closed")
            while self._waiting:
                fut = self._waiting.popleft()
                if not fut.done():
                    fut.set_exception(ShardConnectionLost(f"connection to the shard lost: {self.lost!r}"))
            self._writer.close()

    def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()
