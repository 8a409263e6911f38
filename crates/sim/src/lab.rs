//! The lab's Raft API, in Rust: a node handle made from (ends to peers, own index, persister, apply
//! sink), with `start`, `state`, `snapshot` and `kill`, driven by the simulator's clock and network.
//!
//! This is the driver the simulator runs around the pure core: it ticks it, feeds it messages,
//! carries out every `Ready` (persist, send, apply). Where it persists is the caller's choice
//! (`Durable`): the lab's persister, which saves the Raft state and the snapshot together and never
//! fails, or raftkv's `storage::Storage` on a simulated disk, whose `save` can fail. A failed save
//! stops the node at once (`set_on_failure` tells the caller).
//!
//! Beyond the lab's API, `read` asks for a linearizable read without the log (ReadIndex, or a lease
//! with `LabOptions::lease_reads`); its outcome comes in the apply stream as `ApplyMsg::Read`, after
//! every entry it must observe.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use raft::{Apply, Config, EntryKind, LogIndex, Node, NodeId, Persist, Restored, Status};
use storage::{Disk, Storage, StorageError};

use wire::Frame;

use crate::executor::{Sender, Sim};
use crate::network::{EndId, Handler, Network};
use crate::persister::Persister;
use crate::trace::{Event, Trace};

/// What the apply stream carries, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMsg {
    Command { index: u64, command: Vec<u8> },
    /// Replace the service state with this snapshot; commands after `index` follow.
    Snapshot { index: u64, term: u64, data: Vec<u8> },
    /// The outcome of `LabRaft::read(context)`. With `index` Some, everything the read must see has
    /// come earlier in this stream (it is sent after the entries up to the commit index it was
    /// confirmed at), so the service answers it from its state as it is when this arrives. None:
    /// the node lost its leadership first; the caller should try elsewhere.
    Read { context: u64, index: Option<u64> },
}

/// Protocol options beyond the lab's settings. The default is the lab's own configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabOptions {
    /// `raft::Config::lease_reads`: reads under a leader lease, without a heartbeat round.
    pub lease_reads: bool,
    /// `raft::Config::noop_on_election`. Off in the lab, whose tests expect commands at exact
    /// indexes; a service that reads without the log turns it on, or a new leader could not serve a
    /// read before its first write. No-ops never reach the apply stream.
    pub noop_on_election: bool,
}

/// Timer settings for the lab driver, in virtual time.
#[derive(Clone, Copy, Debug)]
pub struct LabTiming {
    pub tick: Duration,
    pub election_timeout_ticks: u32,
    pub heartbeat_ticks: u32,
}

/// 10 ms ticks; heartbeats every 100 ms (the lab allows at most ten a second); elections after
/// 400–800 ms of silence, well inside the lab's "new leader within 5 s".
pub const LAB_TIMING: LabTiming = LabTiming { tick: Duration::from_millis(10), election_timeout_ticks: 40, heartbeat_ticks: 10 };

pub fn node_id(index: usize) -> NodeId {
    NodeId(index as u64 + 1)
}

fn server_index(id: NodeId) -> usize {
    (id.0 - 1) as usize
}

/// Where a node makes each Ready's `Persist` durable.
pub trait Durable {
    /// Makes `persist` durable before returning. An error means what reached the disk is unknown:
    /// the node stops at once, as a process whose fsync failed must.
    fn save(&mut self, persist: &Persist) -> Result<(), StorageError>;
}

impl Durable for Persister {
    fn save(&mut self, persist: &Persist) -> Result<(), StorageError> {
        Persister::save(self, persist);
        Ok(())
    }
}

impl<D: Disk> Durable for Storage<D> {
    fn save(&mut self, persist: &Persist) -> Result<(), StorageError> {
        Storage::save(self, persist)
    }
}

#[derive(Clone)]
pub struct LabRaft(Rc<RefCell<Driver>>);

struct Driver {
    node: Node,
    sim: Sim,
    net: Network,
    trace: Trace,
    ends: Vec<EndId>,
    durable: Box<dyn Durable>,
    apply: Sender<ApplyMsg>,
    killed: bool,
    flush_scheduled: bool,
    last_status: Status,
    /// Told of every change of role, term or leader, for checkers that must see each one.
    observer: Option<Rc<dyn Fn(&Status)>>,
    /// Told once, after the node stopped because a save failed.
    on_failure: Option<OnFailure>,
}

type OnFailure = Rc<dyn Fn(&StorageError)>;

impl LabRaft {
    /// The lab's `Make`: `ends[j]` reaches server j; the node starts from what `persister` holds.
    pub fn make(
        sim: &Sim,
        net: &Network,
        trace: &Trace,
        ends: Vec<EndId>,
        me: usize,
        persister: Persister,
        apply: Sender<ApplyMsg>,
        seed: u64,
    ) -> LabRaft {
        let restored = persister.restored();
        LabRaft::make_with(sim, net, trace, ends, me, restored, Box::new(persister), apply, seed)
    }

