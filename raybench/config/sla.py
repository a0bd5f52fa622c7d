"""The ``[sla]`` table of a scenario, validated once into a frozen :class:`SlaConfig` (the
``sla`` field of :class:`raybench.config.scenario.Scenario`).

Keys (all optional)::

    [sla]
    thresholds = ["p99<100ms", "error_rate<0.1%"]   # grammar: raybench.judge.grammar
    window = "30s"              # window length
    initial_delay = "10s"       # windows starting earlier are not judged
    grace_windows = 3           # failed windows that make a violation (>= 1)
    counting = "consecutive"    # or "cumulative"
    settle_windows = 1          # windows relative throughput waits for late completions (>= 0)
    actions = ["record", "alert"]            # for every threshold, or a table expression -> list
    webhooks = [{kind = "slack", url_env = "SLACK_HOOK", timeout = "5s", retries = 2}]
    rollback = {command = ["./rollback.sh"], timeout = "60s"}

Thresholds are parsed here, once, into :class:`~raybench.judge.thresholds.Threshold` objects.
Unknown keys are refused with the nearest valid one. Secrets (webhook URLs, routing keys) are held
out of ``repr``, written as ``<redacted>`` by the serializer (``Scenario.to_dict``) and left out of
:meth:`SlaConfig.to_manifest`; ``*_env`` secrets are looked up by :meth:`SlaConfig.resolved`, where
the alerts are sent (the driver), never where a scenario is read back. Sending is
:mod:`raybench.engine.alerts`' job, not this module's: importing it opens no socket.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic import FieldSerializationInfo as _Info

from raybench.config.types import Int, Seconds, Table, Text, fail, validate
from raybench.errors import ScenarioError, ThresholdError, nearest
from raybench.judge import grammar
from raybench.judge.sla import ACTIONS, COUNTING, DEFAULT_WINDOW_S, SlaMonitor
from raybench.judge.thresholds import Threshold

Kind = Literal["slack", "pagerduty"]
Severity = Literal["critical", "error", "warning", "info"]
Action = Literal[ACTIONS]  # type: ignore[valid-type]
Counting = Literal[COUNTING]  # type: ignore[valid-type]
KINDS, SEVERITIES = get_args(Kind), get_args(Severity)
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
#: What a secret is written as (a manifest, ``Scenario.to_dict``).
REDACTED = "<redacted>"
#: Keys of a webhook whose values are secrets: never written to a manifest or a log.
SECRET_KEYS = ("url", "routing_key")


def _threshold(value: Any) -> Threshold:
    if isinstance(value, Threshold):
        return value
    try:
        return grammar.parse_threshold(value)
    except ThresholdError as exc:
        raise fail(str(exc)) from None


#: A threshold expression, parsed once (``"p99<100ms"`` in, a Threshold held, the text written back).
ThresholdExpr = Annotated[
    Threshold, PlainValidator(_threshold), PlainSerializer(lambda t: t.expression, return_type=str)
]


def _expressions(value: Any) -> Any:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise fail("expected a list of expressions such as 'p99<100ms'")
    return value


def _actions(value: Any) -> Any:
    """``actions``: a list for every threshold (held as ``{"*": list}`` until the thresholds are
    known), or a table threshold -> list."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise fail(f"expected a list of actions ({', '.join(ACTIONS)}), or a table threshold -> list")
    return {"*": value}


def _command(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(c, str) for c in value):
        return tuple(value)
    raise fail("expected a non-empty string or list of strings")


