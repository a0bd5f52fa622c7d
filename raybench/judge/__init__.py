"""Pure judgement of measured rows: statistics, SLA thresholds and the live monitor, comparisons,
change points, capacity, harness health, baselines, the summary."""
