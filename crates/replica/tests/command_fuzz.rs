//! Seeded random commands from a client — every command the node knows, with arguments drawn
//! from numbers at the edges of their ranges, options, globs and odd bytes, inside and outside
//! transactions and WATCH — through a connection's `Session` into a single-node replica. Nothing
//! a client sends may panic the node (overflow checks are on), and it must still answer
//! afterwards. `COMMAND_FUZZ_SEEDS=N` runs more seeds (default 200).

mod common;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use raft::{NodeId, Restored, Rng};
use replica::request::Answer;
use replica::session::{NodeView, Session, Step};
use common::take_saves_done;
use replica::{ConnId, Options, Output, Replica};

const DATA: &[&str] = &[
    "GET", "SET", "APPEND", "DEL", "EXISTS", "INCR", "DECR", "INCRBY", "DECRBY", "INCRBYFLOAT", "SETNX", "GETSET", "GETDEL", "MGET", "MSET",
    "MSETNX", "STRLEN", "DBSIZE", "UNLINK", "KEYS", "TYPE", "TOUCH", "FLUSHDB", "FLUSHALL", "RENAME", "RENAMENX", "SCAN", "GETRANGE",
    "SUBSTR", "SETRANGE", "COPY", "RANDOMKEY", "WATCH",
];

/// Drawn one time in ten: transactions, the connection's own commands, and nonsense.
const OTHER: &[&str] = &["MULTI", "EXEC", "DISCARD", "UNWATCH", "PING", "ECHO", "INFO", "SELECT", "CLIENT", "COMMAND", "CONFIG", "HELLO", "TAGGED", "NOSUCH"];

const ARGS: &[&str] = &[
    "k", "n", "f", "", "*", "k*", "[a-", "\\", "?", "0", "1", "-1", "10", "-0", "01", "+5", "1.5", "-1e308", "1e309", "nan", "inf",
    "9223372036854775807", "-9223372036854775808", "18446744073709551615", "99999999999999999999", "NX", "XX", "GET", "KEEPTTL", "EX", "MATCH",
    "COUNT", "TYPE", "string", "REPLACE", "DB", "ASYNC", "GETNAME", "3", "2",
];

fn leader() -> Replica {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1)]);
    let mut replica = Replica::new(config, Restored::default(), kv::Store::new(), Options::default()).expect("a node");
    for _ in 0..200 {
        replica.tick();
        drain(&mut replica);
    }
    assert!(replica.status().is_leader());
    replica
}

/// Completes every save; returns the answers, in order.
fn drain(replica: &mut Replica) -> Vec<Answer> {
    take_saves_done(replica)
        .into_iter()
        .filter_map(|output| match output {
            Output::Reply { answer, .. } => Some(answer),
            _ => None,
        })
        .collect()
}

/// Runs one seed; returns how many requests reached the node.
fn run(seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let mut replica = leader();
    let mut session = Session::new(resp::Limits { max_bulk_bytes: 1 << 16, ..resp::Limits::default() }, Arc::new(AtomicU64::new(seed << 20)));
    let conn = ConnId(1);
    let mut requests = 0;
    for _ in 0..300 {
        let names = if rng.chance(1, 10) { OTHER } else { DATA };
        let mut words = vec![names[rng.below(names.len() as u64) as usize].to_string()];
        for _ in 0..1 + rng.below(4) {
            let arg = ARGS[rng.below(ARGS.len() as u64) as usize];
            // Now and then a long one, or bytes that are not UTF-8.
            words.push(match rng.below(20) {
                0 => arg.repeat(1 + rng.below(5000) as usize),
                1 => String::from_utf8_lossy(&[0xff, 0xfe, rng.below(256) as u8]).into_owned(),
                _ => arg.to_string(),
            });
        }
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        resp::encode_array_of_bulks(&words, session.read_space());
        for step in session.parse(&NodeView::of(replica.status())) {
            match step {
                Step::Reply(_) => {}
                Step::Request { request, .. } => {
                    requests += 1;
                    replica.client(conn, request);
                    drain(&mut replica);
                }
                Step::Watch { request, .. } => {
                    requests += 1;
                    replica.client(conn, request);
                    for answer in drain(&mut replica) {
                        session.watch_answered(answer, &mut Vec::new());
                    }
                }
            }
        }
        if session.closing() {
            session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(seed << 20)));
        }
        if rng.chance(1, 10) {
            replica.tick();
            drain(&mut replica);
        }
    }
    // Still a working node: a write and a read go through.
    let mut session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(1 << 40)));
    for words in [&["SET", "after", "1"][..], &["GET", "after"]] {
        resp::encode_array_of_bulks(words, session.read_space());
        let Some(Step::Request { request, .. }) = session.parse(&NodeView::of(replica.status())).pop() else { panic!("seed {seed}: {words:?}") };
        replica.client(ConnId(2), request);
        let answers = drain(&mut replica);
        assert!(answers.iter().all(|answer| !matches!(answer, Answer::Error(_))), "seed {seed}: {words:?} -> {answers:?}");
    }
    requests
}

#[test]
fn random_commands_never_panic_the_node() {
    let seeds: u64 = std::env::var("COMMAND_FUZZ_SEEDS").ok().and_then(|seeds| seeds.parse().ok()).unwrap_or(200);
    let mut requests = 0;
    for seed in 1..=seeds {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(reached) => requests += reached,
            Err(_) => panic!("seed {seed} panicked (replay: COMMAND_FUZZ_SEEDS={seed}, the last seed run)"),
        }
    }
    println!("{seeds} seeds, {requests} requests reached the node");
    assert!(requests > seeds * 50, "most commands must reach the node, not stop at the parser: {requests}");
}
