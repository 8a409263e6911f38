//! `Node`: the only entry point of the core. Inputs are method calls (`tick`, `step`, `propose`,
//! `compact`); output is the `Ready` value that `ready()` returns, acknowledged by `advance()`.
//!
//! The message handlers live in `election.rs` (votes, pre-votes, roles) and `replication.rs`
//! (appends, snapshots, commit); this file holds the state, the timers and the Ready bookkeeping.

use std::collections::BTreeMap;

use crate::config::{Config, ConfigError};
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::ready::{Apply, Persist, Ready, Status};
use crate::rng::Rng;
use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, Role, Snapshot, SnapshotMeta, Term};

/// Durable state a node restarts from, as storage recovered it.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    #[error("restored state is inconsistent: {0}")]
    Inconsistent(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// Leadership is being handed to another node: proposals wait until it is done (bounded by
    /// an election timeout).
    #[error("leadership is being transferred")]
    Transferring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("cannot snapshot at {index}: only {applied} has been applied")]
    NotApplied { index: LogIndex, applied: LogIndex },
}

pub struct Node {
    pub(crate) config: Config,
    pub(crate) id: NodeId,
    /// The configuration in effect: the latest in the log, committed or not (thesis §4.1), or
    /// `base_membership` if the log holds none; and the index of its entry.
    pub(crate) membership: Membership,
    pub(crate) membership_index: LogIndex,
    /// The configuration as of the snapshot (or the bootstrap one, at index 0).
    pub(crate) base_membership: (LogIndex, Membership),
    /// A leadership transfer in progress (leader only); see `transfer.rs`.
    pub(crate) transfer: Option<crate::transfer::Transfer>,
    /// This leader began a transfer in this term: it serves no lease read until the term ends
    /// (the target's election may overlap what would have been its lease).
    pub(crate) lease_forfeited: bool,
    pub(crate) term: Term,
    /// Whom this node voted for in `term` (§5.2: at most one per term, durable before answering).
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    /// The leader of `term`, once known.
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The newest snapshot: what the log's compacted prefix became. Sent to followers that need it.
    pub(crate) snapshot: Option<Snapshot>,
    /// The snapshot changed and the next Ready must persist it.
    pub(crate) snapshot_unpersisted: bool,
    /// A snapshot came from the leader and the next Ready must hand it to the state machine.
    pub(crate) snapshot_unapplied: bool,
    /// The checksum of `snapshot`, once it was sent.
    pub(crate) snapshot_checksum: Option<(SnapshotMeta, u32)>,
    /// The snapshot the leader is sending this follower, as far as it arrived.
    pub(crate) incoming: Option<crate::snapshot_transfer::IncomingSnapshot>,
    /// A complete snapshot from the leader awaiting the driver's check (`Config::hold_received_snapshots`).
    pub(crate) received_snapshot: Option<Snapshot>,
    pub(crate) rng: Rng,
    /// Ticks since the last sign of a leader (follower), the start of the campaign (candidate), or
    /// the last check-quorum round (leader).
    pub(crate) election_elapsed: u32,
    /// This round's randomized timeout, in [election_timeout_ticks, 2 × election_timeout_ticks).
    pub(crate) election_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Answers received in the current (pre-)election, this node's own included.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// The leader's view of each follower; empty unless leader.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Entries were proposed since the last Ready: replicate them then, in one append per follower.
    pub(crate) broadcast_pending: bool,
    pub(crate) send_now: Vec<Message>,
    pub(crate) send_after_persist: Vec<Message>,
    /// Linearizable reads in progress (leader only); see `read_index.rs`.
    pub(crate) reads: crate::read_index::Reads,
    /// Ticks since this node was created: the clock its lease and vote fence are measured on.
    pub(crate) ticks: u64,
    /// The leader's lease, with `Config::lease_reads`; see `lease.rs`.
    pub(crate) lease: crate::lease::Lease,
    /// With `Config::lease_reads`: until `ticks` reaches this, refuse every vote and pre-vote (an
    /// election timeout after the last message from a leader, and after the node started).
    pub(crate) vote_fence: u64,
    /// The hard state as last handed to the driver to persist.
    pub(crate) handed_hard_state: HardState,
    /// The term of the hard state the driver last said is durable (`advance`). A message of a
    /// later term waits for its save: a sole voter leads the moment it votes for itself, and
    /// had its appends left before that vote was durable, a crash could bring it back in the
    /// old term, to vote for another leader of the term its appends carried.
    pub(crate) durable_term: Term,
    /// Whether this node may campaign and lead (`set_electable`).
    pub(crate) electable: bool,
}

