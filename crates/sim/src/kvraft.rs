//! The lab's fault-tolerant KV service, run by the production node: each server is a
//! `replica::Replica` — the code `raftkv` runs — hosted on the lab's network and persister, and
//! each clerk call is a client connection of its own.
//!
//! ```text
//!  Clerk ──call(Request)──> service: a new connection ──client──> Replica ──Send──> network
//!    ^                                                              │  Save ──> Persister ──persisted──┐
//!    └──────────── Answer ◄───────── Reply{conn} ◄─────────────────┘◄─────────────────────────────────┘
//! ```
//! A follower forwards a clerk's request to its leader, as the server does; an answer that is an
//! error (no leader, timed out, outcome unknown) sends the clerk on to the next server, with the
//! same tag, so that a write takes effect exactly once. Reads are the production node's: ReadIndex,
//! or a leader lease with `ReadPath::Lease`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kv::{Command, Op, Reply, Store};
use raft::{Config, Status};
use replica::request::{Answer, Request, Write};
use replica::{ConnId, Options, Output, Replica};
use wire::Frame;

use crate::executor::{channel, Sender, Sim};
use crate::lab::{node_id, record_status, LAB_TIMING};
use crate::network::{EndId, Handler, Network, ServiceHandler};
use crate::persister::Persister;
use crate::rng::SimRng;
use crate::trace::{Event, Trace};

/// How long a server lets a caller wait before answering with an error (the clerk then tries the
/// next server): the lab's servers give up after about a second.
const REQUEST_TIMEOUT_TICKS: u64 = 100;

/// How a server answers Gets. Both skip the log: ReadIndex confirms the leadership with one
/// heartbeat round per batch of reads; a lease skips the round while it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadPath {
    /// The production default.
    #[default]
    ReadIndex,
    /// A leader lease (thesis §6.4.1), `--lease-reads` on the server.
    Lease,
}

/// One lab server: the production node, and what hosts it in the simulation.
#[derive(Clone)]
pub struct KvServer(Rc<RefCell<Host>>);

struct Host {
    sim: Sim,
    net: Network,
    trace: Trace,
    me: usize,
    /// ends[j] reaches server j.
    ends: Vec<EndId>,
    replica: Replica,
    persister: Persister,
    /// Clerk calls waiting for their answer, by the connection each one is.
    waiting: BTreeMap<ConnId, Sender<Answer>>,
    next_conn: u64,
    killed: bool,
    last_status: Status,
}

