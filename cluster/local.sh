#!/usr/bin/env bash
# Start or stop a multi-node Ray cluster on this one machine, for testing raybench across nodes:
# a head node plus N worker raylets, each with its own node id, on the loopback address.
#
#   cluster/local.sh up [N] [CPUS_PER_NODE]   # default N=2 workers, 1 CPU each; prints the address
#   cluster/local.sh down
#
# Then:  RAY_AUTH_MODE=disabled raybench run --address 127.0.0.1:6390 ...
# `down` is `ray stop --force`: it stops every Ray process of this user on the machine.
# Token authentication is switched off here (RAY_AUTH_MODE=disabled) because every node is on
# loopback; on a real cluster keep it on (see cluster/README.md).
set -euo pipefail
PORT=${RAYBENCH_LOCAL_PORT:-6390}
RAY=${RAY:-$(command -v ray || echo .venv/bin/ray)}
export RAY_AUTH_MODE=disabled
case "${1:-}" in
  up)
    workers=${2:-2}; cpus=${3:-1}
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus="$cpus" \
        --include-dashboard=false --disable-usage-stats >/dev/null
    for i in $(seq 1 "$workers"); do
      "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
          --disable-usage-stats >/dev/null
    done
    echo "127.0.0.1:$PORT"
    ;;
  down)
    "$RAY" stop --force >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 up [WORKERS] [CPUS_PER_NODE] | down" >&2
    exit 2
    ;;
esac
