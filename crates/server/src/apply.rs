//! The apply task: runs off the Raft loop, applies committed entries to the store in order, answers
//! the callers waiting for them, serves confirmed reads once their index is applied, and asks for a
//! snapshot every so often so that the log stays short.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use kv::{Command, Outcome, Pending, Reply, Store};
use raft::{Apply, EntryKind, NodeId};
use tokio::sync::{mpsc, oneshot};
use transport::{Frame, Transport};

use crate::metrics::Metrics;
use crate::raft_loop::LoopInput;
use crate::request::{Answer, Request};

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
            ReplyTo::Remote { to, request_id } => transport.send(to, Frame::ForwardReply { request_id, payload: answer.encode() }),
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
}

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
                    self.maybe_snapshot().await;
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
                let command = (entry.kind == EntryKind::Command).then(|| Command::decode(&entry.data).ok()).flatten();
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
                    self.last_snapshot = self.store.applied_index();
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

    async fn maybe_snapshot(&mut self) {
        let applied = self.store.applied_index();
        if applied.saturating_sub(self.last_snapshot) < self.snapshot_every {
            return;
        }
        self.last_snapshot = applied;
        let started = Instant::now();
        // Seconds for a large store: off this worker, so that the runtime's other tasks move on.
        let store = &self.store;
        let data = tokio::task::block_in_place(|| store.encode_snapshot());
        tracing::info!(index = applied, bytes = data.len(), encode_ms = started.elapsed().as_millis() as u64, "snapshot encoded");
        // If the Raft loop is gone, the node is shutting down; the snapshot is simply not taken.
        let _ = self.raft.send(LoopInput::Compact { index: applied, data }).await;
    }
}
