//! A request waits at most the leader wait (3 s) for a leader, counted from its arrival: a read
//! pipelined behind a write on a node that knows no leader fails with "no leader" with it, not at
//! the request deadline. Before, the read's wait began only when the write's failure let it go
//! (per-connection order), and it timed out at 5 s instead (the production node's simulation
//! found it, on a node waiting to join a cluster: seed 50).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use raft::{HardState, NodeId, Restored};
use replica::request::Answer;
use replica::session::{NodeView, Session, Step};
use replica::{ConnId, Options, Output, Replica};

#[test]
fn pipelined_requests_all_fail_within_the_leader_wait_of_their_arrival() {
    // A node that joins: it knows no voter, so no leader, ever.
    let config = raft::Config::new(NodeId(4), Vec::new());
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let options = Options::default();
    let (wait, deadline) = (options.leader_wait_ticks, options.request_timeout_ticks);
    let mut replica = Replica::new(config, restored, kv::Store::new(), options).expect("a node");
    let mut session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(0)));
    for words in [&["SET", "k", "v"][..], &["GET", "k"], &["GET", "k"]] {
        resp::encode_array_of_bulks(words, session.read_space());
        let Some(Step::Request { request, .. }) = session.parse(&NodeView::of(replica.status())).pop() else { panic!("{words:?}") };
        replica.client(ConnId(1), request);
    }
    let mut answered = Vec::new();
    for tick in 1..=deadline {
        replica.tick();
        for output in replica.take_outputs() {
            if let Output::Reply { answer: Answer::Error(message), .. } = output {
                answered.push((tick, message));
            }
        }
    }
    assert_eq!(answered.len(), 3, "{answered:?}");
    for (tick, message) in &answered {
        assert!(message.starts_with("no leader") && *tick <= wait + 1, "answered at tick {tick}: {message}");
    }
}
