//! A node that does not know its cluster's id yet (it stopped before it applied the entry that
//! names it) takes the id from a Hello of a node it knows — a member, or one its `--peers` names —
//! and publishes it, so that its transport admits a member added since (node chaos seed 2,002:
//! without this, a node refused the new leader's connections for ever). A stranger's Hello names
//! no cluster for it.

use std::collections::BTreeMap;

use raft::{HardState, NodeId, Restored};
use replica::{Options, Output, Replica};

fn node_one() -> Replica {
    let config = raft::Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let peer_addresses = BTreeMap::from([(NodeId(1), "a:1".to_string()), (NodeId(2), "a:2".to_string()), (NodeId(3), "a:3".to_string())]);
    let options = Options { peer_addresses, ..Options::default() };
    Replica::new(config, restored, kv::Store::new(), options).expect("a valid node")
}

fn published_cluster(replica: &mut Replica) -> Option<u64> {
    replica.take_outputs().into_iter().filter_map(|output| if let Output::Peers(links) = output { Some(links.cluster) } else { None }).last()
}

#[test]
fn a_node_without_a_cluster_id_takes_it_from_a_member_it_knows() {
    let mut replica = node_one();
    published_cluster(&mut replica);
    replica.peer_hello(NodeId(9), "a:9".into(), 77);
    assert_ne!(published_cluster(&mut replica), Some(77), "a stranger names no cluster for it");
    replica.peer_hello(NodeId(2), "a:2".into(), 42);
    assert_eq!(published_cluster(&mut replica), Some(42), "a member's Hello does");
    replica.peer_hello(NodeId(3), "a:3".into(), 43);
    assert_ne!(published_cluster(&mut replica), Some(43), "the first one stands");
}
