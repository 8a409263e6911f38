//! The contract's promise that any Redis client works: the real `redis-cli` and `redis-benchmark`
//! (Debian's redis-tools) against a 3-node cluster. These tests fail, never skip, when the tools
//! are missing: `scripts/test.sh` installs them.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{run_bounded, Cluster};

/// Where `program` is on PATH; panics with an install hint if it is not.
fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if let Ok(metadata) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 {
                return candidate;
            }
        }
    }
    panic!(
        "`{program}` is not on PATH: install redis-tools (Debian/Ubuntu: `sudo apt-get install redis-tools`), \
         or run `scripts/test.sh`, which installs it and runs every test"
    );
}

/// One `redis-cli --no-raw` call against a node: its stdout, trimmed. Bounded to 10 s.
fn cli(cluster: &Cluster, id: u64, args: &[&str]) -> String {
    let program = require("redis-cli");
    let port = cluster.client_port(id).to_string();
    let mut command = Command::new(program);
    command.args(["--no-raw", "-h", "127.0.0.1", "-p", &port]).args(args);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(10)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-cli {args:?} against node {id} exited with an error; stdout {stdout:?}, stderr {stderr:?}");
    stdout.trim_end_matches(['\r', '\n']).to_string()
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| line.trim_end_matches('\r').strip_prefix(&format!("{name}:")))
}

fn ready_cluster(name: &str) -> Cluster {
    // Fail before starting anything if the tools are missing.
    require("redis-cli");
    require("redis-benchmark");
    let cluster = Cluster::start_without_proxies(name, 3);
    if let Err(error) = cluster.wait_ready(Duration::from_secs(20)) {
        panic!("the cluster never answered: {error}");
    }
    cluster
}

