#!/usr/bin/env bash
# A rolling upgrade under load: a 3-node cluster of OLD_BIN, then each node in turn stopped with
# SIGTERM (a leader hands over first) and started again on its data directory with NEW_BIN, while
# `raftkv bench` writes through every node. Checks that 200 keys written before the upgrade read
# back on every node after it, and prints the load's errors and its slowest second.
#
#   scripts/rolling-upgrade.sh OLD_BIN NEW_BIN
#
# Build an older commit's binary with e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release -p raftkv)
set -euo pipefail

[ $# -eq 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
old=$1 new=$2
work=$(mktemp -d /tmp/rolling-upgrade-XXXX)
peers="1=127.0.0.1:29210,2=127.0.0.1:29220,3=127.0.0.1:29230"
endpoints="127.0.0.1:29219,127.0.0.1:29229,127.0.0.1:29239"
declare -A pid
stop_all() { for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_all; rm -rf "$work"' EXIT

start() {
    local id=$1 bin=$2
    "$bin" server --id "$id" --peers "$peers" --listen-client "127.0.0.1:292${id}9" --data-dir "$work/n$id" \
        2>>"$work/n$id.log" &
    pid[$id]=$!
}

for id in 1 2 3; do start "$id" "$old"; done
for _ in $(seq 100); do "$new" put ready 1 --endpoints "$endpoints" >/dev/null 2>&1 && break; sleep 0.2; done
for n in $(seq 200); do "$new" put "before-$n" "value-$n" --endpoints "$endpoints" >/dev/null; done
echo "200 keys written on $old"

"$new" bench --endpoints "$endpoints" --clients 6 --duration 40 --workload set >"$work/bench.txt" 2>"$work/progress.txt" &
bench=$!
sleep 5
for id in 1 2 3; do
    role=$("$new" status --endpoints "127.0.0.1:292${id}9" 2>/dev/null | awk 'NR == 2 {print $3}')
    kill -TERM "${pid[$id]}"
    wait "${pid[$id]}" 2>/dev/null || true
    start "$id" "$new"
    for _ in $(seq 100); do "$new" get ready --endpoints "127.0.0.1:292${id}9" >/dev/null 2>&1 && break; sleep 0.1; done
    echo "node $id ($role) restarted on $new"
    sleep 8
done
wait "$bench"
cat "$work/bench.txt"
# The slowest whole second of the load (the progress line's "N ops/s now"), and the last node's log.
tr '\r' '\n' <"$work/progress.txt" | sed -nE 's/.* ([0-9]+) ops\/s now.*/\1/p' | sort -n | head -1 | sed 's/^/slowest second: /; s/$/ ops/'
for id in 1 2 3; do
    for n in $(seq 200); do
        got=$("$new" get "before-$n" --endpoints "127.0.0.1:292${id}9")
        [ "$got" = "value-$n" ] || { echo "node $id: before-$n = $got after the upgrade" >&2; exit 1; }
    done
done
"$new" status --endpoints "$endpoints"
echo "every key written before the upgrade reads back on every node"
