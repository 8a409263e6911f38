//! Lease-based reads (thesis §6.4.1), off unless `Config::lease_reads`: a leader that holds a lease
//! answers a read at once, at its commit index, with no heartbeat round; without a valid lease the
//! read takes the ReadIndex round of `read_index.rs`, so a lapsed lease costs latency, never a failure.
//!
//! ## The lease
//! With leases on, every heartbeat broadcast (and the first appends of a new leader) starts a new
//! read round, and the leader notes the tick of its own count at which it sent each round. When a
//! majority, the leader included, has answered at the leader's term a request of round r or later,
//! `start = max(start, tick at which r was sent)`; the lease holds while `now < start + lease_ticks`
//! (`Config::lease_ticks`: the election timeout T less one tick, less ⌈T/5⌉ for drift). A read is
//! served under it only once the leader has committed an entry of its own term, as with ReadIndex.
//! Nothing about a lease spares the leader check-quorum's step-down.
//!
//! ## Why no other leader can exist while it holds
//! A follower that answered round r received it after the leader sent it, at tick `start` or later.
//! From that receipt, with check-quorum, it refuses every vote and pre-vote for T of *its own* ticks
//! (`Node::in_leader_lease`, and `vote_fence` below, which survives a term change that forgets the
//! leader). A new leader needs votes from a majority, which shares a node with the majority that
//! answered r: that node is either such a follower, refusing until T of its ticks after receipt,
//! or the leader itself, which votes for nobody until it has stopped leading (and then serves no
//! reads). So no other leader exists, nor any write it could commit, before `start` + T as
//! measured by those followers, which is later than `start + lease_ticks` on the leader's count
//! under the assumptions below. The tick subtracted covers granularity: the leader sent somewhere
//! within tick `start`, reads its count up to a tick late, and the follower's first tick after
//! receipt may come at once, so T of the follower's ticks span only T − 1 whole tick periods.
//!
//! ## Clock assumptions
//! (a) Every node's ticks advance at the same rate, within the drift margin: a follower ticking up
//!     to 25% faster than the leader still outlasts the lease (see `Config::lease_drift_margin_ticks`).
//! (b) The driver ticks by elapsed real time, counting the time it was paused: a leader process that
//!     was stopped for a while must catch up its missed ticks (from a monotonic clock) before it
//!     handles any input, or it would serve a read on a lease that expired while it slept.
//! (c) A node that restarts forgot when it last heard from a leader, so for its first T ticks it
//!     refuses votes and pre-votes as if it had just heard from one (`vote_fence` starts at T).
//!     This only delays elections, it cannot block them: a fence ends T ticks after its node
//!     started, and a node campaigns again at least T ticks after its last campaign, so a campaign
//!     that restart fences refused is followed by one that none of those fences can refuse. An
//!     election comes at most one election timeout later than it would have, even when every node
//!     restarts at once (whose timers, drawn from [T, 2T), fire when the fences are over anyway).
//!
//! The simulator ticks every node on one virtual clock, so (a) and (b) hold there by construction;
//! its crashes and restarts exercise (c).

use std::collections::BTreeMap;

use crate::node::Node;
use crate::types::Role;

/// Rounds whose send tick a leader keeps while waiting for a majority to answer them. A leader
/// that goes unanswered steps down within two election timeouts, so a handful of heartbeat rounds
/// is all that is ever kept; the bound only guards against a pathological configuration. Dropping
/// the oldest is safe: a confirmed round whose tick was dropped is credited with an older round's
/// tick, which gives a shorter lease.
const ROUNDS_KEPT_MAX: usize = 1024;

/// The leader's lease, reset whenever leadership begins or ends.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    /// Round → the tick (of the node's own count) at which it was sent; only rounds of the current
    /// leadership not yet answered by a majority.
    sent: BTreeMap<u64, u64>,
    /// The send tick of the latest round a majority answered; None until one has.
    start: Option<u64>,
}

impl Lease {
    pub(crate) fn reset(&mut self) {
        self.sent.clear();
        self.start = None;
    }

    fn round_sent(&mut self, round: u64, tick: u64) {
        self.sent.insert(round, tick);
        while self.sent.len() > ROUNDS_KEPT_MAX {
            self.sent.pop_first();
        }
    }

    /// A majority answered `round` (or a later one). Credits the send tick of `round`, or of the
    /// latest earlier round still known, which was sent no later.
    fn round_confirmed(&mut self, round: u64) {
        let Some((_, &tick)) = self.sent.range(..=round).next_back() else { return };
        self.start = Some(self.start.map_or(tick, |start| start.max(tick)));
        self.sent = self.sent.split_off(&round.saturating_add(1));
    }

    fn holds(&self, now: u64, lease_ticks: u32) -> bool {
        self.start.is_some_and(|start| now < start.saturating_add(u64::from(lease_ticks)))
    }
}

impl Node {
    /// Starts a new read round and returns its number; with leases on, notes when it is sent (the
    /// caller sends its requests in this same step, before the next tick).
    pub(crate) fn begin_round(&mut self) -> u64 {
        let round = self.reads.next_round();
        if self.config.lease_reads {
            self.lease.round_sent(round, self.ticks);
            // A single-node cluster is its own majority.
            self.renew_lease();
        }
        round
    }

    /// Credits the lease with the latest round a majority has answered.
    pub(crate) fn renew_lease(&mut self) {
        if !self.config.lease_reads || self.role != Role::Leader {
            return;
        }
        let round = self.reads.quorum_round(&self.other_voters(), self.membership.is_voter(self.id));
        if round > 0 {
            self.lease.round_confirmed(round);
        }
    }

    /// Whether a read may be answered now without a round: leases on, leading, and a majority
    /// answered a round sent less than `lease_ticks` ago.
    pub(crate) fn lease_holds(&self) -> bool {
        self.config.lease_reads
            && self.role == Role::Leader
            && !self.lease_forfeited
            && self.lease.holds(self.ticks, self.config.lease_ticks())
    }

    /// With leases on, whether this node must refuse to help elect anyone: it heard from a leader
    /// (or started) less than an election timeout ago. Unlike the leader-stickiness test on
    /// `leader`, this survives a term change that makes the node forget who leads.
    pub(crate) fn vote_fenced(&self) -> bool {
        self.config.lease_reads && self.ticks < self.vote_fence
    }

    /// Heard from the leader of the current term: refuse votes for an election timeout from now.
    pub(crate) fn extend_vote_fence(&mut self) {
        if self.config.lease_reads {
            self.vote_fence = self.vote_fence.max(self.ticks + u64::from(self.config.election_timeout_ticks));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_round_starts_the_lease_at_its_send_tick() {
        let mut lease = Lease::default();
        lease.round_sent(1, 10);
        lease.round_sent(2, 12);
        assert!(!lease.holds(12, 5), "nothing answered yet");
        lease.round_confirmed(1);
        assert!(lease.holds(14, 5) && !lease.holds(15, 5), "from tick 10, not from when it was answered");
        lease.round_confirmed(2);
        assert!(lease.holds(16, 5) && !lease.holds(17, 5));
        lease.round_confirmed(1);
        assert!(lease.holds(16, 5), "an older round never moves the start back");
    }

    #[test]
    fn a_round_whose_tick_is_unknown_is_credited_with_an_earlier_one_or_nothing() {
        let mut lease = Lease::default();
        lease.round_sent(5, 20);
        lease.round_confirmed(4);
        assert!(!lease.holds(20, 5), "round 4 was not sent in this leadership");
        lease.round_confirmed(7);
        assert!(lease.holds(24, 5) && !lease.holds(25, 5), "round 5 stands in for 7");
    }
}
