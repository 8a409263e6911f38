//! Who is in the cluster: voters, learners (they receive the log but neither vote nor count in a
//! quorum) and the ids removed for ever, with each member's peer address. A configuration is a
//! log entry (`EntryKind::Config`) holding the whole membership; it takes effect on every node as
//! soon as it is in that node's log (thesis §4.1), committed or not, and is undone if the entry is
//! cut off. Changes add or remove one voter at a time (single-server changes, thesis §4.2): any
//! majority of the old voters and any majority of the new ones share a node, so two leaders can
//! never be elected in one term across a change. Two rules keep that true (§4.1 and the fix to the
//! single-server bug the thesis's errata describe): at most one change is uncommitted at a time,
//! and a leader proposes none before it has committed an entry of its own term.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{put_varint, DecodeError, Reader};
use crate::config::Broken;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Role};

/// One member: a voter or a learner, and where peers dial it ("" for the original members, which
/// every node dials at the address of its own `--peers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub voter: bool,
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub members: BTreeMap<NodeId, Member>,
    /// Ids that were members and were removed: never admitted again (a node on a wiped disk with
    /// an old id could otherwise vote twice in a term).
    pub removed: BTreeSet<NodeId>,
}

/// A change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A learner that peers dial at `address`.
    AddLearner { id: NodeId, address: String },
    /// A learner becomes a voter.
    Promote { id: NodeId },
    /// Any member leaves, a voter or a learner, the leader included.
    Remove { id: NodeId },
}

/// Why a change was refused. Each is definite: nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("not the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("a membership change is already in progress; retry once it is committed")]
    InProgress,
    #[error("the leader has not committed an entry of its term yet; retry")]
    NotReady,
    #[error("a leadership transfer is in progress; retry")]
    Transferring,
    #[error("node {} was removed from this cluster; ids are never reused", .0 .0)]
    Removed(NodeId),
    #[error("node {} is not a member", .0 .0)]
    NotAMember(NodeId),
    #[error("node {} is already a member at {address:?}", id.0)]
    OtherAddress { id: NodeId, address: String },
    #[error("node {} is not caught up ({behind} entries behind); retry once it is", id.0)]
    NotCaughtUp { id: NodeId, behind: u64 },
    #[error("removing node {} would leave no voter", .0 .0)]
    LastVoter(NodeId),
    #[error("node ids start at 1")]
    ZeroId,
}

