"""Alerts POST to a real HTTP server on 127.0.0.1; rollback runs a real command."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from raybench.config.sla import REDACTED, RollbackConfig, WebhookConfig, parse_sla_config
from raybench.engine.alerts import run_rollback, send_alert
from raybench.errors import ScenarioError

VIOLATION = {
    "run_id": "20261201T000000Z-abc123",
    "threshold": "p99<100ms",
    "expression": "p99 < 100ms",
    "observed": 250.0,
    "target": 100.0,
    "window": 4,
    "windows_failed": 3,
}
SUMMARY = "raybench SLA violated: p99<100ms"
SECRET_PATH = "/services/T000/B000/s3cr3tT0ken"


class _Server:
    """A real HTTP server on 127.0.0.1 answering with a scripted list of (status, delay) replies."""

    def __init__(self, replies: list[tuple[int, float]]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, dict(self.headers), body))
                status, delay = outer.replies.pop(0) if outer.replies else (200, 0.0)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{SECRET_PATH}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request) -> Iterator[_Server]:
    srv = _Server(getattr(request, "param", []))
    yield srv
    srv.close()


def _no_secret(obj: object, *secrets: str) -> None:
    text = repr(obj) + json.dumps(getattr(obj, "to_detail", dict)(), default=str)
    for s in secrets:
        assert s not in text


def test_slack_payload_delivered(server):
    cfg = WebhookConfig(kind="slack", url=server.url)
    res = send_alert(cfg, VIOLATION, SUMMARY)
    assert res.ok and res.status == 200 and res.attempts == 1 and res.error is None
    ((path, headers, body),) = server.requests
    assert path == SECRET_PATH and headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"text"}
    assert payload["text"].startswith(SUMMARY) and "observed=250.0" in payload["text"]
    assert res.sink == f"slack:http://127.0.0.1:{server.httpd.server_address[1]}"
    _no_secret(res, SECRET_PATH, "s3cr3tT0ken")


def test_pagerduty_events_v2_payload(server):
    cfg = WebhookConfig(kind="pagerduty", url=server.url, routing_key="R0UT1NGKEY", severity="critical", source="h1")
    res = send_alert(cfg, VIOLATION, SUMMARY)
    assert res.ok
    payload = json.loads(server.requests[0][2])
    assert payload["routing_key"] == "R0UT1NGKEY" and payload["event_action"] == "trigger"
    assert payload["dedup_key"] == f"raybench:{VIOLATION['run_id']}:p99<100ms"
    p = payload["payload"]
    assert (p["summary"], p["source"], p["severity"]) == (SUMMARY, "h1", "critical")
    assert p["custom_details"] == VIOLATION
    _no_secret(res, "R0UT1NGKEY", SECRET_PATH)
    _no_secret(cfg, "R0UT1NGKEY", SECRET_PATH)
    assert "R0UT1NGKEY" not in json.dumps(cfg.to_manifest())


@pytest.mark.parametrize("server", [[(503, 0.0), (500, 0.0)]], indirect=True)
def test_retries_with_backoff_until_success(server):
    sleeps: list[float] = []
    cfg = WebhookConfig(kind="slack", url=server.url, retries=3, backoff=0.25)
    res = send_alert(cfg, VIOLATION, SUMMARY, sleep=sleeps.append)
    assert res.ok and res.attempts == 3 and res.status == 200
    assert sleeps == [0.25, 0.5]
    assert len(server.requests) == 3 and len({r[2] for r in server.requests}) == 1


@pytest.mark.parametrize("server", [[(500, 0.0)] * 5], indirect=True)
def test_retries_exhausted_returns_failure(server):
    cfg = WebhookConfig(kind="slack", url=server.url, retries=2, backoff=0.0)
    res = send_alert(cfg, VIOLATION, SUMMARY)
    assert not res.ok and res.attempts == 3 and res.status == 500 and res.error == "HTTP 500"


@pytest.mark.parametrize("server", [[(400, 0.0), (200, 0.0)]], indirect=True)
def test_client_error_is_not_retried(server):
    res = send_alert(WebhookConfig(kind="slack", url=server.url, retries=3, backoff=0.0), VIOLATION, SUMMARY)
    assert not res.ok and res.attempts == 1 and res.status == 400 and len(server.requests) == 1


@pytest.mark.parametrize("server", [[(200, 3.0), (200, 3.0)]], indirect=True)
def test_stalled_server_times_out_and_does_not_raise(server):
    cfg = WebhookConfig(kind="slack", url=server.url, timeout=0.3, retries=1, backoff=0.0)
    t0 = time.monotonic()
    res = send_alert(cfg, VIOLATION, SUMMARY)
    elapsed = time.monotonic() - t0
    assert not res.ok and res.attempts == 2 and "timed out" in (res.error or "")
    assert elapsed < 2.0  # two attempts of 0.3 s, not the server's 3 s
    _no_secret(res, SECRET_PATH)


def test_unreachable_sink_returns_redacted_failure():
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}{SECRET_PATH}?token=qu3ry"
    res = send_alert(WebhookConfig(kind="slack", url=url, retries=1, backoff=0.0), VIOLATION, SUMMARY)
    assert not res.ok and res.attempts == 2 and res.status is None and "connection failed" in res.error
    _no_secret(res, SECRET_PATH, "qu3ry")


def test_rollback_gets_violation_on_stdin(tmp_path: Path):
    out = tmp_path / "stdin.json"
    code = "import sys; data = sys.stdin.read(); open(sys.argv[1], 'w').write(data); print('bye', file=sys.stderr)"
    res = run_rollback(RollbackConfig(command=(sys.executable, "-c", code, str(out)), timeout=10.0), VIOLATION)
    assert res.ok and res.exit_code == 0 and not res.timed_out
    assert json.loads(out.read_text()) == VIOLATION
    assert res.stderr_tail == "bye\n" and 0 < res.duration_s < 10


def test_rollback_shell_string_and_failure_exit_code(tmp_path: Path):
    out = tmp_path / "copy.json"
    res = run_rollback(RollbackConfig(command=f"cat > '{out}'; echo oops >&2; exit 3", timeout=10.0), VIOLATION)
    assert not res.ok and res.exit_code == 3 and res.stderr_tail == "oops\n"
    assert json.loads(out.read_text())["threshold"] == "p99<100ms"


def test_rollback_timeout_and_missing_command():
    res = run_rollback(
        RollbackConfig(command=(sys.executable, "-c", "import time; time.sleep(5)"), timeout=0.3), VIOLATION
    )
    assert res.timed_out and res.exit_code is None and not res.ok and res.duration_s < 3
    missing = run_rollback(RollbackConfig(command=("/nonexistent/rollback-cmd",), timeout=1.0), VIOLATION)
    assert not missing.ok and missing.exit_code is None and "FileNotFoundError" in missing.error


def test_rollback_stderr_tail_is_bounded():
    res = run_rollback(
        RollbackConfig(
            command=(sys.executable, "-c", "import sys; sys.stderr.write('x' * 10000 + 'END')"), timeout=10.0
        ),
        VIOLATION,
    )
    assert res.ok and len(res.stderr_tail) == 2000 and res.stderr_tail.endswith("END")


def _webhook(table, *, env=None, resolve=True):
    """One ``[[sla.webhooks]]`` table, validated as part of an ``[sla]`` table (and resolved)."""
    return parse_sla_config({"webhooks": [table]}, env=env or {}, resolve_secrets=resolve).webhooks[0]


def test_webhook_from_env_and_redacted_manifest():
    env = {"HOOK": "https://hooks.example.com/T1/B2/abc", "PD_KEY": "pdkey123"}
    slack = _webhook({"kind": "slack", "url_env": "HOOK", "timeout": "2s", "retries": 4}, env=env)
    assert (slack.url, slack.timeout, slack.retries) == (env["HOOK"], 2.0, 4)
    pd = _webhook({"kind": "pagerduty", "routing_key_env": "PD_KEY"}, env=env)
    assert pd.url == "https://events.pagerduty.com/v2/enqueue" and pd.routing_key == "pdkey123"
    for cfg in (slack, pd):
        text = repr(cfg) + json.dumps(cfg.to_manifest())
        assert "abc" not in text.replace("hooks.example.com", "") and "pdkey123" not in text
        assert cfg.to_manifest()["url"] == REDACTED
    offline = _webhook({"kind": "slack", "url_env": "HOOK"}, resolve=False)
    assert offline.url is None and offline.url_env == "HOOK"  # looked up only where alerts are sent


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "slack"}, "needs url"),
        ({"kind": "slack", "url": "ftp://x/y"}, "http"),
        ({"kind": "slack", "url": "http://x", "url_env": "X"}, "not both"),
        ({"kind": "slack", "url": "http://x", "retries": -1}, "retries"),
        ({"kind": "slack", "url": "http://x", "timeout": "0s"}, "timeout"),
        ({"kind": "pagerduty", "routing_key": "k", "severity": "high"}, "severity"),
        ({"kind": "slack", "url": "http://x", "tiemout": "1s"}, "did you mean 'timeout'"),
    ],
)
def test_webhook_errors(table, message):
    with pytest.raises(ScenarioError, match=message):
        _webhook(table)


def test_rollback_table():
    assert parse_sla_config({"rollback": {"command": "echo hi"}}).rollback.command == "echo hi"
    cfg = parse_sla_config({"rollback": {"command": ["a", "b"], "timeout": "2s"}}).rollback
    assert cfg.command == ("a", "b") and cfg.timeout == 2.0
    with pytest.raises(ScenarioError, match="timeout"):
        parse_sla_config({"rollback": {"command": "x", "timeout": "soon"}})