impl KvServer {
    /// The lab's `StartKVServer`: the node recovers its store from the persisted snapshot and Raft
    /// from its state. `max_raft_state` None: never snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        sim: &Sim,
        net: &Network,
        trace: &Trace,
        ends: Vec<EndId>,
        me: usize,
        persister: Persister,
        max_raft_state: Option<usize>,
        rng: &SimRng,
        read_path: ReadPath,
    ) -> KvServer {
        let snapshot = persister.snapshot();
        let store = if snapshot.is_empty() {
            Store::new()
        } else {
            Store::decode_snapshot(&snapshot).unwrap_or_else(|error| panic!("server {me}: persisted snapshot is unusable: {error}"))
        };
        let mut config = Config::new(node_id(me), (0..ends.len()).map(node_id).collect());
        config.election_timeout_ticks = LAB_TIMING.election_timeout_ticks;
        config.heartbeat_ticks = LAB_TIMING.heartbeat_ticks;
        config.lease_reads = read_path == ReadPath::Lease;
        config.seed = rng.u64();
        let options = Options {
            request_timeout_ticks: REQUEST_TIMEOUT_TICKS,
            forward_id_base: rng.u64() << 16,
            cluster_id_proposal: rng.u64().max(1),
            ..snapshot_options(max_raft_state)
        };
        let replica = Replica::new(config, persister.restored(), store, options)
            .unwrap_or_else(|error| panic!("server {me}: a valid lab configuration and persisted state: {error}"));
        let last_status = replica.status();
        trace.record(sim.now(), format_args!("start {last_status}"));
        trace.event(sim.now(), Event::Start { server: me, term: last_status.term.0 });
        record_status(trace, sim.now(), me, &last_status, None);
        let host = Host {
            sim: sim.clone(),
            net: net.clone(),
            trace: trace.clone(),
            me,
            ends,
            replica,
            persister,
            waiting: BTreeMap::new(),
            next_conn: 0,
            killed: false,
            last_status,
        };
        let server = KvServer(Rc::new(RefCell::new(host)));
        // Spread the nodes' tick phases so that they do not all act at the same instant.
        server.schedule_tick(Duration::from_nanos(rng.below(LAB_TIMING.tick.as_nanos() as u64)));
        server
    }

    /// (term, whether it believes it leads).
    pub fn state(&self) -> (u64, bool) {
        let status = self.0.borrow().replica.status();
        (status.term.0, status.is_leader())
    }

    /// What the node's store keeps, as bytes of its snapshot, and how many client sessions it
    /// remembers: the state that grows if a server keeps something per client.
    pub fn retained(&self) -> (usize, usize) {
        let host = self.0.borrow();
        (host.replica.store().encode_snapshot().len(), host.replica.store().sessions())
    }

    /// The cluster id this node's store has applied (0: none yet).
    pub fn cluster_id(&self) -> u64 {
        self.0.borrow().replica.store().cluster_id()
    }

    /// Stops the node at once; its waiting callers get no answer (their calls fail).
    pub fn kill(&self, why: &str) {
        let mut host = self.0.borrow_mut();
        if host.killed {
            return;
        }
        host.killed = true;
        host.waiting.clear();
        host.trace.record(host.sim.now(), format_args!("{} stops: {why}", node_id(host.me)));
        host.trace.event(host.sim.now(), Event::Stop { server: host.me, why: why.to_string() });
    }

    /// The network handler: peer frames addressed to this incarnation.
    pub fn handler(&self) -> Handler {
        let server = self.clone();
        Rc::new(move |from, frame: Frame| server.input(|replica| replica.peer_frame(node_id(from), frame)))
    }

    /// The RPC handler for clerks: each call is a connection that sends one request.
    pub fn service(&self) -> ServiceHandler {
        let server = self.clone();
        Rc::new(move |request| {
            let server = server.clone();
            Box::pin(async move { server.call(request).await.encode() })
        })
    }

    async fn call(&self, request: Vec<u8>) -> Answer {
        let Some(request) = Request::decode(&Bytes::from(request)) else {
            return Answer::Error("malformed request".into());
        };
        let (sender, mut receiver) = channel();
        let conn = {
            let mut host = self.0.borrow_mut();
            if host.killed {
                return Answer::Error("the server is gone".into());
            }
            host.next_conn += 1;
            let conn = ConnId(host.next_conn);
            host.waiting.insert(conn, sender);
            conn
        };
        self.input(|replica| replica.client(conn, request));
        let answer = receiver.recv().await;
        self.input(|replica| replica.disconnected(conn));
        answer.unwrap_or_else(|| Answer::Error("the server is gone".into()))
    }

    fn schedule_tick(&self, delay: Duration) {
        let server = self.clone();
        let sim = self.0.borrow().sim.clone();
        sim.schedule(delay, move || {
            if server.0.borrow().killed {
                return;
            }
            server.input(Replica::tick);
            server.schedule_tick(LAB_TIMING.tick);
        });
    }

    /// Gives the node one input, then carries out everything it asks, as the server's shell does:
    /// saves complete before the next input (the lab's persister is instant), snapshots are
    /// encoded at once.
    fn input(&self, input: impl FnOnce(&mut Replica)) {
        let mut host = self.0.borrow_mut();
        if host.killed {
            return;
        }
        input(&mut host.replica);
        loop {
            let outputs = host.replica.take_outputs();
            if outputs.is_empty() {
                break;
            }
            for output in outputs {
                host.carry_out(output);
            }
        }
        host.observe();
    }
}

impl Host {
    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Send { to, frame } => {
                let end = self.ends[(to.0 - 1) as usize];
                self.net.send(end, frame);
            }
            Output::Reply { conn, answer } => {
                if let Some(waiter) = self.waiting.remove(&conn) {
                    waiter.send(answer);
                }
            }
            Output::Save { id, persist } => {
                self.persister.save(&persist);
                self.replica.persisted(id);
            }
            Output::Snapshot { index, store, .. } => {
                let data: Arc<[u8]> = store.encode_snapshot().into();
                self.replica.snapshot_taken(index, data);
            }
            // The membership is fixed here: every node knows every other from the start.
            Output::Peers(_) | Output::Warning(_) => {}
            Output::Stopped => panic!("a server stopped, but no one asked it to"),
            // No peer here sends anything to refuse: a refusal is a defect.
            Output::Refused(reason) | Output::Fatal(reason) => panic!("server {}: {reason}", self.me),
        }
    }

    /// Every change of role, term, leader or index, for the drawing of the run.
    fn observe(&mut self) {
        let status = self.replica.status();
        record_status(&self.trace, self.sim.now(), self.me, &status, Some(&self.last_status));
        if (status.role, status.term, status.leader) != (self.last_status.role, self.last_status.term, self.last_status.leader) {
            self.trace.record(self.sim.now(), format_args!("state {status}"));
        }
        self.last_status = status;
    }
}

/// The lab's maxraftstate as the node's snapshot triggers: about every maxraftstate/100 entries (a
/// lab entry is tens of bytes), or once the log applied since the last snapshot outweighs it.
fn snapshot_options(max_raft_state: Option<usize>) -> Options {
    match max_raft_state {
        Some(limit) => Options {
            snapshot_every: (limit as u64 / 100).max(1),
            snapshot_log_bytes: limit as u64,
            ..Options::default()
        },
        None => Options { snapshot_every: u64::MAX, snapshot_log_bytes: u64::MAX, ..Options::default() },
    }
}

