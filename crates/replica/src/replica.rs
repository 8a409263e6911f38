//! The replica: one node's whole behaviour as a synchronous state machine. See the crate's
//! documentation for the picture; this file is the state and the rules.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use kv::{CommandRef, Outcome, Pending, Reply, Store};
use raft::{Apply, Config, EntryKind, HardState, InitError, LogIndex, Node, NodeId, Persist, Ready, Restored, Role, Status};
use wire::Frame;

use crate::connections::{ConnId, Connections, Slot};
use crate::request::{Answer, Request, Write};
use crate::metrics::Counters;
use crate::session::NodeView;

/// Limits and switches. Times are in ticks of the node's clock.
#[derive(Clone, Debug)]
pub struct Options {
    /// A client's request is answered within this many ticks of its arrival, with an error if need
    /// be (a write's outcome is then unknown).
    pub request_timeout_ticks: u64,
    /// A request waits this long for a leader to be known before it fails.
    pub leader_wait_ticks: u64,
    /// Requests forwarded to the leader and not yet answered, at most; more wait their turn here,
    /// so that a deep pipeline on a follower never overflows the link to the leader.
    pub max_forwards_in_flight: usize,
    /// Snapshot every this many applied entries...
    pub snapshot_every: u64,
    /// ...and whenever the log applied since the last snapshot outweighs that snapshot, and this.
    pub snapshot_log_bytes: u64,
    /// Where this incarnation starts numbering its forwarded requests. Random per incarnation, so
    /// that an answer meant for an earlier incarnation never matches a request of this one.
    pub forward_id_base: u64,
    /// The leader sends its appends only after its own fsync (an ablation: normally they leave
    /// while it writes).
    pub serial_fsync: bool,
    /// Every read gets its own ReadIndex round (an ablation: normally the reads of a step share one).
    pub read_round_per_read: bool,
    /// fsync a change of the commit index alone too (Raft does not need it durable).
    pub fsync_commit_index: bool,
    /// The id this node proposes for its cluster when it leads one that has none yet (random,
    /// non-zero; 0: never propose). The first applied is the cluster's for ever.
    pub cluster_id_proposal: u64,
    /// How long a leader told to shut down waits for its hand-over before it stops anyway.
    pub hand_over_ticks: u64,
    /// Where this node dials the original members (its `--peers`), for RAFT.NODES.
    pub peer_addresses: std::collections::BTreeMap<NodeId, String>,
    /// The data's budget in bytes (`kv::Store::data_bytes`, `--max-memory`): over it, a leader
    /// refuses the writes that may grow the data with Redis's `-OOM` error; deletes, expiry and
    /// reads go on. 0: none.
    pub max_memory: u64,
    /// Never set outside the simulator's mutation tests.
    #[doc(hidden)]
    pub mutation: Mutation,
}

/// Deliberately broken behaviours, for the simulator's mutation tests only: each brings back a
/// defect of the server before it ran this code, which the simulation must catch.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mutation {
    #[default]
    None,
    /// Forwarded requests numbered from 0 in every incarnation, answers matched by number alone.
    AnswersMatchedByIdAlone,
    /// A new request is routed at once even when older ones wait; waiting ones go on at the next tick.
    ParkedOvertakenByNewer,
    /// A forwarded request whose frame could not be queued is forgotten (it times out).
    ForwardsDroppedSilently,
    /// A forwarded request that arrives twice is served twice (an untagged write applied twice).
    DuplicateForwardsServed,
    /// The membership rules broken in the core (`raft::Broken`).
    Core(raft::Broken),
    /// The configuration is left out of what a restart and an installed snapshot restore.
    ConfigLeftOutOfSnapshot,
    /// A Hello's address is ignored: a node that has not heard of the dialer never dials it back.
    HelloIgnored,
    /// A peer that drops out of the links goes at once, with answers still owed to it.
    LinksDroppedAtOnce,
    /// A forwarded request waits for the leader it went to as long as that node leads, even in a
    /// later term (after it restarted, and knows nothing of it).
    ForwardsKeptAcrossTerms,
    /// A node that does not know its cluster's id does not take it from its members' Hellos.
    ClusterNotVouched,
    /// Keys expire by each replica's own clock: before each command it applies, the replica
    /// moves its log time to its wall clock.
    ExpiryByOwnClock,
    /// A follower serves reads from what it has applied, without asking the leader for a read point.
    FollowerReadsUnconfirmed,
}

impl Default for Options {
    /// The production settings for 10 ms ticks.
    fn default() -> Options {
        Options {
            request_timeout_ticks: 500,
            leader_wait_ticks: 300,
            max_forwards_in_flight: 512,
            snapshot_every: 50_000,
            snapshot_log_bytes: 64 << 20,
            forward_id_base: 0,
            serial_fsync: false,
            read_round_per_read: false,
            fsync_commit_index: false,
            cluster_id_proposal: 0,
            hand_over_ticks: 200,
            peer_addresses: std::collections::BTreeMap::new(),
            max_memory: 0,
            mutation: Mutation::None,
        }
    }
}

/// While keys have a time to live, the leader proposes a clock entry at least this often, in
/// milliseconds of its wall clock.
const CLOCK_EVERY_MS: u64 = 100;

/// Identifies a save, so that its completion can be told back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveId(pub u64);

/// What the replica asks of its shell.
#[derive(Debug)]
pub enum Output {
    /// Queue a frame to a peer; if it cannot be queued, tell `undeliverable`.
    Send { to: NodeId, frame: Frame },
    /// The next answer of a connection, in the order its requests arrived.
    Reply { conn: ConnId, answer: Answer },
    /// Make this durable (fsync), then tell `persisted(id)`. One save is outstanding at a time; a
    /// failed save must stop the node (what reached the disk is unknown).
    Save { id: SaveId, persist: Persist },
    /// Encode this copy of the store (off the hot path: it may be large), then tell `snapshot_taken`.
    /// `term` is the term of the entry at `index` (a snapshot file's header names both).
    Snapshot { index: u64, term: u64, store: Store },
    /// A peer's message was refused (a snapshot that does not decode): log and count it.
    Refused(String),
    /// Something an operator should know about (log it).
    Warning(String),
    /// Whom to keep peer links with, where to dial them, and what this node's Hellos say and its
    /// admission takes: at start, and whenever any of it changes (see `links`).
    Peers(crate::links::PeerLinks),
    /// The node cannot go on (its own state is inconsistent); it stopped.
    Fatal(String),
    /// The stop asked for by `shut_down` is done (leadership handed over, or the wait was over):
    /// the shell may end the process.
    Stopped,
}

