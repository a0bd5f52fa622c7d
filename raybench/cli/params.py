"""Click parameter types shared by the commands: a bad value gives raybench's one-line error.

* :class:`Duration`: ``30s``, ``500ms``, ``2m`` (a bare number is seconds) -> float seconds, as
  :func:`raybench.units.parse_duration` reads it; optionally ``auto`` (-> None) and a positive bound.
* :class:`Percent`: ``10%`` or ``0.1`` -> the fraction 0.1 (:func:`raybench.units.parse_percent`).

``convert`` raises :class:`raybench.errors.UsageError` (not click's ``BadParameter``), so the
command group prints ``raybench: error: --window: '30x' is not a duration; ...`` on one line and
exits 2, as for every other bad input. The metavar says what is allowed (``DURATION``,
``DURATION|auto``, ``PERCENT``, ``LEVEL``).
"""

from __future__ import annotations

from typing import Any

import click

from raybench.errors import UsageError


def flag(param: click.Parameter | None) -> str:
    """The name of an option for a message: its long form (``--window``), else its name."""
    if param is None:
        return "value"
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or list(getattr(param, "opts", []))
    return max(opts, key=len) if opts else (param.name or "value")


class Duration(click.ParamType):
    """A duration -> float seconds.

    Args:
        auto: also accept ``auto`` (any case), converted to None.
        positive: refuse 0 (``--window must be > 0``).
    """

    name = "duration"

    def __init__(self, *, auto: bool = False, positive: bool = False) -> None:
        self.auto = auto
        self.positive = positive

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "DURATION|auto" if self.auto else "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | None:
        from raybench.units import parse_duration

        if value is None or (isinstance(value, float) and not isinstance(value, bool)):
            return value
        if self.auto and isinstance(value, str) and value.strip().lower() == "auto":
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise UsageError(f"{flag(param)}: {exc}{' (or auto)' if self.auto else ''}") from None
        if self.positive and seconds <= 0:
            raise UsageError(f"{flag(param)} must be > 0, not {value!r}")
        return seconds


class Percent(click.ParamType):
    """A percentage or fraction -> float fraction (``10%`` and ``0.1`` both give 0.1).

    Args:
        metavar: ``PERCENT`` (a relative change, a resolution) or ``LEVEL`` (a significance level).
    """

    name = "percent"

    def __init__(self, metavar: str = "PERCENT") -> None:
        self.metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | None:
        from raybench.units import parse_percent

        if value is None or (isinstance(value, float) and not isinstance(value, bool)):
            return value
        try:
            return parse_percent(value)
        except ValueError as exc:
            raise UsageError(f"{flag(param)}: {exc}") from None


#: Shared instances.
DURATION = Duration()
POSITIVE_DURATION = Duration(positive=True)
DURATION_OR_AUTO = Duration(auto=True, positive=True)
PERCENT = Percent()
LEVEL = Percent("LEVEL")


def json_option(f: Any) -> Any:
    """``--json``: one JSON document on stdout instead of the text (keys: results/README.md)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout instead of the text (keys in results/README.md); same exit code.",
    )(f)
