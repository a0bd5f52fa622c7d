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
  error, a timeout, HTTP 429 or 5xx is retried up to ``retries`` times after ``backoff * 2**i``
  seconds; any other HTTP status >= 300 is final.
* Rollback: the configured command (an argv list, or a string run by the shell) gets the violation
  as JSON on stdin; its exit code, duration and the tail of its stderr are returned; it is killed
  after ``timeout``.

The settings arrive validated (:class:`raybench.config.sla.WebhookConfig`, resolved by
:meth:`~raybench.config.sla.SlaConfig.resolved`, and :class:`~raybench.config.sla.RollbackConfig`);
this module only sends. Only the driver imports it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from raybench.config.sla import REDACTED, RollbackConfig, WebhookConfig

#: Characters of a rollback command's stderr kept in its result.
STDERR_TAIL = 2000


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every non-empty secret replaced by ``<redacted>``."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


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

    Each attempt waits at most ``cfg.timeout``; retryable failures (connection error, timeout,
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
            sleep(cfg.backoff * 2 ** (attempt - 1))
        attempts += 1
        retry = False
        req = urllib.request.Request(
            cfg.url or "", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
                status = resp.status
                resp.read()
            error = None
            break
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            retry = exc.code == 429 or exc.code >= 500
        except TimeoutError:
            status, error, retry = None, f"timed out after {cfg.timeout:g}s", True
        except urllib.error.URLError as exc:
            reason = exc.reason
            timed_out = isinstance(reason, (TimeoutError, socket.timeout))
            status = None
            error = f"timed out after {cfg.timeout:g}s" if timed_out else f"connection failed: {reason}"
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
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=cfg.timeout, shell=shell, check=False)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"").decode(errors="replace")[-STDERR_TAIL:]
        return RollbackResult(False, None, time.perf_counter() - t0, tail, True, f"timed out after {cfg.timeout:g}s")
    except Exception as exc:
        return RollbackResult(False, None, time.perf_counter() - t0, "", False, f"{type(exc).__name__}: {exc}")
    tail = proc.stderr.decode(errors="replace")[-STDERR_TAIL:]
    return RollbackResult(proc.returncode == 0, proc.returncode, time.perf_counter() - t0, tail)
