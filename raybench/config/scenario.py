"""Scenarios: what a run offers to the coordination layer, as one frozen, validated value.

A scenario comes from a TOML file or a built-in preset (``raybench/config/presets/*.toml``), then
command-line overrides (``--agents``, ``--set stages.llm.max=120`` ...) are applied to the raw
tables *before* validation, so every input goes through the same checks. ``Scenario.to_dict()``
gives the resolved scenario in the same layout as the TOML input; it is written into the manifest
and ``Scenario.from_dict`` reads it back, so a run can be repeated from its own manifest.

The model is nested like the TOML tables (``sc.run.agents``, ``sc.run.duration`` in seconds,
``sc.stages.llm``, ``sc.fuse.mode``, ``sc.sla.thresholds`` ...); each key is declared once, as a
field of its table's model (:mod:`raybench.config.tables`, :mod:`raybench.config.sla`,
:mod:`raybench.model.arrivals`, :mod:`raybench.model.timing`). It is validated once, where it is
loaded: the value itself (frozen, picklable) travels to the actors, never re-parsed.

Every invalid input raises :class:`~raybench.errors.ScenarioError` with the key, the value and
what is allowed (the nearest valid key for a typo). Presets may ``extends = "other"``: the other
preset's tables are deep-merged under this one's (:mod:`raybench.config.sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_serializer, field_validator, model_validator

from raybench.config.sla import SlaConfig
from raybench.config.sources import apply_overrides, load_raw
from raybench.config.sources import parse_assignment as parse_assignment  # re-exported for the CLI
from raybench.config.sources import preset_names as preset_names  # re-exported for the CLI
from raybench.config.tables import (
    DEFAULT_CLASSES,
    Experts,
    Fault,
    Fuse,
    Region,
    RequestClass,
    Run,
    Stages,
    State,
    equal_weights,
    named_classes,
)
from raybench.config.tables import DEFAULT_FLUSH_INTERVAL as DEFAULT_FLUSH_INTERVAL  # re-exported (bench)
from raybench.config.types import Table, Text, validate
from raybench.model.arrivals import Arrivals

#: Most bytes a prefilled workspace may hold (every node's FUSE server holds a copy in memory).
MAX_PREFILL_BYTES = 1 << 30


class Scenario(Table):
    """A fully resolved, validated scenario. Durations in seconds, modelled times in milliseconds."""

    name: Text = Field("custom", description="the scenario's name")
    description: Text = Field("", description="one line on what it models")
    run: Run = Field(Run(), description="the fleet, the load's length, the harness's settings")
    arrivals: Arrivals = Field(Arrivals(), description="when each agent starts its requests")
    classes: Annotated[tuple[RequestClass, ...], BeforeValidator(named_classes)] = Field(
        DEFAULT_CLASSES, description="the request mix: [classes.NAME] tables"
    )
    stages: Stages = Field(Stages(), description="modelled times of the decision pipeline")
    experts: Experts = Field(Experts(), description="the expert pool")
    state: State = Field(State(), description="shared state and leases")
    fuse: Fuse = Field(Fuse(), description="the FUSE view of the workspace")
    regions: Annotated[tuple[Region, ...], BeforeValidator(equal_weights)] = Field(
        [{"name": "local", "weight": 1.0, "utc_offset": 0, "rtt": 0}], min_length=1, description="[[regions]]"
    )
    sla: SlaConfig = Field(SlaConfig(), description="thresholds judged while the load runs, and what they trigger")
    faults: tuple[Fault, ...] = Field((), description="[[faults]] injected during the load")

    # -- validation of keys that depend on other keys --------------------------------------------

    @field_validator("classes")
    @classmethod
    def _class_weights(cls, classes: tuple[RequestClass, ...]) -> tuple[RequestClass, ...]:
        _weights_sum_to_one([c.weight for c in classes])
        return classes

    @field_validator("regions")
    @classmethod
    def _region_names(cls, regions: tuple[Region, ...]) -> tuple[Region, ...]:
        if len({r.name for r in regions}) != len(regions):
            raise ValueError("names must be unique")
        _weights_sum_to_one([r.weight for r in regions])
        return regions

    @field_validator("faults", mode="before")
    @classmethod
    def _faults_end_with_the_load(cls, faults: Any, info: ValidationInfo) -> Any:
        run = info.data.get("run")
        if not isinstance(faults, list) or not isinstance(run, Run):
            return faults
        return [{"end": run.duration, **f} if isinstance(f, Mapping) else f for f in faults]

    @model_validator(mode="after")
    def _prefill_fits(self) -> Scenario:
        if self.fuse.mode == "off" or not self.fuse.prefill:
            return self
        size = self.state.keys * self.fuse.file_bytes
        if size > MAX_PREFILL_BYTES:
            raise ValueError(
                f"fuse.prefill: state.keys × fuse.file_bytes = {size:,} bytes, more than the "
                f"{MAX_PREFILL_BYTES:,} allowed in every node's FUSE server; use fewer keys, smaller files, "
                "or fuse.prefill = false (agents then create the files on first use)"
            )
        return self

    @field_serializer("classes")
    def _classes_by_name(self, classes: tuple[RequestClass, ...]) -> dict[str, dict[str, Any]]:
        return {c.name: c.model_dump(exclude={"name"}) for c in classes}

    # -- what follows from the settings ----------------------------------------------------------

    @property
    def fuse_opens_ahead(self) -> bool:
        """Hosts open their handles to the prefilled files before the load (see AgentHost.open_files)."""
        f = self.fuse
        return f.open_ahead and f.prefill and not f.open_per_request and f.mode != "off"

    def stages_off(self) -> dict[str, str]:
        """Request stages this scenario switched off, each with the setting that did it: an SLA
        threshold on such a stage is not applicable (it can have no data), not failed."""
        off: dict[str, str] = {}
        if self.fuse.mode == "off":
            off["fuse"] = "fuse.mode = off"
        weighted = [c for c in self.classes if c.weight > 0]
        if not any(c.llm for c in weighted):
            off["llm"] = "no request class has llm = true"
        if not any(c.escalation > 0 for c in weighted):
            off["expert"] = off["expert_queue"] = "no request class escalates (escalation = 0)"
        return off

    @property
    def offered_rate(self) -> float:
        """Mean offered load over the run, requests per second (open loop; shape included)."""
        duration = self.run.duration
        per_tz = [self.arrivals.expected_count(duration, [r.utc_offset]) for r in self.regions]
        per_agent = sum(r.weight * c for r, c in zip(self.regions, per_tz, strict=True))
        return self.run.agents * per_agent / duration

    def with_overrides(self, overrides: Mapping[str, Any]) -> Scenario:
        """A copy with dotted keys set (``{"run.agents": 50}``), validated like ``--set``."""
        return Scenario.from_dict(apply_overrides(self.to_dict(redact=False), overrides))

    # -- TOML layout -----------------------------------------------------------------------------

    def to_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """The resolved scenario in TOML layout (``from_dict(to_dict())`` gives it back); secrets
        of the ``[sla]`` webhooks are written ``<redacted>`` unless ``redact=False``."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, context={"secrets": not redact})

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Scenario:
        """Validate raw tables (TOML layout) into a Scenario. Raises ScenarioError."""
        scenario: Scenario = validate(Scenario, raw)
        return scenario


def _weights_sum_to_one(weights: list[float]) -> None:
    total = sum(weights)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights sum to {total:g}; they must sum to 1")


def load(path: Path | None = None, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load, override and validate a scenario. Raises ScenarioError."""
    return Scenario.from_dict(apply_overrides(load_raw(path, preset), overrides or {}))
