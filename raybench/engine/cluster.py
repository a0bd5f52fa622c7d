"""Where a run's actors live: the :class:`Cluster` interface, and Ray behind it (:class:`RayCluster`).

The orchestrator (:mod:`raybench.engine.run` and its parts) never calls Ray itself: it starts the
run's actors, calls their methods, waits for the replies and kills them through a :class:`Cluster`.
:class:`RayCluster` is the real one (every ``ray.remote(...).options(...)`` of raybench is here);
:class:`raybench.engine.inprocess.InProcessCluster` runs the same actors as plain objects on an
event loop in this process, so a whole run is tested without Ray (tests/unit/test_orchestrator.py).

:func:`connect` starts or joins Ray for a run (or a sweep, or a test session).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from raybench.config.scenario import Scenario
from raybench.engine.placement import HostSlot
from raybench.errors import RayFailure

#: An actor's handle (a Ray actor handle; the in-process cluster's own handle).
Actor = Any
#: A call in progress, as :meth:`Cluster.call` returns it (a Ray ObjectRef; a concurrent Future).
Ref = Any


class Cluster(Protocol):
    """What a run needs from the machines it runs on.

    Calls are asynchronous: :meth:`call` returns at once, :meth:`get` and :meth:`wait` block. A call
    on an actor that died raises from :meth:`get` (any exception: the callers record it).
    """

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes: ``node_id``, ``address``, ``cpus``, ``memory_bytes``, ``head``."""
        ...

    def head_node(self) -> str:
        """The node this process (the driver) runs on."""
        ...

    def start_aggregator(self, run_dir: Path, window_s: float, node_id: str) -> Actor:
        """The :class:`~raybench.actors.aggregator.Aggregator`, pinned to ``node_id``."""
        ...

    def start_shards(self, count: int, token: bytes) -> list[Actor]:
        """``count`` :class:`~raybench.actors.state.StateShard` actors (restarted once, empty, when one dies)."""
        ...

    def start_experts(self, pool: int, token: bytes) -> Actor:
        """The :class:`~raybench.actors.experts.ExpertPool` of ``pool`` experts."""
        ...

    def start_fuse_nodes(
        self, node_ids: Sequence[str], run_id: str, backend: str, options: dict[str, Any]
    ) -> list[Actor]:
        """One :class:`~raybench.actors.fusenode.FuseNode` pinned to each node (not started yet)."""
        ...

    def start_hosts(
        self,
        plan: Sequence[HostSlot],
        *,
        scenario: Scenario,
        run_id: str,
        shards: list[Actor],
        experts: Actor,
        aggregator: Actor,
        fuse_roots: dict[str, str],
        token: bytes | None,
        max_restarts: int,
    ) -> list[Actor]:
        """One :class:`~raybench.actors.host.AgentHost` per slot of ``plan``, pinned to its node,
        restarted up to ``max_restarts`` times when it dies."""
        ...

    def call(self, actor: Actor, method: str, *args: Any) -> Ref:
        """Call ``actor.method(*args)``; returns at once."""
        ...

    def get(self, refs: Ref | list[Ref], timeout: float | None = None) -> Any:
        """The result of a call (a list of results for a list); raises what the call raised."""
        ...

    def wait(self, refs: list[Ref], timeout: float) -> tuple[list[Ref], list[Ref]]:
        """Wait until every call of ``refs`` is done or ``timeout`` passes: ``(done, not done)``."""
        ...

    def kill(self, actor: Actor, *, restart: bool = False) -> None:
        """Kill the actor's process; with ``restart`` it comes back (within its restart budget)."""
        ...


