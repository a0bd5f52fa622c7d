"""The live SLA monitor end to end on a real local Ray: an injected slow-down from second 6 to 10
is declared after its grace windows, alerts a real HTTP server on 127.0.0.1, runs a real rollback
command, can abort the run, and `raybench sla` agrees with the live verdicts."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from raybench.cli import cli
from raybench.config import scenario
from raybench.engine.run import execute
from raybench.results import store

pytestmark = [pytest.mark.ray, pytest.mark.slow]

THRESHOLD = "p99{escalated=false}<250ms"
CONTROL = "error_rate<1%"


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()


def _scenario(tmp_path: Path, url: str, actions: list[str]) -> scenario.Scenario:
    rollback_out = tmp_path / "rollback.json"
    return scenario.load(
        preset="smoke",
        overrides={
            "run.agents": 200,
            "arrivals.rate": 1.0,
            "run.duration": "14s",
            "run.warmup": "1s",
            "run.window": "2s",
            "fuse.mode": "off",
            "faults": [{"kind": "slow_stage", "stage": "policy", "extra": 400, "start": "6s", "end": "10s"}],
            "sla": {
                "window": "2s",
                "initial_delay": "2s",
                "grace_windows": 2,
                "thresholds": [THRESHOLD, CONTROL],
                "actions": {THRESHOLD: actions},
                "webhooks": [{"kind": "slack", "url": url, "timeout": "2s", "retries": 1}],
                "rollback": {
                    "command": [
                        sys.executable,
                        "-c",
                        f"import sys; open({str(rollback_out)!r}, 'w').write(sys.stdin.read())",
                    ],
                    "timeout": "20s",
                },
            },
        },
    )


def _events(run_dir: Path, kind: str) -> list[dict]:
    t = store.read_table(run_dir, "events")
    return [
        json.loads(d)
        for k, d in zip(t.column("kind").to_pylist(), t.column("detail").to_pylist(), strict=True)
        if k == kind
    ]


def test_degradation_is_declared_after_grace_alerted_rolled_back(ray_local, tmp_path, webhook):
    url, received = webhook
    sc = _scenario(tmp_path, url, ["record", "alert", "rollback"])
    result = execute(sc, out=tmp_path, run_id="degraded")
    assert result.status == "completed"
    violations = _events(result.run_dir, "violation")
    assert [v["threshold"] for v in violations] == ["p99{escalated=false}<250ms"]  # exactly one, not the control
    v = violations[0]
    # slow requests start at 6 s and end in window 3 ([6 s, 8 s)): two failed windows in a row
    # are windows 3 and 4, so the violation is declared at window 4 (not before the fault)
    assert v["window"] == 4 and v["windows_failed"] >= 2
    assert v["observed"] > 250
    # the webhook got the Slack-shaped payload, the rollback command got the violation on stdin
    assert len(received) == 1 and "p99{escalated=false}<250ms" in received[0]["text"]
    alerts = _events(result.run_dir, "alert")
    assert alerts and alerts[0]["ok"] is True and url not in json.dumps(alerts)
    rolled = json.loads((tmp_path / "rollback.json").read_text())
    assert rolled["threshold"] == v["threshold"] and rolled["window"] == 4
    rollbacks = _events(result.run_dir, "rollback")
    assert rollbacks and rollbacks[0]["ok"] is True
    assert url not in (result.run_dir / "manifest.json").read_text()
    # the run-level verdicts in sla.arrow ...
    live = {r["id"]: r for r in store.read_table(result.run_dir, "sla").to_pylist()}
    assert live["p99{escalated=false}<250ms"]["passed"] is False
    assert live[CONTROL]["passed"] is True
    assert result.verdict is False
    # ... are what `raybench sla` finds again from the files alone
    res = CliRunner().invoke(cli, ["sla", str(result.run_dir)])
    assert res.exit_code == 1, res.output
    for line in res.output.splitlines():
        for tid, row in live.items():
            if line.startswith(tid + " "):
                assert ("FAIL" in line) == (not row["passed"])
                assert f"{row['windows_failed']}/{row['windows_total']}" in line


def test_abort_stops_early_with_valid_files(ray_local, tmp_path, webhook):
    url, _ = webhook
    sc = _scenario(tmp_path, url, ["record", "abort"])
    result = execute(sc, out=tmp_path, run_id="aborted")
    assert result.status == "aborted"
    manifest = store.load_manifest(result.run_dir)
    assert manifest["status"] == "aborted" and "p99{escalated=false}<250ms" in manifest["abort_reason"]
    requests = store.read_table(result.run_dir, "requests")
    assert requests.num_rows == manifest["files"]["requests"] > 0
    # declared at ~10 s of a 14 s run: the last intended start is well before the planned end
    last_intended = max(requests.column("ts_intended_ns").to_pylist())
    assert last_intended < manifest["load_end_ns"] - 1_500_000_000
    assert _events(result.run_dir, "abort")
