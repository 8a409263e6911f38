//! The Raft loop: the one task that owns the `raft::Node` and the storage. It ticks the node from a
//! real clock, feeds it peer messages and client requests (draining whatever is queued, so that many
//! requests go into one step and one fsync), and carries out each `Ready`:
//!
//! ```text
//!  send_now ──> peers        (the leader replicates while it writes its own disk)
//!  persist  ──> storage      (one fsync for the whole batch)
//!  send_after_persist ──> peers
//!  apply, reads, role ──> apply task (off this loop)
//! ```
//! Requests that reach a follower are forwarded to the leader over the peer connection; requests
//! that arrive while no leader is known wait (bounded) for one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raft::{LogIndex, Node, NodeId, Role, Status};
use storage::{StdDisk, Storage};
use tokio::sync::{mpsc, oneshot, watch};
use transport::{Frame, Inbound, Transport};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::apply::{ApplyInput, ReplyTo};
use crate::metrics::Metrics;
use replica::request::{Answer, Request};
use crate::{ServerError, Tuning};

pub enum LoopInput {
    Client { request: Request, reply: ReplyTo },
    /// The apply task took a snapshot of everything up to `index`.
    /// `staged`: the snapshot's file, already written (see `storage::SnapshotStager`).
    Compact { index: u64, data: Arc<[u8]>, staged: Option<storage::Staged> },
}

/// How long a request may wait for a leader to be known before it fails.
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// How long a forwarded request is remembered (its caller has long timed out after this).
const FORWARD_MEMORY: Duration = Duration::from_secs(30);

pub struct RaftLoop {
    pub me: NodeId,
    pub tuning: Tuning,
    pub node: Node,
    pub storage: Storage<StdDisk>,
    pub transport: Transport,
    pub apply: mpsc::UnboundedSender<ApplyInput>,
    pub status: watch::Sender<Status>,
    pub tick: Duration,
    pub reads: HashMap<u64, (Request, ReplyTo)>,
    pub next_read: u64,
    /// Callers whose requests went to the leader; the transport's reader answers them
    /// (`relay_forward_reply`), so a relayed answer never waits for this loop.
    pub forwards: Forwards,
    pub next_forward: u64,
    pub waiting_for_leader: VecDeque<(Request, ReplyTo, Instant)>,
    pub last_status: Status,
    /// The hard state last written to storage, and a newer commit-index-only change not yet written.
    pub saved_hard_state: raft::HardState,
    pub deferred_hard_state: Option<raft::HardState>,
    pub metrics: Arc<Metrics>,
}

