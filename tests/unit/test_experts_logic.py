"""ExpertPool on a plain asyncio loop (it is a plain class; Ray only hosts it)."""

from __future__ import annotations

import asyncio

from raybench.actors.experts import ExpertPool


def test_bounded_concurrency_and_fifo_queue():
    async def main():
        pool = ExpertPool(2)
        results = await asyncio.gather(*(pool.consult(50.0) for _ in range(6)))
        return pool, results

    pool, results = asyncio.run(main())
    queues = sorted(q for q, _ in results)
    # 6 consultations of 50 ms on 2 experts: two start at once, then waves at ~50 and ~100 ms
    assert queues[0] < 5 and queues[1] < 5
    assert 40 < queues[2] < 80 and 40 < queues[3] < 80
    assert 90 < queues[4] < 150 and 90 < queues[5] < 150
    assert all(e >= 50 for _, e in results)
    assert pool.max_queue == 4 and pool.busy == 0


def test_shrinking_the_pool_makes_a_queue():
    async def main():
        pool = ExpertPool(10)
        await pool.set_capacity(1)
        res = await asyncio.gather(*(pool.consult(20.0) for _ in range(3)))
        stats = await pool.stats()
        return res, stats

    res, stats = asyncio.run(main())
    assert max(q for q, _ in res) >= 35
    assert stats["capacity"] == 1 and stats["consultations"] == 3


def test_cancelled_waiter_leaves_the_queue():
    async def main():
        pool = ExpertPool(1)
        first = asyncio.create_task(pool.consult(30.0))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(pool.consult(30.0))
        await asyncio.sleep(0.005)
        waiter.cancel()
        await first
        return pool

    pool = asyncio.run(main())
    assert pool.busy == 0 and not pool._waiters
