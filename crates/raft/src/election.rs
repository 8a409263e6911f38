//! Roles and elections: pre-vote, vote, and the transitions between follower, candidate and leader
//! (§5.2, §5.4.1; pre-vote and leader stickiness from §9.6 and §6.2 of the thesis).

use std::collections::BTreeMap;

use crate::message::MessageBody;
use crate::node::Node;
use crate::progress::Progress;
use crate::quorum::{vote_result, VoteResult};
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Role, Term};

impl Node {
    /// The election timer ran out: start a pre-vote, or a real election if pre-vote is off.
    pub(crate) fn campaign(&mut self) {
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.start_counting_votes();
        let proposed = self.term.next();
        self.request_votes(true, proposed, false);
        self.tally_votes(true);
    }

    /// `transfer`: the election a leader asked for by handing over leadership; its vote requests
    /// pass the leader-stickiness and lease fences (the leader gave up its lease first).
    pub(crate) fn become_candidate(&mut self, transfer: bool) {
        self.term = self.term.next();
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.start_counting_votes();
        self.request_votes(false, self.term, transfer);
        self.tally_votes(false);
    }

    fn start_counting_votes(&mut self) {
        self.reset_election_timer();
        self.votes = BTreeMap::from([(self.id, true)]);
        self.progress.clear();
    }

    fn request_votes(&mut self, pre_vote: bool, term: Term, transfer: bool) {
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.other_voters() {
            let body = MessageBody::VoteRequest { pre_vote, transfer, last_log_index, last_log_term };
            let message = crate::message::Message { from: self.id, to: peer, term, body };
            // A real vote request must not leave before the node's own vote for itself is durable:
            // a candidate that crashed and forgot it could otherwise vote twice in one term.
            if pre_vote {
                self.send_now.push(message);
            } else {
                self.send_after_persist.push(message);
            }
        }
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        self.reads.fail_all();
        self.lease.reset();
        self.transfer = None;
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.lease_forfeited = false;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.reset_election_timer();
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.transfer = None;
        self.lease_forfeited = false;
        self.leader = Some(self.id);
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let last = self.log.last_index();
        self.progress = self.followers().into_iter().map(|peer| (peer, Progress::new(last))).collect();
        self.lease.reset();
        if self.config.lease_reads {
            // The announcement below is the first lease round: every request of this term then
            // carries a round whose send tick is known.
            self.begin_round();
        }
        if self.config.noop_on_election {
            let index = last.next();
            self.log.append(Entry { term: self.term, index, kind: EntryKind::Noop, data: bytes::Bytes::new() });
        }
        // Announce leadership at once: followers reset their timers and the probe finds their logs.
        for peer in self.followers() {
            self.send_append(peer);
        }
        self.broadcast_pending = false;
        self.maybe_commit();
    }

    pub(crate) fn on_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        transfer: bool,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        // A node that already follows a leader in this term does not vote for anyone else; a
        // pre-vote for a later term is only a question, answered on the log alone.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        // A request of a later term was already dropped by `step` inside the fence; this one is of
        // our term, which moved on (without a leader) while a leader's lease may still count on us.
        let fenced = self.vote_fenced() && self.vote != Some(from) && !transfer;
        let granted = can_vote && !fenced && self.log.is_up_to_date(last_log_index, last_log_term);
        if granted && !pre_vote {
            self.vote = Some(from);
            self.reset_election_timer();
        }
        let reply_term = if granted && pre_vote { term } else { self.term };
        self.respond(from, reply_term, MessageBody::VoteResponse { pre_vote, granted });
    }

    pub(crate) fn on_vote_response(&mut self, from: NodeId, term: Term, pre_vote: bool, granted: bool) {
        let expected_term = if pre_vote { self.term.next() } else { self.term };
        let expected_role = if pre_vote { Role::PreCandidate } else { Role::Candidate };
        if self.role != expected_role || (granted && term != expected_term) || !self.membership.is_voter(from) {
            return;
        }
        self.votes.insert(from, granted);
        self.tally_votes(pre_vote);
    }

    fn tally_votes(&mut self, pre_vote: bool) {
        // Only the voters of this node's configuration count (itself included, if it is one).
        let counted = self.votes.iter().filter(|(id, _)| self.membership.is_voter(**id));
        let (granted, rejected) = counted.fold((0, 0), |(yes, no), (_, &granted)| if granted { (yes + 1, no) } else { (yes, no + 1) });
        match vote_result(self.membership.voters().count(), granted, rejected) {
            VoteResult::Won if pre_vote => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }
}
