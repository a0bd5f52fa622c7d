"""Typed checks of TOML values for the scenario loader: each returns the value or raises
:class:`~raybench.errors.ScenarioError` naming the key, the value and what is allowed. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from raybench.errors import ScenarioError, nearest
from raybench.units import parse_duration


def known_keys(table: Mapping[str, Any], allowed: Any, where: str) -> None:
    for key in table:
        if key not in allowed:
            prefix = f"{where}." if where else ""
            raise ScenarioError(
                f"unknown key {prefix}{key}{nearest(key, allowed)}; allowed in "
                f"{where or 'the top level'}: {', '.join(allowed)}"
            )


def table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ScenarioError(f"[{key}] must be a table")
    return value


def duration(table: Mapping[str, Any], key: str, default: Any, where: str, *, positive: bool = True) -> float:
    value = table.get(key, default)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ScenarioError(f"{where}.{key}: {exc}") from None
    if positive and seconds <= 0:
        raise ScenarioError(f"{where}.{key} = {value!r}: must be > 0")
    return seconds


def integer(table: Mapping[str, Any], key: str, default: int, where: str, *, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}.{key} = {value!r}: expected an integer >= {minimum}")
    if value < minimum:
        raise ScenarioError(f"{where}.{key} = {value}: must be >= {minimum}")
    return value


def number(
    table: Mapping[str, Any], key: str, default: float, where: str, *, lo: float = 0.0, hi: float = math.inf
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"{where}.{key} = {value!r}: expected a number")
    if not lo <= value <= hi:
        bounds = f"[{lo}, {hi}]" if hi != math.inf else f">= {lo}"
        raise ScenarioError(f"{where}.{key} = {value}: must be in {bounds}")
    return float(value)


def probability(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ScenarioError(f"{where}.{key} = {value!r}: a probability must be in [0, 1]")
    return float(value)


def flag(table: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ScenarioError(f"{where}.{key} = {value!r}: expected true or false")
    return value


def one_of(table: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...], where: str) -> str:
    value = table.get(key, default)
    if value not in allowed:
        raise ScenarioError(f"{where}.{key} = {value!r}{nearest(str(value), allowed)}; allowed: {', '.join(allowed)}")
    return str(value)


def weights_sum_to_one(weights: list[float], where: str) -> None:
    total = sum(weights)
    if abs(total - 1.0) > 1e-6:
        raise ScenarioError(f"{where}: weights sum to {total:g}; they must sum to 1")
