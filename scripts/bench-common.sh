# bench-common.sh: sourced by the benchmark scripts (with $root set to the repository): where the
# shared tools are, and the release builds of raftkv and of the neutral load generator kvbench.

tools="${BENCH_TOOLS:-$root/../shared/tools}"
[ -x "$tools/raftkv-cluster.sh" ] || {
    echo "$(basename "$0"): the shared benchmark tools are not at $tools (set BENCH_TOOLS)" >&2
    exit 1
}

# build_all: builds target/release/raftkv ($bin) and kvbench ($KVBENCH, unless given).
build_all() {
    (cd "$root" && cargo build --quiet --release --bin raftkv)
    bin=$root/target/release/raftkv
    if [ -z "${KVBENCH:-}" ]; then
        CARGO_TARGET_DIR=${KVBENCH_TARGET:-/tmp/kvbench-target} cargo build --quiet --release --manifest-path "$tools/kvbench/Cargo.toml"
        KVBENCH=${KVBENCH_TARGET:-/tmp/kvbench-target}/release/kvbench
    fi
    export KVBENCH
}
