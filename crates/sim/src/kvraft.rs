//! The lab's fault-tolerant KV service on the simulator: a server (Raft + the `kv` store + callers
//! waiting for their entries) and a clerk that retries across servers until it succeeds.
//!
//! ```text
//!  Clerk ──call(Command)──> KvServer::handle ──start──> LabRaft ──apply stream──> apply loop
//!    ^                          │ waits on Pending[index]                          │ Store::apply
//!    └────── Reply / WrongLeader / Timeout ◄────────────── Outcome ◄───────────────┘
//! ```
//! By default reads go through the log like writes, which makes them linearizable without any
//! clock: a leader cut off from the majority never commits, so it never answers. `ReadPath` offers
//! the two ways that skip the log write: ReadIndex (one heartbeat round per batch of reads) and
//! leases (no round while the lease holds, relying on the clock assumptions of `raft`'s `lease.rs`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use kv::{Command, CommandRef, Op, Outcome, Pending, Reply, Store};
use raft::codec::Reader;

use crate::executor::{channel, Receiver, Sender, Sim};
use crate::lab::{ApplyMsg, LabOptions, LabRaft};
use crate::network::{EndId, Network, ServiceHandler};
use crate::persister::Persister;
use crate::trace::Trace;

/// How long a server lets a caller wait for its entry before telling it to try again. A leader
/// that lost its majority steps down sooner (check-quorum), which answers the caller anyway.
const SERVER_WAIT: Duration = Duration::from_millis(1000);

/// A server's answer to a clerk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Done(Reply),
    WrongLeader,
    Timeout,
    BadRequest,
}

impl Answer {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Answer::Done(reply) => {
                out.push(0);
                reply.encode(&mut out);
            }
            Answer::WrongLeader => out.push(1),
            Answer::Timeout => out.push(2),
            Answer::BadRequest => out.push(3),
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        let mut reader = Reader::new(bytes);
        let answer = match reader.byte().ok()? {
            0 => Answer::Done(Reply::decode(&mut reader).ok()?),
            1 => Answer::WrongLeader,
            2 => Answer::Timeout,
            3 => Answer::BadRequest,
            _ => return None,
        };
        reader.finish().ok()?;
        Some(answer)
    }
}

/// How a server answers Gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadPath {
    /// Through the log, like writes: the lab's way.
    #[default]
    Log,
    /// ReadIndex (thesis §6.4): no log write; one heartbeat round confirms the leader for a batch.
    ReadIndex,
    /// A leader lease (thesis §6.4.1): no round while the lease holds, ReadIndex when it lapsed.
    Lease,
}

impl ReadPath {
    fn lab_options(self) -> LabOptions {
        match self {
            ReadPath::Log => LabOptions::default(),
            ReadPath::ReadIndex => LabOptions { lease_reads: false, noop_on_election: true },
            ReadPath::Lease => LabOptions { lease_reads: true, noop_on_election: true },
        }
    }
}

struct ServerState {
    store: Store,
    pending: Pending<Sender<Outcome>>,
    /// Gets waiting for `ApplyMsg::Read`, by read context: the key, and whom to answer.
    reads: BTreeMap<u64, (Vec<u8>, Sender<Answer>)>,
    next_read: u64,
}

#[derive(Clone)]
pub struct KvServer(Rc<ServerInner>);

struct ServerInner {
    sim: Sim,
    raft: LabRaft,
    persister: Persister,
    /// Snapshot once the persisted Raft state reaches this many bytes; None: never.
    max_raft_state: Option<usize>,
    state: RefCell<ServerState>,
    killed: Cell<bool>,
    read_path: ReadPath,
}

fn resolve(outcomes: Vec<(Sender<Outcome>, Outcome)>) {
    for (waiter, outcome) in outcomes {
        waiter.send(outcome);
    }
}

