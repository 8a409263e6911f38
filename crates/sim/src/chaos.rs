//! The randomized safety simulation: one seed picks a cluster and a fault mix, then a run of random
//! partitions, crashes, restarts, loss, duplication, reordering, proposals and snapshots, with the
//! Raft safety properties checked all along (§5.2–§5.4, Figure 3 of the paper):
//!
//! - election safety: at most one leader per term, seen at every role change;
//! - log matching: two logs with an entry of the same index and term agree on it and everything before;
//! - leader completeness: a leader of a term after an entry committed holds that entry;
//! - state machine safety: no two nodes apply different commands at one index, across restarts and
//!   snapshots; every node applies in order, without gaps;
//! - monotonicity: a node's term never goes down, even across a crash;
//! - liveness: once every fault heals, a new command commits on every node within bounded virtual time.
//!
//! With `ChaosReads` on, the run also makes reads without the log (ReadIndex, or leases) on every
//! node that believes it leads, all along, and checks each answer for linearizability: its read
//! index is at least every index known committed anywhere when the read was asked (no stale
//! leader answers from an old state), and the service had applied up to it when the answer came.
//! Those runs also reboot nodes (a crash and an immediate restart), which a lease must survive.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use raft::{LogIndex, Restored, Role, Status};

use crate::executor::{channel, Receiver, Sim};
use crate::lab::{ApplyMsg, Durable, LabOptions, LabRaft};
use crate::network::{EndId, Network};
use crate::persister::Persister;
use crate::raft_tester::{cmd, decode_snapshot, encode_snapshot, ms};
use crate::rng::SimRng;
use crate::trace::{NoteBy, Trace};

/// What one seed chose. Printed with every failure, so a reader knows the run without replaying it.
#[derive(Clone, Debug)]
pub struct ChaosParams {
    pub servers: usize,
    pub unreliable: bool,
    pub long_reordering: bool,
    /// Per step, in per mille.
    pub crash_per_mille: u64,
    pub partition_per_mille: u64,
    /// After applying an index, the service snapshots with this chance (per mille); 0 = never.
    pub snapshot_per_mille: u64,
    pub steps: u32,
}

impl ChaosParams {
    pub fn from_seed(rng: &SimRng) -> ChaosParams {
        ChaosParams {
            servers: *rng.pick(&[3, 3, 5, 5, 7]),
            unreliable: rng.chance(1, 2),
            long_reordering: rng.chance(1, 4),
            crash_per_mille: *rng.pick(&[0, 10, 30, 80]),
            partition_per_mille: *rng.pick(&[0, 10, 30, 80]),
            snapshot_per_mille: *rng.pick(&[0, 20, 100, 500]),
            steps: 200 + rng.below(400) as u32,
        }
    }
}

/// The longest a healed cluster may take to commit a new command on every node.
const LIVENESS_BOUND: Duration = Duration::from_secs(10);

/// The reads a run makes and checks, besides its proposals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChaosReads {
    /// No reads: the original run, seed for seed.
    #[default]
    Off,
    /// ReadIndex reads (thesis §6.4).
    ReadIndex,
    /// The same with `lease_reads` on every node: reads answered under a lease whenever it holds.
    Lease,
}

/// Every few milliseconds (0–`READ_EVERY_MS`), each node that believes it leads is asked for a
/// read with even odds: often enough to hit the windows where a deposed leader still believes.
const READ_EVERY_MS: u64 = 40;

/// What a read must observe: asked of `node`, when indexes up to `floor` were known committed.
struct ReadCheck {
    node: usize,
    floor: u64,
}

