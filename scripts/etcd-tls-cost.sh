#!/usr/bin/env bash
# TLS, raftkv against etcd: a fresh 3-node cluster of each in three modes, back to back —
# plaintext; mutual TLS between the nodes (raftkv `--peer-tls-dir`; etcd `--peer-cert-file` and
# `--peer-client-cert-auth` with https peer URLs); and TLS on the client ports too (raftkv
# `--tls-cert`; etcd `--cert-file` with https client URLs) — all with certificates from `raftkv
# certs`, each loaded by the neutral kvbench (shared/tools/kvbench, RESP for raftkv, gRPC for etcd):
# writes at 64 clients, linearizable reads at 64, writes at 1 client, 2 s of warm-up and 8 s
# measured each. kvbench speaks no TLS, so in the third mode it talks to an haproxy on this machine
# that opens TLS to each node (verifying its certificate; ALPN h2 for etcd's gRPC): the same extra
# hop for both systems. Prints one line per point and the median per mode.
#
#   scripts/etcd-tls-cost.sh [BIN=target/release/raftkv, built] [REPETITIONS=3]
#
# Builds raftkv and kvbench (scripts/bench-common.sh); needs etcd and protoc
# (shared/tools/install-deps.sh, as root), and installs haproxy if it is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bench-common.sh
. "$root/scripts/bench-common.sh"
# shellcheck source=scripts/median-point.sh
. "$root/scripts/median-point.sh"
command -v etcd >/dev/null || { echo "etcd is missing: run shared/tools/install-deps.sh" >&2; exit 1; }
command -v haproxy >/dev/null || "$root/scripts/apt-install.sh" etcd-tls-cost.sh haproxy
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
    local mode=$1 dir=$2 flags=() ready=()
    [ "$mode" != plain ] && flags=(--peer-tls-dir "$pki")
    [ "$mode" = tls ] && ready=(--cacert "$pki/ca.pem")
    for i in 1 2 3; do
        local client=()
        [ "$mode" = tls ] && client=(--tls-cert "$pki/node-$i.pem" --tls-key "$pki/node-$i-key.pem")
        "$bin" server --id "$i" --peers "1=127.0.0.1:29010,2=127.0.0.1:29020,3=127.0.0.1:29030" \
            --listen-client "127.0.0.1:290${i}9" --data-dir "$dir/n$i" "${flags[@]}" "${client[@]}" 2>"$dir-n$i.log" &
        pids+=($!)
    done
    for _ in $(seq 100); do
        "$bin" put ready 1 --endpoints "$endpoints" "${ready[@]}" >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "raftkv ($mode) did not start" >&2
    exit 1
}

start_etcd() {
    local mode=$1 dir=$2 scheme=http client_scheme=http cluster="" tls=() ready=()
    if [ "$mode" != plain ]; then
        scheme=https
        tls=(--peer-trusted-ca-file "$pki/ca.pem" --peer-client-cert-auth)
    fi
    if [ "$mode" = tls ]; then
        client_scheme=https
        ready=(--cacert "$pki/ca.pem")
    fi
    for i in 1 2 3; do cluster+="${cluster:+,}n$i=$scheme://127.0.0.1:290${i}0"; done
    for i in 1 2 3; do
        local cert=()
        [ "$mode" != plain ] && cert=(--peer-cert-file "$pki/node-$i.pem" --peer-key-file "$pki/node-$i-key.pem")
        [ "$mode" = tls ] && cert+=(--cert-file "$pki/node-$i.pem" --key-file "$pki/node-$i-key.pem")
        etcd --name "n$i" --data-dir "$dir/n$i.etcd" \
            --listen-client-urls "$client_scheme://127.0.0.1:290${i}9" --advertise-client-urls "$client_scheme://127.0.0.1:290${i}9" \
            --listen-peer-urls "$scheme://127.0.0.1:290${i}0" --initial-advertise-peer-urls "$scheme://127.0.0.1:290${i}0" \
            --initial-cluster "$cluster" --initial-cluster-token "tls-cost-$$" --initial-cluster-state new \
            --logger zap --log-outputs stderr --log-level warn "${tls[@]}" "${cert[@]}" </dev/null >"$dir-n$i.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 300); do
        ETCDCTL_API=3 timeout 5 etcdctl --endpoints "${endpoints//127/$client_scheme://127}" "${ready[@]}" --command-timeout 2s endpoint health >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "etcd ($mode) did not become healthy; see $dir-n*.log" >&2
    exit 1
}

# Fails unless 127.0.0.1:PORT answers a TLS handshake exactly when EXPECTED is yes.
expect_tls() {
    local port=$1 what=$2 expected=$3 offered=no handshake
    handshake=$(timeout 5 openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null || true)
    if grep -q "BEGIN CERTIFICATE" <<<"$handshake"; then offered=yes; fi
    if [ "$offered" != "$expected" ]; then
        echo "$system $mode: node 1's $what offers TLS: $offered" >&2
        exit 1
    fi
}

# kvbench's way to the TLS client ports: port 290i8 opens TLS to node i's 290i9.
start_tls_proxy() {
    local system=$1 config="$work/haproxy.cfg" alpn=""
    [ "$system" = etcd ] && alpn="alpn h2"
    printf 'global\n    maxconn 4096\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n' >"$config"
    for i in 1 2 3; do
        printf 'listen node%s\n    bind 127.0.0.1:290%s8\n    server n%s 127.0.0.1:290%s9 ssl verify required ca-file %s %s\n' \
            "$i" "$i" "$i" "$i" "$pki/ca.pem" "$alpn" >>"$config"
    done
    haproxy -f "$config" -db >"$work/haproxy.log" 2>&1 &
    pids+=($!)
    sleep 0.5
}

for ((rep = 1; rep <= reps; rep++)); do
    for system in raftkv etcd; do
        for mode in plain peer-tls tls; do
            dir="$work/$system-$mode-$rep"
            mkdir -p "$dir"
            "start_$system" "$mode" "$dir"
            # The mode is what it claims: node 1's ports answer a TLS handshake, or do not.
            expect_tls 29010 "peer port" "$([ "$mode" != plain ] && echo yes || echo no)"
            expect_tls 29019 "client port" "$([ "$mode" = tls ] && echo yes || echo no)"
            protocol=resp
            [ "$system" = etcd ] && protocol=etcd
            targets=$endpoints
            if [ "$mode" = tls ]; then
                start_tls_proxy "$system"
                targets=${endpoints//9,/8,}
                targets=${targets%9}8
            fi
            for point in "put 64" "get 64" "put 1"; do
                read -r workload clients <<<"$point"
                line=$("$kvbench" --protocol "$protocol" --endpoints "$targets" --clients "$clients" --workload "$workload" \
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
        for mode in plain peer-tls tls; do
            echo "  $system $mode $workload@$clients: $(median_point "$results" "$system $mode $workload $clients")"
        done
    done
done
