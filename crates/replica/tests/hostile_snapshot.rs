//! A snapshot from the leader that does not decode is refused before the node takes it, reported,
//! and the node goes on (before, it was installed and persisted, then the node stopped for good
//! with "the snapshot from the leader is unusable", and refused to start again).

mod common;

use raft::{HardState, LogIndex, Message, MessageBody, NodeId, Restored, SnapshotMeta, Term};
use common::take_saves_done;
use replica::{Options, Output, Replica};
use wire::Frame;

fn follower() -> Replica {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    Replica::new(config, restored, kv::Store::new(), Options::default()).expect("a valid node")
}

fn from_leader(term: u64, body: MessageBody) -> Frame {
    Frame::Raft(Message { from: NodeId(2), to: NodeId(1), term: Term(term), body })
}

fn snapshot(index: u64, data: Vec<u8>) -> MessageBody {
    MessageBody::whole_snapshot(SnapshotMeta { index: LogIndex(index), term: Term(1) }, &data)
}

#[test]
fn an_undecodable_snapshot_from_the_leader_is_refused_and_the_node_goes_on() {
    let mut replica = follower();
    replica.peer_frame(NodeId(2), from_leader(1, snapshot(10, b"not a snapshot".to_vec())));
    let outputs = take_saves_done(&mut replica);
    assert!(!outputs.iter().any(|output| matches!(output, Output::Fatal(_))), "{outputs:?}");
    assert!(
        outputs.iter().any(|output| matches!(output, Output::Refused(reason) if reason.contains("snapshot"))),
        "the refusal is reported: {outputs:?}"
    );
    assert_eq!(replica.status().snapshot_index, LogIndex(0), "nothing of it was taken");
    // A good snapshot afterwards installs.
    let mut store = kv::Store::new();
    store.skip(10);
    replica.peer_frame(NodeId(2), from_leader(1, snapshot(10, store.encode_snapshot())));
    let outputs = take_saves_done(&mut replica);
    assert!(!outputs.iter().any(|output| matches!(output, Output::Fatal(_) | Output::Refused(_))), "{outputs:?}");
    assert_eq!(replica.status().snapshot_index, LogIndex(10));
    assert_eq!(replica.store().applied_index(), 10);
}