class RayCluster:
    """:class:`Cluster` on Ray (connected already: :func:`connect`).

    Ray's per-task event reporting (dashboard timeline) costs CPU on every call; a benchmark of the
    coordination layer turns it off for its own actors (``enable_task_events=False``). Actors take
    no CPU (``num_cpus=0``): placement is raybench's (:func:`raybench.engine.placement.plan_hosts`).
    """

    def nodes(self) -> list[dict[str, Any]]:
        import ray

        out = []
        for n in ray.nodes():
            if not n.get("Alive"):
                continue
            res = n.get("Resources", {})
            out.append(
                {
                    "node_id": n["NodeID"],
                    "address": n.get("NodeManagerAddress"),
                    "cpus": res.get("CPU", 0.0),
                    "memory_bytes": int(res.get("memory", 0)),
                    "head": "node:__internal_head__" in res,
                }
            )
        return out

    def head_node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def start_aggregator(self, run_dir: Path, window_s: float, node_id: str) -> Actor:
        import ray

        from raybench.actors.aggregator import Aggregator

        return (
            ray.remote(Aggregator)
            .options(num_cpus=0, enable_task_events=False, scheduling_strategy=_pin(node_id))
            .remote(str(run_dir), 0, window_s)
        )

    def start_shards(self, count: int, token: bytes) -> list[Actor]:
        import ray

        from raybench.actors.state import StateShard

        return [
            ray.remote(StateShard)
            .options(
                num_cpus=0,
                max_concurrency=100_000,
                enable_task_events=False,
                scheduling_strategy="SPREAD",
                max_restarts=1,
                max_task_retries=0,  # a lost shard comes back empty; see StateShard
            )
            .remote(i, token)
            for i in range(count)
        ]

    def start_experts(self, pool: int, token: bytes) -> Actor:
        import ray

        from raybench.actors.experts import ExpertPool

        return (
            ray.remote(ExpertPool)
            .options(num_cpus=0, max_concurrency=100_000, enable_task_events=False)
            .remote(pool, token)
        )

    def start_fuse_nodes(
        self, node_ids: Sequence[str], run_id: str, backend: str, options: dict[str, Any]
    ) -> list[Actor]:
        import ray

        from raybench.actors.fusenode import FuseNode

        return [
            ray.remote(FuseNode)
            .options(num_cpus=0, max_concurrency=4, scheduling_strategy=_pin(node_id))
            .remote(run_id, backend, options)
            for node_id in node_ids
        ]

    def start_hosts(
        self,
        plan: Sequence[HostSlot],
        *,
        scenario: Scenario,
        run_id: str,
        shards: list[Actor],
        experts: Actor,
        aggregator: Actor,
        fuse_roots: dict[str, str],
        token: bytes | None,
        max_restarts: int,
    ) -> list[Actor]:
        import ray

        from raybench.actors.host import AgentHost

        return [
            ray.remote(AgentHost)
            .options(num_cpus=0, max_concurrency=1_000_000, enable_task_events=False,
                     max_restarts=max_restarts, max_task_retries=0, scheduling_strategy=_pin(node_id))
            .remote(h, agent_ids, scenario, run_id, shards, experts, aggregator,
                    fuse_roots.get(node_id), node_id, token)
            for h, (node_id, agent_ids) in enumerate(plan)
        ]  # fmt: skip

    def call(self, actor: Actor, method: str, *args: Any) -> Ref:
        return getattr(actor, method).remote(*args)

    def get(self, refs: Ref | list[Ref], timeout: float | None = None) -> Any:
        import ray

        return ray.get(refs, timeout=timeout)

    def wait(self, refs: list[Ref], timeout: float) -> tuple[list[Ref], list[Ref]]:
        import ray

        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        return list(ready), list(pending)

    def kill(self, actor: Actor, *, restart: bool = False) -> None:
        import ray

        ray.kill(actor, no_restart=not restart)


