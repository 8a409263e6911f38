//! InstallSnapshot in chunks (§7): bounded messages, lost chunks, leader changes mid-transfer,
//! damaged snapshots, and the driver's check before installing.

mod support;

use raft::{Apply, LogIndex, Message, MessageBody, NodeId, Snapshot, Term};
use support::Cluster;

const CHUNK: usize = 10;

/// 95 bytes of a recognisable pattern: ten chunks, the last one short.
fn snapshot_data() -> Vec<u8> {
    (0..95u8).map(|byte| byte.wrapping_mul(7)).collect()
}

/// A 3-node cluster led by node 1 in which node 3 missed everything up to index 4 and node 1
/// (and, with `both`, node 2) compacted it into `snapshot_data()`.
fn lagging_follower(both: bool, tweak: impl Fn(&mut raft::Config)) -> Cluster {
    let mut cluster = Cluster::new(3, |config| {
        config.snapshot_chunk_bytes = CHUNK;
        config.snapshot_chunks_inflight = 2;
        tweak(config);
    });
    cluster.isolated.insert(3);
    cluster.elect(1);
    for command in 0..4u8 {
        cluster.node_mut(1).propose(vec![command]).expect("leader");
        cluster.settle();
    }
    cluster.tick_all(2);
    let compacted = if both { vec![1, 2] } else { vec![1] };
    for id in compacted {
        assert_eq!(cluster.node(id).status().applied, LogIndex(4), "node {id} applied everything");
        cluster.node_mut(id).compact(LogIndex(4), snapshot_data()).expect("applied");
    }
    cluster.isolated.remove(&3);
    cluster
}

/// Delivers messages, passing each to `keep` first (which may drop it), until none are left.
fn deliver(cluster: &mut Cluster, mut keep: impl FnMut(&Message) -> bool) {
    for _ in 0..10_000 {
        cluster.flush();
        let Some(message) = cluster.queue.pop_front() else { return };
        if !keep(&message) {
            continue;
        }
        if let Some(node) = cluster.nodes.get_mut(&message.to.0) {
            node.step(message);
        }
    }
    panic!("messages kept coming: the nodes are stuck in an exchange");
}

fn chunk_of(message: &Message) -> Option<(u64, usize)> {
    match &message.body {
        MessageBody::SnapshotRequest { offset, data, .. } => Some((*offset, data.len())),
        _ => None,
    }
}

fn installed(cluster: &Cluster, id: u64) -> Vec<Snapshot> {
    let readies = cluster.readies.get(&id).map_or(&[][..], Vec::as_slice);
    readies
        .iter()
        .flat_map(|ready| &ready.apply)
        .filter_map(|apply| match apply {
            Apply::Snapshot(snapshot) => Some(snapshot.clone()),
            Apply::Entry(_) => None,
        })
        .collect()
}

/// Ticks every node, delivering through `keep`, until node 3 installed a snapshot.
fn until_installed(cluster: &mut Cluster, mut keep: impl FnMut(&Message) -> bool) -> Snapshot {
    for _ in 0..200 {
        for id in [1, 2, 3] {
            cluster.node_mut(id).tick();
        }
        deliver(cluster, &mut keep);
        if let Some(snapshot) = installed(cluster, 3).pop() {
            return snapshot;
        }
    }
    panic!("node 3 never installed the snapshot");
}

#[test]
fn a_snapshot_travels_in_chunks_no_larger_than_the_limit() {
    let mut cluster = lagging_follower(false, |_| {});
    let mut chunks = Vec::new();
    let snapshot = until_installed(&mut cluster, |message| {
        chunks.extend(chunk_of(message));
        true
    });
    assert_eq!(&snapshot.data[..], &snapshot_data()[..]);
    assert_eq!(snapshot.meta.index, LogIndex(4));
    assert!(chunks.iter().all(|&(_, len)| len <= CHUNK), "{chunks:?}");
    let offsets: Vec<u64> = chunks.iter().map(|&(offset, _)| offset).collect();
    assert_eq!(offsets, (0..10).map(|chunk| chunk * CHUNK as u64).collect::<Vec<_>>(), "each chunk once, in order");
    cluster.node_mut(1).propose(vec![9]).expect("leader");
    cluster.tick_all(4);
    assert_eq!(cluster.node(3).status().commit, LogIndex(5), "replication goes on after the snapshot");
}