/// Who waits for an answer: a request of one of this node's connections, or a request another
/// node forwarded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    Local(Slot),
    Remote { to: NodeId, request_id: u64 },
}

/// A request sent on to the leader, waiting for its answer.
struct Forwarded {
    to: NodeId,
    /// The term in which `to` led: once the term moves on, the answer may never come (the leader
    /// may have restarted, and a new incarnation knows nothing of it), even if `to` leads again.
    term: u64,
    waiting: Waiting,
}

/// Who waits for a forwarded request's answer.
enum Waiting {
    /// One request the leader serves: its answer is the caller's. The request is kept for reads
    /// and membership commands, which go again to a new leader.
    One { slot: Slot, again: Option<Request> },
    /// Reads served here, once this node has applied the read point (`Request::ReadPoint`) the
    /// leader answers: a follower's reads of one step share one, and their values never cross
    /// the link.
    Reads(Vec<(Slot, Request)>),
}

impl Waiting {
    /// Forgets the callers no longer waiting (timed out, or their connection closed); false once
    /// none is left.
    fn retain_waiting(&mut self, connections: &Connections) -> bool {
        match self {
            Waiting::One { slot, .. } => connections.is_waiting(*slot),
            Waiting::Reads(reads) => {
                reads.retain(|(slot, _)| connections.is_waiting(*slot));
                !reads.is_empty()
            }
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match self {
            Waiting::One { slot, .. } => vec![*slot],
            Waiting::Reads(reads) => reads.iter().map(|(slot, _)| *slot).collect(),
        }
    }
}

/// A request that cannot be routed yet: no leader is known, or the forward window is full.
struct Parked {
    slot: Slot,
    request: Request,
    since: u64,
}

/// A save handed to the shell and the part of its Ready that must wait for it.
struct Saving {
    id: SaveId,
    ready: Ready,
    /// What was handed to the shell, kept to hand again if the disk was full.
    persist: Persist,
}

/// A follower whose log ends more than this many entries before a read point the leader gave it
/// has the leader answer those reads instead of waiting to catch up.
const READ_POINT_LAG: u64 = 1024;

/// Ticks between two tries of a save that found the disk full.
const FULL_DISK_RETRY_TICKS: u64 = 10;

/// Forwarded request ids remembered per node. A copy arriving after this many later requests of
/// the same node would be taken again; a duplicating network delivers its copies close together.
const FORWARD_IDS_REMEMBERED: usize = 4096;

/// The latest ids seen from one node, oldest forgotten first.
#[derive(Default)]
struct RecentIds {
    order: VecDeque<u64>,
    ids: std::collections::BTreeSet<u64>,
}

impl RecentIds {
    /// Remembers `id`; false if it was already remembered.
    fn first_time(&mut self, id: u64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > FORWARD_IDS_REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        true
    }
}

fn outcome_unknown(why: &str) -> Answer {
    Answer::Error(format!("{why}; the write's outcome is unknown, retry"))
}

pub struct Replica {
    pub(crate) node: Node,
    store: Store,
    pub(crate) options: Options,
    pub(crate) now: u64,
    pub(crate) outputs: Vec<Output>,
    connections: Connections,
    /// Writes proposed here, by log index.
    pending: Pending<Caller>,
    /// Reads waiting for their ReadIndex round, by context.
    reads: BTreeMap<u64, (Request, Caller)>,
    next_read: u64,
    /// Reads confirmed at an index, served once the store has applied it.
    confirmed: BTreeMap<u64, Vec<(Request, Caller)>>,
    /// A follower's reads of this step, to share one read point from the leader (`take_outputs`).
    follower_reads: Vec<(Slot, Request)>,
    forwards: BTreeMap<u64, Forwarded>,
    next_forward: u64,
    /// In arrival order: a request never overtakes one parked before it.
    parked: VecDeque<Parked>,
    /// The store of the last snapshot from the leader that passed validation, for its install.
    incoming_snapshot: Option<Store>,
    /// The ids of the requests each node forwarded here lately, to drop a duplicated frame.
    forwards_seen: BTreeMap<NodeId, RecentIds>,
    /// Answers to forwarded requests that could not be queued for their node: sent again each tick
    /// (bounded by that node's forward window).
    unsent_answers: VecDeque<(NodeId, Frame)>,
    saving: Option<Saving>,
    next_save: u64,
    /// The hard state last handed to a save, and a newer commit-index-only change held back.
    saved_hard_state: HardState,
    deferred_hard_state: Option<HardState>,
    last_status: Status,
    counters: Counters,
    /// The wall clock as the shell last told it (ms since the Unix epoch; 0: never told), and the
    /// time of the last clock entry this node proposed as leader (see `kv::expiry`).
    wall_ms: u64,
    clock_proposed: u64,
    /// Membership changes proposed here, by log index, and a leadership transfer's caller.
    pub(crate) changes: BTreeMap<u64, Vec<Caller>>,
    pub(crate) transfer_waiter: Option<(NodeId, Caller)>,
    /// Whom this node dials where.
    pub(crate) links: crate::links::Links,
    /// Snapshot triggering: where the last one was taken, the log bytes applied since, its size.
    last_snapshot: u64,
    log_bytes: u64,
    snapshot_bytes: u64,
    snapshot_in_flight: bool,
    /// The last save found the disk full (`save_failed_no_space`): writes are refused and the
    /// save is handed again at `retry_save_at` until one succeeds.
    disk_full: bool,
    retry_save_at: Option<u64>,
    /// In `drive`: a nested call must not take another Ready before this one is advanced.
    driving: bool,
    stopped: bool,
    /// Shutting down (`shut_down`): stop once another node leads, or at this tick.
    pub(crate) stop_at: Option<u64>,
}

impl Replica {
    /// A node from what its storage recovered; `store` is the state machine of the recovered
    /// snapshot (or empty).
    pub fn new(mut config: Config, restored: Restored, store: Store, options: Options) -> Result<Replica, InitError> {
        // A snapshot from the leader is decoded and checked before the core installs it.
        config.hold_received_snapshots = true;
        // The configuration rides in the store's snapshot.
        if !store.membership().is_empty() && options.mutation != Mutation::ConfigLeftOutOfSnapshot {
            config.restored_membership = raft::Membership::decode(store.membership()).ok();
        }
        if let Mutation::Core(broken) = options.mutation {
            config.broken = broken;
        }
        let saved_hard_state = restored.hard_state;
        let snapshot_bytes = restored.snapshot.as_ref().map_or(0, |snapshot| snapshot.data.len() as u64);
        let node = Node::new(config, restored)?;
        let last_status = node.status();
        Ok(Replica {
            last_snapshot: store.applied_index(),
            store,
            node,
            next_forward: if options.mutation == Mutation::AnswersMatchedByIdAlone { 0 } else { options.forward_id_base },
            options,
            now: 0,
            outputs: Vec::new(),
            connections: Connections::default(),
            pending: Pending::new(),
            reads: BTreeMap::new(),
            next_read: 0,
            confirmed: BTreeMap::new(),
            follower_reads: Vec::new(),
            forwards: BTreeMap::new(),
            parked: VecDeque::new(),
            forwards_seen: BTreeMap::new(),
            incoming_snapshot: None,
            unsent_answers: VecDeque::new(),
            saving: None,
            next_save: 0,
            saved_hard_state,
            deferred_hard_state: None,
            last_status,
            counters: Counters::default(),
            wall_ms: 0,
            clock_proposed: 0,
            changes: BTreeMap::new(),
            transfer_waiter: None,
            links: Default::default(),
            log_bytes: 0,
            snapshot_bytes,
            snapshot_in_flight: false,
            disk_full: false,
            retry_save_at: None,
            driving: false,
            stopped: false,
            stop_at: None,
        })
    }