/// A simulated cluster and everything the checks know about it. `store` is what the nodes keep
/// their state in: the lab's persisters here, simulated disks in `disk_chaos`.
pub(crate) struct Cluster<S> {
    pub(crate) sim: Sim,
    pub(crate) rng: SimRng,
    pub(crate) trace: Trace,
    pub(crate) net: Network,
    pub(crate) params: ChaosParams,
    pub(crate) rafts: Vec<Option<LabRaft>>,
    pub(crate) store: S,
    ends: Vec<Vec<EndId>>,
    /// links[i][j]: whether the partition lets i reach j (crashes aside).
    links: Vec<Vec<bool>>,
    /// Each node's state machine: the commands it applied, from 1 (a snapshot fills in its prefix).
    pub(crate) machines: Vec<BTreeMap<u64, Vec<u8>>>,
    /// Every command known applied anywhere, with the highest term any node had when it was first
    /// seen: its commit term is at most that, so every leader of a later term must hold it.
    pub(crate) committed: BTreeMap<u64, (Vec<u8>, u64)>,
    pub(crate) leaders: BTreeMap<u64, usize>,
    /// The highest term each node ever reported, across incarnations.
    pub(crate) terms: Vec<u64>,
    next_command: u64,
    pub(crate) reads: ChaosReads,
    /// Reads asked and not yet answered, by context (unique across nodes and incarnations).
    read_checks: BTreeMap<u64, ReadCheck>,
    next_read: u64,
    /// Whether the reader keeps asking; it stops when the scenario ends.
    reading: bool,
    reads_answered: usize,
    reads_failed: usize,
}

pub(crate) type Shared<S> = Rc<RefCell<Cluster<S>>>;

impl<S> Cluster<S> {
    pub(crate) fn new(sim: &Sim, rng: &SimRng, trace: &Trace, params: &ChaosParams, store: S) -> Shared<S> {
        let n = params.servers;
        Rc::new(RefCell::new(Cluster {
            sim: sim.clone(),
            rng: rng.clone(),
            trace: trace.clone(),
            net: Network::new(sim.clone(), rng.clone(), trace.clone(), n),
            params: params.clone(),
            rafts: vec![None; n],
            store,
            ends: vec![Vec::new(); n],
            links: vec![vec![true; n]; n],
            machines: vec![BTreeMap::new(); n],
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            terms: vec![0; n],
            next_command: 1,
            reads: ChaosReads::Off,
            read_checks: BTreeMap::new(),
            next_read: 0,
            reading: false,
            reads_answered: 0,
            reads_failed: 0,
        }))
    }
}

impl<S> Cluster<S> {
    /// A note of the scenario's own action, in the trace and, as an annotation, in the drawing.
    pub(crate) fn act(&self, server: Option<usize>, short: &str, details: &str) {
        let now = self.sim.now();
        match server {
            Some(i) => self.trace.record(now, format_args!("chaos: {short} {i} {details}")),
            None => self.trace.record(now, format_args!("chaos: {short} {details}")),
        }
        self.trace.note(now, server, short, details, NoteBy::Tester);
    }
}

/// Runs `scenario` to its end under the cluster's simulator; a panic anywhere (a broken invariant)
/// comes back as its message, stamped with the virtual time, and is recorded as the run's failure.
pub(crate) fn run_scenario(
    sim: &Sim,
    trace: &Trace,
    scenario: impl std::future::Future<Output = ()> + 'static,
) -> Result<(), String> {
    sim.set_event_limit(20_000_000);
    catch_unwind(AssertUnwindSafe(|| sim.block_on(scenario))).map_err(|panic| {
        let message = crate::runner::panic_message(panic.as_ref());
        trace.fail(sim.now(), &message);
        format!("{message} (at virtual time {:?})", sim.now())
    })
}

/// Runs one seed. Returns the failure, with the seed's parameters, or Ok.
/// What a passing seed did, so that a run that exercised nothing is visible.
#[derive(Clone)]
pub struct ChaosSummary {
    pub params: ChaosParams,
    pub committed: usize,
    pub terms_with_leader: usize,
    /// Reads answered with an index (and checked), and reads that failed because leadership was lost.
    pub reads_answered: usize,
    pub reads_failed: usize,
    pub virtual_time: Duration,
    pub trace: Trace,
}

pub fn run(seed: u64) -> Result<ChaosSummary, (ChaosParams, String, Trace)> {
    run_with(seed, ChaosReads::Off)
}

