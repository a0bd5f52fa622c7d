"""The load on the agent hosts: its timeline (:class:`Load`), and the hosts running it (:class:`Hosts`):
started together at t0, restarted when one dies, stopped early on an interrupt or an SLA abort,
drained, their results collected."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raybench.engine.cluster import Cluster, Ref
from raybench.engine.events import EventLog
from raybench.engine.fleet import Fleet

Progress = Callable[[str], None]


@dataclass
class Load:
    """When the load runs (wall-clock ns): from ``t0_ns`` for ``duration_s``, unless it was stopped
    earlier (``stopped_ns``: an interrupt or an SLA abort; the rates and the verdict of the run then
    cover the time that ran)."""

    t0_ns: int
    duration_s: float
    stopped_ns: int | None = None

    @property
    def planned_end_ns(self) -> int:
        return self.t0_ns + int(self.duration_s * 1e9)

    def end_ns(self) -> int:
        """The end of the load: planned, or when it was stopped early."""
        planned = self.planned_end_ns
        return min(planned, self.stopped_ns) if self.stopped_ns is not None else planned

    def stop(self, now_ns: int) -> None:
        """The load stops now (noted once, and only before its planned end: a stop in the drain is none)."""
        if now_ns < self.planned_end_ns and self.stopped_ns is None:
            self.stopped_ns = max(now_ns, self.t0_ns)


class Hosts:
    """The agent hosts' ``run`` calls of one load.

    A host whose call fails died (its process, or its node): before the load's end, and within
    ``restart_budget`` deaths, Ray has restarted it and it is told to resume (``actor_restart``);
    otherwise it failed for good (``host_failed``). Every death is noted (``deaths``): the requests
    that died with it are accounted at the end (:func:`raybench.engine.lost.account_lost`).
    """

    def __init__(
        self, cluster: Cluster, fleet: Fleet, load: Load, events: EventLog, progress: Progress, restart_budget: int
    ) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.load = load
        self.events = events
        self.progress = progress
        self.restart_budget = restart_budget
        self.refs: dict[int, Ref] = {}  # host -> its current run call
        self.pending: list[Ref] = []  # run calls not finished yet
        self.results: dict[int, dict[str, Any]] = {}
        self.deaths: dict[int, list[int]] = {}  # host -> times (ns) its death was noticed
        self.failed: set[int] = set()  # hosts that died for good
        self.stopped = False  # told to stop: no host is restarted any more

    def start(self) -> None:
        """Every host starts its agents at the load's t0."""
        self.refs = {h: self.cluster.call(host, "run", self.load.t0_ns) for h, host in enumerate(self.fleet.hosts)}
        self.pending = list(self.refs.values())

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for hosts to finish; note results, restart dead hosts."""
        ready, self.pending = self.cluster.wait(self.pending, timeout)
        for ref in ready:
            restarted = self._finished(ref)
            if restarted is not None:
                self.pending.append(restarted)

    def _finished(self, ref: Ref) -> Ref | None:
        """A host's ``run`` returned or its host died; returns the call of its resumed run, if any."""
        h = next(i for i, r in self.refs.items() if r == ref)
        try:
            self.results[h] = self.cluster.get(ref)
            return None
        except Exception as exc:  # the host process died (or its node)
            now = time.time_ns()
            deaths = self.deaths.setdefault(h, [])
            deaths.append(now)
            detail: dict[str, Any] = {
                "host_id": h,
                "node_id": self.fleet.host_plan[h][0],
                "error": str(exc).splitlines()[0][:300],
            }
            if now < self.load.planned_end_ns and len(deaths) <= self.restart_budget and not self.stopped:
                self.events.record("actor_restart", **detail, epoch=len(deaths))
                self.progress(f"agent host {h} died; restarting it (its agents resume)")
                self.refs[h] = self.cluster.call(self.fleet.hosts[h], "run", self.load.t0_ns, len(deaths))
                return self.refs[h]
            self.events.record("host_failed", **detail)
            self.failed.add(h)
            return None

    def stop(self, reason: str, why: str | None = None) -> None:
        """Stop the load now (Ctrl-C, SIGTERM, an SLA abort): the hosts drain what is in flight.
        Records the event ``reason`` (its detail: ``why``, else ``reason``)."""
        self.stopped = True
        self.load.stop(time.time_ns())
        self.events.record(reason, reason=why or reason)
        for h in self.fleet.hosts:
            self.cluster.call(h, "stop")

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every host's run to end."""
        refs = list(self.refs.values())
        self.cluster.wait(refs, timeout)

    def collect(self, timeout: float) -> list[int]:
        """The result of every host not accounted for yet (a failure is ``host_failed``); returns the
        hosts without a result (failed for good), sorted."""
        for h, ref in self.refs.items():
            if h in self.results or h in self.failed:
                continue
            try:
                self.results[h] = self.cluster.get(ref, timeout=timeout)
            except Exception as exc:
                self.events.record("host_failed", host_id=h, error=str(exc)[:500])
        return sorted(set(range(len(self.fleet.hosts))) - set(self.results))

    def ordered_results(self) -> list[dict[str, Any]]:
        """The hosts' results, in host order (the manifest's ``hosts``)."""
        return [self.results[h] for h in sorted(self.results)]
