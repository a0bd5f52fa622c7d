#!/usr/bin/env bash
# Start or stop a multi-node Ray cluster on this one machine, for testing raybench across nodes:
# a head node plus N worker raylets, each with its own node id, on the loopback address, and the
# head's Jobs API (the dashboard process; `ray job submit`) on 127.0.0.1 only.
#
#   cluster/local.sh up [N] [CPUS_PER_NODE]   # default N=2 workers, 1 CPU each
#   cluster/local.sh down
#
# `up` prints two lines, the GCS address and the Jobs API address:
#   gcs 127.0.0.1:6390
#   jobs http://127.0.0.1:8265
# Then either (a driver on this machine)
#   RAY_AUTH_MODE=disabled raybench run --address 127.0.0.1:6390 ...
# or (a job; its driver runs on the head node, with the head's environment)
#   ray job submit --address http://127.0.0.1:8265 --working-dir . -- raybench run --address auto ...
#
# Environment: RAYBENCH_LOCAL_PORT (GCS port, 6390), RAYBENCH_DASHBOARD_PORT (Jobs API port, 8265),
# RAYBENCH_CLIENT_PORT (Ray Client port, 10001; not in 10002-19999, Ray's worker ports),
# RAYBENCH_LOCAL_DIR (the cluster's folder, /tmp/raybench-local-$RAYBENCH_LOCAL_PORT: node i's Ray
# temp dir is DIR/n<i>, its logs DIR/n<i>/session_latest/logs; keep the path short, Ray's socket
# paths must fit in 107 characters), RAY (the `ray` command; default: the one on PATH, else
# .venv/bin/ray). The folder of that `ray` goes first on the nodes' PATH, so a job's `raybench` and
# `python` are the ones Ray runs with.
#
# `down` stops this cluster only: the processes whose command line names its temp dir or its GCS
# port, and everything they started (workers, job drivers, the dashboard's subprocesses); another
# Ray on the machine (a test session's, another local.sh cluster on another port) is left alone.
# Token authentication is switched off here (RAY_AUTH_MODE=disabled) because every node is on
# loopback; on a real cluster keep it on (see cluster/README.md).
set -euo pipefail
PORT=${RAYBENCH_LOCAL_PORT:-6390}
DASHBOARD_PORT=${RAYBENCH_DASHBOARD_PORT:-8265}
CLIENT_PORT=${RAYBENCH_CLIENT_PORT:-10001}
DIR=${RAYBENCH_LOCAL_DIR:-/tmp/raybench-local-$PORT}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
DIR=${DIR%/}
RAY=${RAY:-$(command -v ray || echo .venv/bin/ray)}
case $RAY in */*) ;; *) RAY=$(command -v "$RAY") ;; esac
RAY=$(cd "$(dirname "$RAY")" && pwd)/$(basename "$RAY")
PATH="$(dirname "$RAY"):$PATH"
export PATH
export RAY_AUTH_MODE=disabled

# The pids of this cluster's processes and of all their descendants: the processes that name the
# cluster's temp dir in an argument (GCS, raylets, dashboard, monitors), the Ray Client server of its
# GCS port, and what they started. Never this script, its parents, or pids 0-2.
cluster_pids() {
  ps -eo pid=,ppid=,args= | MATCH_DIR="=$DIR/" MATCH_PORT=":$PORT " SELF=$$ awk '
    BEGIN { dir = ENVIRON["MATCH_DIR"]; port = ENVIRON["MATCH_PORT"]; if (length(dir) < 4 || length(port) < 3) exit 1 }
    { pid[NR] = $1; ppid[NR] = $2; parent[$1] = $2 }
    $1 > 2 && index($0, dir) { keep[$1] = 1 }
    $1 > 2 && index($0, "ray.util.client.server --address=") && index($0, port) { keep[$1] = 1 }
    END {
      do {
        grew = 0
        for (i = 1; i <= NR; i++) if (!(pid[i] in keep) && (ppid[i] in keep)) { keep[pid[i]] = 1; grew = 1 }
      } while (grew)
      for (p = ENVIRON["SELF"]; p + 0 > 0; p = parent[p]) delete keep[p]
      for (p in keep) if (p + 0 > 2) print p
    }'
}

jobs_api_answers() {
  local url="http://127.0.0.1:$DASHBOARD_PORT/api/version"
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null "$url" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null
  fi
}

# SIGTERM, up to 2 s for a clean exit, then SIGKILL (as `ray stop --force`, but for this cluster only).
down() {
  local pids
  pids=$(cluster_pids | tr '\n' ' ')
  [ -z "${pids// }" ] && return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 1 10); do
    sleep 0.2
    # the ones still running (a zombie has exited; it only waits for its parent to collect it)
    # shellcheck disable=SC2086  # word splitting wanted: "1 2 3 " -> "1,2,3"
    pids=$(ps -o pid=,stat= -p "$(echo $pids | tr ' ' ',')" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }' | tr '\n' ' ' || true)
    [ -z "${pids// }" ] && return 0
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

case "${1:-}" in
  up)
    workers=${2:-2}; cpus=${3:-1}
    if [ -n "$(cluster_pids)" ]; then
      echo "a cluster with GCS port $PORT (or temp dir $DIR) is already running: cluster/local.sh down first" >&2
      exit 1
    fi
    trap 'echo "cluster/local.sh: start failed; stopping what was started (logs: $DIR/n0/session_latest/logs)" >&2; down' ERR
    # one temp dir per node: nodes sharing one would unpack a job's working dir into the same
    # folder, each replacing it under the processes of the others
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus="$cpus" --temp-dir="$DIR/n0" \
        --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
        --ray-client-server-port="$CLIENT_PORT" --disable-usage-stats >/dev/null
    for i in $(seq 1 "$workers"); do
      "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
          --temp-dir="$DIR/n$i" --disable-usage-stats >/dev/null
    done
    # the Jobs API answers once the dashboard's job module is up (a few seconds after `ray start`)
    for _ in $(seq 1 120); do
      jobs_api_answers && break
      sleep 0.5
    done
    jobs_api_answers || { echo "the Jobs API did not answer at http://127.0.0.1:$DASHBOARD_PORT" \
      "(is ray[default] installed? see $DIR/n0/session_latest/logs/dashboard.log)" >&2; false; }
    trap - ERR
    echo "gcs 127.0.0.1:$PORT"
    echo "jobs http://127.0.0.1:$DASHBOARD_PORT"
    ;;
  down)
    down
    ;;
  *)
    echo "usage: $0 up [WORKERS] [CPUS_PER_NODE] | down" >&2
    exit 2
    ;;
esac
