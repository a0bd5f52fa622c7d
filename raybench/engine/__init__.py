"""Running benchmarks: the run orchestrator (placement, watch, faults and chaos, lost requests, finalize),
sweeps, alerts, signals and the driver's priority."""
