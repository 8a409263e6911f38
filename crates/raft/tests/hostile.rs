//! Messages no correct peer sends, as a hostile or broken one could: each is refused where peer
//! bytes become a message (`codec::decode_message`), so the core never sees it, and the cluster
//! goes on electing leaders and committing.

mod support;

use raft::codec::{decode_message, encode_message, DecodeError};
use raft::{AppendResponse, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, SnapshotMeta, Term};
use support::Cluster;

fn message(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message { from: NodeId(from), to: NodeId(to), term: Term(term), body }
}

fn heartbeat(prev: u64, commit: u64) -> MessageBody {
    MessageBody::AppendRequest { prev_log_index: LogIndex(prev), prev_log_term: Term(1), entries: Vec::new(), leader_commit: LogIndex(commit), read_round: 0 }
}

fn round_trip(message: &Message) -> Result<Message, DecodeError> {
    let mut bytes = Vec::new();
    encode_message(message, &mut bytes);
    decode_message(&bytes)
}

/// What a node would get from the bytes of `message`, if the decoder lets it through.
fn deliver(cluster: &mut Cluster, message: &Message) {
    if let Ok(decoded) = round_trip(message) {
        cluster.node_mut(decoded.to.0).step(decoded);
        cluster.settle();
    }
}

/// The defect: a heartbeat at term 2^64 − 1 made a follower take that term; the next election
/// wrapped it to 0 (or panicked on the overflow), and no leader was ever elected again.
#[test]
fn a_term_that_could_wrap_never_reaches_the_core_and_elections_go_on() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    deliver(&mut cluster, &message(2, 3, u64::MAX, heartbeat(0, 0)));
    deliver(&mut cluster, &message(2, 1, u64::MAX - 1, MessageBody::VoteResponse { pre_vote: false, granted: false }));
    for id in 1..=3 {
        assert!(cluster.node(id).status().term.0 < 1 << 32, "node {id} took the forged term: {}", cluster.node(id).status());
    }
    // The leader goes away: the other two must elect one of them, at a higher term.
    let before = cluster.node(1).status().term;
    cluster.isolated.insert(1);
    cluster.tick_all(100);
    let Some(leader) = [2, 3].into_iter().find(|&id| cluster.node(id).status().is_leader()) else {
        panic!("no new leader: {} / {}", cluster.node(2).status(), cluster.node(3).status())
    };
    assert!(cluster.node(leader).status().term > before, "a new leader at a higher term");
    cluster.node_mut(leader).propose(b"after".to_vec()).expect("the leader takes proposals");
    // A heartbeat or two carries the new commit index to the follower.
    cluster.tick_all(5);
    let other = 5 - leader;
    assert_eq!(cluster.node(other).status().commit, cluster.node(leader).log().last_index(), "and commits them");
}

#[test]
fn numbers_that_could_overflow_are_refused_with_a_reason() {
    let huge = 1 << 63;
    let entry = |index: u64, term| Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: b"x".to_vec().into() };
    let append = |prev: u64, prev_term: u64, terms: &[u64], commit: u64| MessageBody::AppendRequest {
        prev_log_index: LogIndex(prev),
        prev_log_term: Term(prev_term),
        entries: terms.iter().enumerate().map(|(k, &term)| entry(prev.wrapping_add(1 + k as u64), term)).collect(),
        leader_commit: LogIndex(commit),
        read_round: 0,
    };
    let snapshot = |index, term| support::whole_snapshot(index, term, b"s");
    let chunk = |offset, total| MessageBody::SnapshotRequest {
        meta: SnapshotMeta { index: LogIndex(5), term: Term(3) },
        total,
        checksum: 0,
        offset,
        data: b"chunk".to_vec().into(),
    };
    let refused = [
        ("term", message(2, 1, huge, heartbeat(0, 0))),
        ("prev index", message(2, 1, 3, append(u64::MAX, 1, &[3], 0))),
        ("commit index", message(2, 1, 3, heartbeat(1, huge))),
        ("an entry's term above the message's", message(2, 1, 3, append(1, 1, &[4], 0))),
        ("entry terms going down", message(2, 1, 3, append(1, 1, &[3, 2], 0))),
        ("an entry's term below the previous entry's", message(2, 1, 3, append(1, 2, &[1], 0))),
        ("vote request's last index", message(2, 1, 3, MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(huge), last_log_term: Term(1) })),
        ("vote request's last term above its own", message(2, 1, 3, MessageBody::VoteRequest { pre_vote: true, transfer: false, last_log_index: LogIndex(1), last_log_term: Term(4) })),
        ("snapshot index", message(2, 1, 3, snapshot(huge, 1))),
        ("snapshot term above the message's", message(2, 1, 3, snapshot(5, 4))),
        ("snapshot chunk past the snapshot's end", message(2, 1, 3, chunk(10, 12))),
        ("snapshot chunk offset wrapping", message(2, 1, 3, chunk(u64::MAX - 2, huge))),
        ("snapshot length", message(2, 1, 3, chunk(0, huge))),
        ("snapshot bytes received", message(2, 1, 3, MessageBody::SnapshotResponse { index: LogIndex(1), received: huge })),
        ("match index", message(2, 1, 3, MessageBody::AppendResponse { response: AppendResponse::Accepted { match_index: LogIndex(huge) }, read_round: 0 })),
        ("read round", message(2, 1, 3, MessageBody::AppendResponse { response: AppendResponse::Accepted { match_index: LogIndex(1) }, read_round: huge })),
    ];
    for (what, message) in refused {
        match round_trip(&message) {
            Err(DecodeError::OutOfRange(reason)) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: expected OutOfRange, got {other:?}"),
        }
    }
    // The ordinary ones still pass.
    for message in [message(2, 1, 3, append(1, 1, &[1, 3, 3], 2)), message(2, 1, 3, snapshot(5, 3)), message(2, 1, 3, chunk(7, 12)), message(2, 1, (1 << 62) - 1, heartbeat(0, 0))] {
        assert_eq!(round_trip(&message).as_ref(), Ok(&message));
    }
}