class WebhookConfig(Table):
    """``[[sla.webhooks]]``: one alert sink. ``url`` and ``routing_key`` are secrets: not in repr,
    redacted when written."""

    kind: Kind = Field(description="slack or pagerduty")
    url: Text | None = Field(
        None, min_length=1, repr=False, description="secret (or url_env); pagerduty: Events API v2"
    )
    url_env: Text | None = Field(None, min_length=1, description="environment variable holding url")
    routing_key: Text | None = Field(
        None, min_length=1, repr=False, description="secret (or routing_key_env), pagerduty"
    )
    routing_key_env: Text | None = Field(None, min_length=1, description="environment variable holding routing_key")
    timeout: Seconds = Field("5s", gt=0, description="per attempt")
    retries: Int = Field(2, ge=0, description="retries after a connection error, a timeout, 429 or 5xx")
    backoff: Seconds = Field("0.5s", description="retry i waits backoff * 2**i")
    severity: Severity = Field("error", description="pagerduty")
    source: Text = Field("", description="pagerduty (default: the host name)")

    @model_validator(mode="after")
    def _secrets_given(self) -> WebhookConfig:
        for key in SECRET_KEYS:
            if getattr(self, key) is not None and getattr(self, f"{key}_env") is not None:
                raise ValueError(f"give {key} or {key}_env, not both")
        if self.kind == "slack" and self.url is None and self.url_env is None:
            raise ValueError("needs url or url_env")
        if self.kind == "pagerduty" and self.routing_key is None and self.routing_key_env is None:
            raise ValueError("(pagerduty) needs routing_key or routing_key_env")
        if self.url not in (None, REDACTED) and urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("url must be an http(s) URL")
        return self

    @field_serializer(*SECRET_KEYS)
    def _redact(self, value: str | None, info: _Info) -> str | None:
        return value if value is None or (info.context or {}).get("secrets") else REDACTED

    @property
    def name(self) -> str:
        """``kind:scheme://host[:port]``: how the sink is named in results (no path, no key)."""
        parts = urllib.parse.urlsplit(self.url or "")
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{self.kind}:{parts.scheme}://{host}{port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        parts = urllib.parse.urlsplit(self.url or "")
        return tuple(s for s in (self.url, parts.path, parts.query, self.routing_key) if s and s != "/")

    def resolved(self, env: Mapping[str, str] | None = None, *, where: str = "sla.webhooks[0]") -> WebhookConfig:
        """This sink with its ``*_env`` secrets looked up in ``env`` (default ``os.environ``).

        Raises:
            ScenarioError: a named environment variable is not set, or the URL is not http(s).
        """
        environ = os.environ if env is None else env

        def lookup(key: str) -> str | None:
            name = getattr(self, f"{key}_env")
            if name is None:
                return getattr(self, key)
            value = environ.get(name)
            if not value:
                raise ScenarioError(f"{where}.{key}_env: environment variable {name} is not set")
            return value

        url = lookup("url") or (PAGERDUTY_URL if self.kind == "pagerduty" else "")
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ScenarioError(f"{where}.url must be an http(s) URL (a manifest holds it redacted: use url_env)")
        return self.model_copy(update={"url": url, "routing_key": lookup("routing_key")})

    def to_manifest(self) -> dict[str, Any]:
        """Plain data for the manifest: env var names, never the secrets themselves."""
        return {
            "kind": self.kind,
            "sink": self.name,
            "url": REDACTED,
            "url_env": self.url_env,
            "routing_key_env": self.routing_key_env,
            "timeout": self.timeout,
            "retries": self.retries,
        }


class RollbackConfig(Table):
    """``[sla.rollback]``: the command a violation runs, an argv list or a string for ``/bin/sh -c``."""

    command: Annotated[str | tuple[str, ...], BeforeValidator(_command)] = Field(description="argv list or shell")
    timeout: Seconds = Field("60s", gt=0, description="the command is killed after this")

    def to_manifest(self) -> dict[str, Any]:
        cmd = self.command if isinstance(self.command, str) else list(self.command)
        return {"command": cmd, "timeout": self.timeout}