#[test]
fn redis_cli_speaks_to_every_node() {
    let cluster = ready_cluster("redis-cli");

    assert_eq!(cli(&cluster, 1, &["PING"]), "PONG");
    assert_eq!(cli(&cluster, 2, &["PING"]), "PONG");

    // A write through one node is read through the others.
    assert_eq!(cli(&cluster, 1, &["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&cluster, 2, &["GET", "greeting"]), "\"hello\"");
    assert_eq!(cli(&cluster, 3, &["GET", "greeting"]), "\"hello\"");
    assert_eq!(cli(&cluster, 2, &["GET", "no-such-key"]), "(nil)");

    // APPEND returns the new length.
    assert_eq!(cli(&cluster, 3, &["APPEND", "greeting", ", world"]), "(integer) 12");
    assert_eq!(cli(&cluster, 1, &["GET", "greeting"]), "\"hello, world\"");
    assert_eq!(cli(&cluster, 2, &["APPEND", "fresh", "abc"]), "(integer) 3");

    // EXISTS counts, DEL removes and counts.
    assert_eq!(cli(&cluster, 1, &["EXISTS", "greeting", "fresh", "no-such-key"]), "(integer) 2");
    assert_eq!(cli(&cluster, 2, &["EXISTS", "greeting", "greeting"]), "(integer) 2");
    assert_eq!(cli(&cluster, 3, &["DEL", "greeting", "no-such-key"]), "(integer) 1");
    assert_eq!(cli(&cluster, 1, &["EXISTS", "greeting"]), "(integer) 0");
    assert_eq!(cli(&cluster, 2, &["GET", "greeting"]), "(nil)");
    assert_eq!(cli(&cluster, 3, &["DEL", "greeting"]), "(integer) 0");

    // A value with spaces, quotes and binary-ish bytes survives the round trip.
    assert_eq!(cli(&cluster, 1, &["SET", "odd key", "a \"quoted\" value"]), "OK");
    assert_eq!(cli(&cluster, 3, &["GET", "odd key"]), "\"a \\\"quoted\\\" value\"");

    // An unknown command is an error reply, and harms nothing.
    let unknown = cli(&cluster, 2, &["NO-SUCH-COMMAND", "x"]);
    assert!(unknown.starts_with("(error) ERR"), "unknown command answered {unknown:?}");
    let arity = cli(&cluster, 2, &["GET"]);
    assert!(arity.starts_with("(error) ERR"), "GET without a key answered {arity:?}");
    assert_eq!(cli(&cluster, 2, &["PING"]), "PONG");
    assert_eq!(cli(&cluster, 2, &["GET", "fresh"]), "\"abc\"");

    // INFO on every node has the contract's fields, and the nodes agree on one leader.
    let mut leaders = Vec::new();
    let mut roles = Vec::new();
    for id in cluster.ids() {
        let info = cli(&cluster, id, &["INFO"]);
        for field in ["role", "node_id", "leader_id", "term", "commit_index", "applied_index"] {
            assert!(info_field(&info, field).is_some(), "INFO of node {id} has no `{field}:` line:\n{info}");
        }
        assert_eq!(info_field(&info, "node_id"), Some(id.to_string().as_str()), "INFO of node {id}:\n{info}");
        for field in ["term", "commit_index", "applied_index", "leader_id"] {
            let value = info_field(&info, field).unwrap();
            assert!(value.parse::<u64>().is_ok(), "INFO of node {id}: `{field}:{value}` is not a number");
        }
        // Followers learn the commit index with the next heartbeat; the leader knows it already.
        let commit: u64 = info_field(&info, "commit_index").unwrap().parse().unwrap();
        if info_field(&info, "role") == Some("leader") {
            assert!(commit >= 6, "the leader, node {id}, reports commit_index {commit} after 6 acknowledged writes:\n{info}");
        }
        leaders.push(info_field(&info, "leader_id").unwrap().to_string());
        roles.push(info_field(&info, "role").unwrap().to_string());
    }
    assert!(leaders.iter().all(|leader| *leader == leaders[0] && leader != "0"), "nodes disagree on the leader: {leaders:?}");
    assert_eq!(roles.iter().filter(|role| *role == "leader").count(), 1, "roles: {roles:?}");
    assert!(roles.iter().all(|role| role == "leader" || role == "follower"), "roles: {roles:?}");
}

#[test]
fn redis_benchmark_runs_against_a_follower() {
    let cluster = ready_cluster("redis-benchmark");
    let leader = cluster.leader().expect("a leader after the cluster answered");
    let follower = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
    let port = cluster.client_port(follower).to_string();
    let mut command = Command::new(require("redis-benchmark"));
    command.args(["-h", "127.0.0.1", "-p", &port, "-t", "set,get", "-n", "2000", "-c", "8", "-q"]);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(120)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-benchmark failed; stdout {stdout:?}, stderr {stderr:?}");
    // -q prints progress lines separated by \r, then one "NAME: N requests per second" per test.
    let rate = |test: &str| -> f64 {
        stdout
            .split(['\r', '\n'])
            .filter_map(|line| line.trim().strip_prefix(&format!("{test}: ")))
            .filter_map(|rest| rest.split_once(" requests per second").map(|(rate, _)| rate.trim().to_string()))
            .filter_map(|rate| rate.parse::<f64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no `{test}: N requests per second` line in redis-benchmark's output: {stdout:?} (stderr {stderr:?})"))
    };
    let (set, get) = (rate("SET"), rate("GET"));
    eprintln!("redis-benchmark against follower {follower} (leader {leader}): SET {set:.0} req/s, GET {get:.0} req/s");
    assert!(set > 0.0 && get > 0.0, "rates: SET {set}, GET {get}");

    // The benchmark's writes went through the log: the key it sets exists, every node still answers.
    for id in cluster.ids() {
        assert_eq!(cli(&cluster, id, &["EXISTS", "key:__rand_int__"]), "(integer) 1", "node {id}");
        assert_eq!(cli(&cluster, id, &["PING"]), "PONG", "node {id}");
    }
}
