"""The state data plane over a socket (raybench.actors.wire, its client side in
raybench.actors.transport.socket): real TCP on 127.0.0.1, a real shard object."""

from __future__ import annotations

import asyncio

import pytest

from raybench.actors import state as st
from raybench.actors import wire
from raybench.actors.transport.socket import CallConnection, Connection, ConnectionLost

TOKEN = b"0123456789abcdef"


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_batches_over_the_socket_give_the_shards_own_results_in_order():
    """The same batches through the socket and straight into a second shard give the same
    results (grants, refusals, versions, event sequence), pipelined, in the order sent."""

    async def main() -> None:
        served, direct = st.StateShard(0, TOKEN), st.StateShard(1)
        server, port = await wire.serve(served.apply, TOKEN, "127.0.0.1")
        conn = await Connection.open("127.0.0.1", port, TOKEN)
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
        conn = await Connection.open("127.0.0.1", port, b"x" * len(TOKEN))
        with pytest.raises(ConnectionLost):
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
        conn = await Connection.open("127.0.0.1", port, TOKEN)
        assert await conn.call([(st.ACQUIRE, 1, 1, 1)]) == [(True, 0, 0)]
        waiting = [conn.call([(st.ACQUIRE, 1, 1, 1)]) for _ in range(5)]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, ConnectionLost) for r in results), results
        assert conn.lost is not None
        with pytest.raises(ConnectionLost):
            await conn.call([(st.ACQUIRE, 1, 1, 1)])
        server.close()

    _run(main())


def test_calls_run_concurrently_and_answer_as_they_finish():
    """The expert pool over serve_calls: a long consultation does not hold up a short one, a
    failing call raises the remote error, and a client that goes away frees its experts."""
    from raybench.actors.experts import ExpertPool

    async def main() -> None:
        pool = ExpertPool(2, TOKEN)
        host, port = await pool.endpoint()
        assert await pool.endpoint() == (host, port)  # started once
        conn = await CallConnection.open(host, port, TOKEN)
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
