//! Whom this node keeps peer links with, and where it dials each — decided here, where the
//! simulation checks it; the transport only carries it out (`Output::Peers`).
//!
//! Where to dial member `id`, first found: its RAFT.DIAL override, its `--peers` address, the
//! address the configuration gives it, the address its own Hello gave. Besides the members: a
//! member just removed, while the leader still tells it of its removal; and the nodes that said
//! hello from this node's cluster without being in its configuration — a node that was away
//! while they joined must answer them, or it could never catch up from a leader it has not heard
//! of. A node whose removal committed dials only those that dial it. A peer that drops out of
//! the links is still dialled for a request timeout: requests it forwarded here are answered
//! within that, and the answers must reach it.

use std::collections::BTreeMap;

use raft::{LogIndex, NodeId};

use crate::replica::{Output, Replica};

/// Addresses remembered from the Hellos of nodes not in the configuration, at most (a stranger
/// cannot make the node dial without end).
const HEARD_MAX: usize = 16;

/// What the transport is told (`Output::Peers`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerLinks {
    /// Keep links with exactly these peers, dialled at these addresses.
    pub peers: BTreeMap<NodeId, String>,
    /// Where this node takes peer connections, for its Hellos (empty: not known).
    pub advertise: String,
    /// This node waits to be added to a cluster (see `wire::admission`).
    pub joining: bool,
    /// The cluster's id, for Hellos and admission (0: not named yet).
    pub cluster: u64,
}

#[derive(Default)]
pub(crate) struct Links {
    /// RAFT.DIAL: this node's own overrides.
    dials: BTreeMap<NodeId, String>,
    /// What Hellos said, by sender.
    heard: BTreeMap<NodeId, String>,
    /// Every address a peer was last dialled at: where a member just removed is still dialled
    /// while the leader tells it of its removal.
    dialled: BTreeMap<NodeId, String>,
    /// Peers that left the links, still dialled until the tick given: the answers to requests
    /// they forwarded here (and a removed node's last appends) must reach them.
    leaving: BTreeMap<NodeId, (String, u64)>,
    /// What was last handed to the shell, and the configuration it came from (its index, whether
    /// it was committed): nothing is recomputed while neither changes.
    published: Option<PeerLinks>,
    published_from: Option<(LogIndex, bool, Vec<NodeId>)>,
    changed: bool,
    /// The cluster id a member this node knows named in its Hello, while this node's store has
    /// none: a node that stopped before it applied the entry naming its cluster learns it from
    /// its own members, and can then admit (and dial back) a member added since.
    vouched_cluster: u64,
}

impl Replica {
    /// A peer connection opened with a Hello from `from`, who takes connections at `address` and
    /// names `cluster` (0: none yet).
    pub fn peer_hello(&mut self, from: NodeId, address: String, cluster: u64) {
        let unnamed = cluster != 0 && self.store().cluster_id() == 0 && self.links.vouched_cluster == 0;
        let known = || self.node.membership().is_member(from) || self.options.peer_addresses.contains_key(&from);
        if unnamed && known() && self.options.mutation != crate::Mutation::ClusterNotVouched {
            self.links.vouched_cluster = cluster;
            self.links.changed = true;
            self.publish_links();
        }
        let links = &mut self.links;
        let ignored = self.options.mutation == crate::Mutation::HelloIgnored;
        if ignored || from == self.node.id() || address.is_empty() || links.heard.get(&from) == Some(&address) {
            return;
        }
        if links.heard.len() < HEARD_MAX || links.heard.contains_key(&from) {
            links.heard.insert(from, address);
            links.changed = true;
            self.publish_links();
        }
    }

    /// On each tick: a peer whose time to leave came goes.
    pub(crate) fn expire_leaving_links(&mut self) {
        if self.links.leaving.values().any(|(_, until)| *until <= self.now) {
            self.links.changed = true;
        }
    }