impl KvServer {
    /// The lab's `StartKVServer`: recovers the store from the persisted snapshot, then Raft from its
    /// state. A snapshot that does not decode is a fatal error, never an empty store.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        sim: &Sim,
        net: &Network,
        trace: &Trace,
        ends: Vec<EndId>,
        me: usize,
        persister: Persister,
        max_raft_state: Option<usize>,
        seed: u64,
        read_path: ReadPath,
    ) -> KvServer {
        let snapshot = persister.snapshot();
        let store = if snapshot.is_empty() {
            Store::new()
        } else {
            Store::decode_snapshot(&snapshot).unwrap_or_else(|error| panic!("server {me}: persisted snapshot is unusable: {error}"))
        };
        let (sender, receiver) = channel();
        let restored = persister.restored();
        let durable = Box::new(persister.clone());
        let options = read_path.lab_options();
        let raft = LabRaft::make_with_options(sim, net, trace, ends, me, restored, durable, sender, seed, options);
        let state = ServerState { store, pending: Pending::new(), reads: BTreeMap::new(), next_read: 0 };
        let server = KvServer(Rc::new(ServerInner {
            sim: sim.clone(),
            raft,
            persister,
            max_raft_state,
            state: RefCell::new(state),
            killed: Cell::new(false),
            read_path,
        }));
        let watcher = Rc::downgrade(&server.0);
        server.0.raft.set_observer(Rc::new(move |status| {
            if let Some(inner) = watcher.upgrade() {
                let lost = inner.state.borrow_mut().pending.term_changed(status.term.0, status.is_leader());
                resolve(lost);
            }
        }));
        sim.spawn(server.clone().apply_loop(receiver));
        server
    }

    pub fn raft(&self) -> &LabRaft {
        &self.0.raft
    }

    pub fn kill(&self) {
        self.0.killed.set(true);
        self.0.raft.kill();
        let mut state = self.0.state.borrow_mut();
        let lost = state.pending.drain();
        let reads = std::mem::take(&mut state.reads);
        drop(state);
        resolve(lost);
        for (_, waiter) in reads.into_values() {
            waiter.send(Answer::WrongLeader);
        }
    }

    /// The RPC handler to register with the network.
    pub fn service(&self) -> ServiceHandler {
        let server = self.clone();
        Rc::new(move |request| {
            let server = server.clone();
            Box::pin(async move { server.handle(request).await.encode() })
        })
    }

    async fn handle(&self, request: Vec<u8>) -> Answer {
        let Ok(command) = Command::decode(&request) else { return Answer::BadRequest };
        if self.0.killed.get() {
            return Answer::WrongLeader;
        }
        if let (Op::Get { key }, false) = (&command.op, self.0.read_path == ReadPath::Log) {
            return self.read(key.clone()).await;
        }
        let (index, term, is_leader) = self.0.raft.start(request);
        if !is_leader {
            return Answer::WrongLeader;
        }
        let (sender, receiver) = channel();
        let displaced = self.0.state.borrow_mut().pending.insert(index, term, (command.client_id, command.seq), sender);
        resolve(displaced);
        match self.wait(receiver).await {
            Some(Outcome::Applied(reply)) => Answer::Done(reply),
            Some(Outcome::Lost) => Answer::WrongLeader,
            None => Answer::Timeout,
        }
    }

    /// A Get without the log: Raft confirms the leadership (a round or a lease), then the apply loop
    /// answers from the store once it has applied what the read must see (`ApplyMsg::Read`).
    async fn read(&self, key: Vec<u8>) -> Answer {
        let (sender, receiver) = channel();
        let context = {
            let mut state = self.0.state.borrow_mut();
            state.next_read += 1;
            let context = state.next_read;
            state.reads.insert(context, (key, sender));
            context
        };
        if !self.0.raft.read(context) {
            self.0.state.borrow_mut().reads.remove(&context);
            return Answer::WrongLeader;
        }
        let answer = self.wait(receiver).await;
        self.0.state.borrow_mut().reads.remove(&context);
        answer.unwrap_or(Answer::Timeout)
    }

    /// The first thing `receiver` gets, or None after `SERVER_WAIT`.
    async fn wait<T>(&self, mut receiver: Receiver<T>) -> Option<T> {
        let mut deadline = self.0.sim.sleep(SERVER_WAIT);
        poll_fn(|context| {
            let mut received = std::pin::pin!(receiver.recv());
            match received.as_mut().poll(context) {
                Poll::Ready(outcome) => Poll::Ready(outcome),
                Poll::Pending => Pin::new(&mut deadline).poll(context).map(|()| None),
            }
        })
        .await
    }

    async fn apply_loop(self, mut applies: Receiver<ApplyMsg>) {
        while let Some(message) = applies.recv().await {
            if self.0.killed.get() {
                return;
            }
            match message {
                ApplyMsg::Command { index, command } => self.apply_command(index, &command),
                ApplyMsg::Read { context, index } => self.answer_read(context, index.is_some()),
                ApplyMsg::Snapshot { index, data, .. } => {
                    let store = Store::decode_snapshot(&data).unwrap_or_else(|error| panic!("snapshot from the leader is unusable: {error}"));
                    let mut state = self.0.state.borrow_mut();
                    // Only ever move forward: a snapshot older than what is applied is ignored.
                    if index > state.store.applied_index() {
                        state.store = store;
                        let lost = state.pending.skipped_to(index);
                        drop(state);
                        resolve(lost);
                    }
                }
            }
        }
    }

    /// Everything the read must observe was applied before this point of the stream, so the store
    /// as it is now answers it (possibly with later writes too, which linearizability allows).
    fn answer_read(&self, context: u64, confirmed: bool) {
        let mut state = self.0.state.borrow_mut();
        let Some((key, waiter)) = state.reads.remove(&context) else { return };
        let answer = if confirmed {
            Answer::Done(Reply::Value(state.store.get(&key).map(<[u8]>::to_vec)))
        } else {
            Answer::WrongLeader
        };
        drop(state);
        waiter.send(answer);
    }

    fn apply_command(&self, index: u64, bytes: &[u8]) {
        let mut state = self.0.state.borrow_mut();
        if index <= state.store.applied_index() {
            return;
        }
        let resolved = match CommandRef::decode(bytes) {
            Ok(command) => {
                let reply = state.store.apply(index, &command);
                state.pending.applied(index, Some(((command.client_id, command.seq), &reply)))
            }
            Err(_) => {
                state.store.skip(index);
                state.pending.applied(index, None)
            }
        };
        let snapshot = match self.0.max_raft_state {
            Some(limit) if self.0.persister.raft_state_size() >= limit => Some(state.store.encode_snapshot()),
            _ => None,
        };
        drop(state);
        resolve(resolved);
        if let Some(snapshot) = snapshot {
            self.0.raft.snapshot(index, snapshot);
        }
    }
}

