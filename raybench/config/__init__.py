"""Scenario configuration: the scenario model (one declaration per key), its files and presets, the [sla] table."""