    // ---- inputs ----

    /// One tick of the node's clock.
    pub fn tick(&mut self) {
        if self.stopped {
            return;
        }
        self.now += 1;
        self.node.tick();
        self.expire_leaving_links();
        self.expire();
        self.keep_log_time();
        if self.retry_save_at.is_some_and(|at| at <= self.now) {
            self.retry_save_at = None;
            if let Some(saving) = &self.saving {
                self.outputs.push(Output::Save { id: saving.id, persist: saving.persist.clone() });
            }
        }
        for (to, frame) in std::mem::take(&mut self.unsent_answers) {
            self.outputs.push(Output::Send { to, frame });
        }
        if self.options.mutation == Mutation::ParkedOvertakenByNewer {
            self.route_parked();
        }
    }

    pub fn peer_frame(&mut self, from: NodeId, frame: Frame) {
        if self.stopped {
            return;
        }
        match frame {
            Frame::Raft(message) => {
                self.node.step(message);
                // A snapshot the leader finished sending is checked before the core takes it.
                if let Some(snapshot) = self.node.take_received_snapshot() {
                    if self.validate_snapshot(from, &snapshot) {
                        let membership = self.incoming_snapshot.as_ref().and_then(|store| raft::Membership::decode(store.membership()).ok());
                        let membership = membership.filter(|_| self.options.mutation != Mutation::ConfigLeftOutOfSnapshot);
                        self.node.install_snapshot(snapshot, membership);
                    }
                }
            }
            Frame::Forward { request_id, payload } => {
                let served_twice = self.options.mutation == Mutation::DuplicateForwardsServed;
                if !self.forwards_seen.entry(from).or_default().first_time(request_id) && !served_twice {
                    // A copy of one already taken (a network that delivered it twice): the first
                    // is answered, and a write must not be proposed again.
                    return;
                }
                let caller = Caller::Remote { to: from, request_id };
                match Request::decode(&payload) {
                    Some(request) => self.serve(request, caller),
                    None => self.answer(caller, Answer::Error("malformed forwarded request".into())),
                }
            }
            Frame::ForwardReply { request_id, payload } => {
                // Only the node it was sent to answers a forwarded request: ids are this
                // incarnation's, and the sender must match.
                let by_id_alone = self.options.mutation == Mutation::AnswersMatchedByIdAlone;
                if self.forwards.get(&request_id).is_some_and(|forwarded| forwarded.to == from || by_id_alone) {
                    let forwarded = self.forwards.remove(&request_id).expect("checked just above");
                    let answer = Answer::decode(&payload).unwrap_or_else(|| Answer::Error("malformed answer from the leader".into()));
                    match forwarded.waiting {
                        Waiting::One { slot, .. } => self.answer(Caller::Local(slot), answer),
                        Waiting::Reads(reads) => self.read_point_answered(reads, answer),
                    }
                    if self.options.mutation != Mutation::ParkedOvertakenByNewer {
                        self.route_parked();
                    }
                }
            }
        }
    }

    /// The wall clock, in milliseconds since the Unix epoch. Only a leader reads it, to stamp
    /// clock entries into the log; keys expire by the log's time, never by this clock.
    pub fn set_clock(&mut self, unix_ms: u64) {
        self.wall_ms = unix_ms;
    }

    /// A request from one of the node's client connections.
    pub fn client(&mut self, conn: ConnId, request: Request) {
        if self.stopped {
            self.outputs.push(Output::Reply { conn, answer: Answer::Error("the node has stopped".into()) });
            return;
        }
        self.counters.requests += 1;
        self.connections.push(conn, request, self.now + self.options.request_timeout_ticks);
        self.admit(conn);
    }

    /// The connection is gone: nothing more is sent to it.
    pub fn disconnected(&mut self, conn: ConnId) {
        self.connections.close(conn);
    }

