#!/usr/bin/env bash
# Two raftkv binaries back to back: for each repetition, a fresh 3-node cluster of each in turn
# (shared/tools/raftkv-cluster.sh), loaded by `raftkv bench` of the second binary: writes at 64
# clients, linearizable reads at 64, writes at 1 client, 8 s each. Prints one line per point and
# the median per binary.
#
#   scripts/compare-binaries.sh OLD_BIN NEW_BIN [REPETITIONS=3]
#
# Build an older commit's binary with e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release)
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
old=$1 new=$2 reps=${3:-3}
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/../shared/tools"
# shellcheck source=scripts/median-point.sh
. "$root/scripts/median-point.sh"
results=$(mktemp /tmp/compare-XXXX.txt)

for ((rep = 1; rep <= reps; rep++)); do
    for which in old new; do
        bin=$old; [ "$which" = new ] && bin=$new
        dir=$(mktemp -d /tmp/compare-cluster-XXXX)
        endpoints=$("$tools/raftkv-cluster.sh" start 3 "$dir" "$bin" 2>/dev/null | tail -1)
        for point in "set 64" "get 64" "set 1"; do
            read -r workload clients <<<"$point"
            line=$("$new" bench --endpoints "$endpoints" --clients "$clients" --duration 8 --workload "$workload" 2>/dev/null | tr '\n' ' ')
            ops=$(sed -E 's/.*throughput +([0-9]+) ops\/s.*/\1/' <<<"$line")
            p50=$(sed -E 's/.* p50 ([0-9]+) .*/\1/' <<<"$line")
            echo "$rep $which $workload $clients $ops $p50" | tee -a "$results"
        done
        "$tools/raftkv-cluster.sh" stop 3 "$dir" >/dev/null 2>&1 || true
        rm -rf "$dir"
    done
done
echo "median ops/s (p50 µs) per point:"
for point in "set 64" "get 64" "set 1"; do
    read -r workload clients <<<"$point"
    for which in old new; do
        echo "  $which $workload@$clients: $(median_point "$results" "$which $workload $clients")"
    done
done
