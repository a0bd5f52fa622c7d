"""The building blocks of the scenario models: field types, the base of every table, and the
translation of a pydantic ``ValidationError`` into one line of :class:`~raybench.errors.ScenarioError`.

A setting is declared once, as a field of the model of its table (:mod:`raybench.config.tables`,
:mod:`raybench.config.sla`, :mod:`raybench.model.arrivals`, :mod:`raybench.model.timing`)::

    agents: Int = Field(1000, ge=1, description="agents in the fleet")

Field types, each with the message its bad values get:

* :data:`Int` (not a bool, not a float), :data:`Number` (finite, not a bool), :data:`Flag`
  (``true``/``false`` only), :data:`Text`;
* :data:`Probability`: a number in [0, 1];
* :data:`Seconds`: a duration as :func:`raybench.units.parse_duration` reads it (``"500ms"``,
  ``"20s"``, ``"2m"``, or a number of seconds), held in seconds, written back as ``"20.0s"``;
* ``Literal[...]`` for a choice (the message names the choices and the nearest one).

Every table derives from :class:`Table`: frozen, unknown keys refused with the nearest valid one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from raybench.errors import ScenarioError, nearest
from raybench.units import parse_duration

M = TypeVar("M", bound=BaseModel)


def fail(message: str, kind: str = "raybench") -> PydanticCustomError:
    """An error for a validator to raise: ``message`` is what is allowed (the key and value are added)."""
    return PydanticCustomError(kind, "{msg}", {"msg": message})


def _seconds(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise fail("a duration must be finite and not negative")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _probability(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise fail("a probability must be in [0, 1]")
    return value


def format_seconds(seconds: float) -> str:
    """How a duration is written back (TOML layout, the manifest): ``"20.0s"``."""
    return f"{seconds}s"


Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]
Probability = Annotated[float, Strict(), AfterValidator(_probability)]
Seconds = Annotated[float, BeforeValidator(_seconds), PlainSerializer(format_seconds, return_type=str)]


class Table(BaseModel):
    """A table of a scenario (or a value made of keys): frozen, validated once, unknown keys refused.

    Subclasses may override :meth:`coerce` to accept a shorthand (a bare string or number).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @classmethod
    def coerce(cls, data: Any) -> Any:
        """The input as a table (a shorthand turned into its table); the input itself by default."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        data = cls.coerce(data)
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise fail("expected a table")
        allowed = cls.toml_keys()
        for key in data:
            if key not in allowed:
                raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": str(key), "allowed": allowed})
        return data

    @classmethod
    def toml_keys(cls) -> tuple[str, ...]:
        """The keys this table accepts, as written in TOML."""
        return tuple(f.alias or name for name, f in cls.model_fields.items())


# ---------------------------------------------------------------------------------------------
# validation errors -> one line


def validate(model: type[M] | TypeAdapter[Any], raw: Any, where: str = "") -> Any:
    """``model`` validated from ``raw`` (TOML layout); a bad input raises :class:`ScenarioError`
    with one line naming the dotted key (under ``where``), the value and what is allowed."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(raw)
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(one_line(exc.errors(include_url=False)[0], raw, where)) from None


def _walk(raw: Any, loc: tuple[Any, ...], missing: bool) -> tuple[list[str | int], Any, bool]:
    """Follow a pydantic error location through the raw input: the keys as the user wrote them
    (a list in the model may be a table in TOML: its n-th key), the value there, and whether found.
    Parts that are not in the input (union tags) are left out, except a missing key."""
    parts: list[str | int] = []
    node, found = raw, True
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if found and isinstance(node, Mapping):
            if part in node:
                parts.append(part)
                node = node[part]
                continue
            if isinstance(part, int) and 0 <= part < len(node):
                key = list(node)[part]
                parts.append(str(key))
                node = node[key]
                continue
        elif found and isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            parts.append(part)
            node = node[part]
            continue
        if isinstance(part, int) or (last and missing):
            parts.append(part)
            found = False
    return parts, node, found


def _dotted(where: str, parts: list[str | int]) -> str:
    out = where
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


_TYPE_MESSAGES = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "string_too_short": "expected a non-empty string",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_NOUNS = {"dist": "distribution"}


def one_line(err: Mapping[str, Any], raw: Any, where: str = "") -> str:
    """One pydantic error as one line: ``key = value: what is allowed``."""
    kind, ctx = err["type"], err.get("ctx") or {}
    parts, node, found = _walk(raw, tuple(err["loc"]), kind == "missing")
    path = _dotted(where, parts)
    value = node if found else err.get("input")
    if kind == "unknown_key":
        key, allowed = ctx["key"], ctx["allowed"]
        path = _dotted(path, [ctx["under"]]) if "under" in ctx else path
        return (
            f"unknown key {_dotted(path, [key])}{nearest(key, allowed)}; "
            f"allowed in {path or 'the top level'}: {', '.join(allowed)}"
        )
    if kind == "missing":
        parent, key = _dotted(where, parts[:-1]), parts[-1]
        return f"{parent or 'the scenario'} needs {key!r}"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", ctx["expected_tags"])
        disc, tag = ctx["discriminator"].strip("'"), str(ctx["tag"])
        noun = _NOUNS.get(disc, disc)
        return f"{_dotted(path, [disc])} = {tag!r}: unknown {noun}{nearest(tag, tags)}; allowed: {', '.join(tags)}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", ctx["expected"])
        message = f"expected one of {', '.join(allowed)}{nearest(str(value), allowed)}"
    elif kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        message = f"must be {_BOUNDS[kind]} {_num(bound)}"
    elif kind == "too_short":
        n = ctx.get("min_length", 1)
        message = "expected a non-empty list" if n == 1 else f"expected at least {n} entries"
    elif kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", err["msg"]))
    else:
        message = _TYPE_MESSAGES.get(kind, str(err["msg"]))
    named = message.startswith(repr(value)) or (isinstance(value, str) and repr(value) in message)
    if isinstance(value, (Mapping, list, tuple)) or named or not path:
        return f"{path}: {message}" if path else message
    return f"{path} = {value!r}: {message}"
