"""Where a scenario's raw tables come from: built-in presets, TOML files, ``extends`` and
``--set`` overrides. Validation of the merged tables is :mod:`raybench.config.scenario`'s job.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from raybench.errors import ScenarioError, nearest


def preset_names() -> list[str]:
    """Names of the built-in presets."""
    folder = resources.files("raybench.config") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{where} is not valid TOML: {exc}") from None


def _preset_raw(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        raise ScenarioError(f"unknown preset {name!r}{nearest(name, names)}; presets: {', '.join(names)}")
    if name in seen:
        raise ScenarioError(f"preset {name!r} extends itself (through {' -> '.join(seen)})")
    text = (resources.files("raybench.config") / "presets" / f"{name}.toml").read_text(encoding="utf-8")
    return _resolve_extends(_read_toml(text, f"preset {name}"), (*seen, name))


def _resolve_extends(raw: dict[str, Any], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    if not isinstance(base_name, str):
        raise ScenarioError(f"extends = {base_name!r}: expected a preset name")
    return _deep_merge(_preset_raw(base_name, seen), raw)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        # A class table or region list replaces wholesale: merging two mixes would change weights.
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and key not in ("classes", "shape"):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: Path | None = None, preset: str | None = None) -> dict[str, Any]:
    """Raw tables of a scenario file or preset (default preset: ``lighthouse``), extends resolved."""
    if path is not None and preset is not None:
        raise ScenarioError("give a scenario file or --preset, not both")
    if path is None:
        return _preset_raw(preset or "lighthouse")
    p = Path(path)
    if not p.is_file():
        raise ScenarioError(f"scenario file {p} does not exist")
    return _resolve_extends(_read_toml(p.read_text(encoding="utf-8"), str(p)))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``--set a.b=value``; the value is read as TOML (``5``, ``"x"``, ``true``, ``[1,2]``)
    and taken as a bare string when it is not valid TOML."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ScenarioError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. --set stages.llm.max=120")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``run.agents``) in a copy of ``raw``; unknown paths are caught by validation."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ScenarioError(f"--set {dotted}: {part!r} is not a table")
            node = child
        node[parts[-1]] = value
    return out
