//! A follower's forward window: requests beyond it wait their turn, and a place freed by a refused
//! frame goes to the next one at once (before, the waiting ones stayed parked until they timed out).

mod common;

use raft::{HardState, LogIndex, Message, MessageBody, NodeId, Restored, Term};
use replica::request::{Answer, Request};
use common::take_saves_done;
use replica::{ConnId, Options, Output, Replica};
use wire::Frame;

fn follower_of_node_2(window: usize) -> Replica {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let options = Options { max_forwards_in_flight: window, forward_id_base: 1000, ..Options::default() };
    let mut replica = Replica::new(config, restored, kv::Store::new(), options).expect("a valid node");
    // A heartbeat from node 2 in term 1: node 1 follows it.
    let body = MessageBody::AppendRequest {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: Vec::new(),
        leader_commit: LogIndex(0),
        read_round: 0,
    };
    replica.peer_frame(NodeId(2), Frame::Raft(Message { from: NodeId(2), to: NodeId(1), term: Term(1), body }));
    take_saves_done(&mut replica);
    assert_eq!(replica.status().leader, Some(NodeId(2)));
    replica
}

fn forwards(outputs: &[Output]) -> Vec<Frame> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send { to: NodeId(2), frame: frame @ Frame::Forward { .. } } => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_place_freed_by_a_refused_forward_goes_to_the_next_request_at_once() {
    let mut replica = follower_of_node_2(2);
    let conn = ConnId(1);
    for _ in 0..5 {
        replica.client(conn, Request::Get { key: b"k".to_vec() });
    }
    let sent = forwards(&take_saves_done(&mut replica));
    assert_eq!(sent.len(), 2, "two in the window, three waiting");
    for frame in sent {
        replica.undeliverable(NodeId(2), frame);
    }
    let outputs = take_saves_done(&mut replica);
    let refused = outputs.iter().filter(|output| matches!(output, Output::Reply { answer: Answer::Error(_), .. })).count();
    assert_eq!(refused, 2, "the two refused requests are answered at once");
    assert_eq!(forwards(&outputs).len(), 2, "and the next two waiting take their places");
}
