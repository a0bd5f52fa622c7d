#!/usr/bin/env bash
# Two source trees side by side, interleaved (before, after, before, after): bench_state, then
# bench_timing. Usage: bench/ab.sh BEFORE_DIR AFTER_DIR  (e.g. a `git worktree add` of an older
# commit, and this checkout). Both run with this checkout's .venv; PYTHONPATH picks the tree.
set -u
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd)
py=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
for bench in "bench_state" "bench_timing --seconds 10"; do
  for round in 1 2; do
    for side in before after; do
      dir=$before; [ "$side" = after ] && dir=$after
      echo "=== ${bench%% *} $side round $round ($dir)"
      (cd "$dir" && PYTHONPATH="$dir" $py -m bench.$bench 2>&1 | grep -v -e core_worker -e WARNING)
    done
  done
done