impl Membership {
    /// The first configuration: these voters, dialed at each node's own `--peers`.
    pub fn bootstrap(voters: &[NodeId]) -> Membership {
        let members = voters.iter().map(|&id| (id, Member { voter: true, address: String::new() })).collect();
        Membership { members, removed: BTreeSet::new() }
    }

    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().filter(|(_, member)| member.voter).map(|(&id, _)| id)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(|member| member.voter)
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    /// The membership after `change`; None if it is already in effect (a repeat).
    pub fn after(&self, change: &Change) -> Result<Option<Membership>, ChangeError> {
        let mut next = self.clone();
        match change {
            Change::AddLearner { id, address } => {
                if id.0 == 0 {
                    return Err(ChangeError::ZeroId);
                }
                if self.removed.contains(id) {
                    return Err(ChangeError::Removed(*id));
                }
                match self.members.get(id) {
                    Some(member) if member.address == *address || (member.voter && member.address.is_empty()) => return Ok(None),
                    Some(member) => return Err(ChangeError::OtherAddress { id: *id, address: member.address.clone() }),
                    None => next.members.insert(*id, Member { voter: false, address: address.clone() }),
                };
            }
            Change::Promote { id } => match next.members.get_mut(id) {
                Some(member) if member.voter => return Ok(None),
                Some(member) => member.voter = true,
                None if self.removed.contains(id) => return Err(ChangeError::Removed(*id)),
                None => return Err(ChangeError::NotAMember(*id)),
            },
            Change::Remove { id } => {
                if self.removed.contains(id) {
                    return Ok(None);
                }
                let Some(member) = next.members.remove(id) else { return Err(ChangeError::NotAMember(*id)) };
                if member.voter && next.voters().next().is_none() {
                    return Err(ChangeError::LastVoter(*id));
                }
                next.removed.insert(*id);
            }
        }
        Ok(Some(next))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, self.members.len() as u64);
        for (id, member) in &self.members {
            put_varint(&mut out, id.0);
            out.push(u8::from(member.voter));
            put_varint(&mut out, member.address.len() as u64);
            out.extend_from_slice(member.address.as_bytes());
        }
        put_varint(&mut out, self.removed.len() as u64);
        for id in &self.removed {
            put_varint(&mut out, id.0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Membership, DecodeError> {
        let mut reader = Reader::new(bytes);
        let mut membership = Membership::default();
        for _ in 0..reader.varint()? {
            let id = NodeId(reader.varint()?);
            let voter = reader.bool()?;
            let address = String::from_utf8(reader.bytes()?.to_vec()).map_err(|_| DecodeError::OutOfRange("a member's address is not UTF-8"))?;
            if id.0 == 0 {
                return Err(DecodeError::OutOfRange("member id 0"));
            }
            membership.members.insert(id, Member { voter, address });
        }
        for _ in 0..reader.varint()? {
            membership.removed.insert(NodeId(reader.varint()?));
        }
        reader.finish()?;
        if membership.voters().next().is_none() {
            return Err(DecodeError::OutOfRange("a configuration without voters"));
        }
        Ok(membership)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(membership: &Membership) -> (Vec<u64>, Vec<u64>) {
        let voters = membership.voters().map(|id| id.0).collect();
        let learners = membership.members.iter().filter(|(_, member)| !member.voter).map(|(id, _)| id.0).collect();
        (voters, learners)
    }

    #[test]
    fn changes_move_one_server_at_a_time_and_repeats_change_nothing() {
        let start = Membership::bootstrap(&[NodeId(1), NodeId(2), NodeId(3)]);
        let add = Change::AddLearner { id: NodeId(4), address: "h:4".into() };
        let added = start.after(&add).expect("valid").expect("a change");
        assert_eq!(ids(&added), (vec![1, 2, 3], vec![4]));
        assert_eq!(added.after(&add), Ok(None), "the same learner again");
        assert_eq!(added.after(&Change::AddLearner { id: NodeId(4), address: "h:5".into() }), Err(ChangeError::OtherAddress { id: NodeId(4), address: "h:4".into() }));
        assert_eq!(start.after(&Change::AddLearner { id: NodeId(2), address: "h:2".into() }), Ok(None), "an original voter");
        let promoted = added.after(&Change::Promote { id: NodeId(4) }).expect("valid").expect("a change");
        assert_eq!(ids(&promoted), (vec![1, 2, 3, 4], vec![]));
        assert_eq!(promoted.after(&Change::Promote { id: NodeId(4) }), Ok(None));
        let removed = promoted.after(&Change::Remove { id: NodeId(1) }).expect("valid").expect("a change");
        assert_eq!(ids(&removed), (vec![2, 3, 4], vec![]));
        assert_eq!(removed.after(&Change::Remove { id: NodeId(1) }), Ok(None), "already gone");
        assert_eq!(removed.after(&Change::AddLearner { id: NodeId(1), address: "h:1".into() }), Err(ChangeError::Removed(NodeId(1))));
        assert_eq!(removed.after(&Change::Promote { id: NodeId(9) }), Err(ChangeError::NotAMember(NodeId(9))));
        let single = Membership::bootstrap(&[NodeId(1)]);
        assert_eq!(single.after(&Change::Remove { id: NodeId(1) }), Err(ChangeError::LastVoter(NodeId(1))));
    }

    #[test]
    fn a_membership_round_trips_and_garbage_is_refused() {
        let membership = Membership::bootstrap(&[NodeId(1), NodeId(2)])
            .after(&Change::AddLearner { id: NodeId(7), address: "10.0.0.7:7000".into() })
            .expect("valid")
            .expect("a change")
            .after(&Change::Remove { id: NodeId(1) })
            .expect("valid")
            .expect("a change");
        assert_eq!(Membership::decode(&membership.encode()), Ok(membership.clone()));
        let bytes = membership.encode();
        for cut in 0..bytes.len() {
            assert!(Membership::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Membership::decode(&Membership::default().encode()).is_err(), "no voters");
    }
}

impl crate::node::Node {
    /// The configuration in effect on this node (the latest in its log, committed or not).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The configuration as of the commit index (the one `membership` replaces, while a change is
    /// uncommitted).
    pub fn committed_membership(&self) -> Membership {
        self.membership_at(self.log.commit).1
    }

    /// The index of the configuration's entry (0: the bootstrap one, never written).
    pub fn membership_index(&self) -> LogIndex {
        self.membership_index
    }

    /// Proposes one change of membership (thesis §4.2: one server at a time). Refused while
    /// another change is uncommitted, before this leader has committed an entry of its own term,
    /// during a leadership transfer, and, for a promotion, while the learner is behind the commit
    /// index. `Ok(None)`: the change is in effect already (a repeat), nothing proposed;
    /// `Ok(Some(index))`: it commits at `index` (a repeat of the change in progress: that one).
    pub fn propose_change(&mut self, change: &Change) -> Result<Option<LogIndex>, ChangeError> {
        if self.role != Role::Leader {
            return Err(ChangeError::NotLeader { leader: self.leader });
        }
        // An uncommitted entry that only records the configuration (`record_membership`) is no
        // change: another may follow it. A repeat of the change in progress waits for it.
        let broken = self.config.broken;
        if self.membership_index > self.log.commit
            && self.membership_at(self.log.commit).1 != self.membership
            && broken != Broken::TwoChangesInFlight
        {
            return match self.membership.after(change) {
                Ok(None) => Ok(Some(self.membership_index)),
                _ => Err(ChangeError::InProgress),
            };
        }
        let Some(next) = self.membership.after(change)? else { return Ok(None) };
        if self.log.term_at(self.log.commit) != Some(self.term) && broken != Broken::ChangeBeforeCommitInTerm {
            return Err(ChangeError::NotReady);
        }
        if self.transfer.is_some() {
            return Err(ChangeError::Transferring);
        }
        if let Change::Promote { id } = change {
            let matched = self.progress.get(id).map_or(LogIndex::ZERO, |progress| progress.match_index);
            if matched < self.log.commit {
                return Err(ChangeError::NotCaughtUp { id: *id, behind: self.log.commit.0 - matched.0 });
            }
        }
        Ok(Some(self.append_membership(next)))
    }

    /// Writes the configuration in effect as an entry, unchanged, if none was ever written: the
    /// bootstrap voters (from the flags of each node's first start) then live in the log and in
    /// snapshots, and nothing a later start is given can change them. Leader only; `None` if there
    /// was nothing to do.
    pub fn record_membership(&mut self) -> Option<LogIndex> {
        if self.role != Role::Leader || self.membership_index != LogIndex::ZERO || self.transfer.is_some() {
            return None;
        }
        Some(self.append_membership(self.membership.clone()))
    }

    fn append_membership(&mut self, next: Membership) -> LogIndex {
        let index = self.log.last_index().next();
        let data = bytes::Bytes::from(next.encode());
        self.log.append(Entry { term: self.term, index, kind: EntryKind::Config, data });
        self.set_membership(index, next);
        self.broadcast_pending = true;
        index
    }

    /// Takes the latest configuration in the log (after entries were appended or cut off).
    pub(crate) fn refresh_membership(&mut self) {
        let (index, membership) = self.membership_at(self.log.last_index());
        if index != self.membership_index || membership != self.membership {
            self.set_membership(index, membership);
        }
    }

    /// The configuration in effect at `index`: the latest configuration entry at or before it,
    /// else the base one; and that entry's index.
    pub fn membership_at(&self, index: LogIndex) -> (LogIndex, Membership) {
        let first = self.log.snapshot_meta().index.next();
        let mut at = index;
        while at >= first && at > LogIndex::ZERO {
            if let Some(entry) = self.log.entry(at).filter(|entry| entry.kind == EntryKind::Config) {
                // Entries the leader wrote; one that does not decode is not a configuration.
                if let Ok(membership) = Membership::decode(&entry.data) {
                    return (at, membership);
                }
            }
            at = at.prev();
        }
        self.base_membership.clone()
    }

    /// A configuration takes effect: a leader tracks the new members and forgets the gone ones;
    /// a node that is no longer a voter stops campaigning (a leader steps down only once the
    /// change is committed: `maybe_commit`).
    fn set_membership(&mut self, index: LogIndex, membership: Membership) {
        let previous = std::mem::replace(&mut self.membership, membership);
        self.membership_index = index;
        if self.role == Role::Leader {
            let last = self.log.last_index();
            // A removed member stays a replication target until it has its removal
            // (`maybe_commit` lets it go): only the last change's departures are kept.
            let departing: Vec<NodeId> = previous.members.keys().copied().filter(|id| !self.membership.is_member(*id)).collect();
            self.progress.retain(|id, _| self.membership.is_member(*id) || departing.contains(id));
            for peer in self.followers() {
                self.progress.entry(peer).or_insert_with(|| Progress::new(last));
            }
            if self.transfer.as_ref().is_some_and(|transfer| !self.membership.is_voter(transfer.target)) {
                self.transfer = None;
            }
        } else if matches!(self.role, Role::Candidate | Role::PreCandidate) && !self.may_campaign() {
            self.become_follower(self.term, None);
        }
    }

    /// Whether this node may start an election: electable, and a voter of its configuration, or
    /// of the committed one when the change that removes it is not committed yet. Such a node
    /// may hold the only copy of the newest entries (its removal among them): it must be able to
    /// lead, to commit them (counting the others only, as a leader removing itself does) and then
    /// hand over; otherwise the others could wait for its vote for ever. Its vote requests reach
    /// only nodes that do not have its removal, so it never disturbs a cluster that committed it.
    pub(crate) fn may_campaign(&self) -> bool {
        self.electable
            && (self.membership.is_voter(self.id)
                || self.committed_membership().is_voter(self.id)
                || (self.config.broken == Broken::RemovedCampaigns && self.membership.removed.contains(&self.id)))
    }

    pub(crate) fn sole_voter(&self) -> bool {
        self.membership.is_voter(self.id) && self.membership.voters().count() == 1
    }

    /// Whether to look at a message from `message.from`: anyone's but a vote request from a node
    /// whose removal this node knows to be committed (a removed node never has a reason to
    /// campaign; one whose removal is not committed may still be needed: the entry removing it
    /// may be cut off by a leader whose log wins, and then it may be the vote the others lack). A node being
    /// added knows nothing of the cluster until the leader's log tells it; a leader removing
    /// itself leads its term until the change commits; and a node that missed changes may know a
    /// candidate only from a later configuration and must still answer it, or it could hold back
    /// an election for ever. Terms and the log check keep this safe (a majority of any
    /// configuration a stale node holds intersects one that has the next configuration); only
    /// voters' votes are counted, and pre-vote and leader stickiness keep a node that does not
    /// know it was removed from disturbing the others.
    pub(crate) fn admits(&self, message: &Message) -> bool {
        !(matches!(message.body, MessageBody::VoteRequest { .. })
            && self.membership.removed.contains(&message.from)
            && self.committed_membership().removed.contains(&message.from))
    }

    /// The leader's view of a follower: its match index, and whether it answered an append within
    /// the last election timeout.
    pub fn follower_progress(&self, id: NodeId) -> Option<(LogIndex, bool)> {
        let timeout = u64::from(self.config.election_timeout_ticks);
        self.progress.get(&id).map(|progress| (progress.match_index, progress.heard_at > 0 && self.ticks - progress.heard_at < timeout))
    }

    /// As leader: the members just removed that it still sends its log to, until they have the
    /// entry that removed them (so that they know). None on any other node.
    pub fn departing(&self) -> impl Iterator<Item = NodeId> + '_ {
        let leading = self.role == Role::Leader;
        self.progress.keys().copied().filter(move |id| leading && !self.membership.is_member(*id))
    }
}
