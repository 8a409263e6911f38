//! A Node.js client, unchanged: ioredis (from npm, with its defaults) runs the command table —
//! the connection's own commands, strings, counters, keys, SCAN through its `scanStream`, expiry,
//! MULTI/EXEC and WATCH through its `multi()`, VGET/VSET/VDEL — against every node of a cluster,
//! followers included. `scripts/test.sh` installs ioredis under `target/nodejs` (and Debian's
//! nodejs if node is missing) and sets `RAFTKV_NODE_MODULES`; the test fails, never skips,
//! without them.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{run_bounded, Cluster};

#[test]
fn ioredis_runs_the_command_table_against_every_node() {
    let modules = std::env::var_os("RAFTKV_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/nodejs/node_modules"));
    assert!(
        modules.join("ioredis/package.json").exists(),
        "ioredis is missing under {}: run scripts/test.sh (it installs it), or set RAFTKV_NODE_MODULES",
        modules.display()
    );
    let cluster = Cluster::start_without_proxies("ioredis", 3);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/ioredis_commands.js");
    let mut command = Command::new("node");
    command.env("NODE_PATH", &modules).arg(script).args(cluster.ids().into_iter().map(|id| cluster.client_port(id).to_string()));
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(60)).unwrap_or_else(|error| panic!("node: {error}"));
    assert!(success, "ioredis failed:\nstdout: {stdout}\nstderr: {stderr}");
    println!("{}", stdout.trim());
}