    /// `make` with any durable store: the node starts from `restored` (what the caller recovered
    /// from `durable`) and saves every Ready's changes through `durable`.
    #[allow(clippy::too_many_arguments)]
    pub fn make_with(
        sim: &Sim,
        net: &Network,
        trace: &Trace,
        ends: Vec<EndId>,
        me: usize,
        restored: Restored,
        durable: Box<dyn Durable>,
        apply: Sender<ApplyMsg>,
        seed: u64,
    ) -> LabRaft {
        LabRaft::make_with_options(sim, net, trace, ends, me, restored, durable, apply, seed, LabOptions::default())
    }

    /// `make_with`, with protocol options beyond the lab's.
    #[allow(clippy::too_many_arguments)]
    pub fn make_with_options(
        sim: &Sim,
        net: &Network,
        trace: &Trace,
        ends: Vec<EndId>,
        me: usize,
        restored: Restored,
        durable: Box<dyn Durable>,
        apply: Sender<ApplyMsg>,
        seed: u64,
        options: LabOptions,
    ) -> LabRaft {
        let peers = (0..ends.len()).map(node_id).collect();
        let mut config = Config::new(node_id(me), peers);
        config.election_timeout_ticks = LAB_TIMING.election_timeout_ticks;
        config.heartbeat_ticks = LAB_TIMING.heartbeat_ticks;
        config.noop_on_election = options.noop_on_election;
        config.lease_reads = options.lease_reads;
        config.seed = seed;
        let node = Node::new(config, restored).expect("a valid lab configuration and persisted state");
        let last_status = node.status();
        trace.record(sim.now(), format_args!("start {last_status}"));
        trace.event(sim.now(), Event::Start { server: me, term: last_status.term.0 });
        record_status(trace, sim.now(), me, &last_status, None);
        let raft = LabRaft(Rc::new(RefCell::new(Driver {
            node,
            sim: sim.clone(),
            net: net.clone(),
            trace: trace.clone(),
            ends,
            durable,
            apply,
            killed: false,
            flush_scheduled: false,
            last_status,
            observer: None,
            on_failure: None,
        })));
        // Spread the nodes' tick phases so that they do not all act at the same instant.
        let phase = Duration::from_nanos(seed % LAB_TIMING.tick.as_nanos() as u64);
        raft.schedule_tick(phase);
        raft
    }

    /// The network handler: every message addressed to this incarnation comes through here.
    pub fn handler(&self) -> Handler {
        let raft = self.clone();
        Rc::new(move |_from, frame: Frame| {
            if let Frame::Raft(message) = frame {
                raft.with_node(|node| node.step(message));
            }
        })
    }

    /// Proposes a command. Returns at once with (index, term, is_leader); replication starts when
    /// the caller yields, so that proposals made together travel together.
    pub fn start(&self, command: Vec<u8>) -> (u64, u64, bool) {
        let mut driver = self.0.borrow_mut();
        if driver.killed {
            return (0, 0, false);
        }
        let term = driver.node.status().term.0;
        match driver.node.propose(command) {
            Ok((index, term)) => {
                drop(driver);
                self.schedule_flush();
                (index.0, term.0, true)
            }
            Err(_) => (0, term, false),
        }
    }

    /// Asks for a linearizable read tagged `context`; its outcome comes as `ApplyMsg::Read`. Returns
    /// false at once if this node is not the leader. Like proposals, reads made together share the
    /// next Ready (one heartbeat round, or none under a lease).
    pub fn read(&self, context: u64) -> bool {
        let mut driver = self.0.borrow_mut();
        if driver.killed || driver.node.read_index(context).is_err() {
            return false;
        }
        drop(driver);
        self.schedule_flush();
        true
    }

    /// Carries out the node's Ready once the caller yields, so that inputs made together travel together.
    fn schedule_flush(&self) {
        let mut driver = self.0.borrow_mut();
        if driver.flush_scheduled {
            return;
        }
        driver.flush_scheduled = true;
        let raft = self.clone();
        driver.sim.schedule(Duration::ZERO, move || {
            raft.0.borrow_mut().flush_scheduled = false;
            raft.with_node(|_| {});
        });
    }

    /// (current term, whether this node believes it is the leader).
    pub fn state(&self) -> (u64, bool) {
        let status = self.0.borrow().node.status();
        (status.term.0, status.is_leader())
    }

    pub fn status(&self) -> Status {
        self.0.borrow().node.status()
    }

    /// The service's snapshot of everything up to `index`; Raft may drop that log prefix.
    pub fn snapshot(&self, index: u64, data: Vec<u8>) {
        self.with_node(|node| {
            // An index the service has not been handed yet is the caller's bug; the lab never does it.
            let _ = node.compact(LogIndex(index), data);
        });
    }

    pub fn kill(&self) {
        self.stop("killed");
    }

