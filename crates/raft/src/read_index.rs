//! Linearizable reads without writing the log: ReadIndex (thesis §6.4).
//!
//! 1. A read arrives at the leader. Its *read index* is the commit index at that moment — but only
//!    once the leader has committed an entry of its own term, because before that its commit index
//!    may lag what earlier leaders committed (hence the no-op a production leader appends).
//! 2. The leader confirms it is still the leader: a heartbeat round, numbered, that a majority answers
//!    at the leader's term. Every read that arrived in the same step shares one round.
//! 3. The read can then be served from the state machine once it has applied up to the read index.
//!
//! No clock is involved, so a leader cut off from the majority never answers: its round never
//! completes, and when it steps down the pending reads fail (`index: None`) so callers retry elsewhere.
//! With `Config::lease_reads`, a leader holding a lease skips step 2 (`lease.rs`, which states the
//! clock assumptions that trades in).

use std::collections::{BTreeMap, VecDeque};

use crate::node::Node;
use crate::quorum::majority;
use crate::ready::ReadyRead;
use crate::types::{LogIndex, NodeId, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    context: u64,
    index: LogIndex,
    round: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// The latest confirmation round started. Rounds only grow, across terms too.
    round: u64,
    /// Requests not yet in a round: they join the next one (at the next Ready), once the leader has
    /// committed in its own term.
    unassigned: Vec<u64>,
    /// Requests in rounds, oldest (lowest round) first.
    in_flight: VecDeque<InFlight>,
    /// The highest round each follower has answered in this term.
    confirmed: BTreeMap<NodeId, u64>,
    /// Outcomes for the driver.
    ready: Vec<ReadyRead>,
}

impl Reads {
    pub(crate) fn round(&self) -> u64 {
        self.round
    }

    /// Starts the next round; `Node::begin_round` is the caller, which also notes it for the lease.
    pub(crate) fn next_round(&mut self) -> u64 {
        self.round += 1;
        self.round
    }

    /// The latest round a majority of the voters has answered in this term: this node (if
    /// `leader_votes`) is always at the current round, `voters` at the highest they answered (0
    /// if none).
    pub(crate) fn quorum_round(&self, voters: &[NodeId], leader_votes: bool) -> u64 {
        let mut rounds: Vec<u64> = voters.iter().map(|peer| self.confirmed.get(peer).copied().unwrap_or(0)).collect();
        if leader_votes {
            rounds.push(self.round);
        }
        if rounds.is_empty() {
            return 0;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[majority(rounds.len()) - 1]
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub(crate) fn take_ready(&mut self) -> Vec<ReadyRead> {
        std::mem::take(&mut self.ready)
    }

    /// Leadership ended (or began): every pending read fails, so its caller retries elsewhere.
    pub(crate) fn fail_all(&mut self) {
        let pending = self.unassigned.drain(..).chain(self.in_flight.drain(..).map(|read| read.context));
        let failed: Vec<ReadyRead> = pending.map(|context| ReadyRead { context, index: None }).collect();
        self.ready.extend(failed);
        self.confirmed.clear();
    }
}

impl Node {
    /// Asks for a linearizable read, tagged `context`. The answer comes in a later `Ready::reads`.
    pub fn read_index(&mut self, context: u64) -> Result<(), ReadError> {
        if self.role != Role::Leader {
            return Err(ReadError::NotLeader { leader: self.leader });
        }
        self.reads.unassigned.push(context);
        Ok(())
    }

    /// Whether reads wait for a round that can start now (the leader committed in its own term).
    pub(crate) fn read_round_startable(&self) -> bool {
        self.role == Role::Leader && !self.reads.unassigned.is_empty() && self.log.term_at(self.log.commit) == Some(self.term)
    }

    /// Answers every waiting read at once if the leader holds a lease (`lease.rs`); otherwise puts
    /// them into one new confirmation round and sends its heartbeats.
    pub(crate) fn start_read_round(&mut self) {
        if !self.read_round_startable() {
            return;
        }
        let index = self.log.commit;
        if self.lease_holds() {
            let served = self.reads.unassigned.drain(..).map(|context| ReadyRead { context, index: Some(index) });
            self.reads.ready.extend(served);
            return;
        }
        let round = self.begin_round();
        let contexts: Vec<u64> = self.reads.unassigned.drain(..).collect();
        self.reads.in_flight.extend(contexts.into_iter().map(|context| InFlight { context, index, round }));
        let anchors: Vec<(NodeId, LogIndex)> = self.progress.iter().map(|(&peer, progress)| (peer, progress.match_index)).collect();
        for (peer, anchor) in anchors {
            self.send_heartbeat(peer, anchor);
        }
        self.release_confirmed_reads();
    }

    /// `from` answered at our term to a request of `round`.
    pub(crate) fn confirm_reads(&mut self, from: NodeId, round: u64) {
        if round == 0 {
            return;
        }
        let confirmed = self.reads.confirmed.entry(from).or_insert(0);
        *confirmed = (*confirmed).max(round);
        self.release_confirmed_reads();
        self.renew_lease();
    }

    fn release_confirmed_reads(&mut self) {
        let needed = majority(self.membership.voters().count());
        let leader_votes = usize::from(self.membership.is_voter(self.id));
        while let Some(&read) = self.reads.in_flight.front() {
            let confirmed_by = self.reads.confirmed.iter().filter(|(id, &round)| round >= read.round && self.membership.is_voter(**id)).count();
            let confirmations = leader_votes + confirmed_by;
            if confirmations < needed {
                return;
            }
            self.reads.in_flight.pop_front();
            self.reads.ready.push(ReadyRead { context: read.context, index: Some(read.index) });
        }
    }
}
