"""A :class:`~raybench.engine.cluster.Cluster` in this process, for tests: no Ray, no sockets, no FUSE.

:class:`InProcessCluster` runs a run's actors as the plain classes they are (Aggregator, StateShard,
ExpertPool, AgentHost) on one event loop in a thread of its own, as httpx's ``MockTransport``
stands in for the network. A call is scheduled on that loop and returns a ``concurrent.futures``
future: a plain method runs at once, one at a time like a Ray actor's; an ``async`` method runs as a
task. The hosts reach the shards and the expert pool through the in-memory transport
(:class:`raybench.actors.transport.MemoryTransport`) and ship their rows straight to the aggregator.

Killing an actor cancels every task it started (its requests, its flushes); what a dead host had
not shipped is lost, as when its process dies, and its calls fail with :class:`ActorDied`. With
``restart`` (and budget left) a fresh instance is made from the same arguments, as Ray restarts an
actor. :meth:`InProcessCluster.lose_node` removes a node with its actors. FUSE is never available
here: a node's FUSE service fails to start with a reason (the run goes on without it, or stops with
``fuse.mode = on``).

    with InProcessCluster() as cluster:
        result = execute(scenario, out=tmp_path, run_id="r", cluster=cluster)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from raybench.config.scenario import Scenario
from raybench.engine.placement import HostSlot

#: The actor whose call (or task) is running: tasks it starts are its own (killed with it).
_OWNER: contextvars.ContextVar[InProcessActor | None] = contextvars.ContextVar("raybench_inprocess_owner", default=None)


class ActorDied(RuntimeError):
    """The in-process actor was killed (Ray raises ``RayActorError``)."""


class InProcessActor:
    """An actor's handle: its current instance (None once dead for good) and how to make another."""

    def __init__(self, role: str, node_id: str, factory: Callable[[InProcessActor], Any], max_restarts: int) -> None:
        self.role = role
        self.node_id = node_id
        self.factory = factory
        self.restarts_left = max_restarts
        self.restarts = 0
        self.life = 0  # bumped at every death: a call or a shipment of an earlier life is void
        self.instance: Any = None
        self.tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<in-process {self.role} on {self.node_id}, life {self.life}>"


