//! The memory budget (`--max-memory`): once the keys and values take more than it, the node
//! refuses the writes that could grow them with Redis's `-OOM` error, before anything is proposed;
//! reads, deletes and expiry go on, and once deletes bring the data under the budget, writes are
//! taken again. (Before, a node took writes until the process ran out of memory.)

mod common;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use kv::Reply;
use raft::{HardState, NodeId, Restored};
use replica::request::{Answer, Request};
use replica::session::{NodeView, Session, Step};
use replica::{ConnId, Options, Output, Replica, OUT_OF_MEMORY};

/// A sole node (it leads at once) with a budget of `max_memory` bytes.
fn node(max_memory: u64) -> (Replica, Session) {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1)]);
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let mut replica = Replica::new(config, restored, kv::Store::new(), Options { max_memory, ..Options::default() }).expect("a node");
    for _ in 0..200 {
        replica.tick();
        answers(&mut replica);
    }
    assert!(replica.status().is_leader());
    (replica, Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(0))))
}

/// The answers among the outputs so far (saves completed at once).
fn answers(replica: &mut Replica) -> Vec<Answer> {
    let outputs = common::take_saves_done(replica).into_iter();
    outputs.filter_map(|output| if let Output::Reply { answer, .. } = output { Some(answer) } else { None }).collect()
}

fn call(replica: &mut Replica, session: &mut Session, words: &[&str]) -> Answer {
    resp::encode_array_of_bulks(words, session.read_space());
    let request: Request = match session.parse(&NodeView::of(replica.status())).pop() {
        Some(Step::Request { request, .. }) => request,
        other => panic!("{words:?}: {other:?}"),
    };
    replica.client(ConnId(1), request);
    let mut answers = answers(replica);
    assert_eq!(answers.len(), 1, "{words:?}: {answers:?}");
    answers.remove(0)
}

fn out_of_memory() -> Answer {
    Answer::Reply(Reply::Error(OUT_OF_MEMORY.into()))
}

#[test]
fn writes_that_grow_the_data_are_refused_over_the_budget_and_taken_again_under_it() {
    let (mut replica, mut session) = node(10_000);
    let value = "v".repeat(1_000);
    let mut written = 0;
    while call(&mut replica, &mut session, &["SET", &format!("k{written}"), &value]) == Answer::Reply(Reply::Done) {
        written += 1;
        assert!(written < 100, "never refused");
    }
    // Refused as Redis refuses it, and nothing was proposed: the key is not there.
    assert_eq!(written, 10, "1,000-byte values and their keys: the 11th SET finds the data over 10,000 bytes");
    assert_eq!(call(&mut replica, &mut session, &["GET", &format!("k{written}")]), Answer::Reply(Reply::Value(None)));
    assert!(replica.view().data_bytes > 10_000 && replica.view().max_memory == 10_000);
    for grows in [&["APPEND", "k0", "more"][..], &["INCR", "n"], &["MSET", "a", "1", "b", "2"], &["SETRANGE", "k0", "5", "x"], &["COPY", "k0", "k00"]] {
        assert_eq!(call(&mut replica, &mut session, grows), out_of_memory(), "{grows:?}");
    }
    // Reads, deletes and expiry go on.
    assert_eq!(call(&mut replica, &mut session, &["GET", "k0"]), Answer::Reply(Reply::Value(Some(value.clone().into_bytes()))));
    assert_eq!(call(&mut replica, &mut session, &["EXPIRE", "k1", "100"]), Answer::Reply(Reply::Integer(1)));
    assert_eq!(call(&mut replica, &mut session, &["DEL", "k0", "k1"]), Answer::Reply(Reply::Removed(2)));
    // Under the budget again: writes are taken.
    assert_eq!(call(&mut replica, &mut session, &["SET", "k0", "small"]), Answer::Reply(Reply::Done));
}

#[test]
fn without_a_budget_nothing_is_refused() {
    let (mut replica, mut session) = node(0);
    let value = "v".repeat(1_000);
    for i in 0..50 {
        assert_eq!(call(&mut replica, &mut session, &["SET", &format!("k{i}"), &value]), Answer::Reply(Reply::Done));
    }
}