/// `run`, making and checking reads as `reads` says. The seed picks the same parameters either way.
pub fn run_with(seed: u64, reads: ChaosReads) -> Result<ChaosSummary, (ChaosParams, String, Trace)> {
    let sim = Sim::new();
    let rng = SimRng::new(seed);
    let trace = Trace::default();
    let params = ChaosParams::from_seed(&rng);
    let persisters: Vec<Persister> = (0..params.servers).map(|_| Persister::new()).collect();
    let cluster = Cluster::new(&sim, &rng, &trace, &params, persisters);
    cluster.borrow_mut().reads = reads;
    match run_scenario(&sim, &trace, scenario(cluster.clone())) {
        Ok(()) => {
            let c = cluster.borrow();
            Ok(ChaosSummary {
                params,
                committed: c.committed.len(),
                terms_with_leader: c.leaders.len(),
                reads_answered: c.reads_answered,
                reads_failed: c.reads_failed,
                virtual_time: sim.now(),
                trace: trace.clone(),
            })
        }
        Err(message) => Err((params, message, trace)),
    }
}

async fn scenario(cluster: Shared<Vec<Persister>>) {
    let (sim, rng, params) = {
        let cluster = cluster.borrow();
        (cluster.sim.clone(), cluster.rng.clone(), cluster.params.clone())
    };
    for i in 0..params.servers {
        start(&cluster, i);
    }
    if params.unreliable {
        cluster.borrow().net.set_reliable(false);
    }
    cluster.borrow().net.set_long_reordering(params.long_reordering);
    if cluster.borrow().reads != ChaosReads::Off {
        cluster.borrow_mut().reading = true;
        sim.spawn(reader(cluster.clone()));
    }
    for _ in 0..params.steps {
        sim.sleep(ms(rng.below(150))).await;
        chaos_step(&cluster, &rng, &params);
        check_logs(&cluster);
    }
    heal(&cluster);
    let everyone: Vec<usize> = (0..params.servers).collect();
    await_progress(&cluster, &sim, &everyone).await;
    check_logs(&cluster);
    cluster.borrow_mut().reading = false;
    shut_down(&cluster);
}

/// Asks every node that believes it leads for reads, at short random intervals, until the end.
async fn reader<S>(cluster: Shared<S>) {
    let (sim, rng) = {
        let c = cluster.borrow();
        (c.sim.clone(), c.rng.clone())
    };
    while cluster.borrow().reading {
        sim.sleep(ms(rng.below(READ_EVERY_MS))).await;
        let (floor, leaders) = {
            let c = cluster.borrow();
            let living = c.rafts.iter().flatten();
            let commit = living.map(|raft| raft.status().commit.0).max().unwrap_or(0);
            let applied = c.committed.keys().next_back().copied().unwrap_or(0);
            let leaders: Vec<(usize, LabRaft)> = (0..c.params.servers)
                .filter_map(|i| c.rafts[i].clone().map(|raft| (i, raft)))
                .filter(|(_, raft)| raft.state().1)
                .collect();
            (commit.max(applied), leaders)
        };
        for (node, raft) in leaders {
            if !rng.chance(1, 2) {
                continue;
            }
            let context = {
                let mut c = cluster.borrow_mut();
                c.next_read += 1;
                c.next_read
            };
            if raft.read(context) {
                cluster.borrow_mut().read_checks.insert(context, ReadCheck { node, floor });
            }
        }
    }
}

pub(crate) fn shut_down<S>(cluster: &Shared<S>) {
    let cluster = cluster.borrow();
    for raft in cluster.rafts.iter().flatten() {
        raft.kill();
    }
    cluster.net.close();
}

fn chaos_step(cluster: &Shared<Vec<Persister>>, rng: &SimRng, params: &ChaosParams) {
    let n = params.servers;
    change_links(cluster, rng, params);
    if rng.chance(params.crash_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        crash(cluster, victim);
    }
    if rng.chance(60, 1000) {
        let dead: Vec<usize> = (0..n).filter(|&i| cluster.borrow().rafts[i].is_none()).collect();
        if !dead.is_empty() {
            start(cluster, *rng.pick(&dead));
        }
    }
    // When reads are checked, also quick reboots: a node that answered a leader's heartbeat a moment
    // ago comes straight back having forgotten it, inside the leader's lease (what the restart fence
    // of `raft`'s lease.rs is for). Only then, so that runs without reads stay the same seed for seed.
    if cluster.borrow().reads != ChaosReads::Off && rng.chance(params.crash_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        if cluster.borrow().rafts[victim].is_some() {
            crash(cluster, victim);
            start(cluster, victim);
        }
    }
    propose_some(cluster, rng);
}

