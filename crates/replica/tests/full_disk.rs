//! A save that finds the disk full: the replica refuses writes at once with an error that says
//! why, still serves reads, hands the same save again every few ticks, and takes writes again once
//! a save succeeds. (Before, the server stopped at the first failed save.)

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use raft::{HardState, NodeId, Restored};
use kv::Reply;
use replica::request::{Answer, Request};
use replica::session::{NodeView, Session, Step};
use replica::{ConnId, Options, Output, Replica, SaveId};

fn request(session: &mut Session, replica: &Replica, words: &[&str]) -> Request {
    resp::encode_array_of_bulks(words, session.read_space());
    match session.parse(&NodeView::of(replica.status())).pop() {
        Some(Step::Request { request, .. }) => request,
        other => panic!("{words:?}: {other:?}"),
    }
}

/// The outputs so far, with saves taken out (and completed, unless `disk_full`).
fn outputs(replica: &mut Replica, disk_full: bool) -> (Vec<Answer>, Vec<SaveId>) {
    let (mut answers, mut saves) = (Vec::new(), Vec::new());
    loop {
        let outputs = replica.take_outputs();
        if outputs.is_empty() {
            return (answers, saves);
        }
        for output in outputs {
            match output {
                Output::Save { id, .. } if disk_full => {
                    saves.push(id);
                    replica.save_failed_no_space(id);
                }
                Output::Save { id, .. } => {
                    saves.push(id);
                    replica.persisted(id);
                }
                Output::Reply { answer, .. } => answers.push(answer),
                _ => {}
            }
        }
    }
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_retries_its_save() {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1)]);
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let mut replica = Replica::new(config, restored, kv::Store::new(), Options::default()).expect("a node");
    let mut session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(0)));
    let conn = ConnId(1);
    for _ in 0..200 {
        replica.tick();
        outputs(&mut replica, false);
    }
    assert!(replica.status().is_leader());
    let set = request(&mut session, &replica, &["SET", "k", "1"]);
    replica.client(conn, set);
    assert_eq!(outputs(&mut replica, false).0, vec![Answer::Reply(Reply::Done)]);

    // The next write's save finds the disk full.
    let set = request(&mut session, &replica, &["SET", "k", "2"]);
    replica.client(conn, set);
    let (answers, saves) = outputs(&mut replica, true);
    assert!(answers.is_empty(), "the write waits for its save: {answers:?}");
    assert_eq!(saves.len(), 1);
    assert!(replica.disk_full());
    // Writes are refused at once, saying why; reads are served.
    let set = request(&mut session, &replica, &["SET", "other", "x"]);
    replica.client(ConnId(2), set);
    let get = request(&mut session, &replica, &["GET", "k"]);
    replica.client(ConnId(3), get);
    let (answers, _) = outputs(&mut replica, true);
    assert!(
        answers.iter().any(|answer| matches!(answer, Answer::Error(message) if message.contains("disk full on node 1: writes are refused"))),
        "{answers:?}"
    );
    assert!(answers.contains(&Answer::Reply(Reply::Value(Some(b"1".to_vec())))), "the read is served: {answers:?}");
    // The same save is handed again every few ticks; once one succeeds, all goes on.
    let mut retried = Vec::new();
    for _ in 0..25 {
        replica.tick();
        retried.extend(outputs(&mut replica, true).1);
    }
    assert!(retried.len() >= 2 && retried.iter().all(|&id| id == saves[0]), "the same save again: {retried:?}");
    replica.tick();
    for _ in 0..10 {
        replica.tick();
        let (answers, _) = outputs(&mut replica, false);
        if !answers.is_empty() {
            assert_eq!(answers, vec![Answer::Reply(Reply::Done)], "the waiting write completes");
            break;
        }
    }
    assert!(!replica.disk_full());
    let set = request(&mut session, &replica, &["SET", "k", "3"]);
    replica.client(conn, set);
    assert_eq!(outputs(&mut replica, false).0, vec![Answer::Reply(Reply::Done)]);
}
