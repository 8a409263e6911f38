//! Log replication (§5.3) and commitment (§5.4.2), on both sides: the leader's sending and the
//! follower's handling. Snapshots travel by `snapshot_transfer.rs`.

use crate::message::{AppendResponse, MessageBody};
use crate::node::Node;
use crate::progress::ReplicationState;
use crate::quorum::committed_index;
use crate::types::{Entry, LogIndex, NodeId, Role, Term};

impl Node {
    /// Sends `peer` the next entries it lacks, if its flow control allows; a snapshot if those
    /// entries are compacted away.
    pub(crate) fn send_append(&mut self, peer: NodeId) {
        let (inflight_max, inflight_bytes_max) = (self.config.inflight_appends_max, self.config.inflight_bytes_max as u64);
        let Some(progress) = self.progress.get(&peer) else { return };
        if !progress.can_send(inflight_max, inflight_bytes_max) {
            return;
        }
        let prev_log_index = progress.next_index.prev();
        let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
            self.send_snapshot(peer);
            return;
        };
        let streaming = matches!(progress.state, ReplicationState::Replicate { .. });
        let entries = self.log.slice(progress.next_index, self.log.last_index(), self.config.append_bytes_max);
        if streaming && entries.is_empty() {
            return;
        }
        let last = entries.last().map_or(prev_log_index, |entry| entry.index);
        let has_entries = !entries.is_empty();
        let bytes = entries.iter().map(|entry| entry.size_estimate() as u64).sum();
        let (leader_commit, read_round) = (self.log.commit, self.reads.round());
        self.send(peer, MessageBody::AppendRequest { prev_log_index, prev_log_term, entries, leader_commit, read_round });
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.on_sent(last, has_entries, bytes);
        }
    }

    /// Every heartbeat interval: keep followers' timers from running out, carry the commit index, and
    /// resend what flow control believes lost.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let resend_after = self.config.snapshot_resend_heartbeats;
        if self.config.lease_reads {
            // Every heartbeat renews the lease, so that in steady state it never lapses.
            self.begin_round();
        }
        for peer in self.replication_targets() {
            let Some(progress) = self.progress.get_mut(&peer) else { continue };
            progress.on_heartbeat();
            match progress.state {
                ReplicationState::Probe { .. } => self.send_append(peer),
                ReplicationState::Replicate { .. } => {
                    let match_index = progress.match_index;
                    self.send_heartbeat(peer, match_index);
                    self.send_append(peer);
                }
                ReplicationState::Snapshot { index, ticks, .. } => {
                    if ticks >= resend_after {
                        progress.resend_snapshot();
                    }
                    self.send_heartbeat(peer, index);
                    self.send_snapshot(peer);
                }
            }
        }
    }

    /// An empty append anchored where the follower is believed to match, so that it succeeds and
    /// carries the commit index; if the anchor was compacted, the snapshot boundary stands in.
    pub(crate) fn send_heartbeat(&mut self, peer: NodeId, anchor: LogIndex) {
        let snapshot = self.log.snapshot_meta();
        let (prev_log_index, prev_log_term) = match self.log.term_at(anchor) {
            Some(term) => (anchor, term),
            None => (snapshot.index, snapshot.term),
        };
        let (leader_commit, read_round) = (self.log.commit, self.reads.round());
        let body = MessageBody::AppendRequest { prev_log_index, prev_log_term, entries: Vec::new(), leader_commit, read_round };
        self.send(peer, body);
    }

    /// §5.3/§5.4.2: the highest index stored on a majority commits, but only if it is of the leader's
    /// own term; earlier-term entries commit with it (Figure 8 shows why counting them alone is unsafe).
    /// Only the voters of the configuration in effect count, the leader itself only if it is one
    /// (a leader removing itself manages the cluster without counting itself, thesis §4.2.2); once
    /// the configuration without it is committed, it hands over and steps down.
    pub(crate) fn maybe_commit(&mut self) {
        let learners_count = self.config.broken == crate::config::Broken::LearnerCounted;
        let mut matches: Vec<LogIndex> = (self.progress.iter())
            .filter(|(id, _)| self.membership.is_voter(**id) || (learners_count && self.membership.is_member(**id)))
            .map(|(_, progress)| progress.match_index)
            .collect();
        if self.membership.is_voter(self.id) {
            matches.push(self.log.stable);
        }
        if matches.is_empty() {
            return;
        }
        let index = committed_index(matches);
        if index > self.log.commit && self.log.term_at(index) == Some(self.term) {
            self.log.commit_to(index);
        }
        if self.log.commit < self.membership_index {
            return;
        }
        // Removed members that have the entry removing them need nothing more than to learn that
        // it committed (then they stop campaigning for good): one last heartbeat.
        let (membership, index) = (&self.membership, self.membership_index);
        let done: Vec<(NodeId, LogIndex)> = (self.progress.iter())
            .filter(|(id, progress)| !membership.is_member(**id) && progress.match_index >= index)
            .map(|(&id, progress)| (id, progress.match_index))
            .collect();
        for (id, matched) in done {
            self.send_heartbeat(id, matched);
            self.progress.remove(&id);
        }
        if !self.membership.is_voter(self.id) {
            self.hand_over_before_leaving();
            self.become_follower(self.term, None);
        }
    }

    pub(crate) fn on_append_request(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        read_round: u64,
    ) {
        if !self.accept_leader(from) || !entries_are_well_formed(prev_log_index, &entries, self.term) {
            return;
        }
        // Everything up to our commit index is identical on every node, so a request anchored
        // below it (stale, duplicated or reordered) is answered with what we certainly hold.
        if prev_log_index < self.log.commit {
            self.accept(from, self.log.commit, read_round);
            return;
        }
        if self.log.term_at(prev_log_index) != Some(prev_log_term) {
            let (conflict_index, conflict_term) = self.log.conflict_hint(prev_log_index);
            let response = AppendResponse::Rejected { rejected_prev_index: prev_log_index, conflict_index, conflict_term };
            self.respond(from, self.term, MessageBody::AppendResponse { response, read_round });
            return;
        }
        if !self.log.merge(&entries) {
            return;
        }
        // A configuration in the new entries takes effect now; one they replaced (or cut off) is
        // undone.
        if entries.iter().any(|entry| entry.kind == crate::types::EntryKind::Config) || self.membership_index > prev_log_index {
            self.refresh_membership();
        }
        let last_new = prev_log_index.plus(entries.len() as u64);
        self.log.commit_to(leader_commit.min(last_new));
        self.accept(from, last_new, read_round);
    }

    /// A request from the leader of our term: follow it and restart the election timer.
    /// Returns false if this node is itself leader of the term, which a correct peer never causes.
    pub(crate) fn accept_leader(&mut self, from: NodeId) -> bool {
        match self.role {
            Role::Leader => return false,
            Role::PreCandidate | Role::Candidate => self.become_follower(self.term, Some(from)),
            Role::Follower => {}
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        self.extend_vote_fence();
        true
    }

    pub(crate) fn accept(&mut self, to: NodeId, match_index: LogIndex, read_round: u64) {
        let response = AppendResponse::Accepted { match_index };
        self.respond(to, self.term, MessageBody::AppendResponse { response, read_round });
    }

    pub(crate) fn on_append_response(&mut self, from: NodeId, response: AppendResponse, read_round: u64) {
        if self.role != Role::Leader {
            return;
        }
        // Any answer at our term, even a rejection, shows `from` still follows us.
        self.confirm_reads(from, read_round);
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.recently_active = true;
        progress.heard_at = self.ticks;
        match response {
            AppendResponse::Accepted { match_index } => {
                if match_index > last_index {
                    return;
                }
                if progress.on_accepted(match_index) {
                    self.maybe_commit();
                }
                self.send_append(from);
                self.maybe_hand_over(from);
            }
            AppendResponse::Rejected { rejected_prev_index, conflict_index, conflict_term } => {
                let stale = match progress.state {
                    ReplicationState::Replicate { .. } => rejected_prev_index <= progress.match_index,
                    ReplicationState::Probe { .. } => rejected_prev_index != progress.next_index.prev(),
                    ReplicationState::Snapshot { .. } => true,
                };
                if stale {
                    return;
                }
                let jump = conflict_term
                    .and_then(|term| self.log.last_index_of_term(term))
                    .map_or(conflict_index, |index| index.next());
                let next = jump.min(rejected_prev_index).max(progress.match_index.next());
                let moved = next != progress.next_index;
                progress.become_probe();
                progress.next_index = next;
                // A rejection that does not move the probe point means the follower lost entries it
                // had acknowledged (a broken disk): probe again at the next heartbeat, not in a loop.
                if moved {
                    self.send_append(from);
                }
            }
        }
    }
}

/// Entries must follow `prev` contiguously with terms that never go down and never exceed the
/// sender's term; anything else comes from a broken peer and is dropped.
fn entries_are_well_formed(prev: LogIndex, entries: &[Entry], term: Term) -> bool {
    let mut expected = prev.next();
    let mut previous_term = Term(0);
    for entry in entries {
        if entry.index != expected || entry.term < previous_term || entry.term > term {
            return false;
        }
        previous_term = entry.term;
        expected = expected.next();
    }
    true
}
