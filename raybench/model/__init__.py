"""Pure models of the offered load: think-time distributions, arrival processes, the per-agent workload."""
