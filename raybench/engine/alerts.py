"""What an SLA violation triggers outside raybench: webhook alerts and a rollback command.

Contracts:

* Nothing here raises into the run: :func:`send_alert` and :func:`run_rollback` always return a
  result (:class:`DeliveryResult`, :class:`RollbackResult`) that the driver records as an event.
* Secrets (webhook URL, PagerDuty routing key) come from the scenario or from environment
  variables (``url_env``, ``routing_key_env``). They are held in fields excluded from ``repr``, and
  never appear in a result, in :meth:`WebhookConfig.to_manifest`, or in an error message
  (:func:`redact`); a sink is named by its kind and host only.
* Webhooks: Slack-shaped ``{"text": ...}`` or PagerDuty Events API v2
  (``{"routing_key", "event_action": "trigger", "dedup_key", "payload": {"summary", "source",
  "severity", "custom_details", ...}}``), POSTed as JSON with a timeout per attempt; a connection
  error, a timeout, HTTP 429 or 5xx is retried up to ``retries`` times after ``backoff_s * 2**i``
  seconds; any other HTTP status >= 300 is final.
* Rollback: the configured command (an argv list, or a string run by the shell) gets the violation
  as JSON on stdin; its exit code, duration and the tail of its stderr are returned; it is killed
  after ``timeout_s``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raybench.errors import ScenarioError, nearest

KINDS = ("slack", "pagerduty")
SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
WEBHOOK_KEYS = (
    "kind",
    "url",
    "url_env",
    "routing_key",
    "routing_key_env",
    "timeout",
    "retries",
    "backoff",
    "severity",
    "source",
)
ROLLBACK_KEYS = ("command", "timeout")
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.5
DEFAULT_ROLLBACK_TIMEOUT_S = 60.0
#: Characters of a rollback command's stderr kept in its result.
STDERR_TAIL = 2000
REDACTED = "<redacted>"


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every non-empty secret replaced by ``<redacted>``."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


@dataclass(frozen=True)
class WebhookConfig:
    """One alert sink. ``url`` and ``routing_key`` are secrets: not in repr, never recorded."""

    kind: str
    url: str = field(repr=False)
    routing_key: str | None = field(default=None, repr=False)
    url_env: str | None = None
    routing_key_env: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff_s: float = DEFAULT_BACKOFF_S
    severity: str = "error"
    source: str = ""

    @property
    def name(self) -> str:
        """``kind:scheme://host[:port]``: how the sink is named in results (no path, no key)."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"{self.kind}:{parts.scheme}://{host}{port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        parts = urllib.parse.urlsplit(self.url)
        return tuple(s for s in (self.url, parts.path, parts.query, self.routing_key) if s and s != "/")

    def to_manifest(self) -> dict[str, Any]:
        """Plain data for the manifest: env var names, never the secrets themselves."""
        return {
            "kind": self.kind,
            "sink": self.name,
            "url": REDACTED,
            "url_env": self.url_env,
            "routing_key_env": self.routing_key_env,
            "timeout": self.timeout_s,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class RollbackConfig:
    """The rollback command: an argv list, or a string run by ``/bin/sh -c``."""

    command: tuple[str, ...] | str
    timeout_s: float = DEFAULT_ROLLBACK_TIMEOUT_S

    def to_manifest(self) -> dict[str, Any]:
        cmd = self.command if isinstance(self.command, str) else list(self.command)
        return {"command": cmd, "timeout": self.timeout_s}


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one alert: ``ok`` after a 2xx; otherwise the last error (redacted)."""

    sink: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    duration_s: float

    def to_detail(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "ok": self.ok,
            "attempts": self.attempts,
            "status": self.status,
            "error": self.error,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class RollbackResult:
    """The outcome of the rollback command; ``exit_code`` None when it could not run or timed out."""

    ok: bool
    exit_code: int | None
    duration_s: float
    stderr_tail: str
    timed_out: bool = False
    error: str | None = None

    def to_detail(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "duration_s": self.duration_s,
            "stderr_tail": self.stderr_tail,
            "timed_out": self.timed_out,
            "error": self.error,
        }


def slack_payload(violation: Mapping[str, Any], summary: str) -> dict[str, Any]:
    """Slack incoming-webhook body: ``{"text": ...}`` with the summary and the details."""
    details = ", ".join(f"{k}={violation[k]}" for k in ("observed", "target", "window") if k in violation)
    return {"text": f"{summary}\n{details}" if details else summary}


def pagerduty_payload(
    violation: Mapping[str, Any], summary: str, *, routing_key: str, severity: str, source: str
) -> dict[str, Any]:
    """PagerDuty Events API v2 ``trigger`` event; ``dedup_key`` is stable per run and threshold."""
    dedup = f"raybench:{violation.get('run_id', '')}:{violation.get('threshold', '')}"
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup[:255],
        "client": "raybench",
        "payload": {
            "summary": summary[:1024],
            "source": source or socket.gethostname(),
            "severity": severity,
            "component": "raybench",
            "group": str(violation.get("run_id", "")),
            "class": "sla_violation",
            "custom_details": dict(violation),
        },
    }


def build_payload(cfg: WebhookConfig, violation: Mapping[str, Any], summary: str) -> dict[str, Any]:
    """The JSON body ``cfg`` sends for ``violation``."""
    if cfg.kind == "slack":
        return slack_payload(violation, summary)
    return pagerduty_payload(
        violation, summary, routing_key=cfg.routing_key or "", severity=cfg.severity, source=cfg.source
    )


def send_alert(
    cfg: WebhookConfig,
    violation: Mapping[str, Any],
    summary: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """POST the alert for ``violation`` (a JSON-ready dict) to ``cfg``; never raises.

    Each attempt waits at most ``cfg.timeout_s``; retryable failures (connection error, timeout,
    429, 5xx) are retried ``cfg.retries`` times with exponential backoff.
    """
    t0 = time.perf_counter()
    status: int | None = None
    error: str | None = None
    attempts = 0
    try:
        body = json.dumps(build_payload(cfg, violation, summary), default=str).encode()
    except Exception as exc:  # a violation that does not serialize must not stop the run
        return DeliveryResult(cfg.name, False, 0, None, redact(f"payload: {exc}", cfg.secrets), 0.0)
    for attempt in range(cfg.retries + 1):
        if attempt:
            sleep(cfg.backoff_s * 2 ** (attempt - 1))
        attempts += 1
        retry = False
        req = urllib.request.Request(cfg.url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
                status = resp.status
                resp.read()
            error = None
            break
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            retry = exc.code == 429 or exc.code >= 500
        except TimeoutError:
            status, error, retry = None, f"timed out after {cfg.timeout_s:g}s", True
        except urllib.error.URLError as exc:
            reason = exc.reason
            timed_out = isinstance(reason, (TimeoutError, socket.timeout))
            status = None
            error = f"timed out after {cfg.timeout_s:g}s" if timed_out else f"connection failed: {reason}"
            retry = True
        except Exception as exc:  # never into the run
            status, error, retry = None, f"{type(exc).__name__}: {exc}", False
        if not retry:
            break
    ok = error is None and status is not None and 200 <= status < 300
    if error is not None:
        error = redact(error, cfg.secrets)
    return DeliveryResult(cfg.name, ok, attempts, status, error, time.perf_counter() - t0)


def run_rollback(cfg: RollbackConfig, violation: Mapping[str, Any]) -> RollbackResult:
    """Run the rollback command with ``violation`` as JSON on stdin; never raises."""
    t0 = time.perf_counter()
    shell = isinstance(cfg.command, str)
    cmd: Any = cfg.command if shell else list(cfg.command)
    try:
        data = json.dumps(dict(violation), default=str).encode()
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=cfg.timeout_s, shell=shell, check=False)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"").decode(errors="replace")[-STDERR_TAIL:]
        return RollbackResult(False, None, time.perf_counter() - t0, tail, True, f"timed out after {cfg.timeout_s:g}s")
    except Exception as exc:
        return RollbackResult(False, None, time.perf_counter() - t0, "", False, f"{type(exc).__name__}: {exc}")
    tail = proc.stderr.decode(errors="replace")[-STDERR_TAIL:]
    return RollbackResult(proc.returncode == 0, proc.returncode, time.perf_counter() - t0, tail)


def parse_webhook(
    table: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    resolve: bool = True,
    where: str = "sla.webhooks[0]",
) -> WebhookConfig:
    """Validate one ``[[sla.webhooks]]`` table.

    Keys: ``kind`` (slack|pagerduty), ``url`` or ``url_env`` (pagerduty defaults to the Events API
    v2 URL), ``routing_key`` or ``routing_key_env`` (pagerduty), ``timeout`` ("5s"), ``retries``,
    ``backoff`` ("0.5s"), ``severity`` (pagerduty), ``source`` (pagerduty; default the host name).
    With ``resolve=False`` secrets are not looked up (placeholders are used).

    Raises:
        ScenarioError: unknown key (with the nearest one), bad value, or a named env var not set.
    """
    from raybench.units import parse_duration

    if not isinstance(table, Mapping):
        raise ScenarioError(f"{where} must be a table")
    for key in table:
        if key not in WEBHOOK_KEYS:
            raise ScenarioError(
                f"unknown key {where}.{key}{nearest(str(key), WEBHOOK_KEYS)}; allowed: {', '.join(WEBHOOK_KEYS)}"
            )
    kind = table.get("kind")
    if kind not in KINDS:
        raise ScenarioError(
            f"{where}.kind {kind!r} is not allowed{nearest(str(kind), KINDS)}; allowed: {', '.join(KINDS)}"
        )
    environ = os.environ if env is None else env

    def secret(key: str, default: str | None = None) -> str | None:
        env_key = f"{key}_env"
        if key in table and env_key in table:
            raise ScenarioError(f"{where}: give {key} or {env_key}, not both")
        if env_key in table:
            name = table[env_key]
            if not resolve:
                return f"${name}"
            value = environ.get(str(name))
            if not value:
                raise ScenarioError(f"{where}.{env_key}: environment variable {name} is not set")
            return value
        if key in table:
            if not isinstance(table[key], str) or not table[key]:
                raise ScenarioError(f"{where}.{key} must be a non-empty string")
            return table[key]
        return default

    url = secret("url", PAGERDUTY_URL if kind == "pagerduty" else None)
    if url is None:
        raise ScenarioError(f"{where} needs url or url_env")
    if resolve and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ScenarioError(f"{where}.url must be an http(s) URL")
    routing_key = secret("routing_key")
    if kind == "pagerduty" and routing_key is None:
        raise ScenarioError(f"{where} (pagerduty) needs routing_key or routing_key_env")
    try:
        timeout_s = parse_duration(table.get("timeout", DEFAULT_TIMEOUT_S))
        backoff_s = parse_duration(table.get("backoff", DEFAULT_BACKOFF_S))
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    if timeout_s <= 0:
        raise ScenarioError(f"{where}.timeout must be > 0")
    retries = table.get("retries", DEFAULT_RETRIES)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ScenarioError(f"{where}.retries must be an integer >= 0, not {retries!r}")
    severity = table.get("severity", "error")
    if severity not in SEVERITIES:
        raise ScenarioError(f"{where}.severity {severity!r} is not allowed; allowed: {', '.join(SEVERITIES)}")
    return WebhookConfig(
        kind=kind,
        url=url,
        routing_key=routing_key,
        url_env=table.get("url_env"),
        routing_key_env=table.get("routing_key_env"),
        timeout_s=timeout_s,
        retries=retries,
        backoff_s=backoff_s,
        severity=severity,
        source=str(table.get("source", "")),
    )


def parse_rollback(table: Mapping[str, Any], *, where: str = "sla.rollback") -> RollbackConfig:
    """Validate the ``[sla.rollback]`` table: ``command`` (argv list or shell string), ``timeout``."""
    from raybench.units import parse_duration

    if not isinstance(table, Mapping):
        raise ScenarioError(f"{where} must be a table with a command")
    for key in table:
        if key not in ROLLBACK_KEYS:
            raise ScenarioError(
                f"unknown key {where}.{key}{nearest(str(key), ROLLBACK_KEYS)}; allowed: {', '.join(ROLLBACK_KEYS)}"
            )
    cmd = table.get("command")
    if isinstance(cmd, str) and cmd.strip():
        command: tuple[str, ...] | str = cmd
    elif isinstance(cmd, (list, tuple)) and cmd and all(isinstance(c, str) for c in cmd):
        command = tuple(cmd)
    else:
        raise ScenarioError(f"{where}.command must be a non-empty string or list of strings")
    try:
        timeout_s = parse_duration(table.get("timeout", DEFAULT_ROLLBACK_TIMEOUT_S))
    except ValueError as exc:
        raise ScenarioError(f"{where}.timeout: {exc}") from None
    if timeout_s <= 0:
        raise ScenarioError(f"{where}.timeout must be > 0")
    return RollbackConfig(command, timeout_s)
