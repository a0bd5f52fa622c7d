"""The scenario models (raybench.config): one declaration per key, validated once, one-line errors."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from raybench.config import scenario
from raybench.config.scenario import Scenario
from raybench.config.sources import load_raw
from raybench.errors import ScenarioError

WEBHOOK = {"kind": "slack", "url": "https://hooks.example.com/T1/s3cr3t"}


def _leaves(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every value that is not a table (a list is a value)."""
    out = []
    for key, value in table.items():
        if isinstance(value, Mapping) and key not in ("classes",):
            out += _leaves(value, f"{prefix}{key}.")
        elif isinstance(value, Mapping):
            out += [f"{prefix}{key}.{name}.{k}" for name, cls in value.items() for k in cls]
        else:
            out.append(f"{prefix}{key}")
    return out


def _get(table: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        table = table[part]
    return table


def test_every_key_of_the_lighthouse_preset_round_trips():
    raw = load_raw(preset="lighthouse")
    sc = scenario.load(preset="lighthouse")
    out = sc.to_dict()
    assert Scenario.from_dict(out) == sc
    keys = _leaves(raw)
    assert len(keys) > 40
    for key in keys:
        written = _get(out, key)  # every key the preset sets is written back ...
        # ... and reading back what was written for it gives the same scenario
        assert scenario.load(preset="lighthouse", overrides={key: written}) == sc, key
    # defaults too: every key of every table is written, and reads back
    assert set(out) == set(Scenario.toml_keys())
    assert set(out["run"]) == set(type(sc.run).toml_keys())
    assert set(out["fuse"]) == set(type(sc.fuse).toml_keys())


def test_durations_keep_what_units_accept_and_are_written_in_seconds():
    for given, seconds in (("20s", 20.0), ("500ms", 0.5), ("2m", 120.0), (3, 3.0), (1.5, 1.5), ("250us", 250e-6)):
        sc = scenario.load(preset="smoke", overrides={"run.duration": given, "run.warmup": 0})
        assert sc.run.duration == seconds
        assert sc.to_dict()["run"]["duration"] == f"{seconds}s"


def _typo(key: str) -> str:
    return key[:-1] + ("x" if key[-1] != "x" else "y")


LEVELS = [
    ("", "run"),
    ("run", "agents"),
    ("arrivals", "process"),
    ("arrivals.shape", "amplitude"),
    ("classes.safe", "escalation"),
    ("stages", "parallel_review"),
    ("stages.llm", "min"),
    ("experts", "pool"),
    ("state", "lease_mode"),
    ("fuse", "prefill"),
    ("regions[0]", "utc_offset"),
    ("sla", "thresholds"),
    ("sla.webhooks[0]", "retries"),
    ("sla.rollback", "command"),
    ("faults[0]", "share"),
]


def _with_key(where: str, key: str) -> dict[str, Any]:
    """The smoke preset's raw tables with ``key`` added in the table at ``where``."""
    raw = load_raw(preset="smoke")
    raw["sla"] |= {"webhooks": [dict(WEBHOOK)], "rollback": {"command": "true"}}
    raw["faults"] = [{"kind": "fail", "share": 0.5}]
    node: Any = raw
    for part in where.replace("[0]", ".0").split(".") if where else []:
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = 1
    return raw


@pytest.mark.parametrize(("where", "key"), LEVELS)
def test_an_unknown_key_at_each_level_names_the_nearest(where, key):
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(_with_key(where, _typo(key)))
    message = str(info.value)
    dotted = f"{where}.{_typo(key)}" if where else _typo(key)
    assert message.startswith(f"unknown key {dotted} (did you mean '{key}'?)"), message
    assert "\n" not in message


WRONG_TYPES = [
    ("run.agents", "many", "run.agents = 'many': expected an integer"),
    ("run.agents", 2.5, "run.agents = 2.5: expected an integer"),
    ("run.agents", True, "run.agents = True: expected an integer"),
    ("run.duration", "soon", "run.duration: 'soon' is not a duration"),
    ("state.lease_ttl", True, "state.lease_ttl: True is not a duration"),
    ("classes.safe.escalation", 1.5, "classes.safe.escalation = 1.5: a probability must be in [0, 1]"),
    ("stages.cache_hit_rate", "10%", "stages.cache_hit_rate = '10%': expected a number"),
    ("fuse.mode", "maybe", "fuse.mode = 'maybe': expected one of auto, on, off"),
    ("state.transport", "rau", "state.transport = 'rau': expected one of socket, ray (did you mean 'ray'?)"),
    ("fuse.open_ahead", "maybe", "fuse.open_ahead = 'maybe': expected true or false"),
    ("run.metrics", 1, "run.metrics = 1: expected true or false"),
    ("stages.llm", "fast", "stages.llm = 'fast': expected a table like"),
    ("stages.llm", {"dist": "unifrom"}, "stages.llm.dist = 'unifrom': unknown distribution (did you mean 'uniform'?)"),
    ("stages.llm", {"dist": "uniform", "min": 1}, "stages.llm needs 'max'"),
    ("stages.llm", {"dist": "lognormal", "median": 0, "sigma": 1}, "stages.llm.median = 0: must be > 0"),
    ("regions", [{"name": "a", "rtt": -1}], "regions[0].rtt = -1: must be >= 0"),
]


@pytest.mark.parametrize(("key", "value", "message"), WRONG_TYPES)
def test_a_wrong_value_is_one_line_naming_the_dotted_key(key, value, message):
    with pytest.raises(ScenarioError) as info:
        scenario.load(preset="smoke", overrides={key: value})
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_the_preset_is_the_source_of_the_lighthouse_thresholds():
    raw = load_raw(preset="lighthouse")["sla"]["thresholds"]
    assert "mean{escalated=false}<60ms" in raw
    assert [t.expression for t in scenario.load(preset="lighthouse").sla.thresholds] == raw
    import raybench.judge.sla

    assert not hasattr(raybench.judge.sla, "LIGHTHOUSE_THRESHOLDS")


def test_thresholds_are_parsed_once_however_the_scenario_travels(monkeypatch):
    from raybench.judge import capacity, grammar
    from raybench.model.workload import Planner

    calls: list[str] = []
    parse = grammar.parse_threshold
    monkeypatch.setattr(grammar, "parse_threshold", lambda text: calls.append(text) or parse(text))
    sc = scenario.load(preset="lighthouse")
    assert len(calls) == len(sc.sla.thresholds) == 8
    again = pickle.loads(pickle.dumps(sc))
    assert again == sc and again.sla.thresholds == sc.sla.thresholds
    copy.deepcopy(sc)
    sc.model_copy()
    sc.sla.monitor(t0_ns=0, stages_off=sc.stages_off())
    Planner(again)
    capacity.findings(again)
    sc.to_dict()
    assert len(calls) == 8  # none of that parsed a threshold again
    try:
        from ray import cloudpickle  # how Ray ships an actor's arguments
    except ImportError:  # pragma: no cover
        return
    assert cloudpickle.loads(cloudpickle.dumps(sc)) == sc and len(calls) == 8


def test_an_agent_host_keeps_the_scenario_it_is_given(monkeypatch):
    from raybench.actors.experts import ExpertPool
    from raybench.actors.host import AgentHost
    from raybench.actors.state import StateShard
    from raybench.actors.transport import MemoryTransport
    from raybench.judge import grammar

    sc = scenario.load(preset="smoke", overrides={"run.agents": 2, "fuse.mode": "off"})
    monkeypatch.setattr(grammar, "parse_threshold", lambda text: pytest.fail(f"{text!r} parsed again"))
    interval = sys.getswitchinterval()
    try:
        transport = MemoryTransport([StateShard(0)], ExpertPool(1))
        host = AgentHost(
            0, [0, 1], sc, "run", [], None, None, None, "node", transport=transport, ship=lambda rows: None
        )
        assert host.sc is sc
    finally:
        sys.setswitchinterval(interval)


def test_sla_table_is_validated_once_as_part_of_the_scenario():
    from raybench.config.sla import SlaConfig

    sc = scenario.load(preset="smoke", overrides={"sla.actions": {"p50{escalated=false}<75ms": ["abort"]}})
    assert isinstance(sc.sla, SlaConfig)
    assert sc.sla.actions["p50{escalated=false}<75ms"] == ("abort",)
    assert set(sc.sla.actions) == {t.id for t in sc.sla.thresholds}
    assert Scenario.from_dict(sc.to_dict()) == sc
    for bad, message in (
        ({"sla.windw": "1s"}, "unknown key sla.windw (did you mean 'window'?)"),
        ({"sla.thresholds": ["p99<<1s"]}, "sla.thresholds[0]: threshold 'p99<<1s': at position 4"),
        ({"sla.grace_windows": 0}, "sla.grace_windows = 0: must be >= 1"),
        ({"sla.actions": ["alert"]}, "sla: actions has 'alert' but webhooks is empty"),
        ({"sla.webhooks": [{"kind": "slak", "url": "http://x"}]}, "sla.webhooks[0].kind = 'slak': expected one of"),
    ):
        with pytest.raises(ScenarioError) as info:
            scenario.load(preset="smoke", overrides=bad)
        assert str(info.value).startswith(message), str(info.value)


def test_webhook_secrets_are_redacted_when_written_and_looked_up_only_when_resolved():
    hooks = [WEBHOOK, {"kind": "pagerduty", "routing_key_env": "RAYBENCH_TEST_PD_KEY"}]
    sc = scenario.load(preset="smoke", overrides={"sla.webhooks": hooks, "sla.actions": ["record", "alert"]})
    written = sc.to_dict()["sla"]["webhooks"]
    assert written[0]["url"] == "<redacted>" and "s3cr3t" not in repr(sc) + repr(written)
    assert "routing_key" not in written[1] and written[1]["routing_key_env"] == "RAYBENCH_TEST_PD_KEY"
    assert Scenario.from_dict(sc.to_dict()).sla.webhooks[0].url == "<redacted>"  # a manifest read back
    assert sc.with_overrides({"run.agents": 3}).sla.webhooks[0].url == WEBHOOK["url"]  # secrets kept
    with pytest.raises(ScenarioError, match=r"sla.webhooks\[1\].routing_key_env: environment variable"):
        sc.sla.resolved(env={})
    resolved = sc.sla.resolved(env={"RAYBENCH_TEST_PD_KEY": "k3y"})
    assert resolved.webhooks[1].routing_key == "k3y" and resolved.webhooks[1].url.startswith("https://events")


def test_keys_that_depend_on_other_keys():
    sc = scenario.load(preset="smoke", overrides={"faults": [{"kind": "shrink_experts", "start": "5s"}]})
    (fault,) = sc.faults
    assert (fault.start, fault.end, fault.pool) == (5.0, sc.run.duration, 1)  # ends with the load
    two = scenario.load(preset="smoke", overrides={"regions": [{"name": "a"}, {"name": "b"}]})
    assert [r.weight for r in two.regions] == [0.5, 0.5]
    assert scenario.load(preset="smoke", overrides={"arrivals.shape": "ramp"}).arrivals.shape.kind == "ramp"
    assert sc.with_overrides({"run.agents": 7}).run.agents == 7
    with pytest.raises(ScenarioError, match="run: warmup"):
        sc.with_overrides({"run.warmup": "1h"})


def test_importing_the_config_pulls_no_alerting_code():
    code = (
        "import raybench.config.scenario, raybench.config.sla, sys; "
        "print(sorted(m for m in sys.modules if 'alerts' in m or m in ('subprocess', 'urllib.request', 'http.client')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # (``socket`` may be there: the standard library's importlib.metadata, which pydantic uses, imports it)
    assert out.strip() == "[]", out