#[test]
fn a_lost_chunk_is_sent_again_and_the_rest_follows() {
    let mut cluster = lagging_follower(false, |_| {});
    let mut dropped = false;
    let snapshot = until_installed(&mut cluster, |message| match chunk_of(message) {
        Some((30, _)) if !dropped => {
            dropped = true;
            false
        }
        _ => true,
    });
    assert!(dropped);
    assert_eq!(&snapshot.data[..], &snapshot_data()[..]);
}

#[test]
fn a_transfer_cut_by_a_leader_change_resumes_where_it_stopped() {
    let mut cluster = lagging_follower(true, |_| {});
    // Node 3 takes chunks from node 1 up to byte 50, then node 1 is cut off.
    let mut received = 0;
    for _ in 0..50 {
        cluster.node_mut(1).tick();
        deliver(&mut cluster, |message| match chunk_of(message) {
            Some((offset, len)) if offset as usize == received && received < 50 => {
                received += len;
                true
            }
            Some(_) => false,
            None => true,
        });
        if received >= 50 {
            break;
        }
    }
    assert_eq!(received, 50);
    cluster.isolated.insert(1);
    // Node 2 is elected (node 3 lacks the log to win) and takes the transfer over.
    let mut bytes_from_2 = 0;
    let snapshot = until_installed(&mut cluster, |message| {
        if message.from == NodeId(2) {
            bytes_from_2 += chunk_of(message).map_or(0, |(_, len)| len);
        }
        true
    });
    assert_eq!(&snapshot.data[..], &snapshot_data()[..]);
    assert_eq!(cluster.node(3).status().leader, Some(NodeId(2)));
    // The new leader's first window (two chunks from 0) is answered "I hold 50", and it goes on from there.
    assert!(bytes_from_2 <= 2 * CHUNK + 45, "the new leader sent {bytes_from_2} bytes for the 45 missing");
}

#[test]
fn a_snapshot_that_fails_its_checksum_is_not_installed() {
    let mut cluster = Cluster::new(3, |_| {});
    let mut body = support::whole_snapshot(7, 1, b"state");
    if let MessageBody::SnapshotRequest { checksum, .. } = &mut body {
        *checksum ^= 1;
    }
    cluster.node_mut(3).step(Message { from: NodeId(1), to: NodeId(3), term: Term(1), body });
    cluster.flush();
    assert!(installed(&cluster, 3).is_empty());
    assert_eq!(cluster.node(3).status().snapshot_index, LogIndex(0));
    let answers: Vec<&MessageBody> = cluster.queue.iter().map(|message| &message.body).collect();
    assert_eq!(answers, [&MessageBody::SnapshotResponse { index: LogIndex(7), received: 0 }], "asked to start over");
}

#[test]
fn a_held_snapshot_is_installed_only_when_the_driver_says_so() {
    let mut cluster = lagging_follower(false, |config| config.hold_received_snapshots = true);
    for _ in 0..20 {
        cluster.tick_all(1);
    }
    assert!(installed(&cluster, 3).is_empty(), "held, not installed");
    let held = cluster.node_mut(3).take_received_snapshot().expect("complete and held");
    assert_eq!(&held.data[..], &snapshot_data()[..]);
    cluster.node_mut(3).install_snapshot(held, None);
    cluster.settle();
    assert_eq!(installed(&cluster, 3).len(), 1);
    assert_eq!(cluster.node(3).status().commit, LogIndex(4));
}