/// The lab's Clerk: one operation at a time, retried across servers until one succeeds.
pub struct Clerk {
    sim: Sim,
    net: Network,
    /// Ends to every server, in an order the clerk may not assume anything about.
    ends: Vec<EndId>,
    client_id: u64,
    seq: Cell<u64>,
    /// Position in `ends` of the server that last answered.
    leader: Cell<usize>,
}

impl Clerk {
    pub fn new(sim: &Sim, net: &Network, ends: Vec<EndId>, client_id: u64) -> Clerk {
        assert_ne!(client_id, 0, "client id 0 means untagged");
        Clerk { sim: sim.clone(), net: net.clone(), ends, client_id, seq: Cell::new(0), leader: Cell::new(0) }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    pub async fn get(&self, key: &str) -> String {
        match self.execute(Op::Get { key: key.into() }).await {
            Reply::Value(value) => String::from_utf8_lossy(&value.unwrap_or_default()).into_owned(),
            other => panic!("a Get answered {other:?}"),
        }
    }

    pub async fn put(&self, key: &str, value: &str) {
        self.execute(Op::Put { key: key.into(), value: value.into() }).await;
    }

    pub async fn append(&self, key: &str, value: &str) {
        self.execute(Op::Append { key: key.into(), value: value.into() }).await;
    }

    /// Sends one operation until some server applies it; never returns a failure.
    pub async fn execute(&self, op: Op) -> Reply {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let request = Command { client_id: self.client_id, seq, op }.encode();
        loop {
            for attempt in 0..self.ends.len() {
                let position = (self.leader.get() + attempt) % self.ends.len();
                let answer = self.net.call(self.ends[position], request.clone()).await;
                if let Some(Answer::Done(reply)) = answer.as_deref().and_then(Answer::decode) {
                    self.leader.set(position);
                    return reply;
                }
            }
            // Nobody could serve it this round (no leader yet, or cut off): pause before the next.
            self.sim.sleep(Duration::from_millis(20)).await;
        }
    }
}
