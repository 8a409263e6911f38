#!/usr/bin/env bash
# What TLS costs: a fresh 3-node cluster of the same binary in three modes, back to back —
# plaintext, mutual TLS on the peer links (--peer-tls-dir), and TLS on the client ports too
# (--tls-cert) — each loaded by `raftkv bench` (over TLS where the client port speaks it):
# writes at 64 clients, linearizable reads at 64, writes at 1 client, 8 s each. Prints one line
# per point and the median per mode.
#
#   scripts/tls-cost.sh [BIN=target/release/raftkv] [REPETITIONS=3]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/median-point.sh
. "$root/scripts/median-point.sh"
bin=${1:-$root/target/release/raftkv} reps=${2:-3}
work=$(mktemp -d /tmp/tls-cost-XXXX)
results="$work/results.txt"
"$bin" certs "$work/pki" --nodes 3 --hosts 127.0.0.1 >/dev/null
peers="1=127.0.0.1:28010,2=127.0.0.1:28020,3=127.0.0.1:28030"
endpoints="127.0.0.1:28019,127.0.0.1:28029,127.0.0.1:28039"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$work"' EXIT

for ((rep = 1; rep <= reps; rep++)); do
    for mode in plain peer-tls all-tls; do
        flags=() client=()
        if [ "$mode" != plain ]; then flags+=(--peer-tls-dir "$work/pki"); fi
        if [ "$mode" = all-tls ]; then client=(--cacert "$work/pki/ca.pem"); fi
        for i in 1 2 3; do
            node_flags=("${flags[@]}")
            if [ "$mode" = all-tls ]; then node_flags+=(--tls-cert "$work/pki/node-$i.pem" --tls-key "$work/pki/node-$i-key.pem"); fi
            "$bin" server --id "$i" --peers "$peers" --listen-client "127.0.0.1:280${i}9" --data-dir "$work/$mode-$rep/n$i" \
                "${node_flags[@]}" 2>"$work/$mode-$rep-n$i.log" &
            pids+=($!)
        done
        for _ in $(seq 100); do
            "$bin" put tls-cost-ready 1 --endpoints "$endpoints" "${client[@]}" >/dev/null 2>&1 && break
            sleep 0.2
        done
        for point in "set 64" "get 64" "set 1"; do
            read -r workload clients <<<"$point"
            line=$("$bin" bench --endpoints "$endpoints" --clients "$clients" --duration 8 --workload "$workload" "${client[@]}" 2>/dev/null | tr '\n' ' ')
            ops=$(sed -E 's/.*throughput +([0-9]+) ops\/s.*/\1/' <<<"$line")
            p50=$(sed -E 's/.* p50 ([0-9]+) .*/\1/' <<<"$line")
            echo "$rep $mode $workload $clients $ops $p50" | tee -a "$results"
        done
        stop
    done
done
echo "median ops/s (p50 µs) per point:"
for point in "set 64" "get 64" "set 1"; do
    read -r workload clients <<<"$point"
    for mode in plain peer-tls all-tls; do
        echo "  $mode $workload@$clients: $(median_point "$results" "$mode $workload $clients")"
    done
done