class _NoFuse:
    """A node's FUSE service here: it never mounts."""

    def start(self) -> dict[str, Any]:
        raise RuntimeError("no FUSE in an in-process cluster")

    def heal(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def sample_resources(self) -> list[Any]:
        return []


class InProcessCluster:
    """``nodes`` nodes of ``cpus`` CPUs each (the first is the head), on one event loop."""

    def __init__(self, nodes: int = 1, cpus: float = 2.0) -> None:
        self._nodes = [
            {"node_id": f"inproc-node-{i}", "address": "127.0.0.1", "cpus": cpus, "memory_bytes": 0, "head": i == 0}
            for i in range(nodes)
        ]
        self.lost: set[str] = set()
        self.actors: list[InProcessActor] = []
        self.loop = asyncio.new_event_loop()
        self.loop.set_task_factory(_owned_task)
        self._thread = threading.Thread(target=self.loop.run_forever, name="raybench-inprocess", daemon=True)
        self._thread.start()

    def __enter__(self) -> InProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel whatever still runs, stop the loop and its thread."""
        if self.loop.is_closed():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    # -- the Cluster interface -----------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return [dict(n) for n in self._nodes if n["node_id"] not in self.lost]

    def head_node(self) -> str:
        return str(self._nodes[0]["node_id"])

    def start_aggregator(self, run_dir: Path, window_s: float, node_id: str) -> InProcessActor:
        from raybench.actors.aggregator import Aggregator

        return self._start("aggregator", node_id, lambda _: Aggregator(str(run_dir), 0, window_s))

    def start_shards(self, count: int, token: bytes) -> list[InProcessActor]:
        from raybench.actors.state import StateShard

        def make(i: int) -> Callable[[InProcessActor], Any]:
            return lambda _: StateShard(i, token)

        return [self._start("shard", self.head_node(), make(i)) for i in range(count)]

    def start_experts(self, pool: int, token: bytes) -> InProcessActor:
        from raybench.actors.experts import ExpertPool

        return self._start("experts", self.head_node(), lambda _: ExpertPool(pool, token))

    def start_fuse_nodes(
        self, node_ids: Sequence[str], run_id: str, backend: str, options: dict[str, Any]
    ) -> list[InProcessActor]:
        return [self._start("fuse", n, lambda _: _NoFuse()) for n in node_ids]

    def start_hosts(
        self,
        plan: Sequence[HostSlot],
        *,
        scenario: Scenario,
        run_id: str,
        shards: list[InProcessActor],
        experts: InProcessActor,
        aggregator: InProcessActor,
        fuse_roots: dict[str, str],
        token: bytes | None,
        max_restarts: int,
    ) -> list[InProcessActor]:
        from raybench.actors.host import AgentHost
        from raybench.actors.transport import MemoryTransport

        def make(h: int, node_id: str, agent_ids: list[int]) -> Callable[[InProcessActor], Any]:
            def factory(me: InProcessActor) -> AgentHost:
                transport = MemoryTransport([s.instance for s in shards], experts.instance)
                return AgentHost(
                    h, agent_ids, scenario, run_id, [], None, None, fuse_roots.get(node_id), node_id, token,
                    transport=transport, ship=self._shipper(me, aggregator),
                )  # fmt: skip

            return factory

        return [self._start("host", n, make(h, n, a), max_restarts) for h, (n, a) in enumerate(plan)]

    def call(self, actor: InProcessActor, method: str, *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self._begin, actor, method, args, fut)
        return fut

    def get(self, refs: Any, timeout: float | None = None) -> Any:
        if isinstance(refs, list):
            return [r.result(timeout) for r in refs]
        return refs.result(timeout)

    def wait(self, refs: list[Any], timeout: float) -> tuple[list[Any], list[Any]]:
        done, _ = concurrent.futures.wait(refs, timeout=timeout)
        return [r for r in refs if r in done], [r for r in refs if r not in done]

    def kill(self, actor: InProcessActor, *, restart: bool = False) -> None:
        self._on_loop(lambda: self._kill(actor, restart))

    # -- beyond the interface: what a test does to a cluster -----------------------------------

    def lose_node(self, node_id: str) -> None:
        """The node leaves the cluster; its actors die for good."""
        self.lost.add(node_id)
        for actor in self.actors:
            if actor.node_id == node_id:
                actor.restarts_left = 0
                self.kill(actor)

    # -- the loop's side -----------------------------------------------------------------------

    def _start(
        self, role: str, node_id: str, factory: Callable[[InProcessActor], Any], max_restarts: int = 0
    ) -> InProcessActor:
        actor = InProcessActor(role, node_id, factory, max_restarts)
        actor.instance = self._on_loop(lambda: factory(actor))  # made where its methods will run
        self.actors.append(actor)
        return actor

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the loop's thread and return its result."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result()

    def _begin(
        self, actor: InProcessActor, method: str, args: tuple[Any, ...], fut: concurrent.futures.Future[Any]
    ) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        if actor.instance is None:
            fut.set_exception(ActorDied(f"{actor!r} is dead"))
            return
        life = actor.life
        token = _OWNER.set(actor)
        try:
            result = getattr(actor.instance, method)(*args)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(lambda t: _settle(t, fut, actor, life))
            else:
                fut.set_result(result)
        except Exception as exc:
            fut.set_exception(exc)
        finally:
            _OWNER.reset(token)

    def _kill(self, actor: InProcessActor, restart: bool) -> None:
        actor.life += 1
        tasks, actor.tasks = actor.tasks, set()
        for task in tasks:
            task.cancel()
        if restart and actor.restarts_left > 0:
            actor.restarts_left -= 1
            actor.restarts += 1
            actor.instance = actor.factory(actor)
        else:
            actor.instance = None

    def _shipper(self, host: InProcessActor, aggregator: InProcessActor) -> Callable[[Any], asyncio.Future[Any]]:
        """A host's flushes to the aggregator (``AgentHost``'s ``ship``); void once that host life ended."""
        life = host.life

        def ship(packed: Any) -> asyncio.Future[Any]:
            fut: asyncio.Future[Any] = self.loop.create_future()
            if host.life != life or aggregator.instance is None:  # a dead process sends nothing
                fut.set_result(None)
                return fut

            def deliver() -> None:
                try:
                    fut.set_result(aggregator.instance.write_packed(packed))
                except Exception as exc:
                    fut.set_exception(exc)

            self.loop.call_soon(deliver)  # a reply never comes inside the caller's call
            return fut

        return ship


def _owned_task(
    loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None = None
) -> asyncio.Task[Any]:
    """The loop's task factory: a task started by an actor's call (or by one of its tasks) is the actor's."""
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
    owner = context.get(_OWNER) if context is not None else _OWNER.get()
    if owner is not None:
        owner.tasks.add(task)
        task.add_done_callback(owner.tasks.discard)
    return task


def _settle(task: asyncio.Task[Any], fut: concurrent.futures.Future[Any], actor: InProcessActor, life: int) -> None:
    if fut.done():
        return
    if task.cancelled() or actor.life != life:
        fut.set_exception(ActorDied(f"{actor!r} died while running a call"))
    elif (exc := task.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(task.result())