    /// `kill`, saying why (a crash, a shutdown), for the trace and its drawing.
    pub fn stop(&self, why: &str) {
        let mut driver = self.0.borrow_mut();
        if driver.killed {
            return;
        }
        driver.killed = true;
        let now = driver.sim.now();
        driver.trace.record(now, format_args!("kill {} ({why})", driver.node.id()));
        let server = server_index(driver.node.id());
        driver.trace.event(now, Event::Stop { server, why: why.to_string() });
    }

    /// Calls `observer` on every change of role, term or leader. It must not call back into this node.
    pub fn set_observer(&self, observer: Rc<dyn Fn(&Status)>) {
        self.0.borrow_mut().observer = Some(observer);
    }

    /// Calls `on_failure` once if a save fails, after the node stopped. It may call back into this node.
    pub fn set_on_failure(&self, on_failure: Rc<dyn Fn(&StorageError)>) {
        self.0.borrow_mut().on_failure = Some(on_failure);
    }

    /// Read access to the core, for invariant checks.
    pub fn inspect<T>(&self, look: impl FnOnce(&Node) -> T) -> T {
        look(&self.0.borrow().node)
    }

    fn schedule_tick(&self, delay: Duration) {
        let raft = self.clone();
        let sim = self.0.borrow().sim.clone();
        sim.schedule(delay, move || {
            if raft.0.borrow().killed {
                return;
            }
            raft.with_node(Node::tick);
            raft.schedule_tick(LAB_TIMING.tick);
        });
    }

    /// Runs one input against the core, then carries out every Ready it produced.
    fn with_node(&self, input: impl FnOnce(&mut Node)) {
        let mut driver = self.0.borrow_mut();
        if driver.killed {
            return;
        }
        input(&mut driver.node);
        if let Err(error) = driver.drive() {
            let on_failure = driver.on_failure.clone();
            drop(driver);
            if let Some(on_failure) = on_failure {
                on_failure(&error);
            }
        }
    }
}

impl Driver {
    /// Carries out every Ready. A failed save stops the node before anything of that Ready (or any
    /// later input) reaches the network or the service: its messages may promise state that never
    /// became durable, and storage must be reopened to know what did.
    fn drive(&mut self) -> Result<(), StorageError> {
        while self.node.has_ready() {
            let ready = self.node.ready();
            if !ready.persist.is_empty() {
                if let Err(error) = self.durable.save(&ready.persist) {
                    self.killed = true;
                    self.trace.record(self.sim.now(), format_args!("{} stops: save failed: {error}", self.node.id()));
                    let why = format!("save failed: {error}");
                    self.trace.event(self.sim.now(), Event::Stop { server: server_index(self.node.id()), why });
                    return Err(error);
                }
            }
            for message in ready.send_now.iter().chain(&ready.send_after_persist) {
                self.net.send(self.ends[server_index(message.to)], Frame::Raft(message.clone()));
            }
            for item in &ready.apply {
                let message = match item {
                    Apply::Entry(entry) if entry.kind == EntryKind::Noop => continue,
                    Apply::Entry(entry) => ApplyMsg::Command { index: entry.index.0, command: entry.data.to_vec() },
                    Apply::Snapshot(snapshot) => ApplyMsg::Snapshot {
                        index: snapshot.meta.index.0,
                        term: snapshot.meta.term.0,
                        data: snapshot.data.to_vec(),
                    },
                };
                self.apply.send(message);
            }
            for read in &ready.reads {
                self.apply.send(ApplyMsg::Read { context: read.context, index: read.index.map(|index| index.0) });
            }
            self.node.advance(&ready);
        }
        // One input changes the role at most once, so looking after the whole drive misses nothing.
        let status = self.node.status();
        let server = server_index(self.node.id());
        record_status(&self.trace, self.sim.now(), server, &status, Some(&self.last_status));
        if (status.role, status.term, status.leader) != (self.last_status.role, self.last_status.term, self.last_status.leader) {
            self.trace.record(self.sim.now(), format_args!("state {status}"));
            if let Some(observer) = &self.observer {
                observer(&status);
            }
        }
        self.last_status = status;
        Ok(())
    }
}

/// Records what changed from `before` (everything, without it) as events for the drawing.
pub(crate) fn record_status(trace: &Trace, now: Duration, server: usize, status: &Status, before: Option<&Status>) {
    let changed = |same: fn(&Status, &Status) -> bool| before.is_none_or(|before| !same(before, status));
    if changed(|a, b| (a.role, a.term, a.leader) == (b.role, b.term, b.leader)) {
        let leader = status.leader.map(server_index);
        trace.event(now, Event::Role { server, role: status.role, term: status.term.0, leader });
    }
    if changed(|a, b| (a.commit, a.applied, a.last_index, a.snapshot_index) == (b.commit, b.applied, b.last_index, b.snapshot_index)) {
        let (commit, applied) = (status.commit.0, status.applied.0);
        let (last, snapshot) = (status.last_index.0, status.snapshot_index.0);
        trace.event(now, Event::Index { server, commit, applied, last, snapshot });
    }
}
