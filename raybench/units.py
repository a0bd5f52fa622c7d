"""Parsing and formatting of durations, rates and percentages given on the command line or in TOML.

Pure functions; each raises ``ValueError`` with a message that says what is allowed.
"""

from __future__ import annotations

import math
import re

_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | int | float, *, default_unit: str = "s") -> float:
    """Parse ``'250ms'``, ``'10s'``, ``'2m'``, ``1.5`` into seconds.

    A bare number is in ``default_unit``. Raises ``ValueError`` for anything else, or a negative
    or non-finite value.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use a number with a unit such as 500ms, 10s, 2m")
    if isinstance(value, (int, float)):
        seconds = float(value) * _UNIT_S[default_unit]
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration; use a number with a unit: ns, us, ms, s, m or h")
        unit = m.group(2) if m.group(2) is not None else default_unit
        seconds = float(m.group(1)) * _UNIT_S[unit]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration; it must be finite and not negative")
    return seconds


def parse_percent(value: str | int | float) -> float:
    """Parse ``'10%'`` or ``0.1`` into a fraction (0.1)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a percentage; use e.g. 10% or 0.1") from None


def format_ms(ms: float | None) -> str:
    """Milliseconds for a table: 3 significant figures, '-' for missing."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    if ms >= 100:
        return f"{ms:.0f}ms"
    if ms >= 10:
        return f"{ms:.1f}ms"
    return f"{ms:.2f}ms"


def format_duration(seconds: float) -> str:
    """Seconds as ``1m05s`` / ``12.3s``."""
    if seconds >= 60:
        m, s = divmod(round(seconds), 60)
        return f"{m}m{s:02d}s"
    return f"{seconds:.1f}s"
