"""The ``[sla]`` table of a scenario: validation into a frozen :class:`SlaConfig`.

Keys (all optional)::

    [sla]
    thresholds = ["p99<100ms", "error_rate<0.1%"]   # grammar: raybench.judge.thresholds
    window = "30s"              # window length
    initial_delay = "10s"       # windows starting earlier are not judged
    grace_windows = 3           # failed windows that make a violation (>= 1)
    counting = "consecutive"    # or "cumulative"
    settle_windows = 1          # windows relative throughput waits for late completions (>= 0)
    actions = ["record", "alert"]            # for every threshold, or a table expression -> list
    webhooks = [{kind = "slack", url_env = "SLACK_HOOK", timeout = "5s", retries = 2}]
    rollback = {command = ["./rollback.sh"], timeout = "60s"}

Unknown keys are refused with the nearest valid one. Secrets (webhook URLs, routing keys) are held
out of ``repr`` and out of :meth:`SlaConfig.to_manifest`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from raybench.errors import ScenarioError, ThresholdError, nearest
from raybench.judge.sla import ACTIONS, COUNTING, DEFAULT_WINDOW_S, SlaMonitor
from raybench.judge.thresholds import Threshold, parse_threshold, parse_thresholds
from raybench.units import parse_duration

if TYPE_CHECKING:
    from raybench.engine.alerts import RollbackConfig, WebhookConfig

CONFIG_KEYS = (
    "thresholds",
    "window",
    "initial_delay",
    "grace_windows",
    "counting",
    "settle_windows",
    "actions",
    "webhooks",
    "rollback",
)


@dataclass(frozen=True)
class SlaConfig:
    """The ``[sla]`` table of a scenario, validated. Build with :func:`parse_sla_config`."""

    thresholds: tuple[Threshold, ...]
    window_s: float = DEFAULT_WINDOW_S
    initial_delay_s: float = 0.0
    grace_windows: int = 1
    counting: str = "consecutive"
    settle_windows: int = 1
    actions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    webhooks: tuple[WebhookConfig, ...] = ()
    rollback: RollbackConfig | None = None

    def monitor(self, *, t0_ns: int, run_id: str = "", stages_off: Mapping[str, str] | None = None) -> SlaMonitor:
        """A fresh :class:`SlaMonitor` with these settings (``stages_off``: see :class:`SlaMonitor`)."""
        return SlaMonitor(
            self.thresholds,
            t0_ns=t0_ns,
            window_s=self.window_s,
            initial_delay_s=self.initial_delay_s,
            grace_windows=self.grace_windows,
            counting=self.counting,
            settle_windows=self.settle_windows,
            actions=self.actions,
            run_id=run_id,
            stages_off=stages_off,
        )

    def to_manifest(self) -> dict[str, Any]:
        """The settings as plain data for the manifest, with every secret left out."""
        return {
            "thresholds": [t.expression for t in self.thresholds],
            "window": f"{self.window_s:g}s",
            "initial_delay": f"{self.initial_delay_s:g}s",
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
    """Validate a scenario's ``[sla]`` table into an :class:`SlaConfig`.

    Keys: ``thresholds`` (list of expressions), ``window`` ("30s"), ``initial_delay``,
    ``grace_windows`` (>= 1), ``counting`` (consecutive|cumulative), ``settle_windows`` (>= 0),
    ``actions`` (list applied to every threshold, or a table expression -> list), ``webhooks``
    (list of tables, see :func:`raybench.engine.alerts.parse_webhook`), ``rollback`` (table, see
    :func:`raybench.engine.alerts.parse_rollback`).

    Args:
        env: where ``*_env`` secrets are looked up (default ``os.environ``).
        resolve_secrets: False to skip looking secrets up (offline re-evaluation).

    Raises:
        ScenarioError: an unknown key (with the nearest valid one), a bad value, or a threshold
            that does not parse (the parser's message, with the key).
    """
    from raybench.engine.alerts import parse_rollback, parse_webhook

    if not isinstance(table, Mapping):
        raise ScenarioError(f"[{where}] must be a table, not {type(table).__name__}")
    for key in table:
        if key not in CONFIG_KEYS:
            raise ScenarioError(
                f"unknown key {where}.{key}{nearest(str(key), CONFIG_KEYS)}; allowed: {', '.join(CONFIG_KEYS)}"
            )
    texts = table.get("thresholds", [])
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise ScenarioError(f"{where}.thresholds must be a list of expressions such as 'p99<100ms'")
    try:
        thresholds = parse_thresholds(list(texts))
    except ThresholdError as exc:
        raise ScenarioError(f"{where}.thresholds: {exc}") from None
    window_s = _duration(table, "window", DEFAULT_WINDOW_S, where)
    if window_s <= 0:
        raise ScenarioError(f"{where}.window must be > 0, not {table.get('window')!r}")
    delay_s = _duration(table, "initial_delay", 0.0, where)
    grace = _int(table, "grace_windows", 1, 1, where)
    settle = _int(table, "settle_windows", 1, 0, where)
    counting = table.get("counting", "consecutive")
    if counting not in COUNTING:
        raise ScenarioError(
            f"{where}.counting {counting!r} is not allowed{nearest(str(counting), COUNTING)}; "
            f"allowed: {', '.join(COUNTING)}"
        )
    actions = _actions(table.get("actions", ["record"]), thresholds, where)
    hooks = table.get("webhooks", [])
    if not isinstance(hooks, (list, tuple)):
        raise ScenarioError(f"{where}.webhooks must be a list of tables")
    webhooks = tuple(
        parse_webhook(h, env=env, resolve=resolve_secrets, where=f"{where}.webhooks[{i}]") for i, h in enumerate(hooks)
    )
    rollback = parse_rollback(table["rollback"], where=f"{where}.rollback") if "rollback" in table else None
    raw_actions = table.get("actions", [])
    uses = set(raw_actions) if not isinstance(raw_actions, Mapping) else {a for v in raw_actions.values() for a in v}
    if "alert" in uses and not webhooks:
        raise ScenarioError(f"{where}.actions has 'alert' but {where}.webhooks is empty")
    if "rollback" in uses and rollback is None:
        raise ScenarioError(f"{where}.actions has 'rollback' but there is no {where}.rollback")
    return SlaConfig(
        thresholds=thresholds,
        window_s=window_s,
        initial_delay_s=delay_s,
        grace_windows=grace,
        counting=counting,
        settle_windows=settle,
        actions=actions,
        webhooks=webhooks,
        rollback=rollback,
    )


def _duration(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    if key not in table:
        return default
    try:
        return parse_duration(table[key])
    except ValueError as exc:
        raise ScenarioError(f"{where}.{key}: {exc}") from None


def _int(table: Mapping[str, Any], key: str, default: int, lo: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ScenarioError(f"{where}.{key} must be an integer >= {lo}, not {value!r}")
    return value


def _actions(raw: Any, thresholds: Iterable[Threshold], where: str) -> dict[str, tuple[str, ...]]:
    def check(acts: Any, key: str) -> tuple[str, ...]:
        if isinstance(acts, str) or not isinstance(acts, (list, tuple)):
            raise ScenarioError(f"{key} must be a list of actions: {', '.join(ACTIONS)}")
        for a in acts:
            if a not in ACTIONS:
                raise ScenarioError(
                    f"{key}: unknown action {a!r}{nearest(str(a), ACTIONS)}; allowed: {', '.join(ACTIONS)}"
                )
        return tuple(acts)

    ths = list(thresholds)
    if isinstance(raw, Mapping):
        by_text = {t.expression: t.id for t in ths} | {t.id: t.id for t in ths}
        out: dict[str, tuple[str, ...]] = {t.id: ("record",) for t in ths}
        for expr, acts in raw.items():
            if expr not in by_text:
                with contextlib.suppress(ThresholdError):  # another spelling of a threshold's expression
                    expr = parse_threshold(str(expr)).id
            if expr not in by_text:
                raise ScenarioError(
                    f"{where}.actions names {expr!r}, which is not one of {where}.thresholds"
                    f"{nearest(str(expr), list(by_text))}"
                )
            out[by_text[expr]] = check(acts, f"{where}.actions.{expr!r}")
        return out
    acts = check(raw, f"{where}.actions")
    return {t.id: acts for t in ths}