def _pin(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def connect(
    address: str | None, *, ship_code: bool = False, metrics: bool = False, metrics_port: int | None = None
) -> bool:
    """Connect to Ray; returns True when this call started (or joined) Ray and must shut it down.

    Without an address a private local Ray is started: no dashboard, loopback asked for (Ray 2.60
    may still bind the machine's address, as the state data plane does: it checks a token); with
    ``metrics`` its metrics agent exports on ``metrics_port`` (None: Ray's choice) once a second
    (``raybench.actors.metrics``). A cluster keeps its own metrics settings. With ``ship_code``, raybench
    and fuse_bench travel to the workers in the job's runtime environment (for clusters where they
    are not installed).

    Joining a cluster, the driver must use the authentication mode of the cluster's nodes: the
    cluster's is found by one unauthenticated call to its GCS (:func:`cluster_auth_mode`), and a
    mismatch is reported with what to set (:func:`auth_mismatch_hint`) instead of Ray's own
    symptoms (a 20 s connection timeout; or actors that die "cancelled before it started").

    Raises:
        RayFailure: Ray could not be started or reached, or the cluster and this driver use
            different authentication modes.
    """
    import ray

    if ray.is_initialized():
        return False
    try:
        if address:
            runtime_env = None
            if ship_code:
                import fuse_bench
                import raybench

                # directories, not module objects: an editable install gives a package two paths
                dirs = [str(Path(m.__file__).parent) for m in (raybench, fuse_bench)]
                runtime_env = {"py_modules": dirs}
            if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":  # fail now, not after Ray's 20 s of retries
                hint = auth_mismatch_hint(cluster_auth_mode(address), "disabled", joined=False)
                if hint:
                    raise RayFailure(f"could not reach Ray at {address}: {hint}")
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, runtime_env=runtime_env)
            # a token driver joins a cluster without authentication, whose workers then cannot call it
            hint = (
                auth_mismatch_hint(cluster_auth_mode(address), "token", joined=True)
                if driver_auth_mode() == "token"
                else None
            )
            if hint:
                ray.shutdown()
                raise RayFailure(f"joined Ray at {address}, but {hint}")
            return True
        from raybench.actors.metrics import ray_init_options

        ray.init(
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            object_store_memory=512 * 2**20,
            _node_ip_address="127.0.0.1",
            **(ray_init_options(metrics_port) if metrics else {}),
        )
        return True
    except RayFailure:
        raise
    except Exception as exc:
        where = f" at {address}" if address else ""
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = auth_mismatch_hint(cluster_auth_mode(address), driver_auth_mode(), joined=False) if address else None
        raise RayFailure(f"could not start or reach Ray{where}: {why}" + (f"; {hint}" if hint else "")) from exc


#: Where Ray looks for a token, in its order (the driver and every node of a token cluster need one).
TOKEN_SOURCES = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"


def cluster_auth_mode(address: str) -> str | None:
    """The authentication mode of the cluster whose GCS is at ``address`` (``auto`` too):
    ``"token"`` when it refuses a call without a token, ``"disabled"`` when it answers one; None
    when it cannot be told (no GCS there, a Ray Client ``ray://`` address, another error)."""
    if address.startswith("ray://"):
        return None
    try:
        import grpc
        from ray._private.services import canonicalize_bootstrap_address
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

        gcs = canonicalize_bootstrap_address(address)
        if not gcs:
            return None
        with grpc.insecure_channel(gcs) as channel:  # no auth interceptor: the call carries no token
            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=5)  # type: ignore[attr-defined]
        return "disabled"
    except Exception as exc:
        code = getattr(exc, "code", None)
        if callable(code) and getattr(code(), "name", None) == "UNAUTHENTICATED":
            return "token"
        return None


def driver_auth_mode() -> str:
    """This process's Ray authentication mode, ``"token"`` or ``"disabled"``: after ``ray.init``
    the one Ray chose (RAY_AUTH_MODE; unset, ``--address auto`` turns token authentication on
    when a token is found), before it RAY_AUTH_MODE alone."""
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode  # type: ignore[attr-defined]

        return "token" if get_authentication_mode() == AuthenticationMode.TOKEN else "disabled"
    except Exception:
        return "token" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "disabled"


def auth_mismatch_hint(cluster: str | None, driver: str, *, joined: bool) -> str | None:
    """One line saying what to set when the cluster's authentication mode (:func:`cluster_auth_mode`)
    is not the driver's; None when they agree or the cluster's is unknown. ``joined``: ``ray.init``
    succeeded (a token driver on a cluster without authentication: its workers cannot call back)."""
    if cluster is None:
        return None
    if cluster == "disabled" and driver == "token":
        env = os.environ.get("RAY_AUTH_MODE")
        why = (
            f"RAY_AUTH_MODE={env}"
            if env
            else "RAY_AUTH_MODE is unset and Ray turned token authentication on because it found a token"
        )
        return (
            "the cluster and this driver use different authentication modes (cluster: disabled, "
            f"driver: token, as {why}): set RAY_AUTH_MODE=disabled for the driver, as the cluster's nodes have it"
        )
    if cluster == "token" and driver == "disabled":
        return (
            "the cluster and this driver use different authentication modes (cluster: token, driver: "
            "disabled): set RAY_AUTH_MODE=token and give the driver the cluster's token "
            f"({TOKEN_SOURCES}), as the cluster's nodes have them"
        )
    if cluster == "token" and not joined:  # both token, refused: most likely another token
        return f"the cluster uses token authentication: give this driver the token its nodes have ({TOKEN_SOURCES})"
    return None
