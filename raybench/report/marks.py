"""Which SLA thresholds a figure may draw: only those of exactly the metric and scope it shows.

A figure of the p99 of all requests per window may carry ``p99<500ms``, never
``share(latency<200ms){escalated=false}>=99%`` nor ``p99{cls=risky}<1s``: a line from another
metric or scope drawn over a curve reads as a verdict on that curve, and is wrong. Every figure
asks for the thresholds of one (metric, scope) it draws; stage-scoped thresholds (``{stage=...}``)
go only on figures of that stage's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mark:
    """One threshold to draw: ``value`` in the figure's unit (ms for a latency bound, a fraction for
    a share), and for ``share`` the latency limit in ms; ``label`` is the expression as written."""

    value: float
    label: str
    limit_ms: float | None = None
    q: float | None = None


def _parsed(thresholds: Iterable[str]) -> list[Any]:
    from raybench.errors import ThresholdError
    from raybench.judge.grammar import parse_threshold

    out = []
    for expr in thresholds:
        try:
            out.append(parse_threshold(expr))
        except ThresholdError:
            continue
    return out


def scope_of(text: str) -> tuple[tuple[str, str], ...]:
    """A figure's scope as sorted ``(key, value)`` pairs: ``all`` is ``()``; ``cls=risky`` and
    windows.arrow's ``node=ID`` are one pair each."""
    if text in ("", "all"):
        return ()
    pairs = []
    for part in text.split(","):
        key, _, value = part.partition("=")
        pairs.append((key.strip(), value.strip()))
    return tuple(sorted(pairs))


def percentile_marks(thresholds: Iterable[str], q: float, scope: str = "all", stage: str | None = None) -> list[Mark]:
    """Thresholds on the ``q``-th percentile of latency (or of ``stage``'s time) in ``scope``."""
    want = tuple(sorted((*scope_of(scope), *((("stage", stage),) if stage else ()))))
    return [
        Mark(th.target, th.expression, q=th.q)
        for th in _parsed(thresholds)
        if th.metric == "percentile" and th.q == q and th.scope == want
    ]


def percentile_points(thresholds: Iterable[str], scopes: Sequence[str]) -> dict[str, list[Mark]]:
    """Per scope in ``scopes``: its thresholds on any latency percentile (a point (q, target) of the
    percentile distribution)."""
    parsed = [th for th in _parsed(thresholds) if th.metric == "percentile" and not th.stage]
    return {s: [Mark(th.target, th.expression, q=th.q) for th in parsed if th.scope == scope_of(s)] for s in scopes}


def share_points(thresholds: Iterable[str], scopes: Sequence[str]) -> dict[str, list[Mark]]:
    """Per scope in ``scopes``: its ``share(latency<X)>=Y`` thresholds (a point (X, Y) of the CDF)."""
    parsed = [
        th for th in _parsed(thresholds) if th.metric == "share" and not th.stage and th.share_limit_ms is not None
    ]
    return {
        s: [Mark(th.target, th.expression, limit_ms=th.share_limit_ms) for th in parsed if th.scope == scope_of(s)]
        for s in scopes
    }
