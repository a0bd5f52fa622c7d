"""The state data plane over a socket (raybench.wire): real TCP on 127.0.0.1, a real shard actor."""

from __future__ import annotations

import asyncio
import time

import pytest

from raybench import state as st
from raybench import wire

TOKEN = b"0123456789abcdef"


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_batches_over_the_socket_give_the_shards_own_results_in_order():
    """The same batches through the socket and straight into a second shard give the same
    results (grants, refusals, versions, event sequence), pipelined, in the order sent."""

    async def main() -> None:
        served, direct = st.StateShard(0, TOKEN), st.StateShard(1)
        server, port = await wire.serve(served.apply, TOKEN, "127.0.0.1")
        conn = await wire.Connection.open("127.0.0.1", port, TOKEN)
        batches = [
            [(st.ACQUIRE, k % 7, k % 3, 10**12), (st.APPEND, k % 7, k % 3, 0), (st.CAS_RELEASE, k % 7, k % 3, k % 2)]
            for k in range(200)
        ]
        futures = [conn.call(b) for b in batches]  # all in flight at once
        got = await asyncio.gather(*futures)
        want = [direct.apply(b) for b in batches]
        strip = lambda res: [r[:-1] for r in res]  # noqa: E731 (the shard clock differs)
        assert [strip(g) for g in got] == [strip(w) for w in want]
        assert served.seq == 200 and served.versions == direct.versions
        conn.close()
        server.close()

    _run(main())


def test_a_wrong_token_is_refused_and_touches_nothing():
    async def main() -> None:
        shard = st.StateShard(0, TOKEN)
        server, port = await wire.serve(shard.apply, TOKEN, "127.0.0.1")
        conn = await wire.Connection.open("127.0.0.1", port, b"x" * len(TOKEN))
        with pytest.raises(wire.ConnectionLost):
            await conn.call([(st.APPEND, 1, 1, 0)])
        assert shard.seq == 0 and shard.counters["batches"] == 0
        server.close()

    _run(main())


def test_a_lost_server_fails_every_waiting_batch_instead_of_hanging():
    """The serving side dies after the first batch (its apply raises, the connection closes):
    the batches still waiting fail with ConnectionLost, and so does any later call."""

    async def main() -> None:
        calls = []

        def dying_apply(ops):
            calls.append(len(ops))
            if len(calls) > 1:
                raise RuntimeError("shard process died")
            return [(True, 0, 0) for _ in ops]

        server, port = await wire.serve(dying_apply, TOKEN, "127.0.0.1")
        conn = await wire.Connection.open("127.0.0.1", port, TOKEN)
        assert await conn.call([(st.ACQUIRE, 1, 1, 1)]) == [(True, 0, 0)]
        waiting = [conn.call([(st.ACQUIRE, 1, 1, 1)]) for _ in range(5)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, wire.ConnectionLost) for r in results), results
        assert conn.lost is not None
        with pytest.raises(wire.ConnectionLost):
            await conn.call([(st.ACQUIRE, 1, 1, 1)])
        server.close()

    _run(main())


def test_calls_run_concurrently_and_answer_as_they_finish():
    """The expert pool over serve_calls: a long consultation does not hold up a short one, a
    failing call raises the remote error, and a client that goes away frees its experts."""
    from raybench.experts import ExpertPool

    async def main() -> None:
        pool = ExpertPool(2, TOKEN)
        host, port = await pool.endpoint()
        assert await pool.endpoint() == (host, port)  # started once
        conn = await wire.CallConnection.open(host, port, TOKEN)
        slow, fast = conn.call(300.0), conn.call(10.0)
        done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {fast}
        queue_ms, expert_ms = await fast
        assert queue_ms < 50 and expert_ms >= 10
        assert (await slow)[1] >= 300
        with pytest.raises(RuntimeError, match="TypeError"):
            await conn.call("not a number")
        # two long consultations hold both experts; the client vanishes; the experts come free
        held = [conn.call(10_000.0), conn.call(10_000.0)]
        await asyncio.sleep(0.1)
        assert pool.busy == 2
        conn.close()
        for _ in range(50):
            if pool.busy == 0:
                break
            await asyncio.sleep(0.02)
        assert pool.busy == 0
        assert all(f.done() for f in held)

    _run(main())


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
            self.client = st.StateClient([shard], max_inflight=1, token=TOKEN)

        async def connect(self) -> None:
            await self.client.connect()

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
            self.client = st.StateClient([shard], max_inflight=1, token=TOKEN)

        async def contend(self) -> tuple:
            await self.client.connect()
            first = await self.client.submit(7, st.ACQUIRE, 1, 10**10)
            waiting = asyncio.ensure_future(self.client.wait_lease(7, 2, 10**10, 10.0))
            timed_out = await self.client.wait_lease(7, 3, 10**10, 0.2)  # queued behind owner 2
            await asyncio.sleep(0.1)
            assert not waiting.done()
            released = await self.client.submit(7, st.RELEASE, 1, 0)
            granted = await waiting
            self.client.close()
            return first[0], timed_out[0], released[0], granted[0]

    shard = ray.remote(st.StateShard).options(max_concurrency=1000).remote(0, TOKEN)
    assert ray.get(Host.remote(shard).contend.remote()) == (True, False, True, True)
    stats = ray.get(shard.stats.remote())
    assert stats["queued"] == 2 and stats["grants"] == 2
    # the waits were served by the call socket the client asked for, not by Ray calls
    assert ray.get(shard.__ray_call__.remote(lambda self: self._calls_endpoint is not None))
