"""The transports (raybench.actors.transport) without Ray: the in-memory fake against plain shards
and a pool, the Ray transport against stand-in actor handles, the socket transport over real TCP on
127.0.0.1, and the factory that picks one by the scenario's name."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from raybench.actors import state as st
from raybench.actors.experts import ExpertPool
from raybench.actors.transport import (
    ConnectionLost,
    MemoryTransport,
    RayTransport,
    SocketTransport,
    Transport,
    make_transport,
)
from raybench.config import scenario
from raybench.errors import ScenarioError

TOKEN = b"0123456789abcdef"
TTL = 10**10


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def _strip(results: list[tuple]) -> list[tuple]:
    return [r[:-1] for r in results]  # the shard clock differs


class _Method:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class FakeHandle:
    """Stands in for a Ray actor handle: ``handle.method.remote(*args)`` calls the plain object's
    method (a coroutine for the async ones, awaited by the caller as an ObjectRef would be)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> _Method:
        fn = getattr(self.obj, name)

        def remote(*args: Any) -> Any:
            self.calls.append(name)
            return fn(*args)

        return _Method(remote)


def _batches(n: int) -> list[list[tuple[int, int, int, int]]]:
    return [
        [(st.ACQUIRE, k % 5, k % 3, TTL), (st.APPEND, k % 5, k % 3, 0), (st.CAS_RELEASE, k % 5, k % 3, k % 2)]
        for k in range(n)
    ]


# -- the in-memory transport --------------------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0.0, 0.005])
def test_memory_batches_are_applied_whole_in_the_order_sent_and_answered_later(delay_s):
    """The same batches through the fake and straight into a second shard give the same results;
    a reply never arrives inside the caller's call."""

    async def main() -> None:
        served, direct = st.StateShard(0), st.StateShard(1)
        t = MemoryTransport([served], delay_s=delay_s)
        batches = _batches(100)
        futures = [t.apply(0, b) for b in batches]  # all in flight at once
        assert not any(f.done() for f in futures) and served.counters["batches"] == 0
        got = await asyncio.gather(*futures)
        want = [direct.apply(b) for b in batches]
        assert [_strip(g) for g in got] == [_strip(w) for w in want]
        assert served.versions == direct.versions and served.seq == 100
        assert [s for s, _ in t.sent] == [0] * 100 and [ops for _, ops in t.sent] == batches
        assert [e[0] for e in served.events] == list(range(1, 101))  # appended in the order sent

    _run(main())


def test_memory_a_failing_batch_fails_its_caller_only_and_a_down_shard_fails_visibly():
    async def main() -> None:
        shards = [st.StateShard(0), st.StateShard(1)]
        t = MemoryTransport(shards)
        bad = t.apply(0, [(st.APPEND, 1)])  # not an operation: the shard raises
        good = t.apply(0, [(st.APPEND, 1, 1, 0)])
        with pytest.raises(ValueError):
            await bad
        assert (await good)[0][0] == 1
        t.down.add(1)
        with pytest.raises(ConnectionLost):
            await t.apply(1, [(st.APPEND, 2, 1, 0)])
        with pytest.raises(ConnectionLost):
            await t.wait_lease(1, 2, 1, TTL, 1.0)
        assert shards[1].counters["batches"] == 0
        t.down.clear()
        assert (await t.apply(1, [(st.APPEND, 2, 1, 0)]))[0][0] == 1

    _run(main())


def test_memory_lease_waits_are_handed_over_in_fifo_order_through_the_client():
    """A refused lease waits in the key's queue: the release hands it to the first waiter; a
    wait that outlives its timeout comes back refused; nothing polls."""

    async def main() -> None:
        shard = st.StateShard(0)
        t = MemoryTransport([shard])
        client = st.StateClient(t, max_inflight=1)
        assert (await client.submit(7, st.ACQUIRE, 1, TTL))[0] is True
        assert (await client.submit(7, st.ACQUIRE, 2, TTL))[0] is False  # held
        second = asyncio.ensure_future(client.wait_lease(7, 2, TTL, 10.0))
        await asyncio.sleep(0.01)
        third = asyncio.ensure_future(client.wait_lease(7, 3, TTL, 10.0))
        timed_out = await client.wait_lease(7, 4, TTL, 0.05)
        assert timed_out[0] is False and not second.done() and not third.done()
        released = await client.submit(7, st.RELEASE, 1)
        assert released[0] is True
        granted = await second
        assert granted[0] is True and shard.leases[7][0] == 2 and not third.done()
        await client.submit(7, st.CAS_RELEASE, 2, granted[1])
        assert (await third)[0] is True and shard.leases[7][0] == 3
        assert shard.versions[7] == 1 and t.lease_waits == 3
        assert shard.counters["queued"] == 3 and shard.counters["grants"] == 3

    _run(main())


def test_memory_consultations_queue_for_the_pools_experts():
    async def main() -> None:
        pool = ExpertPool(1)
        t = MemoryTransport([st.StateShard(0)], pool)
        (q1, e1), (q2, e2) = await asyncio.gather(t.consult(40.0, 0.0), t.consult(40.0, 5.0))
        assert e1 >= 40.0 and e2 >= 45.0
        assert q1 < 20.0 and q2 >= 35.0  # the second waited for the only expert
        assert t.consultations == 2 and pool.consultations == 2 and pool.busy == 0
        with pytest.raises(RuntimeError, match="no expert pool"):
            await MemoryTransport([st.StateShard(0)]).consult(1.0, 0.0)

    _run(main())