    /// The save `id` is durable.
    pub fn persisted(&mut self, id: SaveId) {
        match self.saving.take() {
            Some(saving) if saving.id == id => {
                if self.disk_full {
                    self.disk_full = false;
                    self.node.set_electable(true);
                }
                let mut ready = saving.ready;
                self.send_all(std::mem::take(&mut ready.send_now));
                self.send_all(std::mem::take(&mut ready.send_after_persist));
                self.node.advance(&ready);
            }
            other => self.saving = other,
        }
    }

    /// The shell encoded the store copy of `Output::Snapshot` at `index`.
    pub fn snapshot_taken(&mut self, index: u64, data: Arc<[u8]>) {
        self.snapshot_in_flight = false;
        self.snapshot_bytes = data.len() as u64;
        // A snapshot overtaken by a newer one (installed from the leader) is simply not taken.
        let _ = self.node.compact(LogIndex(index), data);
    }

    /// The shell did not take the snapshot it was handed (not enough free space for its file):
    /// the log is kept, and the next one is due after as many entries (or log bytes) again.
    pub fn snapshot_skipped(&mut self) {
        self.snapshot_in_flight = false;
    }

    /// The save `id` found the disk full and wrote nothing. Until a save succeeds again the node
    /// refuses writes at once, with an error that says why, goes on serving reads, steps aside as
    /// leader (and does not campaign) so that a node that can write may lead, and hands the same
    /// save to the shell again every `FULL_DISK_RETRY_TICKS`.
    pub fn save_failed_no_space(&mut self, id: SaveId) {
        if self.saving.as_ref().is_none_or(|saving| saving.id != id) {
            return;
        }
        if !self.disk_full {
            self.disk_full = true;
            self.node.set_electable(false);
        }
        self.retry_save_at = Some(self.now + FULL_DISK_RETRY_TICKS);
    }

    pub fn disk_full(&self) -> bool {
        self.disk_full
    }

    /// A frame could not be queued for `to` (its queue is full): a forwarded request fails at once,
    /// and definitely (it never left); an answer to one is sent again at the next tick (its caller
    /// waits for it); Raft sends its own messages again by itself.
    pub fn undeliverable(&mut self, to: NodeId, frame: Frame) {
        if self.options.mutation == Mutation::ForwardsDroppedSilently {
            return;
        }
        match frame {
            Frame::Forward { request_id, .. } => {
                if let Some(forwarded) = self.forwards.remove(&request_id).filter(|forwarded| forwarded.to == to) {
                    let answer = Answer::Error("the link to the leader is congested; the request was not sent, retry".into());
                    for slot in forwarded.waiting.slots() {
                        self.answer(Caller::Local(slot), answer.clone());
                    }
                    // Its place in the window is free.
                    if self.options.mutation != Mutation::ParkedOvertakenByNewer {
                        self.route_parked();
                    }
                }
            }
            answer @ Frame::ForwardReply { .. } => self.unsent_answers.push_back((to, answer)),
            Frame::Raft(_) => {}
        }
    }

    // ---- outputs and views ----

    /// Carries out the core's work for every input given since the last call, and returns
    /// everything the shell must do now, in order. A shell may give many inputs (all that queued
    /// up) before taking the outputs once: they then share one Ready and one save.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        self.ask_read_point();
        self.drive();
        std::mem::take(&mut self.outputs)
    }

