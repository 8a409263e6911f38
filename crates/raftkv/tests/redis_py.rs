//! The Python client most people use, unchanged: redis-py with its defaults opens every connection
//! with `HELLO 3` and reads RESP3 (before HELLO, every command failed with "unknown command
//! 'HELLO'"); and with `protocol=2`. Against every node of a cluster, followers included. The
//! Python with redis-py is `RAFTKV_PYTHON`, else `target/pyenv/bin/python` (`scripts/test.sh`
//! makes it); the test fails, never skips, without it.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{python, run_bounded, Cluster};

/// Runs `tests/python/<script>` with every node's client port of a fresh 3-node cluster.
fn run_against_a_cluster(name: &str, script: &str) {
    let python = python();
    let cluster = Cluster::start_without_proxies(name, 3);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let mut command = Command::new(python);
    command.arg(script).args(cluster.ids().into_iter().map(|id| cluster.client_port(id).to_string()));
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(60)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-py failed:\nstdout: {stdout}\nstderr: {stderr}");
    println!("{}", stdout.trim());
}

#[test]
fn redis_py_with_its_defaults_works_against_every_node() {
    run_against_a_cluster("redis-py", "redis_py_defaults.py");
}

#[test]
fn redis_py_string_commands_answer_as_redis_does_on_every_node() {
    run_against_a_cluster("redis-py-strings", "redis_py_strings.py");
}

/// VGET, VSET and VDEL (compare-and-set on per-key versions) and a SET NX PX lock given back by
/// VDEL, through redis-py's `execute_command`.
#[test]
fn versioned_commands_and_a_lock_work_through_redis_py_on_every_node() {
    run_against_a_cluster("redis-py-versioned", "redis_py_versioned.py");
}
