//! Flow control towards a follower: however large the entries, the appends in flight to it are
//! bounded in bytes, so that a heartbeat on the same link never queues behind more than that
//! bound and one append (a heartbeat held back past an election timeout costs an election).

mod support;

use raft::{MessageBody, NodeId};
use support::Cluster;

const ENTRY: usize = 1 << 20;

/// The entry bytes of the appends queued (sent, not yet answered) for node 2 after the leader got
/// `entries` proposals of `ENTRY` bytes each, with nothing answered.
fn bytes_in_flight_to_node_2(entries: usize, tweak: impl Fn(&mut raft::Config)) -> usize {
    let mut cluster = Cluster::new(3, |config| {
        config.inflight_appends_max = 64;
        config.append_bytes_max = ENTRY;
        tweak(config);
    });
    cluster.elect(1);
    // One small entry, answered, so that node 2 streams (flow control applies to a stream).
    cluster.node_mut(1).propose(vec![0]).expect("leader");
    cluster.settle();
    for _ in 0..entries {
        cluster.node_mut(1).propose(vec![7; ENTRY]).expect("leader");
        cluster.flush();
    }
    cluster
        .queue
        .iter()
        .filter(|message| message.to == NodeId(2))
        .map(|message| match &message.body {
            MessageBody::AppendRequest { entries, .. } => entries.iter().map(|entry| entry.data.len()).sum(),
            _ => 0,
        })
        .sum()
}

#[test]
fn appends_in_flight_stay_within_the_byte_bound() {
    let bound = 4 * ENTRY;
    let in_flight = bytes_in_flight_to_node_2(20, |config| config.inflight_bytes_max = bound);
    assert!(in_flight <= bound + ENTRY, "{in_flight} bytes in flight to node 2, over {bound} and one entry");
    assert!(in_flight >= bound, "the stream stopped early: {in_flight} bytes in flight");
    // Without the byte bound, all twenty entries would be on the link at once.
    let unbounded = bytes_in_flight_to_node_2(20, |config| config.inflight_bytes_max = usize::MAX);
    assert_eq!(unbounded, 20 * ENTRY);
}

#[test]
fn one_append_larger_than_the_bound_still_goes() {
    let in_flight = bytes_in_flight_to_node_2(3, |config| config.inflight_bytes_max = ENTRY / 2);
    assert_eq!(in_flight, ENTRY, "exactly one large entry in flight");
}
