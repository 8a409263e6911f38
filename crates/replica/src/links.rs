//! Whom this node keeps peer links with, and where it dials each — decided here, where the
//! simulation checks it; the transport only carries it out (`Output::Peers`).
//!
//! Where to dial member `id`, first found: its RAFT.DIAL override, its `--peers` address, the
//! address the configuration gives it, the address its own Hello gave. Besides the members, the
//! nodes that said hello from this node's cluster without being in its configuration: a node that
//! was away while they joined must answer them, or it could never catch up from a leader it has
//! not heard of. Nodes known to be removed are never dialled.

use std::collections::BTreeMap;

use raft::{LogIndex, NodeId};

use crate::replica::{Output, Replica};

/// Addresses remembered from the Hellos of nodes not in the configuration, at most (a stranger
/// cannot make the node dial without end).
const HEARD_MAX: usize = 16;

#[derive(Default)]
pub(crate) struct Links {
    /// RAFT.DIAL: this node's own overrides.
    dials: BTreeMap<NodeId, String>,
    /// What Hellos said, by sender.
    heard: BTreeMap<NodeId, String>,
    /// What was last handed to the shell, and the configuration it came from (its index, whether
    /// it was committed): nothing is recomputed while neither changes.
    published: Option<(BTreeMap<NodeId, String>, String, bool)>,
    published_from: Option<(LogIndex, bool)>,
    changed: bool,
}

impl Replica {
    /// A peer connection opened with a Hello from `from`, who takes connections at `address`.
    pub fn peer_hello(&mut self, from: NodeId, address: String) {
        let links = &mut self.links;
        if from == self.node.id() || address.is_empty() || links.heard.get(&from) == Some(&address) {
            return;
        }
        if links.heard.len() < HEARD_MAX || links.heard.contains_key(&from) {
            links.heard.insert(from, address);
            links.changed = true;
            self.publish_links();
        }
    }

    /// RAFT.DIAL: from now on dial member `id` at `address` (this node only).
    pub(crate) fn dial(&mut self, id: NodeId, address: String) {
        self.links.dials.insert(id, address);
        self.links.changed = true;
    }

    /// Hands the shell whom to dial where, if that changed: the members, those a change not yet
    /// committed removes (they must still hear a leader that removes itself), the nodes heard
    /// from; none on a node whose removal committed. A node waiting to join, whose configuration
    /// names no one yet, dials its `--peers`.
    pub(crate) fn publish_links(&mut self) {
        let index = self.node.membership_index();
        let committed = self.node.status().commit >= index;
        if !self.links.changed && self.links.published_from == Some((index, committed)) {
            return;
        }
        self.links.changed = false;
        self.links.published_from = Some((index, committed));
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
        if !(removed && committed) {
            for (id, address) in &links.heard {
                peers.entry(*id).or_insert_with(|| address.clone());
            }
        }
        peers.remove(&me);
        let advertise = membership.members.get(&me).map(|member| member.address.clone()).filter(|address| !address.is_empty());
        let advertise = advertise.or_else(|| flags.get(&me).cloned()).unwrap_or_default();
        let published = (peers, advertise, joining);
        if links.published.as_ref() == Some(&published) {
            return;
        }
        links.published = Some(published.clone());
        for id in unreachable {
            self.outputs.push(Output::Warning(format!("no address known for member {}: add it to --peers or RAFT.DIAL it", id.0)));
        }
        let (peers, advertise, joining) = published;
        self.outputs.push(Output::Peers { peers, advertise, joining });
    }
}