/// Now and then a new random partition, or the partition healed.
pub(crate) fn change_links<S>(cluster: &Shared<S>, rng: &SimRng, params: &ChaosParams) {
    let n = params.servers;
    if rng.chance(params.partition_per_mille, 1000) {
        let side: Vec<bool> = (0..n).map(|_| rng.chance(1, 2)).collect();
        let mut c = cluster.borrow_mut();
        let groups = |on: bool| (0..n).filter(|&i| side[i] == on).collect::<Vec<_>>();
        c.act(None, "partition", &format!("{:?} | {:?}", groups(true), groups(false)));
        c.links = (0..n).map(|i| (0..n).map(|j| side[i] == side[j]).collect()).collect();
        drop(c);
        apply_links(cluster);
    } else if rng.chance(40, 1000) {
        let mut c = cluster.borrow_mut();
        c.act(None, "heal partition", "");
        c.links = vec![vec![true; n]; n];
        drop(c);
        apply_links(cluster);
    }
}

/// Proposals: to the node that believes it leads, and now and then to a random one.
pub(crate) fn propose_some<S>(cluster: &Shared<S>, rng: &SimRng) {
    let n = cluster.borrow().params.servers;
    for _ in 0..rng.below(4) {
        let target = if rng.chance(1, 5) { Some(rng.below(n as u64) as usize) } else { believed_leader(cluster) };
        if let Some(target) = target {
            propose(cluster, target);
        }
    }
}

fn believed_leader<S>(cluster: &Shared<S>) -> Option<usize> {
    let c = cluster.borrow();
    (0..c.params.servers).filter(|&i| c.rafts[i].as_ref().is_some_and(|raft| raft.state().1)).max_by_key(|&i| c.rafts[i].as_ref().map(|raft| raft.state().0))
}

fn propose<S>(cluster: &Shared<S>, target: usize) -> Option<(u64, Vec<u8>)> {
    let (raft, command) = {
        let mut c = cluster.borrow_mut();
        let raft = c.rafts[target].clone()?;
        let command = cmd(c.next_command);
        c.next_command += 1;
        (raft, command)
    };
    let (index, _, accepted) = raft.start(command.clone());
    accepted.then_some((index, command))
}

/// Enables exactly the ends the partition and the living nodes allow.
pub(crate) fn apply_links<S>(cluster: &Shared<S>) {
    let c = cluster.borrow();
    for i in 0..c.params.servers {
        for j in 0..c.params.servers {
            let up = c.links[i][j] && c.rafts[i].is_some() && c.rafts[j].is_some();
            if let Some(&end) = c.ends[i].get(j) {
                c.net.enable(end, up);
            }
        }
    }
}

fn crash(cluster: &Shared<Vec<Persister>>, i: usize) {
    if stop(cluster, i, "crash") {
        let mut c = cluster.borrow_mut();
        c.store[i] = c.store[i].copy();
    }
}

/// Takes node `i` down, if it is up: off the network, killed. Returns whether it was up.
pub(crate) fn stop<S>(cluster: &Shared<S>, i: usize, why: &str) -> bool {
    let mut c = cluster.borrow_mut();
    let Some(raft) = c.rafts[i].take() else { return false };
    c.act(Some(i), why, "");
    // Its reads will never be answered.
    c.read_checks.retain(|_, check| check.node != i);
    c.net.delete_server(i);
    raft.stop(why);
    drop(c);
    apply_links(cluster);
    true
}

fn start(cluster: &Shared<Vec<Persister>>, i: usize) {
    let mut c = cluster.borrow_mut();
    c.act(Some(i), "start", "");
    c.store[i] = c.store[i].copy();
    let persister = c.store[i].clone();
    drop(c);
    let restored = persister.restored();
    launch(cluster, i, restored, Box::new(persister));
}

