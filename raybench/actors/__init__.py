"""The Ray actors' logic as plain classes (agent host, state shards, expert pool, aggregator, FUSE node,
process sampler, live metrics) and the data plane they talk over."""
