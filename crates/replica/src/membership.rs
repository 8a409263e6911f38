//! Membership on the node: the admin commands (RAFT.NODE ADD/PROMOTE/REMOVE, RAFT.NODES,
//! RAFT.TRANSFER-LEADER, RAFT.DIAL) served by the leader and answered once their change commits
//! (or the target leads), and the hand-over a leader makes before it shuts down.

use raft::{ChangeError, Membership, NodeId};

use crate::replica::{Caller, Replica};
use crate::request::{Admin, Answer};

impl Replica {
    /// Serves a membership command as the leader.
    pub(crate) fn serve_admin(&mut self, admin: Admin, caller: Caller) {
        match admin {
            Admin::Change(change) => match self.node.propose_change(&change) {
                // (A repeat of the change in progress waits for the same entry.)
                Ok(Some(index)) => self.changes.entry(index.0).or_default().push(caller),
                Ok(None) => self.answer(caller, ok()),
                Err(ChangeError::NotLeader { .. }) => self.answer(caller, Answer::Error("not the leader; retry".into())),
                Err(error) => self.answer(caller, Answer::Error(error.to_string())),
            },
            Admin::TransferLeader(target) => match self.node.transfer_leadership(target) {
                Ok(()) if target == self.node.id() => self.answer(caller, ok()),
                Ok(()) => {
                    if let Some((_, earlier)) = self.transfer_waiter.replace((target, caller)) {
                        self.answer(earlier, Answer::Error("another leadership transfer replaced this one".into()));
                    }
                }
                Err(error) => self.answer(caller, Answer::Error(error.to_string())),
            },
            Admin::Nodes => {
                let lines = self.member_lines().into_iter().map(|line| Some(line.into_bytes())).collect();
                self.answer(caller, Answer::Reply(kv::Reply::Values(lines)));
            }
        }
    }

    /// RAFT.NODES, as the leader sees it: one line per member.
    fn member_lines(&self) -> Vec<String> {
        let membership = self.node.membership();
        let last = self.node.status().last_index;
        membership
            .members
            .iter()
            .map(|(&id, member)| {
                let (matched, reachable) = if id == self.node.id() { (last, true) } else { self.node.follower_progress(id).unwrap_or_default() };
                let address = if member.address.is_empty() { self.options.peer_addresses.get(&id).cloned().unwrap_or_default() } else { member.address.clone() };
                let role = if member.voter { "voter" } else { "learner" };
                let lag = last.0.saturating_sub(matched.0);
                let reachable = if reachable { "yes" } else { "no" };
                format!("id={} addr={address} role={role} match={} lag={lag} reachable={reachable}", id.0, matched.0)
            })
            .collect()
    }

    /// A configuration entry at `index` was applied: the change proposed there is done.
    pub(crate) fn config_applied(&mut self, index: u64) {
        for caller in self.changes.remove(&index).unwrap_or_default() {
            self.answer(caller, ok());
        }
    }

    /// After the node's state moved: changes whose leader is gone have an unknown outcome, and a
    /// transfer is answered once its target leads (or it was abandoned).
    pub(crate) fn settle_admin(&mut self) {
        let status = self.node.status();
        if !status.is_leader() && !self.changes.is_empty() {
            for caller in std::mem::take(&mut self.changes).into_values().flatten() {
                self.answer(caller, Answer::Error("leadership changed before the membership change committed; its outcome is unknown, retry".into()));
            }
        }
        if let Some((target, _)) = self.transfer_waiter {
            let answer = if status.leader == Some(target) {
                Some(ok())
            } else if status.is_leader() && self.node.transferring().is_none() {
                Some(Answer::Error(format!("node {} did not take over within an election timeout; this node still leads", target.0)))
            } else {
                None
            };
            if let (Some(answer), Some((_, caller))) = (answer, self.transfer_waiter.take()) {
                self.answer(caller, answer);
            }
        }
        self.publish_links();
    }

    /// SIGTERM: a leader hands leadership to its most caught-up voter and stops once it hears
    /// from a new leader (or after `hand_over_ticks`); any other node stops at once. `Output::Stopped` says
    /// when. Returns the target of the hand-over, if one began.
    pub fn shut_down(&mut self) -> Option<NodeId> {
        let target = self.hand_over();
        // With no one to hand over to, there is nothing to wait for.
        let wait = if target.is_some() { self.options.hand_over_ticks } else { 0 };
        self.stop_at = Some(self.now() + wait);
        self.drive();
        target
    }

    fn hand_over(&mut self) -> Option<NodeId> {
        if !self.node.status().is_leader() {
            return None;
        }
        let me = self.node.id();
        let voters: Vec<NodeId> = self.node.membership().voters().filter(|&id| id != me).collect();
        let target = voters.into_iter().max_by_key(|&id| self.node.follower_progress(id).map_or(0, |(matched, _)| matched.0))?;
        self.node.transfer_leadership(target).ok()?;
        Some(target)
    }

    /// Whether this node was removed from the cluster (it then refuses every request).
    pub fn removed(&self) -> bool {
        self.node.membership().removed.contains(&self.node.id())
    }

    /// The configuration in effect on this node.
    pub fn membership(&self) -> &Membership {
        self.node.membership()
    }
}

fn ok() -> Answer {
    Answer::Reply(kv::Reply::Done)
}

/// Whether a node's recovered state holds no configuration: no entry and no snapshot (a term
/// heard of, or a vote, does not give one).
pub fn fresh(restored: &raft::Restored) -> bool {
    restored.snapshot.is_none() && restored.entries.is_empty()
}

/// The voters a node starts with (`raft::Config::new`): its `--peers`, if they list the node
/// itself and it does not join a cluster (`--join`) on an empty data directory; otherwise none,
/// and it learns the configuration from the leader's log. Once any configuration is in its log
/// or snapshot, that one rules whatever this says.
pub fn bootstrap_voters(me: NodeId, peers: impl IntoIterator<Item = NodeId>, join: bool, restored: &raft::Restored) -> Vec<NodeId> {
    let peers: Vec<NodeId> = peers.into_iter().collect();
    if (join && fresh(restored)) || !peers.contains(&me) {
        return Vec::new();
    }
    peers
}

#[cfg(test)]
mod tests {
    use raft::{HardState, Term};

    use super::*;

    fn peers() -> Vec<NodeId> {
        vec![NodeId(1), NodeId(2), NodeId(3)]
    }

    #[test]
    fn a_node_bootstraps_from_its_peers_unless_it_joins_or_is_not_among_them() {
        let empty = raft::Restored::default();
        assert_eq!(bootstrap_voters(NodeId(1), peers(), false, &empty), peers());
        assert_eq!(bootstrap_voters(NodeId(1), peers(), true, &empty), Vec::<NodeId>::new(), "--join on an empty directory");
        assert_eq!(bootstrap_voters(NodeId(4), peers(), false, &empty), Vec::<NodeId>::new(), "not in its --peers");
    }

    /// A node that joins hears of the cluster's term before the leader sends it any entry; if it
    /// restarts then, it still has no configuration and must go on waiting, not start as a voter
    /// of its `--peers` (which may list it).
    #[test]
    fn a_joining_node_that_only_learned_a_term_still_joins() {
        let term_only = raft::Restored { hard_state: HardState { term: Term(7), ..HardState::default() }, ..raft::Restored::default() };
        assert!(fresh(&term_only));
        assert_eq!(bootstrap_voters(NodeId(1), peers(), true, &term_only), Vec::<NodeId>::new());
    }
}
