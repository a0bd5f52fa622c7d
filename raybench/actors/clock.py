"""Sleeping a modelled duration in an actor's event loop: never less than the model."""

from __future__ import annotations

import asyncio
import time


async def sleep_until(deadline_ns: int) -> None:
    """Sleep until ``time.perf_counter_ns()`` reaches ``deadline_ns``, never less: an event loop may
    fire a timer early (uvloop, which Ray uses for async actors when it is installed, keeps a
    millisecond clock read once per loop iteration: up to ~1.5 ms early here), and a modelled stage
    must not end before its model. The top-up sleeps cost a loop iteration or two."""
    while (left := deadline_ns - time.perf_counter_ns()) > 0:
        await asyncio.sleep(left / 1e9)