def test_memory_client_batches_operations_submitted_together():
    """Operations submitted in one loop iteration leave as one batch per shard (StateClient's
    batching, observed through the fake's log)."""

    async def main() -> None:
        shards = [st.StateShard(0), st.StateShard(1)]
        t = MemoryTransport(shards)
        client = st.StateClient(t, max_ops=256, max_inflight=1)
        results = await asyncio.gather(*(client.submit(k, st.APPEND, k) for k in range(200)))
        assert len(results) == 200 and client.ops == 200
        per_shard = [sum(len(ops) for s, ops in t.sent if s == i) for i in range(2)]
        assert sum(per_shard) == 200 and all(per_shard)
        assert client.calls == len(t.sent) <= 4  # one batch per shard, and what came in meanwhile
        assert [k for s, ops in t.sent for _, k, _, _ in ops if s == 0] == [
            k for k in range(200) if st.shard_of(k, 2) == 0
        ]

    _run(main())


# -- the Ray transport, against stand-in handles ------------------------------------------------


def test_ray_transport_makes_the_actor_calls_the_engine_made():
    async def main() -> None:
        shard, pool = FakeHandle(st.StateShard(0)), FakeHandle(ExpertPool(2))
        t = make_transport("ray", [shard], pool)
        assert isinstance(t, RayTransport) and t.name == "ray" and t.shard_count == 1
        await t.connect()
        client = st.StateClient(t)
        assert (await client.submit(3, st.ACQUIRE, 1, TTL))[0] is True
        waiting = asyncio.ensure_future(client.wait_lease(3, 2, TTL, 5.0))
        await asyncio.sleep(0.01)
        await client.submit(3, st.RELEASE, 1)
        assert (await waiting)[0] is True
        _, expert_ms = await t.consult(5.0, 0.0)
        assert expert_ms >= 5.0
        t.close()
        assert shard.calls == ["apply_async", "wait_lease", "apply_async"] and pool.calls == ["consult"]

    _run(main())


# -- the socket transport, over real TCP --------------------------------------------------------


def test_socket_transport_carries_batches_lease_waits_and_consultations():
    """Against plain objects serving their real endpoints: everything travels over the sockets
    (the handles are asked for addresses only), and a closed transport opens again on use."""

    async def main() -> None:
        shard, pool = st.StateShard(0, TOKEN), ExpertPool(1, TOKEN)
        handle, pool_handle = FakeHandle(shard), FakeHandle(pool)
        t = make_transport("socket", [handle], pool_handle, TOKEN)
        assert isinstance(t, SocketTransport) and t.name == "socket"
        await t.connect()
        assert sorted(handle.calls) == ["calls_endpoint", "endpoint"] and pool_handle.calls == ["endpoint"]
        client = st.StateClient(t, max_inflight=1)
        got = await asyncio.gather(*(t.apply(0, b) for b in _batches(50)))
        direct = st.StateShard(1)
        want = [direct.apply(b) for b in _batches(50)]
        assert [_strip(g) for g in got] == [_strip(w) for w in want]
        assert (await client.submit(9, st.ACQUIRE, 1, TTL))[0] is True
        waiting = asyncio.ensure_future(client.wait_lease(9, 2, TTL, 5.0))
        await asyncio.sleep(0.05)
        await client.submit(9, st.RELEASE, 1)
        assert (await waiting)[0] is True
        _, expert_ms = await t.consult(5.0, 1.0)
        assert expert_ms >= 6.0
        assert sorted(handle.calls) == ["calls_endpoint", "endpoint"]  # no Ray call on the hot path
        t.close()
        assert (await t.apply(0, [(st.APPEND, 1, 1, 0)]))[0][0] == 51  # reopened on use
        assert handle.calls.count("endpoint") == 2
        t.close()

    _run(main())


# -- the factory ---------------------------------------------------------------------------------


def test_the_factory_builds_each_transport_by_name():
    shard, pool = st.StateShard(0), ExpertPool(1)
    memory = make_transport("memory", [shard], pool)
    assert isinstance(memory, MemoryTransport) and memory.shards == [shard] and memory.experts is pool
    assert isinstance(make_transport("ray", [object(), object()], None), RayTransport)
    sock = make_transport("socket", [object()], None, TOKEN)
    assert isinstance(sock, SocketTransport) and sock.token == TOKEN
    with pytest.raises(ValueError, match="token"):
        make_transport("socket", [object()], None)
    with pytest.raises(ScenarioError, match=r"state\.transport = 'carrier-pigeon'"):
        make_transport("carrier-pigeon", [object()], None)


@pytest.mark.parametrize("name", ["memory", "carrier-pigeon"])
def test_the_scenario_allows_socket_and_ray_only(name):
    """The in-memory fake is not a scenario value: config rejects it (and any other name) before
    the factory would see it."""
    for ok in ("socket", "ray"):
        assert scenario.load(None, "smoke", {"state.transport": ok}).state.transport == ok
    with pytest.raises(ScenarioError, match="transport"):
        scenario.load(None, "smoke", {"state.transport": name})


def test_every_transport_has_the_protocols_methods():
    def params(fn: Any) -> list[str]:
        return list(inspect.signature(fn).parameters)

    for cls in (MemoryTransport, RayTransport, SocketTransport):
        assert isinstance(cls.name, str)
        for method in ("connect", "apply", "wait_lease", "consult", "close"):
            assert params(getattr(cls, method)) == params(getattr(Transport, method)), (cls, method)