    pub fn status(&self) -> Status {
        self.node.status()
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the node tells about itself (INFO, HELLO, `/metrics`); the shell adds what only it
    /// knows (connections, memory, uptime).
    pub fn view(&self) -> NodeView {
        NodeView {
            keys: self.store.len() as u64,
            expires: self.store.volatile_keys() as u64,
            disk_full: self.disk_full,
            applied_index: self.store.applied_index(),
            counters: self.counters,
            voters: self.node.membership().voters().count() as u64,
            learners: self.node.membership().members.values().filter(|member| !member.voter).count() as u64,
            voter: self.node.membership().is_voter(self.node.id()),
            data_bytes: self.store.data_bytes(),
            max_memory: self.options.max_memory,
            ..NodeView::of(self.node.status())
        }
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    // ---- routing requests ----

    fn admit(&mut self, conn: ConnId) {
        for (slot, request) in self.connections.admit(conn) {
            self.route(slot, request);
        }
    }

    /// A local request goes to the leader: served here, forwarded, or parked.
    fn route(&mut self, slot: Slot, request: Request) {
        if !self.parked.is_empty() && self.options.mutation != Mutation::ParkedOvertakenByNewer {
            // Behind the ones already waiting: no request overtakes an earlier one.
            self.parked.push_back(Parked { slot, request, since: self.arrival(slot) });
            return;
        }
        if let Some(request) = self.try_route(slot, request) {
            self.parked.push_back(Parked { slot, request, since: self.arrival(slot) });
        }
    }

    /// Serves a local request here (as the leader) or forwards it, if it can go now; gives it back
    /// if not (no leader known, or the forward window is full).
    fn try_route(&mut self, slot: Slot, request: Request) -> Option<Request> {
        if self.removed() {
            // In its turn, like any answer: the connection's earlier requests are answered first.
            let answer = Answer::Error(format!("node {} was removed from the cluster; use another node", self.node.id().0));
            self.answer(Caller::Local(slot), answer);
            return None;
        }
        if let Request::Dial { id, address } = request {
            // Node-local: this node's own way to reach a member, nothing replicated.
            self.dial(NodeId(id), address);
            self.answer(Caller::Local(slot), Answer::Reply(Reply::Done));
            return None;
        }
        let status = self.node.status();
        match status.leader {
            _ if status.role == Role::Leader => self.serve(request, Caller::Local(slot)),
            Some(leader)
                if leader != self.node.id()
                    && !request.orders_as_write()
                    && (!self.follower_reads.is_empty() || self.forwards.len() < self.options.max_forwards_in_flight) =>
            {
                self.follower_reads.push((slot, request))
            }
            _ => return self.forward_whole(slot, request),
        }
        None
    }

    /// Forwards a request for the leader to serve and answer, if a leader other than this node is
    /// known and the forward window has room; gives it back if not.
    fn forward_whole(&mut self, slot: Slot, request: Request) -> Option<Request> {
        let status = self.node.status();
        match status.leader {
            Some(leader) if leader != self.node.id() && self.forwards.len() < self.options.max_forwards_in_flight => {
                let payload = request.encode().into();
                // A read or a membership command (idempotent) goes again to a new leader.
                let again = (!matches!(request, Request::Write(_))).then_some(request);
                self.forward(leader, status.term.0, payload, Waiting::One { slot, again });
                None
            }
            _ => Some(request),
        }
    }

    /// Sends `payload` (an encoded request) to the leader `to` of `term`, numbered for its answer.
    fn forward(&mut self, to: NodeId, term: u64, payload: bytes::Bytes, waiting: Waiting) {
        self.next_forward = self.next_forward.wrapping_add(1);
        let request_id = self.next_forward;
        self.forwards.insert(request_id, Forwarded { to, term, waiting });
        self.outputs.push(Output::Send { to, frame: Frame::Forward { request_id, payload } });
    }

    /// A follower's reads of this step ask the leader for one read point: an index at which a
    /// read is linearizable (the leader confirmed its leadership after they arrived). They are
    /// served here once this node has applied it. If no leader is known now, or the forward
    /// window is full, they wait in front of the parked requests (they came before them).
    fn ask_read_point(&mut self) {
        if self.follower_reads.is_empty() {
            return;
        }
        let reads = std::mem::take(&mut self.follower_reads);
        if self.options.mutation == Mutation::FollowerReadsUnconfirmed {
            let applied = self.store.applied_index();
            self.confirmed.entry(applied).or_default().extend(reads.into_iter().map(|(slot, read)| (read, Caller::Local(slot))));
            self.serve_reads();
            return;
        }
        let status = self.node.status();
        match status.leader {
            Some(leader) if leader != self.node.id() && self.forwards.len() < self.options.max_forwards_in_flight => {
                self.forward(leader, status.term.0, Request::ReadPoint.encode().into(), Waiting::Reads(reads));
            }
            _ => {
                for (slot, request) in reads.into_iter().rev() {
                    let since = self.arrival(slot);
                    self.parked.push_front(Parked { slot, request, since });
                }
                self.route_parked();
            }
        }
    }

    /// The leader's answer to a read point: the reads are served once the store has applied it
    /// (at once if it has), or all get the leader's error. A node far behind the read point (one
    /// catching up after a restart) has the leader answer them instead, as it would wait long.
    fn read_point_answered(&mut self, reads: Vec<(Slot, Request)>, answer: Answer) {
        match answer {
            Answer::Count(index) if index > self.node.status().last_index.0.saturating_add(READ_POINT_LAG) => {
                for (slot, read) in reads {
                    if let Some(request) = self.forward_whole(slot, read) {
                        let since = self.arrival(slot);
                        self.parked.push_back(Parked { slot, request, since });
                    }
                }
            }
            Answer::Count(index) => {
                let waiting = reads.into_iter().map(|(slot, read)| (read, Caller::Local(slot)));
                self.confirmed.entry(index).or_default().extend(waiting);
                self.serve_reads();
            }
            answer => {
                for (slot, _) in reads {
                    self.answer(Caller::Local(slot), answer.clone());
                }
            }
        }
    }

    /// When `slot`'s request reached this node: its wait for a leader counts from there, however
    /// long it waited behind earlier requests of its connection.
    fn arrival(&self, slot: Slot) -> u64 {
        self.connections.deadline(slot).map_or(self.now, |deadline| deadline.saturating_sub(self.options.request_timeout_ticks))
    }

    /// Routes parked requests, oldest first, for as long as they can go.
    fn route_parked(&mut self) {
        while let Some(parked) = self.parked.pop_front() {
            if !self.connections.is_waiting(parked.slot) {
                // Timed out, or its connection closed, while it was parked.
                continue;
            }
            if let Some(request) = self.try_route(parked.slot, parked.request) {
                // Still cannot go: back in front, in its place, with the time it parked.
                self.parked.push_front(Parked { request, ..parked });
                return;
            }
        }
    }

    /// Serves a request as the leader; if this node is not the leader after all, a local request
    /// is routed again and a forwarded one is refused (one hop only: its origin answers its client).
    fn serve(&mut self, request: Request, caller: Caller) {
        if self.disk_full && matches!(request, Request::Write(_)) {
            let id = self.node.id().0;
            let answer = Answer::Error(format!("disk full on node {id}: writes are refused until space is freed (reads are served)"));
            self.answer(caller, answer);
            return;
        }
        if let Request::Write(write) = &request {
            if self.over_memory_budget(write) {
                // Refused before it is proposed: its outcome is known (nothing), as in Redis.
                self.answer(caller, Answer::Reply(Reply::Error(OUT_OF_MEMORY.into())));
                return;
            }
        }
        if self.node.status().role != Role::Leader {
            match caller {
                Caller::Local(slot) => self.parked.push_back(Parked { slot, request, since: self.arrival(slot) }),
                Caller::Remote { .. } => self.answer(caller, Answer::Error("not the leader; retry".into())),
            }
            return;
        }
        match request {
            Request::Write(write) => match self.propose_clock(write.timed).and_then(|()| self.node.propose(write.data.clone())) {
                Ok((index, term)) => {
                    let displaced = self.pending.insert(index.0, term.0, write.tag, caller);
                    self.resolve(displaced);
                }
                Err(raft::ProposeError::Transferring) => {
                    self.answer(caller, Answer::Error("leadership is being transferred; the write was not taken, retry".into()))
                }
                // Only when this node does not lead (checked above): refused or routed again.
                Err(_) => self.serve(Request::Write(write), caller),
            },
            Request::Admin(admin) => self.serve_admin(admin, caller),
            read => {
                self.next_read += 1;
                match self.node.read_index(self.next_read) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, (read, caller));
                        if self.options.read_round_per_read {
                            // Starts this read's round now, alone (unless a Ready is being carried out).
                            self.drive();
                        }
                    }
                    Err(_) => self.serve(read, caller),
                }
            }
        }
    }

    /// Whether `write` may grow the data while the data is over the budget.
    fn over_memory_budget(&self, write: &Write) -> bool {
        let budget = self.options.max_memory;
        budget > 0 && self.store.data_bytes() > budget && CommandRef::decode(&write.data).is_ok_and(|command| command.op.may_grow())
    }

    // ---- answering ----

    pub(crate) fn answer(&mut self, caller: Caller, answer: Answer) {
        match caller {
            Caller::Local(slot) => {
                if self.connections.answer(slot, answer) {
                    for answer in self.connections.replies(slot.conn) {
                        self.outputs.push(Output::Reply { conn: slot.conn, answer });
                    }
                    self.admit(slot.conn);
                }
            }
            Caller::Remote { to, request_id } => {
                let frame = Frame::ForwardReply { request_id, payload: answer.encode().into() };
                self.outputs.push(Output::Send { to, frame });
            }
        }
    }

    fn resolve(&mut self, outcomes: Vec<(Caller, Outcome)>) {
        for (caller, outcome) in outcomes {
            let answer = match outcome {
                Outcome::Applied(reply) => Answer::Reply(reply),
                Outcome::Lost => outcome_unknown("leadership changed before the write committed"),
            };
            self.answer(caller, answer);
        }
    }

    /// Each tick: requests past their deadline are answered with an error; parked ones fail once no
    /// leader has been known for the leader wait.
    fn expire(&mut self) {
        for slot in self.connections.expired(self.now) {
            let answer = Answer::Error(format!(
                "timeout: no answer within {} ticks of the request; a write's outcome is unknown",
                self.options.request_timeout_ticks
            ));
            self.answer(Caller::Local(slot), answer);
        }
        // Requests already answered (timed out) or whose connection closed: a forward that never
        // got its answer (a frame lost on a reconnect) gives its place in the window back, and a
        // parked one is dropped.
        let connections = &self.connections;
        self.forwards.retain(|_, forwarded| forwarded.waiting.retain_waiting(connections));
        self.parked.retain(|parked| connections.is_waiting(parked.slot));
        for reads in self.confirmed.values_mut() {
            reads.retain(|(_, caller)| !matches!(caller, Caller::Local(slot) if !connections.is_waiting(*slot)));
        }
        self.confirmed.retain(|_, reads| !reads.is_empty());
        if !self.parked.is_empty() && self.options.mutation != Mutation::ParkedOvertakenByNewer {
            self.route_parked();
        }
        if self.node.status().leader.is_none() {
            // Each by its own arrival (answers still leave in each connection's order).
            let (wait, now) = (self.options.leader_wait_ticks, self.now);
            let (expired, waiting): (VecDeque<Parked>, VecDeque<Parked>) =
                std::mem::take(&mut self.parked).into_iter().partition(|parked| now.saturating_sub(parked.since) >= wait);
            self.parked = waiting;
            for parked in expired {
                self.answer(Caller::Local(parked.slot), Answer::Error("no leader: the cluster has no quorum or is electing one".into()));
            }
        }
    }

    /// As leader, keeps the log time moving while keys have a time to live: a clock entry when
    /// one is due to expire, and every `CLOCK_EVERY_MS` so that TTL reads stay current.
    fn keep_log_time(&mut self) {
        if self.store.volatile_keys() == 0 || !self.node.status().is_leader() {
            return;
        }
        let due = self.store.next_deadline().is_some_and(|at| at <= self.wall_ms);
        if due || self.wall_ms >= self.clock_proposed.saturating_add(CLOCK_EVERY_MS) {
            let _ = self.propose_clock(true);
        }
    }

    /// Proposes a clock entry with the wall clock's time if `needed` and the clock moved since
    /// the last one (applying takes the larger of it and the log time, so a leader whose clock
    /// is behind never moves the log time back).
    fn propose_clock(&mut self, needed: bool) -> Result<(), raft::ProposeError> {
        if !needed || self.wall_ms <= self.clock_proposed.max(self.store.log_time()) {
            return Ok(());
        }
        self.clock_proposed = self.wall_ms;
        let op = kv::Op::Clock { now_ms: self.wall_ms };
        self.node.propose(kv::Command { client_id: 0, seq: 0, op }.encode()).map(|_| ())
    }

    /// The leader changed (or this node's role or term): writes proposed here in earlier terms are
    /// lost, requests forwarded to a node that no longer leads are sent again (reads) or failed
    /// (writes: the old leader may still commit them), and parked requests go on.
    fn leadership_changed(&mut self, status: Status) {
        let lost = self.pending.term_changed(status.term.0, status.is_leader());
        self.resolve(lost);
        if status.is_leader() {
            // The bootstrap voters go into the log once, so that no later start can change them.
            let _ = self.node.record_membership();
        }
        if status.is_leader() && self.store.cluster_id() == 0 && self.options.cluster_id_proposal != 0 {
            // A cluster without a name yet: this leader names it. (An earlier leader's proposal
            // not applied here yet only means a second one, which changes nothing.)
            let op = kv::Op::ClusterId { id: self.options.cluster_id_proposal };
            let _ = self.node.propose(kv::Command { client_id: 0, seq: 0, op }.encode());
        }
        let stale: Vec<u64> = (self.forwards.iter())
            .filter(|(_, forwarded)| {
                let term_moved = forwarded.term != status.term.0 && self.options.mutation != Mutation::ForwardsKeptAcrossTerms;
                Some(forwarded.to) != status.leader || term_moved
            })
            .map(|(&id, _)| id)
            .collect();
        let mut reads_again = Vec::new();
        for id in stale {
            let Some(forwarded) = self.forwards.remove(&id) else { continue };
            match forwarded.waiting {
                Waiting::One { slot, again: None } => self.answer(Caller::Local(slot), outcome_unknown("the leader changed while the write was forwarded")),
                Waiting::One { slot, again: Some(request) } => reads_again.push(Parked { slot, request, since: self.arrival(slot) }),
                Waiting::Reads(reads) => {
                    reads_again.extend(reads.into_iter().map(|(slot, request)| Parked { slot, request, since: self.arrival(slot) }))
                }
            }
        }
        // The reads were older than anything parked since they were forwarded: in front, in order.
        reads_again.sort_by_key(|parked| parked.slot);
        for parked in reads_again.into_iter().rev() {
            self.parked.push_front(parked);
        }
        if self.options.mutation != Mutation::ParkedOvertakenByNewer {
            self.route_parked();
        }
    }

    // ---- the Raft core's work ----

    /// Carries out the node's Readys until there is nothing left or a save is outstanding, then
    /// acts on a change of leadership.
    pub(crate) fn drive(&mut self) {
        if self.driving {
            return;
        }
        self.driving = true;
        while !self.stopped && self.node.has_ready() {
            if self.saving.is_some() {
                // One save at a time, so that what arrives meanwhile shares the next one; until
                // it completes, what needs no save goes on (a slow or full disk stops no read).
                if self.options.serial_fsync || !self.node.has_volatile_ready() {
                    break;
                }
                let mut ready = self.node.ready_volatile();
                self.send_all(std::mem::take(&mut ready.send_now));
                self.apply_and_read(&mut ready);
                continue;
            }
            let mut ready = self.node.ready();
            if !self.options.serial_fsync {
                // The leader's appends leave before its own fsync: the followers write while it does.
                self.send_all(std::mem::take(&mut ready.send_now));
            }
            self.apply_and_read(&mut ready);
            match self.save_of(&mut ready.persist) {
                Some(persist) => {
                    self.next_save += 1;
                    let id = SaveId(self.next_save);
                    self.outputs.push(Output::Save { id, persist: persist.clone() });
                    self.saving = Some(Saving { id, ready, persist });
                }
                None => {
                    self.send_all(std::mem::take(&mut ready.send_now));
                    self.send_all(std::mem::take(&mut ready.send_after_persist));
                    self.node.advance(&ready);
                }
            }
        }
        self.driving = false;
        let status = self.node.status();
        // A hand-over is done once another node leads: not merely once this one stepped down, as
        // the target may still need this node's vote (with two voters it does), and the vote
        // leaves only after it is saved (node chaos seed 8,510: a leader of two voters stopped as
        // its target's vote request made it step down, and no one led for 4.7 s).
        let handed_over = status.leader.is_some_and(|leader| leader != self.node.id());
        if self.stop_at.is_some_and(|at| handed_over || self.now >= at) {
            self.stop_at = None;
            self.stopped = true;
            self.outputs.push(Output::Stopped);
            return;
        }
        if (status.role, status.term, status.leader) != (self.last_status.role, self.last_status.term, self.last_status.leader) {
            if status.leader != self.last_status.leader {
                self.counters.leader_changes += 1;
            }
            self.last_status = status;
            self.leadership_changed(status);
            self.drive();
        }
        self.settle_admin();
    }

    /// Applies a Ready's committed entries and serves its reads. Applying needs no local
    /// durability: a committed entry is on a majority already.
    fn apply_and_read(&mut self, ready: &mut Ready) {
        for apply in std::mem::take(&mut ready.apply) {
            self.apply(apply);
        }
        for read in std::mem::take(&mut ready.reads) {
            let Some((request, caller)) = self.reads.remove(&read.context) else { continue };
            match read.index {
                Some(index) => self.confirmed.entry(index.0).or_default().push((request, caller)),
                None => self.serve(request, caller),
            }
        }
        self.serve_reads();
        self.maybe_snapshot();
    }

    /// What of `persist` must be saved now, if anything: a change of the commit index alone is held
    /// back and written with the next save. The commit index is volatile in Raft (Figure 2): a node
    /// that restarts with an older one learns the current one from the leader. Skipping that fsync
    /// takes a disk flush off every write's path on the leader.
    fn save_of(&mut self, persist: &mut Persist) -> Option<Persist> {
        if persist.is_empty() {
            return None;
        }
        let saved = self.saved_hard_state;
        let commit_only = persist.entries.is_empty()
            && persist.snapshot.is_none()
            && persist.hard_state.is_some_and(|state| (state.term, state.vote) == (saved.term, saved.vote));
        if commit_only && !self.options.fsync_commit_index {
            self.deferred_hard_state = persist.hard_state;
            return None;
        }
        if persist.hard_state.is_none() {
            persist.hard_state = self.deferred_hard_state;
        }
        self.deferred_hard_state = None;
        if let Some(state) = persist.hard_state {
            self.saved_hard_state = state;
        }
        // The Ready keeps its last entry: `advance` marks the log stable up to it.
        let last = persist.entries.last().cloned();
        let save = std::mem::take(persist);
        persist.entries.extend(last);
        Some(save)
    }

    fn send_all(&mut self, messages: Vec<raft::Message>) {
        for message in messages {
            self.outputs.push(Output::Send { to: message.to, frame: Frame::Raft(message) });
        }
    }

    fn apply(&mut self, apply: Apply) {
        match apply {
            Apply::Entry(entry) => {
                let index = entry.index.0;
                if index <= self.store.applied_index() {
                    return;
                }
                self.log_bytes += entry.data.len() as u64;
                if entry.kind == EntryKind::Config {
                    self.store.apply_membership(index, &entry.data);
                    let resolved = self.pending.applied(index, None);
                    self.resolve(resolved);
                    self.config_applied(index);
                    return;
                }
                let command = (entry.kind == EntryKind::Command).then(|| CommandRef::decode(&entry.data).ok()).flatten();
                let resolved = match command {
                    Some(command) => {
                        if self.options.mutation == Mutation::ExpiryByOwnClock && self.wall_ms > 0 {
                            self.store.apply(index, &CommandRef { client_id: 0, seq: 0, op: kv::OpRef::Clock { now_ms: self.wall_ms } });
                        }
                        let reply = self.store.apply(index, &command);
                        self.pending.applied(index, Some(((command.client_id, command.seq), &reply)))
                    }
                    None => {
                        self.store.skip(index);
                        self.pending.applied(index, None)
                    }
                };
                self.resolve(resolved);
            }
            Apply::Snapshot(snapshot) => match self.decoded_snapshot(snapshot.meta.index.0, &snapshot.data) {
                Ok(store) if store.applied_index() > self.store.applied_index() => {
                    self.store = store;
                    self.last_snapshot = self.store.applied_index();
                    self.snapshot_bytes = snapshot.data.len() as u64;
                    self.log_bytes = 0;
                    let lost = self.pending.skipped_to(self.store.applied_index());
                    self.resolve(lost);
                }
                Ok(_) => {}
                Err(error) => {
                    // Validated when it arrived, so this is the node's own inconsistency; installing
                    // nothing would silently lose data: stop instead.
                    self.stopped = true;
                    self.outputs.push(Output::Fatal(format!("the snapshot the node took is unusable: {error}")));
                }
            },
        }
    }

    /// A snapshot from `from` that could be installed must decode, and hold the state of the index
    /// it claims, before the core sees it: otherwise it is refused (and reported), and the node
    /// goes on as if it never came. The decoded store is kept for the install.
    fn validate_snapshot(&mut self, from: NodeId, snapshot: &raft::Snapshot) -> bool {
        let index = snapshot.meta.index.0;
        if index <= self.store.applied_index() {
            // Older than what is applied: the core answers it without installing anything.
            return true;
        }
        let problem = match Store::decode_snapshot(&snapshot.data) {
            Ok(store) if store.applied_index() == index => {
                self.incoming_snapshot = Some(store);
                return true;
            }
            Ok(store) => format!("it claims index {index} but holds the state of index {}", store.applied_index()),
            Err(error) => error.to_string(),
        };
        self.counters.peer_messages_refused += 1;
        self.outputs.push(Output::Refused(format!("a snapshot from node {from} at index {index} was refused: {problem}")));
        false
    }

    /// The store of the snapshot the core installs at `index`: the one decoded when it arrived.
    fn decoded_snapshot(&mut self, index: u64, data: &[u8]) -> Result<Store, kv::SnapshotError> {
        match self.incoming_snapshot.take() {
            Some(store) if store.applied_index() == index => Ok(store),
            _ => Store::decode_snapshot(data),
        }
    }

    /// Answers the confirmed reads whose index the store has applied.
    fn serve_reads(&mut self) {
        let applied = self.store.applied_index();
        let later = self.confirmed.split_off(&(applied + 1));
        let ready = std::mem::replace(&mut self.confirmed, later);
        for (request, caller) in ready.into_values().flatten() {
            let answer = match &request {
                Request::Get { key } => Answer::Value(self.store.get_shared(key)),
                Request::VGet { key } => {
                    let (value, version) = self.store.get_versioned(key).map_or((None, 0), |(value, version)| (Some(value.to_vec()), version));
                    Answer::Reply(Reply::Multi(vec![Reply::Value(value), Reply::Integer(i64::try_from(version).unwrap_or(i64::MAX))]))
                }
                Request::Exists { keys } => Answer::Count(self.store.existing(keys)),
                Request::MGet { keys } => Answer::Reply(Reply::Values(self.store.values(keys))),
                Request::Strlen { key } => Answer::Count(self.store.value_len(key)),
                Request::DbSize => Answer::Count(self.store.len() as u64),
                Request::Keys { pattern } => {
                    Answer::Reply(Reply::Values(self.store.keys().filter(|key| crate::glob::matches(pattern, key)).map(|key| Some(key.to_vec())).collect()))
                }
                Request::Scan { cursor, count, pattern, strings } => {
                    let (next, page) = self.store.scan(*cursor, usize::try_from(*count).unwrap_or(usize::MAX));
                    let keys = page
                        .into_iter()
                        .filter(|key| *strings && pattern.as_ref().is_none_or(|pattern| crate::glob::matches(pattern, key)))
                        .map(<[u8]>::to_vec)
                        .collect();
                    Answer::Reply(Reply::Scan { cursor: next, keys })
                }
                Request::GetRange { key, start, end } => Answer::Reply(Reply::Value(Some(range_of(self.store.get(key).unwrap_or_default(), *start, *end).to_vec()))),
                Request::ReadPoint => Answer::Count(applied),
                Request::RandomKey => {
                    // Any key will do; which one follows from the applied index, the same on every replica.
                    let len = self.store.len();
                    let key = (len > 0).then(|| self.store.keys().nth((applied as usize).wrapping_mul(2_654_435_761) % len)).flatten();
                    Answer::Reply(Reply::Value(key.map(<[u8]>::to_vec)))
                }
                Request::Type { key } => Answer::Reply(Reply::Status(if self.store.get(key).is_some() { "string" } else { "none" }.into())),
                Request::Ttl { key, unit } => Answer::Reply(Reply::Integer(unit.answer(self.store.deadline(key), self.store.log_time()))),
                Request::Write(_) | Request::Admin(_) | Request::Dial { .. } => Answer::Error("internal: a write was queued as a read".into()),
            };
            self.answer(caller, answer);
        }
    }

    /// Every `snapshot_every` applied entries, or once the log applied since the last snapshot
    /// outweighs it (and `snapshot_log_bytes`): a copy of the store (cheap: values are shared) for
    /// the shell to encode, one at a time.
    fn maybe_snapshot(&mut self) {
        let applied = self.store.applied_index();
        let entries_due = applied.saturating_sub(self.last_snapshot) >= self.options.snapshot_every;
        let bytes_due = self.log_bytes >= self.snapshot_bytes.max(self.options.snapshot_log_bytes);
        if !(entries_due || bytes_due) || self.snapshot_in_flight {
            return;
        }
        self.last_snapshot = applied;
        self.log_bytes = 0;
        self.snapshot_in_flight = true;
        // The entry at the applied index is in the log (or is the snapshot's last one).
        let term = self.node.log().term_at(LogIndex(applied)).map_or(0, |term| term.0);
        self.outputs.push(Output::Snapshot { index: applied, term, store: self.store.clone() });
    }
}

/// Redis's refusal of a write that may grow the data when the memory budget is spent.
pub const OUT_OF_MEMORY: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// GETRANGE's bytes of `value`: `start..=end`, negative positions counting from the end, clamped
/// to the value; empty if the range is (and, as in Redis, when both positions are negative and
/// the start comes after the end).
fn range_of(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    let resolve = |position: i64| if position < 0 { (len + position).max(0) } else { position };
    let (start, end) = (resolve(start), resolve(end).min(len - 1));
    if len == 0 || start > end || start >= len {
        return &[];
    }
    &value[start as usize..=end as usize]
}