/// What a versioned Put came to, as the 2025 lab's clerk reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Ok,
    ErrVersion,
    ErrNoKey,
    Maybe,
}

/// The lab's Clerk: one operation at a time, retried across servers until one succeeds.
pub struct Clerk {
    sim: Sim,
    net: Network,
    /// Ends to every server, in an order the clerk may not assume anything about.
    ends: Vec<EndId>,
    client_id: u64,
    seq: std::cell::Cell<u64>,
    /// Position in `ends` of the server that last answered.
    leader: std::cell::Cell<usize>,
}

impl Clerk {
    pub fn new(sim: &Sim, net: &Network, ends: Vec<EndId>, client_id: u64) -> Clerk {
        assert_ne!(client_id, 0, "client id 0 means untagged");
        Clerk { sim: sim.clone(), net: net.clone(), ends, client_id, seq: Default::default(), leader: Default::default() }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    pub async fn get(&self, key: &str) -> String {
        match self.execute(Request::Get { key: key.into() }).await {
            Answer::Reply(Reply::Value(value)) => String::from_utf8_lossy(&value.unwrap_or_default()).into_owned(),
            other => panic!("a Get answered {other:?}"),
        }
    }

    pub async fn put(&self, key: &str, value: &str) {
        self.write(Op::Put { key: key.into(), value: value.into() }).await;
    }

    pub async fn append(&self, key: &str, value: &str) {
        self.write(Op::Append { key: key.into(), value: value.into() }).await;
    }

    /// The 2025 lab's Get: the key's value and version, None for a missing key (ErrNoKey).
    pub async fn vget(&self, key: &str) -> Option<(String, u64)> {
        match self.execute(Request::VGet { key: key.into() }).await {
            Answer::Reply(Reply::Multi(replies)) => match &replies[..] {
                [Reply::Value(None), Reply::Integer(0)] => None,
                [Reply::Value(Some(value)), Reply::Integer(version)] if *version > 0 => Some((String::from_utf8_lossy(value).into_owned(), *version as u64)),
                other => panic!("a VGET answered {other:?}"),
            },
            other => panic!("a VGET answered {other:?}"),
        }
    }

    /// The 2025 lab's versioned Put (VSET), untagged: the version check alone keeps a resend from
    /// taking effect twice, and a resend refused for its version is `Maybe` (the first copy may
    /// have taken effect, its answer lost).
    pub async fn vput(&self, key: &str, value: &str, version: u64) -> PutOutcome {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        // Untagged (client id 0), but numbered apart from every other write: a caller is matched
        // to its entry by that number.
        let data = Command { client_id: 0, seq: self.client_id.wrapping_add(seq), op: Op::VersionedPut { key: key.into(), value: value.into(), version } }.encode();
        let (answer, resent) = self.send(Request::Write(Write { tag: (0, self.client_id.wrapping_add(seq)), data: data.into(), timed: false })).await;
        match answer {
            Answer::Reply(Reply::Integer(new)) if new as u64 == version + 1 => PutOutcome::Ok,
            Answer::Reply(Reply::Error(error)) if error.starts_with("VERSION ") => {
                if resent {
                    PutOutcome::Maybe
                } else {
                    PutOutcome::ErrVersion
                }
            }
            Answer::Reply(Reply::Error(error)) if error.starts_with("NOKEY ") => PutOutcome::ErrNoKey,
            other => panic!("a VSET at version {version} answered {other:?}"),
        }
    }

    /// A write tagged with this clerk's id and its next sequence number: however often it is
    /// sent, it takes effect once.
    async fn write(&self, op: Op) -> Answer {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let data = Command { client_id: self.client_id, seq, op }.encode().into();
        self.execute(Request::Write(Write { tag: (self.client_id, seq), data, timed: false })).await
    }

    /// Sends one request until some server answers it without an error; never returns a failure.
    async fn execute(&self, request: Request) -> Answer {
        self.send(request).await.0
    }

    /// `execute`, and whether an earlier copy may have taken effect (a call failed or was
    /// answered with an error before the answer came).
    async fn send(&self, request: Request) -> (Answer, bool) {
        let bytes = request.encode();
        let mut resent = false;
        loop {
            for attempt in 0..self.ends.len() {
                let position = (self.leader.get() + attempt) % self.ends.len();
                let answer = self.net.call(self.ends[position], bytes.clone()).await;
                match answer.as_deref().and_then(Answer::decode) {
                    Some(Answer::Error(_)) | None => resent = true,
                    Some(answer) => {
                        self.leader.set(position);
                        return (answer, resent);
                    }
                }
            }
            // Nobody could serve it this round (no leader yet, or cut off): pause before the next.
            self.sim.sleep(Duration::from_millis(20)).await;
        }
    }
}