    /// RAFT.DIAL: from now on dial member `id` at `address` (this node only).
    pub(crate) fn dial(&mut self, id: NodeId, address: String) {
        self.links.dials.insert(id, address);
        self.links.changed = true;
    }

    /// Hands the shell whom to dial where, and the cluster id, if either changed: the members,
    /// those a change not yet committed removes (they must still hear a leader that removes
    /// itself), the nodes heard from; a node whose removal committed, only those. A node waiting
    /// to join, whose configuration names no one yet, dials its `--peers`. A peer that drops out
    /// is dialled for one more request timeout.
    pub(crate) fn publish_links(&mut self) {
        let index = self.node.membership_index();
        let committed = self.node.status().commit >= index;
        let cluster = match self.store().cluster_id() {
            0 => self.links.vouched_cluster,
            applied => applied,
        };
        let departing: Vec<NodeId> = self.node.departing().collect();
        let same_cluster = self.links.published.as_ref().is_some_and(|published| published.cluster == cluster);
        let from = (index, committed, departing);
        if !self.links.changed && same_cluster && self.links.published_from.as_ref() == Some(&from) {
            return;
        }
        self.links.changed = false;
        let departing = from.2.clone();
        self.links.published_from = Some(from);
        let (me, membership) = (self.node.id(), self.node.membership());
        let flags = &self.options.peer_addresses;
        let mut linked = membership.members.clone();
        let removed = membership.removed.contains(&me);
        if removed && committed {
            linked.clear();
        } else if !committed {
            for (id, member) in self.node.committed_membership().members {
                linked.entry(id).or_insert(member);
            }
        }
        let links = &mut self.links;
        links.heard.retain(|id, _| !membership.removed.contains(id));
        let mut peers = BTreeMap::new();
        let mut unreachable = Vec::new();
        let joining = linked.is_empty() && !removed;
        if joining {
            peers.extend(flags.iter().map(|(&id, address)| (id, address.clone())));
        }
        for (id, member) in &linked {
            let configured = Some(&member.address).filter(|address| !address.is_empty());
            match links.dials.get(id).or(flags.get(id)).or(configured).or(links.heard.get(id)) {
                Some(address) => {
                    peers.insert(*id, address.clone());
                }
                None if *id != me => unreachable.push(*id),
                None => {}
            }
        }
        for id in departing {
            if let Some(address) = links.dialled.get(&id) {
                peers.entry(id).or_insert_with(|| address.clone());
            }
        }
        // Even a removed node answers whoever dials it (a node that has not heard of the removal
        // forwards its clients' requests to it, and must hear back).
        for (id, address) in &links.heard {
            peers.entry(*id).or_insert_with(|| address.clone());
        }
        peers.remove(&me);
        links.dialled.extend(peers.iter().map(|(id, address)| (*id, address.clone())));
        let now = self.now;
        if let Some(previous) = &links.published {
            for (id, address) in &previous.peers {
                if !peers.contains_key(id) && !links.leaving.contains_key(id) && self.options.mutation != crate::Mutation::LinksDroppedAtOnce {
                    links.leaving.insert(*id, (address.clone(), now + self.options.request_timeout_ticks));
                }
            }
        }
        links.leaving.retain(|id, (_, until)| *until > now && !peers.contains_key(id));
        for (id, (address, _)) in &links.leaving {
            peers.insert(*id, address.clone());
        }
        let advertise = membership.members.get(&me).map(|member| member.address.clone()).filter(|address| !address.is_empty());
        let advertise = advertise.or_else(|| flags.get(&me).cloned()).unwrap_or_default();
        let published = PeerLinks { peers, advertise, joining, cluster };
        if links.published.as_ref() == Some(&published) {
            return;
        }
        links.published = Some(published.clone());
        for id in unreachable {
            self.outputs.push(Output::Warning(format!("no address known for member {}: add it to --peers or RAFT.DIAL it", id.0)));
        }
        self.outputs.push(Output::Peers(published));
    }
}
