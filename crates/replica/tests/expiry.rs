//! Keys expire by the log's time: the leader stamps its wall clock into clock entries, and a key
//! is gone once a clock entry at or past its deadline is applied — not when some replica's own
//! clock says so, and never back again when a leader's clock steps backwards.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use kv::Reply;
use raft::{HardState, NodeId, Restored};
use replica::request::{Answer, Request};
use replica::session::{NodeView, Session, Step};
use replica::{ConnId, Options, Output, Replica};

const START_MS: u64 = 1_700_000_000_000;

struct Node {
    replica: Replica,
    session: Session,
    /// The wall clock the shell would read.
    wall_ms: u64,
}

impl Node {
    fn new() -> Node {
        let config = raft::Config::new(NodeId(1), vec![NodeId(1)]);
        let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
        let replica = Replica::new(config, restored, kv::Store::new(), Options::default()).expect("a node");
        let session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(0)));
        let mut node = Node { replica, session, wall_ms: START_MS };
        node.wait(200);
        assert!(node.replica.status().is_leader());
        node
    }

    /// `ticks` ticks of 10 ms of wall clock each; answers dropped.
    fn wait(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.wall_ms += 10;
            self.replica.set_clock(self.wall_ms);
            self.replica.tick();
            self.drain();
        }
    }

    fn drain(&mut self) -> Vec<Answer> {
        let mut answers = Vec::new();
        loop {
            let outputs = self.replica.take_outputs();
            if outputs.is_empty() {
                return answers;
            }
            for output in outputs {
                match output {
                    Output::Save { id, .. } => self.replica.persisted(id),
                    Output::Reply { answer, .. } => answers.push(answer),
                    _ => {}
                }
            }
        }
    }

    fn call(&mut self, words: &[&str]) -> Answer {
        resp::encode_array_of_bulks(words, self.session.read_space());
        let request: Request = match self.session.parse(&NodeView::of(self.replica.status())).pop() {
            Some(Step::Request { request, .. }) => request,
            other => panic!("{words:?}: {other:?}"),
        };
        self.replica.client(ConnId(1), request);
        let mut answers = self.drain();
        assert_eq!(answers.len(), 1, "{words:?}: {answers:?}");
        answers.remove(0)
    }
}

fn integer(answer: Answer) -> i64 {
    match answer {
        Answer::Reply(Reply::Integer(value)) => value,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn a_key_expires_when_the_log_time_passes_its_deadline() {
    let mut node = Node::new();
    assert_eq!(node.call(&["SET", "lock", "me", "NX", "PX", "500"]), Answer::Reply(Reply::Done));
    assert_eq!(node.call(&["SET", "lock", "you", "NX", "PX", "500"]), Answer::Reply(Reply::Value(None)), "held");
    assert_eq!(integer(node.call(&["PTTL", "lock"])), 500, "the SET brought the log time up to date first");
    assert_eq!(integer(node.call(&["TTL", "lock"])), 1);
    assert_eq!(integer(node.call(&["PEXPIRETIME", "lock"])) as u64, node.wall_ms + 500);
    node.wait(20);
    let left = integer(node.call(&["PTTL", "lock"]));
    assert!((300..=400).contains(&left), "clock entries every 100 ms keep TTL current: {left}");
    node.wait(31);
    assert_eq!(node.call(&["GET", "lock"]), Answer::Reply(Reply::Value(None)), "expired");
    assert_eq!(integer(node.call(&["PTTL", "lock"])), -2);
    assert_eq!(integer(node.call(&["DBSIZE"]).as_count()), 0);
    assert_eq!(node.call(&["SET", "lock", "you", "NX", "PX", "500"]), Answer::Reply(Reply::Done), "free again");
}

#[test]
fn the_log_time_never_goes_back_when_the_leaders_clock_does() {
    let mut node = Node::new();
    assert_eq!(node.call(&["SET", "k", "v", "PX", "1000"]), Answer::Reply(Reply::Done));
    node.wait(60);
    let before = integer(node.call(&["PTTL", "k"]));
    assert!(before <= 410, "{before}");
    // The wall clock steps back an hour (a bad NTP step): the log time stays where it was.
    node.wall_ms -= 3_600_000;
    node.wait(10);
    let after = integer(node.call(&["PTTL", "k"]));
    assert!(after <= before, "the time to live grew from {before} to {after}");
    assert_eq!(node.call(&["GET", "k"]), Answer::Reply(Reply::Value(Some(b"v".to_vec()))));
    assert_eq!(integer(node.call(&["PERSIST", "k"])), 1);
    assert_eq!(integer(node.call(&["TTL", "k"])), -1);
}

#[test]
fn expire_in_the_past_removes_the_key() {
    let mut node = Node::new();
    node.call(&["SET", "k", "v"]);
    assert_eq!(integer(node.call(&["EXPIRE", "k", "-1"])), 1);
    assert_eq!(node.call(&["GET", "k"]), Answer::Reply(Reply::Value(None)));
    assert_eq!(integer(node.call(&["EXPIRE", "k", "10"])), 0, "a missing key");
}

trait AsCount {
    fn as_count(self) -> Answer;
}

impl AsCount for Answer {
    /// DBSIZE answers a count; as an integer reply for `integer`.
    fn as_count(self) -> Answer {
        match self {
            Answer::Count(count) => Answer::Reply(Reply::Integer(count as i64)),
            other => other,
        }
    }
}
