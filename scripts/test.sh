#!/usr/bin/env bash
# Runs every test of the workspace: `cargo test --release` at the repository root.
#
# The process-level tests (crates/raftkv/tests/redis_tools.rs, redis_py.rs, redis_differential.rs)
# drive the real redis-cli, redis-benchmark, redis-server and redis-py and fail when they are
# missing, so this script first installs Debian's redis-tools and redis-server packages if a tool
# is not on PATH (apt-get; through sudo when not root), redis-py into a virtualenv under target/,
# and ioredis (with Debian's nodejs and npm if node is missing) under target/nodejs.
#
# Then, when run without arguments, it opens the drawings of failing simulated runs that
# crates/sim/tests/viz.rs leaves in target/sim-traces in headless Chromium
# (scripts/viz-browser-check.sh, which installs Debian's chromium if it is missing): any JavaScript
# error fails the run; the screenshots go to target/viz-check/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

have() { command -v "$1" >/dev/null 2>&1; }

if ! have redis-cli || ! have redis-benchmark || ! have redis-server; then
    echo "test.sh: redis-cli, redis-benchmark or redis-server is missing" >&2
    "$root/scripts/apt-install.sh" test.sh redis-tools redis-server
    if ! have redis-cli || ! have redis-benchmark || ! have redis-server; then
        echo "test.sh: redis-tools and redis-server were installed but a tool is still not on PATH" >&2
        exit 1
    fi
fi

# redis-py, the Python client most people use, for crates/raftkv/tests/redis_py.rs: in a
# virtualenv under target/ (Debian's python3-venv is installed if the venv module is missing).
pyenv="$root/target/pyenv"
if ! "$pyenv/bin/python" -c "import redis" >/dev/null 2>&1; then
    rm -rf "$pyenv"
    if ! python3 -m venv "$pyenv" >/dev/null 2>&1; then
        rm -rf "$pyenv"
        "$root/scripts/apt-install.sh" test.sh python3-venv
        python3 -m venv "$pyenv"
    fi
    "$pyenv/bin/pip" install --quiet --disable-pip-version-check 'redis>=5'
fi
export RAFTKV_PYTHON="$pyenv/bin/python"

# ioredis, the Node.js client most people use, for crates/raftkv/tests/node_client.rs: Debian's
# nodejs and npm if node is missing, and ioredis from npm under target/nodejs.
if ! have node || ! have npm; then
    "$root/scripts/apt-install.sh" test.sh nodejs npm
fi
nodedir="$root/target/nodejs"
if [ ! -f "$nodedir/node_modules/ioredis/package.json" ]; then
    mkdir -p "$nodedir"
    npm install --prefix "$nodedir" --silent --no-audit --no-fund 'ioredis@5'
fi
export RAFTKV_NODE_MODULES="$nodedir/node_modules"

cd "$root"
cargo test --release "$@"

if [ "$#" -eq 0 ]; then
    mkdir -p target/viz-check
    for run in a_failing_lab_test_draws_its_partitions_crashes_checks_and_annotations-7 a_failing_kv_test_draws_its_history_too-11; do
        "$root/scripts/viz-browser-check.sh" "target/sim-traces/$run.html" "target/viz-check/$run.png"
    done
fi
