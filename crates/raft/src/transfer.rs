//! Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the target's log
//! up to its own, then tells it to campaign at once (`TimeoutNow`). The target's vote requests
//! carry `transfer`, so voters that heard from the leader lately still answer them; the leader
//! gave up its lease when the transfer began, so no lease read can overlap the new leader. A
//! transfer that has not happened within an election timeout is abandoned and proposals resume.

use crate::message::MessageBody;
use crate::node::Node;
use crate::types::{NodeId, Role};

#[derive(Clone, Debug)]
pub(crate) struct Transfer {
    pub target: NodeId,
    pub ticks_left: u32,
    /// `TimeoutNow` went out.
    pub sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("not the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("node {} is not a voter", .0 .0)]
    NotAVoter(NodeId),
}

impl Node {
    /// Starts handing leadership to `target`. `Ok` once the transfer began (or `target` already
    /// leads); the driver learns the outcome from the status: `target` leads, or this node still
    /// does once `transferring()` is None again (abandoned).
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader { leader: self.leader });
        }
        if target == self.id {
            return Ok(());
        }
        if !self.membership.is_voter(target) {
            return Err(TransferError::NotAVoter(target));
        }
        self.transfer = Some(Transfer { target, ticks_left: self.config.election_timeout_ticks, sent: false });
        self.lease_forfeited = true;
        self.lease.reset();
        // Whatever was in flight to it may be lost: probe again from what it acknowledged.
        let last = self.log.last_index();
        if let Some(progress) = self.progress.get_mut(&target).filter(|progress| progress.match_index < last) {
            progress.become_probe();
        }
        self.maybe_hand_over(target);
        if self.transfer.as_ref().is_some_and(|transfer| !transfer.sent) {
            self.send_append(target);
        }
        Ok(())
    }

    /// The node leadership is being handed to, while a transfer is in progress.
    pub fn transferring(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|transfer| transfer.target)
    }

    /// The target holds the whole log: tell it to campaign.
    pub(crate) fn maybe_hand_over(&mut self, from: NodeId) {
        let last = self.log.last_index();
        let Some(transfer) = self.transfer.as_mut().filter(|transfer| transfer.target == from && !transfer.sent) else { return };
        if self.progress.get(&from).is_some_and(|progress| progress.match_index == last) {
            transfer.sent = true;
            self.send(from, MessageBody::TimeoutNow);
        }
    }

    /// A leader whose removal just committed: tells every follower the commit index, and the
    /// most caught-up voter to campaign at once, so that the cluster does not wait an election
    /// timeout for a new leader.
    pub(crate) fn hand_over_before_leaving(&mut self) {
        let last = self.log.last_index();
        let anchors: Vec<(NodeId, crate::types::LogIndex)> = self.progress.iter().map(|(&id, progress)| (id, progress.match_index)).collect();
        for &(id, matched) in &anchors {
            self.send_heartbeat(id, matched);
        }
        let best = anchors.iter().filter(|(id, matched)| self.membership.is_voter(*id) && *matched == last).map(|(id, _)| *id).next();
        if let Some(target) = best {
            self.send(target, MessageBody::TimeoutNow);
        }
    }

    pub(crate) fn tick_transfer(&mut self) {
        if let Some(transfer) = &mut self.transfer {
            transfer.ticks_left = transfer.ticks_left.saturating_sub(1);
            if transfer.ticks_left == 0 {
                self.transfer = None;
            }
        }
    }

    /// The leader of this term asks this node to campaign now.
    pub(crate) fn on_timeout_now(&mut self, from: crate::types::NodeId) {
        if self.role == Role::Follower && self.leader == Some(from) && self.may_campaign() {
            self.become_candidate(true);
        }
    }
}
