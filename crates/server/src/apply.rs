//! The apply task: runs off the Raft loop, applies committed entries to the store in order, answers
//! the callers waiting for them, serves confirmed reads once their index is applied, and asks for a
//! snapshot every so often so that the log stays short.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use kv::{CommandRef, Outcome, Pending, Reply, Store};
use raft::{Apply, EntryKind, NodeId};
use tokio::sync::{mpsc, oneshot};
use transport::{Frame, Transport};

use crate::metrics::Metrics;
use crate::raft_loop::LoopInput;
use replica::request::{Answer, Request};

/// Where an answer goes: a local connection, or the follower that forwarded the request.
pub enum ReplyTo {
    Local(oneshot::Sender<Answer>),
    Remote { to: NodeId, request_id: u64 },
}

impl ReplyTo {
    pub fn send(self, answer: Answer, transport: &Transport) {
        match self {
            // The caller may have timed out and gone; nothing to do then.
            ReplyTo::Local(sender) => drop(sender.send(answer)),
            ReplyTo::Remote { to, request_id } => transport.send(to, Frame::ForwardReply { request_id, payload: answer.encode().into() }),
        }
    }
}

pub enum ApplyInput {
    /// A write was proposed at `index` in `term`; answer `reply` when it is applied.
    Register { index: u64, term: u64, tag: (u64, u64), reply: ReplyTo, proposed_at: Instant },
    /// Committed entries; `done` (if any) is told when they are applied.
    Applies(Vec<Apply>, Option<oneshot::Sender<()>>),
    /// A read whose index a quorum confirmed: serve it once `index` is applied.
    Read { index: u64, request: Request, reply: ReplyTo },
    /// The node's term or role changed: writes proposed in earlier terms must be retried.
    Leadership { term: u64, is_leader: bool },
}

pub struct Applier {
    pub store: Store,
    pub pending: Pending<(ReplyTo, Instant)>,
    pub reads: BTreeMap<u64, Vec<(Request, ReplyTo)>>,
    pub transport: Transport,
    pub metrics: Arc<Metrics>,
    pub raft: mpsc::Sender<LoopInput>,
    /// Snapshot once this many entries were applied since the last snapshot.
    pub snapshot_every: u64,
    pub last_snapshot: u64,
    /// Bytes of log entries applied since the last snapshot: the log is also snapshotted once it
    /// outweighs the last snapshot (and at least `SNAPSHOT_LOG_BYTES`), which bounds a node's
    /// memory to about twice its data whatever the value size.
    pub log_bytes: u64,
    /// The term of the entry at the store's applied index (a snapshot's meta needs it).
    pub applied_term: raft::Term,
    /// Writes snapshot files from this task, so that the Raft loop only renames them.
    pub stager: storage::SnapshotStager<storage::StdDisk>,
    /// A snapshot is being written; the next waits for it.
    pub snapshot_in_flight: Arc<AtomicBool>,
    /// The size of the last snapshot (taken here in the background, installed, or restored).
    pub snapshot_bytes: Arc<AtomicU64>,
}

/// The least log, in bytes, that triggers a snapshot by size (see `Applier::log_bytes`).
const SNAPSHOT_LOG_BYTES: u64 = 64 << 20;

fn lost() -> Answer {
    Answer::Error("leadership changed before the write committed; its outcome is unknown, retry".into())
}

