//! SIGTERM's hand-over (`Replica::shut_down`) in a cluster of two voters: the leader may stop
//! only once its target leads, since the target needs its vote. Before, it stopped as soon as the
//! target's vote request made it step down, its vote unsent, and no one led until it came back
//! (node chaos seed 8,510).

use raft::{HardState, NodeId, Restored};
use replica::{Options, Output, Replica};

fn node(id: u64) -> Replica {
    let mut config = raft::Config::new(NodeId(id), vec![NodeId(1), NodeId(2)]);
    config.seed = id;
    let restored = Restored { hard_state: HardState::default(), snapshot: None, entries: Vec::new() };
    let options = Options { forward_id_base: id << 40, cluster_id_proposal: 7, ..Options::default() };
    Replica::new(config, restored, kv::Store::new(), options).expect("a valid node")
}

/// Carries out every output of the running nodes, as the shell does: saves complete, frames go to
/// the other node if it runs; at `Stopped` a node's shell exits and nothing after it happens.
fn pump(nodes: &mut [Replica; 2], running: &mut [bool; 2]) {
    loop {
        let mut quiet = true;
        for i in 0..2 {
            if !running[i] {
                continue;
            }
            let outputs = nodes[i].take_outputs();
            quiet &= outputs.is_empty();
            for output in outputs {
                match output {
                    Output::Save { id, .. } => nodes[i].persisted(id),
                    Output::Send { to, frame } if running[(to.0 - 1) as usize] => nodes[(to.0 - 1) as usize].peer_frame(NodeId(i as u64 + 1), frame),
                    Output::Stopped => {
                        running[i] = false;
                        break;
                    }
                    _ => {}
                }
            }
        }
        if quiet {
            return;
        }
    }
}

#[test]
fn a_leader_of_two_voters_stops_only_once_its_target_leads() {
    let mut nodes = [node(1), node(2)];
    let mut running = [true, true];
    let mut ticks = 0;
    while !nodes.iter().any(|node| node.status().is_leader()) {
        for node in nodes.iter_mut() {
            node.tick();
        }
        pump(&mut nodes, &mut running);
        ticks += 1;
        assert!(ticks < 1000, "no leader elected");
    }
    // Let the leader commit an entry of its term (the cluster id) before the SIGTERM.
    for _ in 0..20 {
        for node in nodes.iter_mut() {
            node.tick();
        }
        pump(&mut nodes, &mut running);
    }
    let leader = if nodes[0].status().is_leader() { 0 } else { 1 };
    let target = 1 - leader;
    assert_eq!(nodes[leader].shut_down(), Some(NodeId(target as u64 + 1)), "the leader hands over to the other voter");
    for _ in 0..300 {
        pump(&mut nodes, &mut running);
        if !running[leader] {
            break;
        }
        for i in 0..2 {
            if running[i] {
                nodes[i].tick();
            }
        }
    }
    pump(&mut nodes, &mut running);
    assert!(!running[leader], "the old leader stopped within its hand-over time");
    assert!(nodes[target].status().is_leader(), "the target leads: {}", nodes[target].status());
}