impl Node {
    pub fn new(config: Config, restored: Restored) -> Result<Node, InitError> {
        config.validate()?;
        let Restored { hard_state, snapshot, entries } = restored;
        let meta = snapshot.as_ref().map_or(SnapshotMeta::default(), |snapshot| snapshot.meta);
        check_restored(&hard_state, meta, &entries)?;
        let base = match &config.restored_membership {
            Some(membership) => (meta.index, membership.clone()),
            None => (LogIndex::ZERO, Membership::bootstrap(&config.peers)),
        };
        let mut node = Node {
            id: config.id,
            membership: base.1.clone(),
            membership_index: base.0,
            base_membership: base,
            transfer: None,
            lease_forfeited: false,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log: RaftLog::restore(meta, entries, hard_state.commit),
            snapshot,
            snapshot_unpersisted: false,
            snapshot_unapplied: false,
            snapshot_checksum: None,
            incoming: None,
            received_snapshot: None,
            rng: Rng::new(config.seed ^ config.id.0.wrapping_mul(0x2545_f491_4f6c_dd1d)),
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            broadcast_pending: false,
            send_now: Vec::new(),
            send_after_persist: Vec::new(),
            reads: crate::read_index::Reads::default(),
            ticks: 0,
            lease: crate::lease::Lease::default(),
            // Clock assumption (c) of `lease.rs`: a restarted node may have answered a leader's
            // heartbeat just before it went down, and must not help depose that leader sooner.
            vote_fence: if config.lease_reads { u64::from(config.election_timeout_ticks) } else { 0 },
            handed_hard_state: hard_state,
            durable_term: hard_state.term,
            electable: true,
            config,
        };
        node.refresh_membership();
        node.reset_election_timer();
        Ok(node)
    }