/// Starts an incarnation of node `i` from `restored`, saving through `durable`: fresh ends, the
/// service's state machine from the restored snapshot, the checks on its role changes and applies.
pub(crate) fn launch<S: 'static>(
    cluster: &Shared<S>,
    i: usize,
    restored: Restored,
    durable: Box<dyn Durable>,
) -> LabRaft {
    let mut c = cluster.borrow_mut();
    let ends: Vec<EndId> = (0..c.params.servers).map(|j| c.net.make_end(i, j)).collect();
    c.ends[i] = ends.clone();
    // The service restores from the persisted snapshot itself, as the lab's does.
    c.machines[i] = match &restored.snapshot {
        Some(snapshot) if !snapshot.data.is_empty() => {
            let (_, machine) = decode_snapshot(&snapshot.data).expect("the persisted snapshot decodes");
            machine
        }
        _ => BTreeMap::new(),
    };
    let (sender, receiver) = channel();
    let seed = c.rng.u64();
    // No-ops stay off, as in the lab: the apply checks expect every index to carry a command.
    let options = LabOptions { lease_reads: c.reads == ChaosReads::Lease, noop_on_election: false };
    let raft = LabRaft::make_with_options(&c.sim, &c.net, &c.trace, ends, i, restored, durable, sender, seed, options);
    let observed = Rc::downgrade(cluster);
    raft.set_observer(Rc::new(move |status: &Status| {
        if let Some(cluster) = observed.upgrade() {
            observe_status(&cluster, i, status);
        }
    }));
    c.net.add_server(i, raft.handler());
    c.rafts[i] = Some(raft.clone());
    c.sim.spawn(read_applies(cluster.clone(), i, receiver));
    drop(c);
    apply_links(cluster);
    raft
}

/// Election safety and term monotonicity, on every role change of every node.
fn observe_status<S>(cluster: &Shared<S>, i: usize, status: &Status) {
    let mut c = cluster.borrow_mut();
    let term = status.term.0;
    assert!(term >= c.terms[i], "node {i}'s term went down from {} to {term}", c.terms[i]);
    c.terms[i] = term;
    if status.role == Role::Leader {
        let previous = *c.leaders.entry(term).or_insert(i);
        assert_eq!(previous, i, "election safety: nodes {previous} and {i} both lead term {term}");
    }
}

/// The service of one incarnation: checks every applied command against what every other node
/// applied, and snapshots at random points.
async fn read_applies<S>(cluster: Shared<S>, i: usize, mut receiver: Receiver<ApplyMsg>) {
    while let Some(message) = receiver.recv().await {
        let mut c = cluster.borrow_mut();
        match message {
            ApplyMsg::Command { index, command } => {
                let last = c.machines[i].keys().next_back().copied().unwrap_or(0);
                assert_eq!(index, last + 1, "node {i} applied {index} right after {last}");
                let max_term = c.terms.iter().copied().max().unwrap_or(0);
                let (known, _) = c.committed.entry(index).or_insert((command.clone(), max_term)).clone();
                assert!(known == command, "state machine safety: node {i} applied a different command at {index}");
                c.machines[i].insert(index, command);
                if c.rng.chance(c.params.snapshot_per_mille, 1000) {
                    let data = encode_snapshot(index, &c.machines[i]);
                    let raft = c.rafts[i].clone();
                    drop(c);
                    if let Some(raft) = raft {
                        raft.snapshot(index, data);
                    }
                }
            }
            ApplyMsg::Read { context, index } => check_read(&mut c, i, context, index),
            ApplyMsg::Snapshot { index, data, .. } => {
                let (decoded, machine) = decode_snapshot(&data).expect("snapshots decode");
                assert_eq!(decoded, index, "node {i}: snapshot message for {index} holds {decoded}");
                let last = c.machines[i].keys().next_back().copied().unwrap_or(0);
                assert!(index > last, "node {i}: snapshot at {index} would move its state back from {last}");
                for (position, command) in &machine {
                    if let Some((known, _)) = c.committed.get(position) {
                        assert!(known == command, "state machine safety: snapshot disagrees at {position}");
                    }
                }
                c.machines[i] = machine;
            }
        }
    }
}

/// Linearizability of one read answered by node `i`: no older than what had committed anywhere when
/// it was asked, and served from a state machine that has applied up to its index.
fn check_read<S>(c: &mut Cluster<S>, i: usize, context: u64, index: Option<u64>) {
    let Some(ReadCheck { node, floor }) = c.read_checks.remove(&context) else { return };
    assert_eq!(node, i, "read {context} was asked of node {node} but answered by {i}");
    let Some(index) = index else {
        c.reads_failed += 1;
        return;
    };
    assert!(
        index >= floor,
        "read linearizability: node {i} answered read {context} at index {index}, but {floor} had committed before it was asked"
    );
    let applied = c.machines[i].keys().next_back().copied().unwrap_or(0);
    assert!(applied >= index, "node {i} answered read {context} at index {index} having applied only up to {applied}");
    c.reads_answered += 1;
}