class SlaConfig(Table):
    """The ``[sla]`` table, validated; thresholds parsed. ``actions`` maps each threshold id to its
    actions."""

    thresholds: Annotated[tuple[ThresholdExpr, ...], BeforeValidator(_expressions)] = Field(
        (), description="expressions such as 'p99<100ms' (grammar: raybench.judge.grammar)"
    )
    window: Seconds = Field(DEFAULT_WINDOW_S, gt=0, description="window length")
    initial_delay: Seconds = Field("0s", description="windows starting earlier are not judged")
    grace_windows: Int = Field(1, ge=1, description="failed windows that make a violation")
    counting: Counting = Field("consecutive", description="consecutive or cumulative failed windows")
    settle_windows: Int = Field(1, ge=0, description="windows relative throughput waits for late completions")
    actions: Annotated[dict[str, tuple[Action, ...]], BeforeValidator(_actions)] = Field(
        ["record"], description="for every threshold, or a table threshold -> list: record, alert, rollback, abort"
    )
    webhooks: tuple[WebhookConfig, ...] = Field((), description="where 'alert' goes")
    rollback: RollbackConfig | None = Field(None, description="what 'rollback' runs")

    @field_validator("thresholds")
    @classmethod
    def _distinct(cls, ths: tuple[Threshold, ...]) -> tuple[Threshold, ...]:
        seen: set[str] = set()
        for th in ths:
            if th.id in seen:
                raise ValueError(f"threshold {th.expression!r} is given twice (as {th.id})")
            seen.add(th.id)
        return ths

    @model_validator(mode="after")
    def _actions_per_threshold(self) -> SlaConfig:
        uses = {a for acts in self.actions.values() for a in acts}
        if "alert" in uses and not self.webhooks:
            raise ValueError("actions has 'alert' but webhooks is empty")
        if "rollback" in uses and self.rollback is None:
            raise ValueError("actions has 'rollback' but there is no sla.rollback")
        if "*" in self.actions:
            out = {t.id: self.actions["*"] for t in self.thresholds}
        else:
            ids = {t.expression: t.id for t in self.thresholds} | {t.id: t.id for t in self.thresholds}
            out = {t.id: ("record",) for t in self.thresholds}
            for expr, acts in self.actions.items():
                if expr not in ids:
                    with contextlib.suppress(ThresholdError, TypeError):  # another spelling of an expression
                        expr = grammar.parse_threshold(expr).id
                if expr not in ids:
                    raise ValueError(f"actions names {expr!r}, which is not one of sla.thresholds{nearest(expr, ids)}")
                out[ids[expr]] = acts
        object.__setattr__(self, "actions", out)  # frozen: set once, here
        return self

    @field_serializer("actions")
    def _compact(self, actions: dict[str, tuple[str, ...]]) -> list[str] | dict[str, list[str]]:
        kinds = set(actions.values())
        if len(kinds) <= 1:  # the same for every threshold: a list
            return list(kinds.pop() if kinds else ("record",))
        return {k: list(v) for k, v in actions.items()}

    def resolved(self, env: Mapping[str, str] | None = None, *, where: str = "sla") -> SlaConfig:
        """These settings with every webhook's ``*_env`` secret looked up (see :meth:`WebhookConfig.resolved`)."""
        hooks = tuple(w.resolved(env, where=f"{where}.webhooks[{i}]") for i, w in enumerate(self.webhooks))
        return self.model_copy(update={"webhooks": hooks})

    def monitor(
        self, *, t0_ns: int, run_id: str = "", stages_off: Mapping[str, str] | None = None, warmup_s: float = 0.0
    ) -> SlaMonitor:
        """A fresh :class:`SlaMonitor` with these settings (``stages_off``, ``warmup_s``: see
        :class:`SlaMonitor`)."""
        return SlaMonitor(
            self.thresholds,
            t0_ns=t0_ns,
            window_s=self.window,
            initial_delay_s=self.initial_delay,
            grace_windows=self.grace_windows,
            counting=self.counting,
            settle_windows=self.settle_windows,
            actions=self.actions,
            run_id=run_id,
            stages_off=stages_off,
            warmup_s=warmup_s,
        )

    def to_manifest(self) -> dict[str, Any]:
        """The settings as plain data for the manifest, with every secret left out."""
        return {
            "thresholds": [t.expression for t in self.thresholds],
            "window": f"{self.window:g}s",
            "initial_delay": f"{self.initial_delay:g}s",
            "grace_windows": self.grace_windows,
            "counting": self.counting,
            "settle_windows": self.settle_windows,
            "actions": {k: list(v) for k, v in self.actions.items()},
            "webhooks": [w.to_manifest() for w in self.webhooks],
            "rollback": self.rollback.to_manifest() if self.rollback else None,
        }


def parse_sla_config(
    table: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
    where: str = "sla",
) -> SlaConfig:
    """An ``[sla]`` table on its own (a manifest's, a test's) validated into an :class:`SlaConfig`;
    with ``resolve_secrets`` its webhooks' ``*_env`` secrets are looked up in ``env`` (default
    ``os.environ``).

    Raises:
        ScenarioError: one line naming the key (under ``where``), the value and what is allowed.
    """
    cfg: SlaConfig = validate(SlaConfig, table, where)
    return cfg.resolved(env, where=where) if resolve_secrets else cfg
