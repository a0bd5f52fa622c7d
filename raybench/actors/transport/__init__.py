"""How a host's hot calls reach the shared actors: one :class:`Transport` Protocol, three kinds.

* ``socket`` (:mod:`.socket`, the default): the actors' TCP ports (:mod:`raybench.actors.wire`);
* ``ray`` (:mod:`.ray`): Ray actor calls;
* ``memory`` (:mod:`.memory`): plain objects in this process, for tests (no Ray, no sockets).

The scenario's ``state.transport`` names the first two; :func:`make_transport` builds either from
it, so the host and the state client never branch on how their calls travel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raybench.actors.transport.memory import MemoryTransport
from raybench.actors.transport.protocol import ConnectionLost, Op, Result, Transport
from raybench.actors.transport.ray import RayTransport
from raybench.actors.transport.socket import SocketTransport
from raybench.errors import ScenarioError

__all__ = [
    "TRANSPORTS",
    "ConnectionLost",
    "MemoryTransport",
    "Op",
    "RayTransport",
    "Result",
    "SocketTransport",
    "Transport",
    "make_transport",
]

#: The names :func:`make_transport` knows (``state.transport`` allows the first two).
TRANSPORTS = ("socket", "ray", "memory")


def make_transport(name: str, shards: Sequence[Any], experts: Any, token: bytes | None = None) -> Transport:
    """The transport ``name`` (the scenario's ``state.transport``) to ``shards`` and ``experts``.

    Args:
        name: ``socket``, ``ray``, or ``memory`` (tests: ``shards`` and ``experts`` are then the
            plain objects themselves).
        shards: the state shards' Ray actor handles (plain ``StateShard`` objects for ``memory``).
        experts: the expert pool's handle (a plain ``ExpertPool`` for ``memory``), or None.
        token: the run's data-plane token; ``socket`` needs it (``raybench.engine.fleet`` makes
            one when the scenario asks for sockets).

    Raises:
        ScenarioError: an unknown name (the scenario's validation lets none through).
        ValueError: ``socket`` without a token.
    """
    if name == "socket":
        if token is None:
            raise ValueError("the socket transport needs the run's data-plane token")
        return SocketTransport(shards, experts, token)
    if name == "ray":
        return RayTransport(shards, experts)
    if name == "memory":
        return MemoryTransport(shards, experts)
    raise ScenarioError(f"state.transport = {name!r}: expected one of {', '.join(TRANSPORTS)}")