    /// One unit of time passed. The only clock the core knows.
    pub fn tick(&mut self) {
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout {
                if self.may_campaign() {
                    self.campaign();
                } else {
                    self.reset_election_timer();
                }
            }
        }
    }

    fn tick_leader(&mut self) {
        self.tick_transfer();
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_timeout_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                self.become_follower(self.term, None);
                return;
            }
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Whether a majority of the voters (this node, if one) answered since the last round;
    /// resets the marks.
    fn quorum_recently_active(&mut self) -> bool {
        let mut active = usize::from(self.membership.is_voter(self.id));
        for (id, progress) in &mut self.progress {
            if progress.recently_active && self.membership.is_voter(*id) {
                active += 1;
            }
            progress.recently_active = false;
        }
        active >= crate::quorum::majority(self.membership.voters().count())
    }

    /// Feeds one message from a peer. Anything malformed, stale or from a stranger is dropped or
    /// answered per the paper; nothing a peer sends can make this panic.
    pub fn step(&mut self, message: Message) {
        if message.to != self.id || message.from == self.id || !self.admits(&message) {
            return;
        }
        if message.term > self.term {
            match &message.body {
                MessageBody::VoteRequest { transfer: false, .. } if self.in_leader_lease() => return,
                MessageBody::VoteRequest { pre_vote: true, .. } => {}
                MessageBody::VoteResponse { pre_vote: true, granted: true } => {}
                MessageBody::AppendRequest { .. } | MessageBody::SnapshotRequest { .. } => {
                    self.become_follower(message.term, Some(message.from))
                }
                _ => self.become_follower(message.term, None),
            }
        } else if message.term < self.term {
            self.answer_stale(&message);
            return;
        }
        match message.body {
            MessageBody::VoteRequest { pre_vote, transfer, last_log_index, last_log_term } => {
                self.on_vote_request(message.from, message.term, pre_vote, transfer, last_log_index, last_log_term)
            }
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.on_vote_response(message.from, message.term, pre_vote, granted)
            }
            MessageBody::AppendRequest { prev_log_index, prev_log_term, entries, leader_commit, read_round } => {
                self.on_append_request(message.from, prev_log_index, prev_log_term, entries, leader_commit, read_round)
            }
            MessageBody::AppendResponse { response, read_round } => {
                self.on_append_response(message.from, response, read_round)
            }
            MessageBody::SnapshotRequest { meta, total, checksum, offset, data } => {
                self.on_snapshot_request(message.from, meta, total, checksum, offset, data)
            }
            MessageBody::SnapshotResponse { index, received } => self.on_snapshot_response(message.from, index, received),
            MessageBody::TimeoutNow => self.on_timeout_now(message.from),
        }
    }

    /// A request from an older term gets our term back, so a deposed leader or a stale candidate
    /// learns it is behind (Figure 2: "if term < currentTerm, reply false"). Stale responses are dropped.
    fn answer_stale(&mut self, message: &Message) {
        let body = match message.body {
            MessageBody::VoteRequest { pre_vote, .. } => MessageBody::VoteResponse { pre_vote, granted: false },
            MessageBody::AppendRequest { prev_log_index, .. } => MessageBody::AppendResponse {
                response: crate::message::AppendResponse::Rejected {
                    rejected_prev_index: prev_log_index,
                    conflict_index: LogIndex::ZERO,
                    conflict_term: None,
                },
                read_round: 0,
            },
            MessageBody::SnapshotRequest { .. } => MessageBody::AppendResponse {
                response: crate::message::AppendResponse::Rejected {
                    rejected_prev_index: LogIndex::ZERO,
                    conflict_index: LogIndex::ZERO,
                    conflict_term: None,
                },
                read_round: 0,
            },
            MessageBody::VoteResponse { .. }
            | MessageBody::AppendResponse { .. }
            | MessageBody::SnapshotResponse { .. }
            | MessageBody::TimeoutNow => return,
        };
        self.send_now.push(Message { from: self.id, to: message.from, term: self.term, body });
    }

    /// Appends a command to the leader's log and returns where it will commit if leadership holds.
    /// A `Vec<u8>` converts into `Bytes` without copying its contents.
    pub fn propose(&mut self, data: impl Into<bytes::Bytes>) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::Transferring);
        }
        let index = self.log.last_index().next();
        self.log.append(Entry { term: self.term, index, kind: EntryKind::Command, data: data.into() });
        self.broadcast_pending = true;
        Ok((index, self.term))
    }

    /// The service took a snapshot of its state up to `index` (which it has applied): drop the log
    /// prefix it covers (§7). A snapshot at or below the current one is stale and ignored.
    /// `data` may be handed over already shared (`Arc<[u8]>`), which spares a copy of a large one.
    pub fn compact(&mut self, index: LogIndex, data: impl Into<std::sync::Arc<[u8]>>) -> Result<(), CompactError> {
        if index <= self.log.snapshot_meta().index {
            return Ok(());
        }
        if index > self.log.applied {
            return Err(CompactError::NotApplied { index, applied: self.log.applied });
        }
        let term = self.log.term_at(index).expect("an applied index above the snapshot is in the log");
        self.base_membership = self.membership_at(index);
        self.log.compact(index);
        self.snapshot = Some(Snapshot { meta: SnapshotMeta { index, term }, data: data.into() });
        self.snapshot_unpersisted = true;
        Ok(())
    }

    pub fn has_ready(&self) -> bool {
        !self.send_now.is_empty()
            || !self.send_after_persist.is_empty()
            || (self.broadcast_pending && self.role == Role::Leader)
            || self.hard_state() != self.handed_hard_state
            || self.snapshot_unpersisted
            || self.snapshot_unapplied
            || !self.log.unstable().is_empty()
            || self.log.applied < self.log.commit
            || self.reads.has_ready()
            || self.read_round_startable()
    }

    /// While `false`, this node neither campaigns nor stays leader (a leader steps down at once):
    /// a node that cannot write to its disk steps aside so that one that can may lead. It still
    /// follows, and its votes wait for its saves as always. A sole voter ignores it: there is no
    /// one to step aside for.
    pub fn set_electable(&mut self, electable: bool) {
        self.electable = electable || self.sole_voter();
        if !self.electable && self.role != Role::Follower {
            self.become_follower(self.term, None);
        }
    }

    /// Whether `ready_volatile` has anything to hand out.
    pub fn has_volatile_ready(&self) -> bool {
        self.send_now.iter().any(|message| !self.held_for_save(message))
            || (self.log.applied < self.log.commit && !self.snapshot_unapplied)
            || self.reads.has_ready()
            || self.read_round_startable()
    }

    /// The part of a Ready that needs no save, for a driver whose last save is still being written
    /// (a slow or full disk): messages that may leave before any save (heartbeats, read rounds,
    /// appends already due), committed entries to apply (a majority holds them already) and
    /// reads. Nothing to persist and nothing held for after a persist, so it is not `advance`d;
    /// new entries wait for the next `ready`, which also carries any snapshot from the leader.
    pub fn ready_volatile(&mut self) -> Ready {
        self.start_read_round();
        let apply = if self.snapshot_unapplied { Vec::new() } else { self.take_committed() };
        let (held, send_now) = self.take_send_now();
        self.send_now = held;
        Ready {
            persist: Persist::default(),
            send_now,
            send_after_persist: Vec::new(),
            apply,
            reads: self.reads.take_ready(),
            status: self.status(),
        }
    }

    /// The committed entries not yet handed out for applying, now handed out.
    fn take_committed(&mut self) -> Vec<Apply> {
        let first = self.log.applied.next();
        let commit = self.log.commit;
        let entries = self.log.slice(first, commit, usize::MAX).into_iter().map(Apply::Entry).collect();
        self.log.applied = commit;
        entries
    }

    /// Collects everything the driver must do now. See `Ready` for the order to do it in.
    pub fn ready(&mut self) -> Ready {
        self.start_read_round();
        if self.broadcast_pending && self.role == Role::Leader {
            for peer in self.replication_targets() {
                self.send_append(peer);
            }
        }
        self.broadcast_pending = false;
        let hard_state = self.hard_state();
        let persist = Persist {
            hard_state: (hard_state != self.handed_hard_state).then_some(hard_state),
            snapshot: if self.snapshot_unpersisted { self.snapshot.clone() } else { None },
            entries: self.log.unstable().to_vec(),
        };
        self.handed_hard_state = hard_state;
        self.snapshot_unpersisted = false;
        let mut apply = Vec::new();
        if self.snapshot_unapplied {
            self.snapshot_unapplied = false;
            if let Some(snapshot) = &self.snapshot {
                apply.push(Apply::Snapshot(snapshot.clone()));
            }
        }
        apply.extend(self.take_committed());
        let (held, send_now) = self.take_send_now();
        self.send_after_persist.extend(held);
        Ready {
            persist,
            send_now,
            send_after_persist: std::mem::take(&mut self.send_after_persist),
            apply,
            reads: self.reads.take_ready(),
            status: self.status(),
        }
    }

    /// The messages due to go at once, split into those that must wait for the save of their term
    /// and those that may go now.
    fn take_send_now(&mut self) -> (Vec<Message>, Vec<Message>) {
        std::mem::take(&mut self.send_now).into_iter().partition(|message| self.held_for_save(message))
    }

    /// Whether `message` must wait for the save of the term it carries (see `durable_term`).
    fn held_for_save(&self, message: &Message) -> bool {
        message.term > self.durable_term && !message.is_pre_vote()
    }

    /// The driver carried out `ready` (the last one `ready` handed out): its hard state and
    /// entries are durable now.
    pub fn advance(&mut self, ready: &Ready) {
        self.durable_term = self.handed_hard_state.term;
        if let Some(last) = ready.persist.entries.last() {
            self.log.stable_to(last.index, last.term);
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.commit,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_meta().index,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Read-only view of the log, for checkers and status pages.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit }
    }

    /// Every other member, voter or learner: whom a leader replicates to.
    pub(crate) fn followers(&self) -> Vec<NodeId> {
        self.membership.members.keys().copied().filter(|&peer| peer != self.id).collect()
    }

    /// Whom a leader sends its log to: every other member, and a member just removed until it
    /// has the entry that removed it (so that it knows, and stops).
    pub(crate) fn replication_targets(&self) -> Vec<NodeId> {
        self.progress.keys().copied().collect()
    }

    /// Every other voter: whom a candidate asks for votes.
    pub(crate) fn other_voters(&self) -> Vec<NodeId> {
        self.membership.voters().filter(|&peer| peer != self.id).collect()
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_timeout_ticks;
        self.election_timeout = self.rng.range(base, 2 * base);
    }

    /// §6.2 of the thesis: while a node has heard from a live leader within the minimum election
    /// timeout, it refuses to help depose it. Leaders count as hearing from themselves. With lease
    /// reads, the vote fence (`lease.rs`) extends this to freshly started nodes and to nodes whose
    /// term moved on without a leader.
    pub(crate) fn in_leader_lease(&self) -> bool {
        let heard_recently = self.leader.is_some() && self.election_elapsed < self.config.election_timeout_ticks;
        self.config.check_quorum && (heard_recently || self.vote_fenced())
    }

    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_now.push(Message { from: self.id, to, term: self.term, body });
    }

    /// Responses promise durable state (a vote, appended entries), so they wait for the persist.
    pub(crate) fn respond(&mut self, to: NodeId, term: Term, body: MessageBody) {
        self.send_after_persist.push(Message { from: self.id, to, term, body });
    }
}

fn check_restored(hard_state: &HardState, snapshot: SnapshotMeta, entries: &[Entry]) -> Result<(), InitError> {
    let inconsistent = |what: String| Err(InitError::Inconsistent(what));
    let mut expected = snapshot.index.next();
    let mut previous_term = snapshot.term;
    for entry in entries {
        if entry.index != expected {
            return inconsistent(format!("entry {} where {} was expected", entry.index, expected));
        }
        if entry.term < previous_term || entry.term > hard_state.term {
            return inconsistent(format!("entry {} has term {} out of order", entry.index, entry.term));
        }
        previous_term = entry.term;
        expected = expected.next();
    }
    Ok(())
}