impl Applier {
    pub async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<ApplyInput>) {
        while let Some(input) = inputs.recv().await {
            match input {
                ApplyInput::Register { index, term, tag, reply, proposed_at } => {
                    let displaced = self.pending.insert(index, term, tag, (reply, proposed_at));
                    self.resolve(displaced);
                }
                ApplyInput::Applies(applies, done) => {
                    for apply in applies {
                        self.apply(apply);
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    self.metrics.applied_index.store(self.store.applied_index(), Ordering::Relaxed);
                    self.serve_reads();
                    self.maybe_snapshot();
                }
                ApplyInput::Read { index, request, reply } => {
                    self.reads.entry(index).or_default().push((request, reply));
                    self.serve_reads();
                }
                ApplyInput::Leadership { term, is_leader } => {
                    let lost = self.pending.term_changed(term, is_leader);
                    self.resolve(lost);
                }
            }
        }
    }

    fn apply(&mut self, apply: Apply) {
        match apply {
            Apply::Entry(entry) => {
                let index = entry.index.0;
                if index <= self.store.applied_index() {
                    return;
                }
                self.applied_term = entry.term;
                self.log_bytes += entry.data.len() as u64;
                let command = (entry.kind == EntryKind::Command).then(|| CommandRef::decode(&entry.data).ok()).flatten();
                let resolved = match command {
                    Some(command) => {
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
            Apply::Snapshot(snapshot) => match Store::decode_snapshot(&snapshot.data) {
                Ok(store) if store.applied_index() > self.store.applied_index() => {
                    self.store = store;
                    self.applied_term = snapshot.meta.term;
                    self.last_snapshot = self.store.applied_index();
                    self.snapshot_bytes.store(snapshot.data.len() as u64, Ordering::Release);
                    self.log_bytes = 0;
                    let lost = self.pending.skipped_to(self.store.applied_index());
                    self.resolve(lost);
                }
                Ok(_) => {}
                Err(error) => {
                    // The leader's snapshot passed Raft's transfer but is unusable: installing nothing
                    // would silently lose data, so stop the node.
                    tracing::error!(%error, "snapshot from the leader is unusable; stopping");
                    std::process::exit(1);
                }
            },
        }
    }

    fn resolve(&self, outcomes: Vec<((ReplyTo, Instant), Outcome)>) {
        for ((reply, proposed_at), outcome) in outcomes {
            let answer = match outcome {
                Outcome::Applied(reply) => {
                    self.metrics.proposal_seconds.observe(proposed_at.elapsed());
                    Answer::Reply(reply)
                }
                Outcome::Lost => lost(),
            };
            reply.send(answer, &self.transport);
        }
    }

    fn serve_reads(&mut self) {
        let applied = self.store.applied_index();
        let later = self.reads.split_off(&(applied + 1));
        let ready = std::mem::replace(&mut self.reads, later);
        for (request, reply) in ready.into_values().flatten() {
            let answer = match request {
                Request::Get { key } => Answer::Reply(Reply::Value(self.store.get(&key).map(<[u8]>::to_vec))),
                Request::Exists { keys } => Answer::Count(keys.iter().filter(|key| self.store.get(key).is_some()).count() as u64),
                Request::Write(_) => Answer::Error("internal: a write was queued as a read".into()),
            };
            reply.send(answer, &self.transport);
        }
    }

    /// Every `snapshot_every` applied entries: clone the store (cheap: values are shared), encode the
    /// clone and write its file on a blocking thread while applies go on, and only then hand the
    /// snapshot to the Raft loop, which merely renames the file. Neither the applies nor the Raft
    /// loop's heartbeats wait for a large snapshot.
    fn maybe_snapshot(&mut self) {
        let applied = self.store.applied_index();
        let entries_due = applied.saturating_sub(self.last_snapshot) >= self.snapshot_every;
        let bytes_due = self.log_bytes >= self.snapshot_bytes.load(Ordering::Acquire).max(SNAPSHOT_LOG_BYTES);
        if !(entries_due || bytes_due) || self.snapshot_in_flight.load(Ordering::Acquire) {
            return;
        }
        self.last_snapshot = applied;
        self.log_bytes = 0;
        self.snapshot_in_flight.store(true, Ordering::Release);
        let started = Instant::now();
        let frozen = self.store.clone();
        let meta = raft::SnapshotMeta { index: raft::LogIndex(applied), term: self.applied_term };
        let (stager, raft, in_flight) = (self.stager.clone(), self.raft.clone(), self.snapshot_in_flight.clone());
        let sizes = self.snapshot_bytes.clone();
        tokio::spawn(async move {
            let work = tokio::task::spawn_blocking(move || {
                // Shared from here on, as the Raft core keeps it: no copy on the Raft loop.
                let data: Arc<[u8]> = frozen.encode_snapshot().into();
                let encoded_ms = started.elapsed().as_millis() as u64;
                let staged = stager.stage(meta, &data);
                (data, staged, encoded_ms)
            });
            if let Ok((data, staged, encode_ms)) = work.await {
                let staged = staged.map_err(|error| tracing::warn!(%error, "snapshot not staged; the Raft loop will write it")).ok();
                let total_ms = started.elapsed().as_millis() as u64;
                tracing::info!(index = applied, bytes = data.len(), encode_ms, encode_and_stage_ms = total_ms, "snapshot encoded");
                sizes.store(data.len() as u64, Ordering::Release);
                // If the Raft loop is gone, the node is shutting down; the snapshot is simply not taken.
                let _ = raft.send(LoopInput::Compact { index: applied, data, staged }).await;
            }
            in_flight.store(false, Ordering::Release);
        });
    }
}