impl RaftLoop {
    pub async fn run(mut self, mut inputs: mpsc::Receiver<LoopInput>, mut peers: mpsc::Receiver<Inbound>) -> Result<(), ServerError> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clock = TickClock::new(self.tick);
        loop {
            let event = tokio::select! {
                _ = ticker.tick() => None,
                input = inputs.recv() => match input {
                    Some(input) => Some(Ok(input)),
                    None => return Ok(()),
                },
                Some(inbound) = peers.recv() => Some(Err(inbound)),
            };
            // Time first: after a pause (a stopped process, a stalled thread) the node must see how
            // much time really passed before it acts on anything, or it would act on a stale view
            // of its leadership (this is what makes lease reads safe across pauses).
            let due = clock.due();
            if due > 0 {
                for _ in 0..due {
                    self.node.tick();
                }
                self.expire();
            }
            match event {
                Some(Ok(input)) => self.on_input(input),
                Some(Err(inbound)) => self.on_peer(inbound),
                None => {}
            }
            // Take everything already queued into this step: one Ready, one fsync, one append per peer.
            for _ in 1..self.tuning.max_batch {
                match inputs.try_recv() {
                    Ok(input) => self.on_input(input),
                    Err(_) => break,
                }
            }
            for _ in 0..4096 {
                match peers.try_recv() {
                    Ok(inbound) => self.on_peer(inbound),
                    Err(_) => break,
                }
            }
            self.process_ready()?;
        }
    }

    fn on_input(&mut self, input: LoopInput) {
        match input {
            LoopInput::Client { request, reply } => self.submit(request, reply),
            LoopInput::Compact { index, data, staged } => {
                if let Some(staged) = staged {
                    if let Err(error) = self.storage.adopt_staged(staged) {
                        tracing::warn!(%error, "could not remove an unused staged snapshot");
                    }
                }
                if let Err(error) = self.node.compact(LogIndex(index), data) {
                    tracing::warn!(%error, "snapshot not taken");
                }
            }
        }
    }

    fn on_peer(&mut self, inbound: Inbound) {
        match inbound.frame {
            Frame::Raft(message) => self.node.step(message),
            Frame::Forward { request_id, payload } => {
                let reply = ReplyTo::Remote { to: inbound.from, request_id };
                match Request::decode(&payload) {
                    Some(request) => self.submit(request, reply),
                    None => reply.send(Answer::Error("malformed forwarded request".into()), &self.transport),
                }
            }
            // Normally taken by the transport's reader (see `relay_forward_reply`) before it gets here.
            Frame::ForwardReply { request_id, payload } => relay_forward_reply(&self.forwards, request_id, &payload),
        }
    }

    /// Serves a request as leader, or hands it to the leader.
    fn submit(&mut self, request: Request, reply: ReplyTo) {
        if self.node.status().role != Role::Leader {
            return self.forward_or_wait(request, reply);
        }
        match request {
            Request::Write(write) => {
                let tag = write.tag;
                // The request already is the entry: no encoding, no copy (a reference count).
                match self.node.propose(write.data.clone()) {
                    Ok((index, term)) => {
                        self.metrics.proposals.fetch_add(1, Ordering::Relaxed);
                        let register = ApplyInput::Register { index: index.0, term: term.0, tag, reply, proposed_at: Instant::now() };
                        let _ = self.apply.send(register);
                    }
                    Err(_) => self.forward_or_wait(Request::Write(write), reply),
                }
            }
            read => {
                self.next_read += 1;
                match self.node.read_index(self.next_read) {
                    Ok(()) => {
                        self.reads.insert(self.next_read, (read, reply));
                        if self.tuning.read_round_per_read {
                            // Ablation only: start this read's round now, alone.
                            if let Err(error) = self.process_ready() {
                                tracing::error!(%error, "storage failed");
                                std::process::exit(1);
                            }
                        }
                    }
                    Err(_) => self.forward_or_wait(read, reply),
                }
            }
        }
    }

    fn forward_or_wait(&mut self, request: Request, reply: ReplyTo) {
        let sender = match reply {
            ReplyTo::Local(sender) => sender,
            // Forwarded to us, but we do not lead (any more): one hop only, the origin answers its client.
            remote => return remote.send(Answer::Error("not the leader; retry".into()), &self.transport),
        };
        match self.node.status().leader {
            Some(leader) if leader != self.me => {
                self.next_forward += 1;
                lock(&self.forwards).insert(self.next_forward, (sender, Instant::now()));
                self.transport.send(leader, Frame::Forward { request_id: self.next_forward, payload: request.encode().into() });
            }
            _ => self.waiting_for_leader.push_back((request, ReplyTo::Local(sender), Instant::now())),
        }
    }

    /// Each tick: requests waiting for a leader go on if one is known, or fail after `LEADER_WAIT`.
    fn expire(&mut self) {
        let known = self.node.status().leader.is_some();
        let waiting = std::mem::take(&mut self.waiting_for_leader);
        for (request, reply, since) in waiting {
            if known {
                self.submit(request, reply);
            } else if since.elapsed() > LEADER_WAIT {
                reply.send(Answer::Error("no leader: the cluster has no quorum or is electing one".into()), &self.transport);
            } else {
                self.waiting_for_leader.push_back((request, reply, since));
            }
        }
        lock(&self.forwards).retain(|_, (_, since)| since.elapsed() < FORWARD_MEMORY);
    }

    /// Makes `persist` durable — except a change of the commit index alone, which is held back and
    /// written with the next save. The commit index is volatile state in Raft (Figure 2): a node
    /// that restarts with an older one learns the current one from the leader, and applying needs
    /// no local durability (committed entries are on a majority). Skipping that fsync takes one
    /// disk flush off every write's path on the leader (commit advances once per batch).
    fn save(&mut self, persist: &mut raft::Persist) -> Result<(), ServerError> {
        let saved = self.saved_hard_state;
        let commit_only = persist.entries.is_empty()
            && persist.snapshot.is_none()
            && persist.hard_state.is_some_and(|state| (state.term, state.vote) == (saved.term, saved.vote));
        if commit_only && !self.tuning.fsync_commit_index {
            self.deferred_hard_state = persist.hard_state;
            return Ok(());
        }
        if persist.hard_state.is_none() {
            persist.hard_state = self.deferred_hard_state;
        }
        let storage = &mut self.storage;
        let started = Instant::now();
        tokio::task::block_in_place(|| storage.save(persist))?;
        self.metrics.fsync_seconds.observe(started.elapsed());
        if let Some(snapshot) = &persist.snapshot {
            let ms = started.elapsed().as_millis() as u64;
            tracing::info!(index = snapshot.meta.index.0, bytes = snapshot.data.len(), write_ms = ms, "snapshot written");
        }
        if let Some(state) = persist.hard_state {
            self.saved_hard_state = state;
        }
        self.deferred_hard_state = None;
        Ok(())
    }

    fn send_all(&self, messages: Vec<raft::Message>) {
        for message in messages {
            self.transport.send(message.to, Frame::Raft(message));
        }
    }

    fn process_ready(&mut self) -> Result<(), ServerError> {
        while self.node.has_ready() {
            let mut ready = self.node.ready();
            if !self.tuning.serial_fsync {
                // Appends go out before our own fsync: the followers write while we do.
                self.send_all(std::mem::take(&mut ready.send_now));
            }
            if !ready.persist.is_empty() {
                self.save(&mut ready.persist)?;
            }
            self.send_all(std::mem::take(&mut ready.send_now));
            self.send_all(std::mem::take(&mut ready.send_after_persist));
            let status = ready.status;
            if (status.role, status.term, status.leader) != (self.last_status.role, self.last_status.term, self.last_status.leader) {
                tracing::info!(role = %status.role, term = status.term.0, leader = ?status.leader.map(|id| id.0), "raft state changed");
                if status.leader != self.last_status.leader {
                    self.metrics.leader_changes.fetch_add(1, Ordering::Relaxed);
                }
                let _ = self.apply.send(ApplyInput::Leadership { term: status.term.0, is_leader: status.is_leader() });
            }
            self.last_status = status;
            let applies = std::mem::take(&mut ready.apply);
            if !applies.is_empty() {
                if self.tuning.apply_in_raft_loop {
                    // Ablation only: wait until the apply task is done with this batch.
                    let (done, applied) = tokio::sync::oneshot::channel();
                    let _ = self.apply.send(ApplyInput::Applies(applies, Some(done)));
                    let _ = tokio::task::block_in_place(|| applied.blocking_recv());
                } else {
                    let _ = self.apply.send(ApplyInput::Applies(applies, None));
                }
            }
            for read in std::mem::take(&mut ready.reads) {
                let Some((request, reply)) = self.reads.remove(&read.context) else { continue };
                match read.index {
                    Some(index) => {
                        let _ = self.apply.send(ApplyInput::Read { index: index.0, request, reply });
                    }
                    None => self.forward_or_wait(request, reply),
                }
            }
            self.node.advance(&ready);
        }
        let status = self.node.status();
        self.status.send_replace(status);
        let metrics = &self.metrics;
        metrics.term.store(status.term.0, Ordering::Relaxed);
        metrics.is_leader.store(u64::from(status.is_leader()), Ordering::Relaxed);
        metrics.leader_id.store(status.leader.map_or(0, |leader| leader.0), Ordering::Relaxed);
        metrics.commit_index.store(status.commit.0, Ordering::Relaxed);
        metrics.last_log_index.store(status.last_index.0, Ordering::Relaxed);
        Ok(())
    }
}

