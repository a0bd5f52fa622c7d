"""Coordination throughput: state operations per second through the batching client, against
Ray's raw async actor-call rate, measured side by side in one Ray session.

    .venv/bin/python -m bench.bench_state [--seconds 5] [--concurrency 256]

raw      one ``apply_async`` Ray call per operation, ``concurrency`` calls in flight
batched  the same operations through :class:`raybench.actors.state.StateClient` (one host's client),
         each batch a Ray call (``state.transport = "ray"``, :mod:`raybench.actors.transport.ray`)
socket   the same client over the shard's socket data plane (:mod:`raybench.actors.transport.socket`,
         the default)
All run inside an async Ray actor on the same machine against one StateShard actor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import ray


class Client:
    def __init__(self, shard: Any) -> None:
        self.shard = shard

    async def _drive(self, seconds: float, concurrency: int, op: Any) -> tuple[int, float, list[int]]:
        """``concurrency`` closed-loop workers awaiting ``op(worker, i)`` for ``seconds``."""
        done = 0
        lat: list[int] = []
        end = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while time.perf_counter() < end:
                t = time.perf_counter_ns()
                await op(w, i)
                lat.append(time.perf_counter_ns() - t)
                done += 1
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return done, time.perf_counter() - t0, lat

    async def raw(self, seconds: float, concurrency: int) -> dict[str, float]:
        from raybench.actors import state as st

        async def op(w: int, i: int) -> None:
            await self.shard.apply_async.remote([(st.APPEND, w * 1_000_000 + i, w, 0)])

        done, elapsed, lat = await self._drive(seconds, concurrency, op)
        return _result(done, elapsed, lat, done)

    async def batched(
        self, seconds: float, concurrency: int, interval: float, token: bytes | None = None
    ) -> dict[str, float]:
        from raybench.actors import state as st
        from raybench.actors.transport import make_transport

        # the engine's settings: one batch in flight per shard
        transport = make_transport("ray" if token is None else "socket", [self.shard], None, token)
        client = st.StateClient(transport, max_ops=256, interval=interval, max_inflight=1)
        await transport.connect()

        async def op(w: int, i: int) -> None:
            await client.submit(w * 1_000_000 + i, st.APPEND, w, 0)

        done, elapsed, lat = await self._drive(seconds, concurrency, op)
        return _result(done, elapsed, lat, client.calls)


def _result(ops: int, elapsed: float, lat: list[int], calls: int) -> dict[str, float]:
    from raybench.judge.stats import percentiles

    ps = percentiles([x / 1e6 for x in lat], (50.0, 99.0))
    return {"ops_per_s": ops / elapsed, "calls_per_s": calls / elapsed, "p50_ms": ps[50.0], "p99_ms": ps[99.0]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    from raybench.actors.state import StateShard
    from raybench.engine.run import connect

    owns = connect(None)
    try:
        token = b"bench-state-0123"
        shard = ray.remote(StateShard).options(max_concurrency=100_000).remote(0, token)
        client = ray.remote(Client).options(max_concurrency=100_000).remote(shard)
        ray.get(client.raw.remote(0.5, 8))  # warm up both processes
        raw = ray.get(client.raw.remote(args.seconds, args.concurrency))
        batched = ray.get(client.batched.remote(args.seconds, args.concurrency, 0.0))
        timed = ray.get(client.batched.remote(args.seconds, args.concurrency, 0.002))
        sock = ray.get(client.batched.remote(args.seconds, args.concurrency, 0.0, token))
        sock1 = ray.get(client.batched.remote(args.seconds, 1, 0.0, token))
        raw1 = ray.get(client.raw.remote(args.seconds, 1))
    finally:
        if owns:
            ray.shutdown()
    out = {
        "raw": raw,
        "batched": batched,
        "batched_2ms": timed,
        "ratio_batched_vs_raw": batched["ops_per_s"] / raw["ops_per_s"],
        "ratio_batched_2ms_vs_raw": timed["ops_per_s"] / raw["ops_per_s"],
        "socket": sock,
        "ratio_socket_vs_raw": sock["ops_per_s"] / raw["ops_per_s"],
        "raw_1": raw1,
        "socket_1": sock1,
    }
    for name in ("raw", "batched", "batched_2ms", "socket", "raw_1", "socket_1"):
        r = out[name]
        print(
            f"{name:<12} {r['ops_per_s']:>10,.0f} ops/s {r['calls_per_s']:>9,.0f} batches/s "
            f"p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
        )
    print(f"batched / raw: {out['ratio_batched_vs_raw']:.1f}x")
    print(f"batched(2ms) / raw: {out['ratio_batched_2ms_vs_raw']:.1f}x")
    print(f"socket / raw: {out['ratio_socket_vs_raw']:.1f}x")
    print("(raw_1, socket_1: one operation at a time: the round trip an uncontended request pays)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
