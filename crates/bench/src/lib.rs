//! An in-memory cluster of pure Raft nodes with no I/O at all: messages move between vectors and
//! "persisting" is acknowledging. It measures the core alone, the ceiling for any real driver.

use std::collections::VecDeque;

use raft::{Config, Message, Node, NodeId, Restored};

pub struct MemoryCluster {
    pub nodes: Vec<Node>,
    in_flight: VecDeque<Message>,
    /// Entries applied on the leader, for the benchmark's throughput figure.
    pub applied_on_leader: u64,
}

impl MemoryCluster {
    /// A cluster of `size` nodes with node 1 elected leader.
    pub fn elected(size: u64) -> MemoryCluster {
        let peers: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let nodes = peers
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, peers.clone());
                config.seed = 7;
                config.inflight_appends_max = 256;
                Node::new(config, Restored::default()).expect("valid in-memory config")
            })
            .collect();
        let mut cluster = MemoryCluster { nodes, in_flight: VecDeque::new(), applied_on_leader: 0 };
        while !cluster.nodes[0].status().is_leader() {
            cluster.nodes[0].tick();
            cluster.pump();
        }
        cluster
    }

    /// Delivers messages and carries out Readys until the cluster is quiet.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for index in 0..self.nodes.len() {
                while self.nodes[index].has_ready() {
                    progressed = true;
                    let ready = self.nodes[index].ready();
                    if index == 0 {
                        self.applied_on_leader += ready.apply.len() as u64;
                    }
                    self.in_flight.extend(ready.send_now.iter().cloned());
                    self.in_flight.extend(ready.send_after_persist.iter().cloned());
                    self.nodes[index].advance(&ready);
                }
            }
            while let Some(message) = self.in_flight.pop_front() {
                progressed = true;
                let to = (message.to.0 - 1) as usize;
                self.nodes[to].step(message);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Proposes `batch` commands of `size` bytes on the leader and runs until they are applied there.
    pub fn propose_and_commit(&mut self, batch: usize, size: usize) {
        let target = self.applied_on_leader + batch as u64;
        for _ in 0..batch {
            self.nodes[0].propose(vec![0xab; size]).expect("node 1 stays leader: no ticks, no faults");
        }
        while self.applied_on_leader < target {
            self.pump();
        }
        // Keep memory flat over millions of iterations, as a service's snapshots would.
        for node in &mut self.nodes {
            let applied = node.status().applied;
            node.compact(applied, Vec::new()).expect("compacting at the applied index is allowed");
        }
        self.pump();
    }
}