/// The callers waiting for the leader's answer to a forwarded request, by request id. Shared by the
/// Raft loop (which forwards) and the transport's readers (which relay the answers).
pub type Forwards = Arc<Mutex<HashMap<u64, (oneshot::Sender<Answer>, Instant)>>>;

fn lock(forwards: &Forwards) -> std::sync::MutexGuard<'_, HashMap<u64, (oneshot::Sender<Answer>, Instant)>> {
    // Nothing panics while holding it; if something did, the map is still usable.
    forwards.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands the leader's answer to the caller waiting for it (if it has not timed out and gone).
pub fn relay_forward_reply(forwards: &Forwards, request_id: u64, payload: &[u8]) {
    let waiting = lock(forwards).remove(&request_id);
    if let Some((sender, _)) = waiting {
        let answer = Answer::decode(payload).unwrap_or_else(|| Answer::Error("malformed answer from the leader".into()));
        let _ = sender.send(answer);
    }
}

/// Ticks owed to the node by a monotonic clock. Unlike an interval timer, it counts the time a
/// paused process did not see (`Instant` keeps running while the process is stopped).
struct TickClock {
    started: Instant,
    tick: Duration,
    ticked: u64,
}

impl TickClock {
    fn new(tick: Duration) -> TickClock {
        TickClock { started: Instant::now(), tick, ticked: 0 }
    }

    /// Ticks that became due since the last call.
    fn due(&mut self) -> u64 {
        let now = (self.started.elapsed().as_nanos() / self.tick.as_nanos().max(1)) as u64;
        let due = now.saturating_sub(self.ticked);
        self.ticked = now.max(self.ticked);
        due
    }
}