/// Log matching and leader completeness, over every living node's in-memory log.
pub(crate) fn check_logs<S>(cluster: &Shared<S>) {
    let c = cluster.borrow();
    let logs: Vec<(usize, LabRaft)> = c.rafts.iter().enumerate().filter_map(|(i, raft)| raft.clone().map(|raft| (i, raft))).collect();
    for (a, (i, first)) in logs.iter().enumerate() {
        for (j, second) in &logs[a + 1..] {
            first.inspect(|left| second.inspect(|right| check_log_matching(*i, left.log(), *j, right.log())));
        }
    }
    for (i, raft) in &logs {
        raft.inspect(|node| {
            let status = node.status();
            if status.role != Role::Leader {
                return;
            }
            let log = node.log();
            for (&index, (command, max_term)) in c.committed.iter() {
                if status.term.0 <= *max_term || LogIndex(index) <= log.snapshot_meta().index {
                    continue;
                }
                let entry = log.entry(LogIndex(index));
                assert!(
                    entry.is_some_and(|entry| entry.data == *command),
                    "leader completeness: leader {i} of term {} lacks committed index {index}",
                    status.term
                );
            }
        });
    }
    let detail = format!("over the logs of the {} running nodes", logs.len());
    c.trace.check(c.sim.now(), "log matching, leader completeness", true, detail);
}

fn check_log_matching(i: usize, left: &raft::log::RaftLog, j: usize, right: &raft::log::RaftLog) {
    let low = left.first_index().max(right.first_index());
    let mut index = left.last_index().min(right.last_index());
    let mut matched = false;
    while index >= low && index > LogIndex::ZERO {
        let (a, b) = (left.entry(index), right.entry(index));
        if let (Some(a), Some(b)) = (a, b) {
            if matched || a.term == b.term {
                matched = true;
                assert!(a == b, "log matching: nodes {i} and {j} differ at {index} below a common entry");
            }
        }
        index = index.prev();
    }
}

fn heal(cluster: &Shared<Vec<Persister>>) {
    let n = cluster.borrow().params.servers;
    heal_network(cluster);
    for i in 0..n {
        if cluster.borrow().rafts[i].is_none() {
            start(cluster, i);
        }
    }
    apply_links(cluster);
}

/// The network part of the heal: every link up, reliable, no long reordering.
pub(crate) fn heal_network<S>(cluster: &Shared<S>) {
    let n = cluster.borrow().params.servers;
    let mut c = cluster.borrow_mut();
    c.act(None, "heal everything", "every link up, reliable, no long reordering");
    c.links = vec![vec![true; n]; n];
    c.net.set_reliable(true);
    c.net.set_long_reordering(false);
}

/// After the heal: a new command must be applied by every node of `live` within `LIVENESS_BOUND`.
/// Returns its index.
pub(crate) async fn await_progress<S>(cluster: &Shared<S>, sim: &Sim, live: &[usize]) -> u64 {
    let healed = sim.now();
    let mut proposed: Vec<(u64, Vec<u8>)> = Vec::new();
    while sim.now() - healed < LIVENESS_BOUND {
        if let Some(leader) = believed_leader(cluster) {
            if proposed.is_empty() || sim.now() - healed > Duration::from_secs(2) && proposed.len() < 5 {
                proposed.extend(propose(cluster, leader));
            }
        }
        let c = cluster.borrow();
        let everywhere =
            |(index, command): &&(u64, Vec<u8>)| live.iter().all(|&i| c.machines[i].get(index) == Some(command));
        if let Some((index, _)) = proposed.iter().find(everywhere) {
            c.trace.record(c.sim.now(), "chaos: a new command committed everywhere after the heal");
            let detail = format!("index {index} applied on {live:?} {:?} after the heal", sim.now() - healed);
            c.trace.check(sim.now(), "liveness", true, detail);
            return *index;
        }
        drop(c);
        check_logs(cluster);
        sim.sleep(ms(50)).await;
    }
    panic!("liveness: no new command committed on all {} nodes {live:?} within {LIVENESS_BOUND:?} of the heal", live.len());
}
