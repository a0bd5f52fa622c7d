"""The state data plane over a socket (raybench.actors.transport.socket): real TCP on 127.0.0.1, a real shard actor."""

from __future__ import annotations

import asyncio
import time

import pytest

from raybench.actors import state as st
from raybench.actors.transport import make_transport

TOKEN = b"0123456789abcdef"


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.ray
def test_client_uses_the_socket_and_reconnects_to_a_restarted_shard(ray_local):
    """Against a real StateShard actor: operations go over the socket (no apply_async Ray call);
    when the shard's process is killed the batches in flight fail visibly, and the client then
    reaches the shard Ray restarted (empty, counted as restarted) on its new port."""
    import os
    import signal

    ray = ray_local

    @ray.remote(max_concurrency=1000)
    class Host:
        def __init__(self, shard):
            self.transport = make_transport("socket", [shard], None, TOKEN)
            self.client = st.StateClient(self.transport, max_inflight=1)

        async def connect(self) -> None:
            await self.transport.connect()

        async def appends(self, n: int) -> list:
            res = await asyncio.gather(
                *(self.client.submit(k, st.APPEND, k, 0) for k in range(n)), return_exceptions=True
            )
            return [r if not isinstance(r, BaseException) else type(r).__name__ for r in res]

    shard = ray.remote(st.StateShard).options(max_concurrency=1000, max_restarts=1, max_task_retries=0).remote(0, TOKEN)
    host = Host.remote(shard)
    ray.get(host.connect.remote())
    seqs = ray.get(host.appends.remote(300))
    assert sorted(r[0] for r in seqs) == list(range(1, 301))
    stats = ray.get(shard.stats.remote())
    assert stats["ops"] == 300 and stats["batches"] < 300  # batched, and all of them arrived
    pid = ray.get(shard.__ray_call__.remote(lambda self: os.getpid()))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # the first calls after the kill fail (connection lost); then the restarted shard answers
        res = ray.get(host.appends.remote(10))
        if all(isinstance(r, tuple) for r in res):
            break
        # lost with the connection, or refused while Ray restarts the shard: never a silent success
        assert all(r in ("ConnectionLost", "ActorUnavailableError") or isinstance(r, tuple) for r in res), res
        assert time.monotonic() < deadline, res
        time.sleep(0.2)
    assert sorted(r[0] for r in res) == list(range(1, 11))  # a new, empty event log
    assert ray.get(shard.stats.remote())["restarted"] == 1


def test_lease_waits_go_over_the_shards_call_socket(ray_local):
    """A refused lease waits in the key's queue over the shard's call socket: the hand-over on
    release reaches the waiter, and a wait that outlives its timeout comes back refused."""
    ray = ray_local

    @ray.remote(max_concurrency=1000)
    class Host:
        def __init__(self, shard):
            self.transport = make_transport("socket", [shard], None, TOKEN)
            self.client = st.StateClient(self.transport, max_inflight=1)

        async def contend(self) -> tuple:
            await self.transport.connect()
            first = await self.client.submit(7, st.ACQUIRE, 1, 10**10)
            waiting = asyncio.ensure_future(self.client.wait_lease(7, 2, 10**10, 10.0))
            timed_out = await self.client.wait_lease(7, 3, 10**10, 0.2)  # queued behind owner 2
            await asyncio.sleep(0.1)
            assert not waiting.done()
            released = await self.client.submit(7, st.RELEASE, 1, 0)
            granted = await waiting
            self.transport.close()
            return first[0], timed_out[0], released[0], granted[0]

    shard = ray.remote(st.StateShard).options(max_concurrency=1000).remote(0, TOKEN)
    assert ray.get(Host.remote(shard).contend.remote()) == (True, False, True, True)
    stats = ray.get(shard.stats.remote())
    assert stats["queued"] == 2 and stats["grants"] == 2
    # the waits were served by the call socket the client asked for, not by Ray calls
    assert ray.get(shard.__ray_call__.remote(lambda self: self._calls_endpoint is not None))
