//! A follower's forward window: requests beyond it wait their turn, and a place freed by a refused
//! frame goes to the next one at once (before, the waiting ones stayed parked until they timed out).
//! A follower's reads: one read point asked of the leader for the reads of a step, and each read
//! served here once this node has applied it.

mod common;

use raft::{Entry, EntryKind, HardState, LogIndex, Message, MessageBody, NodeId, Restored, Term};
use replica::request::{Answer, Request, Write};
use common::take_saves_done;
use replica::{ConnId, Options, Output, Replica};
use wire::Frame;

fn follower_of_node_2(window: usize) -> Replica {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let options = Options { max_forwards_in_flight: window, forward_id_base: 1000, ..Options::default() };
    let mut replica = Replica::new(config, restored, kv::Store::new(), options).expect("a valid node");
    // A heartbeat from node 2 in term 1: node 1 follows it.
    let _ = append_from_node_2(&mut replica, Vec::new(), 0);
    assert_eq!(replica.status().leader, Some(NodeId(2)));
    replica
}

/// An append from node 2, leader in term 1, of `entries` after everything before them; the
/// outputs it led to.
fn append_from_node_2(replica: &mut Replica, entries: Vec<Entry>, commit: u64) -> Vec<Output> {
    let prev = entries.first().map_or(0, |entry| entry.index.0 - 1);
    let body = MessageBody::AppendRequest {
        prev_log_index: LogIndex(prev),
        prev_log_term: Term(u64::from(prev > 0)),
        entries,
        leader_commit: LogIndex(commit),
        read_round: 0,
    };
    replica.peer_frame(NodeId(2), Frame::Raft(Message { from: NodeId(2), to: NodeId(1), term: Term(1), body }));
    take_saves_done(replica)
}

fn put(index: u64, key: &[u8], value: &[u8]) -> Entry {
    let op = kv::Op::Put { key: key.to_vec(), value: value.to_vec() };
    let data = kv::Command { client_id: 9, seq: index, op }.encode();
    Entry { term: Term(1), index: LogIndex(index), kind: EntryKind::Command, data: data.into() }
}

fn write(seq: u64) -> Request {
    let data = kv::Command { client_id: 7, seq, op: kv::Op::Put { key: b"k".to_vec(), value: b"v".to_vec() } }.encode();
    Request::Write(Write { tag: (7, seq), data: data.into(), timed: false })
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
    for seq in 1..=5 {
        replica.client(conn, write(seq));
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

fn replies(outputs: &[Output]) -> Vec<Answer> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Reply { answer, .. } => Some(answer.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_followers_reads_share_one_read_point_and_are_served_once_it_is_applied() {
    let mut replica = follower_of_node_2(8);
    let _ = append_from_node_2(&mut replica, vec![put(1, b"k", b"old")], 1);
    for conn in 1..=3 {
        replica.client(ConnId(conn), Request::Get { key: b"k".to_vec() });
    }
    let sent = forwards(&take_saves_done(&mut replica));
    let [Frame::Forward { request_id, payload }] = &sent[..] else { panic!("one read point for the three reads: {sent:?}") };
    assert_eq!(Request::decode(payload), Some(Request::ReadPoint));
    // The leader applied index 2 (a newer value) before it confirmed its leadership: the reads wait
    // for it here, rather than read "old".
    let answer = Answer::Count(2).encode().into();
    replica.peer_frame(NodeId(2), Frame::ForwardReply { request_id: *request_id, payload: answer });
    assert_eq!(replies(&take_saves_done(&mut replica)), [], "nothing is answered before index 2 is applied");
    let outputs = append_from_node_2(&mut replica, vec![put(2, b"k", b"new")], 2);
    let new = Answer::Reply(kv::Reply::Value(Some(b"new".to_vec())));
    assert_eq!(replies(&outputs), [new.clone(), new.clone(), new], "each read answered here with the value at the read point");
    assert!(forwards(&outputs).is_empty(), "no value crosses the link");
}

#[test]
fn a_read_point_refused_by_the_leader_fails_its_reads_with_that_error() {
    let mut replica = follower_of_node_2(8);
    replica.client(ConnId(1), Request::Get { key: b"k".to_vec() });
    replica.client(ConnId(2), Request::Exists { keys: vec![b"k".to_vec()] });
    let sent = forwards(&take_saves_done(&mut replica));
    let [Frame::Forward { request_id, .. }] = &sent[..] else { panic!("one read point: {sent:?}") };
    let answer = Answer::Error("not the leader; retry".into()).encode().into();
    replica.peer_frame(NodeId(2), Frame::ForwardReply { request_id: *request_id, payload: answer });
    let answers = replies(&take_saves_done(&mut replica));
    assert_eq!(answers, [Answer::Error("not the leader; retry".into()), Answer::Error("not the leader; retry".into())]);
}

#[test]
fn a_follower_far_behind_the_read_point_has_the_leader_answer_its_reads() {
    let mut replica = follower_of_node_2(8);
    replica.client(ConnId(1), Request::Get { key: b"k".to_vec() });
    let sent = forwards(&take_saves_done(&mut replica));
    let [Frame::Forward { request_id, .. }] = &sent[..] else { panic!("one read point: {sent:?}") };
    // The leader is 5,000 entries ahead of this node's log (it is catching up after a restart).
    let answer = Answer::Count(5000).encode().into();
    replica.peer_frame(NodeId(2), Frame::ForwardReply { request_id: *request_id, payload: answer });
    let outputs = take_saves_done(&mut replica);
    let sent = forwards(&outputs);
    let [Frame::Forward { request_id, payload }] = &sent[..] else { panic!("the read forwarded: {sent:?}") };
    assert_eq!(Request::decode(payload), Some(Request::Get { key: b"k".to_vec() }));
    let value = Answer::Reply(kv::Reply::Value(Some(b"v".to_vec())));
    replica.peer_frame(NodeId(2), Frame::ForwardReply { request_id: *request_id, payload: value.encode().into() });
    assert_eq!(replies(&take_saves_done(&mut replica)), [value], "the leader's answer relayed");
}
