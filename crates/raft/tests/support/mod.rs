//! A message-level harness for step and paper tests: nodes in a map, messages in a queue, and the
//! test deciding what is delivered, dropped or injected. "Persisting" is acknowledging.

#![allow(dead_code)] // each test file uses a different part

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::{Config, Message, Node, NodeId, Ready, Restored};

pub struct Cluster {
    pub nodes: BTreeMap<u64, Node>,
    pub queue: VecDeque<Message>,
    /// Nodes whose messages (in and out) are dropped.
    pub isolated: BTreeSet<u64>,
    /// Every Ready handed out, per node, for tests that inspect what a node asked the driver to do.
    pub readies: BTreeMap<u64, Vec<Ready>>,
}

pub fn config(id: u64, size: u64) -> Config {
    let mut config = Config::new(NodeId(id), (1..=size).map(NodeId).collect());
    config.election_timeout_ticks = 10;
    config.heartbeat_ticks = 2;
    config.noop_on_election = false;
    config.seed = 42;
    config
}

impl Cluster {
    pub fn new(size: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::restored(size, tweak, |_| Restored::default())
    }

    pub fn restored(size: u64, tweak: impl Fn(&mut Config), restore: impl Fn(u64) -> Restored) -> Cluster {
        let nodes = (1..=size)
            .map(|id| {
                let mut config = config(id, size);
                tweak(&mut config);
                (id, Node::new(config, restore(id)).expect("valid test config"))
            })
            .collect();
        Cluster { nodes, queue: VecDeque::new(), isolated: BTreeSet::new(), readies: BTreeMap::new() }
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("a node of the cluster")
    }

    /// Carries out every pending Ready of every node, queueing the messages they send.
    pub fn flush(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            while self.nodes[&id].has_ready() {
                let node = self.nodes.get_mut(&id).expect("present");
                let ready = node.ready();
                node.advance(&ready);
                for message in ready.send_now.iter().chain(&ready.send_after_persist) {
                    if !self.isolated.contains(&message.from.0) && !self.isolated.contains(&message.to.0) {
                        self.queue.push_back(message.clone());
                    }
                }
                self.readies.entry(id).or_default().push(ready);
            }
        }
    }

    /// Delivers messages until nothing is left to deliver.
    pub fn settle(&mut self) {
        loop {
            self.flush();
            let Some(message) = self.queue.pop_front() else { return };
            if let Some(node) = self.nodes.get_mut(&message.to.0) {
                node.step(message);
            }
        }
    }

    /// `size` voters, node 1 leading, with an entry of its term committed (so that it may change
    /// the configuration).
    pub fn led_by_one(size: u64) -> Cluster {
        let mut cluster = Cluster::new(size, |_| {});
        cluster.elect(1);
        cluster.node_mut(1).propose(b"x".to_vec()).expect("leader");
        cluster.settle();
        cluster
    }

    /// Ticks one node (only) until it leads, settling after every tick.
    pub fn elect(&mut self, id: u64) {
        for _ in 0..1000 {
            if self.node(id).status().is_leader() {
                return;
            }
            self.node_mut(id).tick();
            self.settle();
        }
        panic!("node {id} did not become leader");
    }

    pub fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                self.node_mut(id).tick();
            }
            self.settle();
        }
    }
}

/// A whole snapshot of `data` at `index`/`term`, as the one chunk that carries it.
pub fn whole_snapshot(index: u64, term: u64, data: &[u8]) -> raft::MessageBody {
    raft::MessageBody::whole_snapshot(raft::SnapshotMeta { index: raft::LogIndex(index), term: raft::Term(term) }, data)
}
