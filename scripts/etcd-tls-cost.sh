#!/usr/bin/env bash
# TLS on the peer links, raftkv against etcd: a fresh 3-node cluster of each in two modes, back
# to back — plaintext, and mutual TLS between the nodes (raftkv `--peer-tls-dir`; etcd
# `--peer-cert-file` and `--peer-client-cert-auth` with https peer URLs), both with certificates
# from `raftkv certs` — each loaded by the neutral kvbench (shared/tools/kvbench, RESP for raftkv,
# gRPC for etcd; it speaks no TLS, so the client ports stay plaintext): writes at 64 clients,
# linearizable reads at 64, writes at 1 client, 2 s of warm-up and 8 s measured each. Prints one
# line per point and the median per mode.
#
#   scripts/etcd-tls-cost.sh [BIN=target/release/raftkv, built] [REPETITIONS=3]
#
# Builds raftkv and kvbench (scripts/bench-common.sh); needs etcd and protoc
# (shared/tools/install-deps.sh, as root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
command -v etcd >/dev/null || { echo "etcd is missing: run shared/tools/install-deps.sh" >&2; exit 1; }
build_all
bin=${1:-$bin} reps=${2:-3}
kvbench=$KVBENCH
work=$(mktemp -d /tmp/etcd-tls-cost-XXXX)
results="$work/results.txt"
pki="$work/pki"
"$bin" certs "$pki" --nodes 3 --hosts 127.0.0.1 >/dev/null
endpoints="127.0.0.1:29019,127.0.0.1:29029,127.0.0.1:29039"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$work"' EXIT

start_raftkv() {
    local mode=$1 dir=$2 flags=()
    [ "$mode" = peer-tls ] && flags=(--peer-tls-dir "$pki")
    for i in 1 2 3; do
        "$bin" server --id "$i" --peers "1=127.0.0.1:29010,2=127.0.0.1:29020,3=127.0.0.1:29030" \
            --listen-client "127.0.0.1:290${i}9" --data-dir "$dir/n$i" "${flags[@]}" 2>"$dir-n$i.log" &
        pids+=($!)
    done
    for _ in $(seq 100); do
        "$bin" put ready 1 --endpoints "$endpoints" >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "raftkv ($mode) did not start" >&2
    exit 1
}

start_etcd() {
    local mode=$1 dir=$2 scheme=http cluster="" tls=()
    if [ "$mode" = peer-tls ]; then
        scheme=https
        tls=(--peer-trusted-ca-file "$pki/ca.pem" --peer-client-cert-auth)
    fi
    for i in 1 2 3; do cluster+="${cluster:+,}n$i=$scheme://127.0.0.1:290${i}0"; done
    for i in 1 2 3; do
        local cert=()
        [ "$mode" = peer-tls ] && cert=(--peer-cert-file "$pki/node-$i.pem" --peer-key-file "$pki/node-$i-key.pem")
        etcd --name "n$i" --data-dir "$dir/n$i.etcd" \
            --listen-client-urls "http://127.0.0.1:290${i}9" --advertise-client-urls "http://127.0.0.1:290${i}9" \
            --listen-peer-urls "$scheme://127.0.0.1:290${i}0" --initial-advertise-peer-urls "$scheme://127.0.0.1:290${i}0" \
            --initial-cluster "$cluster" --initial-cluster-token "tls-cost-$$" --initial-cluster-state new \
            --logger zap --log-outputs stderr --log-level warn "${tls[@]}" "${cert[@]}" </dev/null >"$dir-n$i.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 300); do
        ETCDCTL_API=3 timeout 5 etcdctl --endpoints "$endpoints" --command-timeout 2s endpoint health >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "etcd ($mode) did not become healthy; see $dir-n*.log" >&2
    exit 1
}

for ((rep = 1; rep <= reps; rep++)); do
    for system in raftkv etcd; do
        for mode in plain peer-tls; do
            dir="$work/$system-$mode-$rep"
            mkdir -p "$dir"
            "start_$system" "$mode" "$dir"
            # The mode is what it claims: node 1's peer port answers a TLS handshake, or does not.
            tls_offered=no
            handshake=$(timeout 5 openssl s_client -connect 127.0.0.1:29010 </dev/null 2>/dev/null || true)
            if grep -q "BEGIN CERTIFICATE" <<<"$handshake"; then tls_offered=yes; fi
            if [ "$tls_offered" != "$([ "$mode" = peer-tls ] && echo yes || echo no)" ]; then
                echo "$system $mode: node 1's peer port offers TLS: $tls_offered" >&2
                exit 1
            fi
            protocol=resp
            [ "$system" = etcd ] && protocol=etcd
            for point in "put 64" "get 64" "put 1"; do
                read -r workload clients <<<"$point"
                line=$("$kvbench" --protocol "$protocol" --endpoints "$endpoints" --clients "$clients" --workload "$workload" \
                    --warmup 2 --duration 8 2>/dev/null | tail -1)
                ops=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(round(r["ops_per_sec"]), r["p50_us"], r["errors"])' "$line")
                echo "$rep $system $mode $workload $clients $ops" | tee -a "$results"
            done
            stop
        done
    done
done
echo "median ops/s (p50 µs) per point:"
for point in "put 64" "get 64" "put 1"; do
    read -r workload clients <<<"$point"
    for system in raftkv etcd; do
        for mode in plain peer-tls; do
            awk -v s="$system" -v m="$mode" -v k="$workload" -v c="$clients" '$2==s && $3==m && $4==k && $5==c {print $6, $7}' "$results" | sort -n |
                awk -v s="$system" -v m="$mode" -v k="$workload" -v c="$clients" '{ops[NR]=$1; p[NR]=$2} END {m2=int((NR+1)/2); printf "  %s %s %s@%s: %s (%s)\n", s, m, k, c, ops[m2], p[m2]}'
        done
    done
done
