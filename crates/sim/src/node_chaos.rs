//! The production node in the simulator: every node is a `replica::Replica` — the code the server
//! runs — on raftkv's storage over a simulated disk (`MemDisk`), its frames encoded with the real
//! codec (`wire`, with the real frame limit) and carried by a simulated network of bounded, ordered
//! links. One seed picks the cluster and the faults: partitions, lost frames (a connection reset),
//! duplicated frames, long delays, full link queues, crashes (a crash loses what was not synced) and restarts as new
//! incarnations, snapshots. Clients pipeline requests on connections to leaders and followers.
//!
//! Checked throughout:
//! - every key's history is linearizable (the in-repo checker), which also catches an answer
//!   delivered to the wrong caller and a write applied twice;
//! - per-connection order: a read sees every write its connection sent before it and got `+OK` for;
//! - every request is answered within the request timeout (plus the network's latency), unless its
//!   connection broke;
//! - a node's term never goes down while it runs, a restart recovers at least the term its saves
//!   recorded, and at most one leader per term;
//! - after the faults heal, a new write is answered on every node within a bound.
//!
//! Frames in a link's queue when its receiver restarts are delivered to the new incarnation (a
//! transport sends what it queued on the next connection), so an answer meant for a request of an
//! earlier incarnation can arrive: it must not complete anything.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use kv::Store;
use linearizability::kv::{KvInput, KvModel, KvOp, KvOutput};
use linearizability::strings::{StringsInput, StringsModel, StringsOutput};
use linearizability::versioned::{VersionedInput, VersionedModel, VersionedOutput};
use linearizability::{CheckResult, Operation};
use raft::{Config, NodeId};
use raft::Change;
use replica::request::{Admin, Answer, Request};
use replica::pipeline::Pipeline;
use replica::session::{Session, Step};
use replica::links::PeerLinks;
use replica::{ConnId, Mutation, Options, Output, Replica};
use storage::{MemDisk, Storage};
use wire::admission::{Admission, Admitted};
use wire::{Frame, Wire};

use crate::executor::Sim;
use crate::rng::SimRng;
use crate::trace::{Event, Fate, NoteBy, Trace};

/// The node's clock: the server's 10 ms tick.
const TICK: Duration = Duration::from_millis(10);
/// The production request timeout, 5 s, in ticks.
const REQUEST_TIMEOUT_TICKS: u64 = 500;
/// Once every fault healed, a new write must be answered on every node within this.
const LIVENESS_BOUND: Duration = Duration::from_secs(15);
/// Linearizability search budget per run.
const CHECK_BUDGET: u64 = 5_000_000;
/// Requests per run, at most: the checker's work grows with the history, and with the length of
/// the values appends build up.
const MAX_REQUESTS: usize = 1_500;

/// What one seed chose. Printed with every failure.
#[derive(Clone, Debug)]
pub struct Params {
    pub servers: usize,
    pub steps: u32,
    pub crash_per_mille: u64,
    /// Per step: a running node's disk dies at one of its next few syncs (torn or not), so that a
    /// save fails and the node stops, as the server does.
    pub disk_death_per_mille: u64,
    pub partition_per_mille: u64,
    /// Per frame, while the network is lossy: the frame is lost (its connection reset).
    pub loss_per_mille: u64,
    /// Per frame, while the network is lossy: a delay of up to a second.
    pub long_delay_per_mille: u64,
    /// Per frame, while the network is lossy: the frame arrives twice (as when a transport sends
    /// again, on a new connection, frames the old one had already delivered).
    pub duplicate_per_mille: u64,
    /// Per step: a node's disk fills up (it has a few kilobytes left), or a full one gets its
    /// space back. A save that finds it full writes nothing and is handed again later.
    pub disk_full_per_mille: u64,
    /// The network starts lossy (it toggles now and then either way).
    pub lossy_at_start: bool,
    /// Frames a link holds before `send` refuses (the transport's queue is 1024).
    pub queue_frames: usize,
    pub clients: usize,
    /// Requests a client sends before waiting for their answers.
    pub pipeline: usize,
    /// Requests of one connection with its node at once (`replica::pipeline`; the client port's
    /// is 64): the rest of its pipeline waits until their replies are read.
    pub window: usize,
    /// Clients send their next requests while earlier ones are still unanswered (up to twice the
    /// pipeline), as `redis-benchmark -P` does, instead of waiting for every answer.
    pub streaming: bool,
    pub snapshot_every: u64,
    pub max_forwards_in_flight: usize,
    pub keys: usize,
    /// The bootstrap voters are nodes 0..voters; the rest (`servers - voters`) start as nodes
    /// that join (`--join`) and wait to be added.
    pub voters: usize,
    /// Per step: the leader is asked for a membership change (add a waiting node as a learner,
    /// promote a learner, remove any member, transfer leadership). 0: the membership stays.
    pub membership_per_mille: u64,
    /// Clients that take a lock with `SET lock <id> NX PX`, hold it a while and give it back with
    /// VGET and VDEL (0 unless a test asks: the seeds without them run as they did).
    pub lock_clients: usize,
    /// Clients that run the 2025 lab's "one put" loop with VGET and VSET on two keys, their
    /// history checked with the versioned model (0 unless a test asks).
    pub versioned_clients: usize,
    /// Clients of counters (tagged INCRBY, retried until answered), expiring keys (SET PX) and
    /// transactions (MULTI, APPENDs, GET, EXEC), with GETs between, their history checked with
    /// the strings model (0 unless a test asks).
    pub strings_clients: usize,
    /// A node whose removal committed is stopped for good (its machine retired: a dead node
    /// replaced), so that the cluster goes on with the waiting nodes added in its place. Half the
    /// seeds that change the membership.
    pub retire_removed: bool,
    /// Instead, the retired node's id is used again on an empty disk (`--join`): the operator
    /// error Raft cannot survive (the new disk forgets the votes of the old one). Only the test
    /// that shows the hazard sets it.
    pub reuse_removed_ids: bool,
}

impl Params {
    pub fn from_seed(rng: &SimRng) -> Params {
        // A quarter of the runs have no fault at all: there, nothing may time out.
        let faults = rng.chance(3, 4);
        let fault = |choices: &[u64]| if faults { *rng.pick(choices) } else { 0 };
        Params {
            servers: *rng.pick(&[3, 3, 5]),
            steps: 100 + rng.below(200) as u32,
            crash_per_mille: fault(&[0, 10, 30, 80]),
            disk_death_per_mille: fault(&[0, 10, 30]),
            partition_per_mille: fault(&[0, 10, 30, 60]),
            loss_per_mille: fault(&[0, 5, 30]),
            long_delay_per_mille: fault(&[0, 5, 20]),
            lossy_at_start: faults && rng.chance(1, 4),
            queue_frames: *rng.pick(&[8, 64, 1024]),
            clients: 1 + rng.below(4) as usize,
            pipeline: *rng.pick(&[1, 2, 4, 8, 16]),
            window: replica::pipeline::WINDOW,
            streaming: rng.chance(1, 2),
            snapshot_every: *rng.pick(&[20, 100, 1000]),
            max_forwards_in_flight: *rng.pick(&[8, 64, 512]),
            keys: *rng.pick(&[3, 5, 10]),
            // Drawn last, so that adding it left every earlier choice of a seed as it was.
            duplicate_per_mille: fault(&[0, 0, 10, 50]),
            disk_full_per_mille: fault(&[0, 0, 10, 30]),
            voters: 0,
            membership_per_mille: 0,
            lock_clients: 0,
            versioned_clients: 0,
            strings_clients: 0,
            retire_removed: false,
            reuse_removed_ids: false,
        }
    }

    /// Half the seeds change the membership, with up to three nodes waiting to join. Drawn from a
    /// generator of their own, so that the seeds without changes run exactly as they did before.
    fn draw_membership(&mut self, rng: &SimRng) {
        self.voters = self.servers;
        if rng.chance(1, 2) {
            self.membership_per_mille = *rng.pick(&[20, 50, 100]);
            self.servers += 1 + rng.below(3) as usize;
        }
    }
}

/// The seed of a run's membership generator, from its seed.
fn membership_seed(seed: u64) -> u64 {
    seed ^ 0x6d65_6d62_6572_7321
}

/// What a passing seed did.
#[derive(Clone)]
pub struct Summary {
    pub params: Params,
    pub answered: u64,
    pub errors: u64,
    /// Snapshot chunks that left a leader (each in its own frame).
    pub snapshot_chunks: u64,
    /// Saves that found a disk full (and were handed again later).
    pub saves_on_full_disk: u64,
    /// Membership changes and leadership transfers asked of a leader.
    pub membership_changes: u64,
    /// Removed nodes stopped for good (`Params::retire_removed`).
    pub retired_nodes: usize,
    pub operations: usize,
    /// Times a lock client held the lock, and how many of those ended because its lease could
    /// have run out (it held on longer).
    pub holds: usize,
    pub holds_past_lease: usize,
    /// Versioned operations checked, and how many VSETs took effect.
    pub versioned_operations: usize,
    pub versioned_puts_ok: usize,
    /// Strings operations checked; of them, GETs that found an expiring key gone, and
    /// transactions answered.
    pub strings_operations: usize,
    pub expired_reads: usize,
    pub transactions: usize,
    /// The checker ran out of its budget (the history was neither proven nor refuted).
    pub undecided: bool,
    pub virtual_time: Duration,
    pub trace: Trace,
}

struct Link {
    up: bool,
    /// Frames on their way, and when the last one arrives (links keep order).
    in_flight: usize,
    last_arrival: Duration,
}

struct Running {
    replica: Replica,
    storage: Storage<MemDisk>,
    incarnation: u64,
    /// Requests the simulation's clients handed this incarnation, and leader changes it saw:
    /// what its `/metrics` must report.
    requests: u64,
    leader_changes: u64,
    /// What its transport was told (the last `Output::Peers`; at start its `--peers`, as the
    /// transport starts with them): whom it dials, what its Hellos say, whom it admits.
    links: PeerLinks,
}

/// One request a client sent and has not been answered yet.
struct Sent {
    input: KvInput,
    call: u64,
    sent_at: Duration,
    /// A tagged append's (client id, sequence number): sent again, the same, until answered.
    tag: Option<(u64, u64)>,
}

struct Client {
    id: u64,
    /// The node its connection is to, and the connection (None: it must connect again).
    connection: Option<(usize, ConnId)>,
    /// Its side of the protocol, as the client port runs it (kept across its connections: only
    /// whole commands go in, so nothing of one connection is left for the next).
    session: Session,
    /// Its connection's pipeline, as the client port keeps one per connection.
    pipeline: Pipeline,
    /// In the order sent: the first `released` were handed to the node (in a round of the
    /// pipeline), the rest wait in the pipeline.
    outstanding: Vec<Sent>,
    released: usize,
    /// The replies it waits for on its connection, in order: the token of an ECHO it sent (which
    /// the connection answers itself), or None for the answer to its next outstanding request.
    replies_due: VecDeque<Option<String>>,
    next_token: u64,
    /// Tags its appends (`TAGGED <client id> <seq>`), as the project's own client does, one at a
    /// time, and retries one that failed with the same tag: each must take effect exactly once.
    tagged_id: Option<u64>,
    /// A tagged append to send again (its first call time kept: it is one operation).
    retry: Option<Sent>,
    /// The node answered that it knows no leader, or was removed: connect elsewhere once every
    /// answer is in (with membership changes only, so that other seeds run as they did).
    move_on: bool,
}

struct World {
    sim: Sim,
    rng: SimRng,
    trace: Trace,
    params: Params,
    nodes: Vec<Option<Running>>,
    disks: Vec<MemDisk>,
    links: Vec<Vec<Link>>,
    lossy: bool,
    incarnations: u64,
    clients: Vec<Client>,
    next_conn: u64,
    /// A disk death is armed on the node's disk: the one failure of a save expected.
    armed: Vec<bool>,
    /// Frames that reached a node while it was down, per node, for its next incarnation.
    held: Vec<Vec<InFlight>>,
    /// Each connection's admission on its receiver, by (receiver, sender, sender's incarnation,
    /// receiver's incarnation): a new incarnation on either end is a new connection, opened by a
    /// Hello, as the transport's reconnects are.
    admissions: BTreeMap<(usize, usize, u64, u64), Admission>,
    /// conn -> client index, per node.
    conns: Vec<BTreeMap<ConnId, usize>>,
    history: Vec<Operation<KvInput, KvOutput>>,
    last_stamp: u64,
    /// The highest term each node reported, and the leader of each term.
    terms: Vec<u64>,
    /// The leader each node's running incarnation knew at its last input.
    known_leaders: Vec<Option<raft::NodeId>>,
    /// The highest term each node's successful saves recorded: a restart recovers at least that.
    /// (A term taken but not saved yet may be lost in a crash: nothing was sent in it yet, since
    /// votes, vote requests and acknowledgements leave only after the save.)
    durable_terms: Vec<u64>,
    leaders: BTreeMap<u64, usize>,
    answered: u64,
    errors: u64,
    snapshot_chunks: u64,
    saves_on_full_disk: u64,
    sent: usize,
    /// Every tagged append's (key, token): none may be in the final store more than once.
    issued_tags: Vec<(String, String)>,
    /// Tagged appends acknowledged: (tag, key, token). Each must be in the final store exactly once.
    acknowledged_tags: Vec<((u64, u64), String, String)>,
    /// The length each client's last acknowledged append left its key at.
    append_lengths: BTreeMap<(u64, String), u64>,
    undecided: bool,
    mutation: Mutation,
    /// Whether clients keep sending.
    running: bool,
    /// Draws the membership changes (see `Params::draw_membership`).
    membership_rng: SimRng,
    /// The client port's draws: which requests a KV client sends an ECHO before, and how a
    /// round's requests are spread in time (a generator of its own, so that the other draws of a
    /// seed stay as they were).
    client_port_rng: SimRng,
    /// Each node's configuration index as its last input left it while it led, and the term.
    led_configs: Vec<Option<(u64, raft::LogIndex)>>,
    /// Removed nodes stopped for good (`Params::retire_removed`); with `reuse_removed_ids`, given
    /// an empty disk instead and started as `--join`.
    retired: Vec<bool>,
    membership_changes: u64,
    /// The lock's clients, then the versioned ones, then the strings ones (`Params::lock_clients`,
    /// `versioned_clients`, `strings_clients`).
    cas_clients: Vec<CasClient>,
    /// The versioned clients' VGETs and VSETs, checked with the versioned model.
    versioned_history: Vec<Operation<VersionedInput, VersionedOutput>>,
    /// The strings clients' operations, checked with the strings model.
    strings_history: Vec<Operation<StringsInput, StringsOutput>>,
    /// Each time a lock client held the lock: from the answer to its SET until it began to give
    /// it back or its lease could have run out, whichever came first. No two may overlap.
    holds: Vec<Hold>,
}

/// A client of the lock or of versioned keys: one request at a time.
struct CasClient {
    id: String,
    connection: Option<(usize, ConnId)>,
    session: Session,
    /// The answer to its request, once it came.
    answer: Option<Answer>,
    sent_at: Duration,
}

#[derive(Clone, Debug)]
struct Hold {
    holder: String,
    start: Duration,
    end: Duration,
    /// It ended because the lease could have run out (the holder kept it longer).
    past_lease: bool,
}

/// Lock and versioned clients' connections are numbered from here in `World::conns`.
const CAS_CLIENT_BASE: usize = 1 << 20;
/// The lock's lease (`PX`), and how long before its end a holder stops using it: the most the
/// wall clock of the leader that stamped the log time can be ahead of the holder's (the
/// simulation's clocks differ by up to 400 ms per node, see `schedule_tick`). A key expires by the
/// log's time, which a leader stamps from its clock; so the lease is safe for the holder to use
/// until the time it sent its SET plus the lease less that skew.
const LOCK_LEASE: Duration = Duration::from_millis(3000);

type Shared = Rc<RefCell<World>>;

fn node_id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

/// Where node `id` takes peer connections, as the simulation names it.
fn address(id: NodeId) -> String {
    format!("sim-{}", id.0)
}

fn index_of(id: NodeId) -> usize {
    (id.0 as usize).saturating_sub(1)
}

/// Runs one seed: Ok with what it did, or the parameters, the failure and the trace.
pub fn run(seed: u64) -> Result<Summary, (Params, String, Trace)> {
    run_with(seed, Mutation::None, |_| {})
}

/// `run` with every node deliberately broken as `mutation` says, and the seed's parameters
/// changed by `adjust` (e.g. to a fault mix that favours one defect).
pub fn run_with(seed: u64, mutation: Mutation, adjust: impl FnOnce(&mut Params)) -> Result<Summary, (Params, String, Trace)> {
    let sim = Sim::new();
    let rng = SimRng::new(seed);
    let trace = Trace::default();
    let mut params = Params::from_seed(&rng);
    let membership_rng = SimRng::new(membership_seed(seed));
    params.draw_membership(&membership_rng);
    // From a generator of its own, so that the earlier draws stay as they were.
    params.retire_removed = params.membership_per_mille > 0 && SimRng::new(seed ^ 0x7769_7065_2d72_6d76).chance(1, 2);
    params.window = *SimRng::new(seed ^ 0x7769_6e64_6f77_2121).pick(&[1, 4, replica::pipeline::WINDOW, replica::pipeline::WINDOW]);
    adjust(&mut params);
    let n = params.servers;
    trace.set_servers(n);
    let world = Rc::new(RefCell::new(World {
        sim: sim.clone(),
        rng: rng.clone(),
        trace: trace.clone(),
        nodes: (0..n).map(|_| None).collect(),
        disks: (0..n).map(|_| MemDisk::new(rng.u64())).collect(),
        links: (0..n).map(|_| (0..n).map(|_| Link { up: true, in_flight: 0, last_arrival: Duration::ZERO }).collect()).collect(),
        lossy: params.lossy_at_start,
        incarnations: 0,
        clients: Vec::new(),
        next_conn: 0,
        conns: vec![BTreeMap::new(); n],
        held: (0..n).map(|_| Vec::new()).collect(),
        admissions: BTreeMap::new(),
        armed: vec![false; n],
        history: Vec::new(),
        last_stamp: 0,
        terms: vec![0; n],
        known_leaders: vec![None; n],
        durable_terms: vec![0; n],
        leaders: BTreeMap::new(),
        answered: 0,
        errors: 0,
        snapshot_chunks: 0,
        saves_on_full_disk: 0,
        sent: 0,
        append_lengths: BTreeMap::new(),
        acknowledged_tags: Vec::new(),
        issued_tags: Vec::new(),
        undecided: false,
        running: true,
        mutation,
        membership_rng,
        client_port_rng: SimRng::new(seed ^ 0x6563_686f_2d65_6368),
        led_configs: vec![None; n],
        retired: vec![false; n],
        membership_changes: 0,
        cas_clients: Vec::new(),
        versioned_history: Vec::new(),
        strings_history: Vec::new(),
        holds: Vec::new(),
        params: params.clone(),
    }));
    let result = crate::chaos::run_scenario(&sim, &trace, scenario(world.clone()));
    let w = world.borrow();
    match result {
        Ok(()) => Ok(Summary {
            params,
            answered: w.answered,
            errors: w.errors,
            snapshot_chunks: w.snapshot_chunks,
            saves_on_full_disk: w.saves_on_full_disk,
            membership_changes: w.membership_changes,
            retired_nodes: w.retired.iter().filter(|&&retired| retired).count(),
            operations: w.history.len(),
            holds: w.holds.len(),
            holds_past_lease: w.holds.iter().filter(|hold| hold.past_lease).count(),
            versioned_operations: w.versioned_history.len(),
            versioned_puts_ok: w.versioned_history.iter().filter(|op| op.output == Some(VersionedOutput::Ok)).count(),
            strings_operations: w.strings_history.len(),
            expired_reads: w.strings_history.iter().filter(|op| op.input.key().starts_with('e') && op.output == Some(StringsOutput::Value(None))).count(),
            transactions: w.strings_history.iter().filter(|op| matches!(op.output, Some(StringsOutput::Exec { .. }))).count(),
            undecided: w.undecided,
            virtual_time: sim.now(),
            trace: trace.clone(),
        }),
        Err(message) => Err((params, message, trace.clone())),
    }
}

async fn scenario(world: Shared) {
    let (sim, rng, params) = {
        let w = world.borrow();
        (w.sim.clone(), w.rng.clone(), w.params.clone())
    };
    let n = params.servers;
    for i in 0..n {
        start(&world, i);
    }
    record_links(&world);
    for c in 0..params.clients {
        // Untagged writes are numbered from random high bits, as a node numbers them.
        let session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(rng.u64() << 32)));
        let tagged_id = rng.chance(1, 3).then(|| rng.u64().max(1));
        let pipeline = Pipeline::new(params.window);
        let client = Client { id: c as u64 + 1, connection: None, session, pipeline, outstanding: Vec::new(), released: 0, replies_due: VecDeque::new(), next_token: 0, tagged_id, retry: None, move_on: false };
        world.borrow_mut().clients.push(client);
        sim.spawn(client_loop(world.clone(), c));
    }
    for l in 0..params.lock_clients + params.versioned_clients + params.strings_clients {
        let session = Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(rng.u64() << 32)));
        let client = CasClient { id: format!("holder-{l}-{:x}", rng.u64()), connection: None, session, answer: None, sent_at: Duration::ZERO };
        world.borrow_mut().cas_clients.push(client);
        if l < params.lock_clients {
            sim.spawn(lock_client_loop(world.clone(), l));
        } else if l < params.lock_clients + params.versioned_clients {
            sim.spawn(versioned_client_loop(world.clone(), l));
        } else {
            sim.spawn(strings_client_loop(world.clone(), l));
        }
    }
    sim.spawn(watchdog(world.clone()));
    for _ in 0..params.steps {
        sim.sleep(Duration::from_millis(rng.below(200))).await;
        chaos_step(&world, &rng, &params);
    }
    heal(&world);
    // The clients stop sending (what they sent is still answered, within its deadline): the
    // healed cluster must then converge. Under endless load a node kept behind by small link
    // queues may chase a commit index that keeps moving.
    world.borrow_mut().running = false;
    await_progress(&world).await;
    // Let the clients' last requests finish, then check the whole history.
    sim.sleep(Duration::from_secs(6)).await;
    check_history(&world);
    shut_down(&world);
}

fn act(world: &World, server: Option<usize>, short: &str, details: &str) {
    let now = world.sim.now();
    world.trace.record(now, format_args!("chaos: {short} {server:?} {details}"));
    world.trace.note(now, server, short, details, NoteBy::Tester);
}

fn chaos_step(world: &Shared, rng: &SimRng, params: &Params) {
    let n = params.servers;
    if rng.chance(params.partition_per_mille, 1000) {
        let side: Vec<bool> = (0..n).map(|_| rng.chance(1, 2)).collect();
        let mut w = world.borrow_mut();
        let groups = |on: bool| (0..n).filter(|&i| side[i] == on).collect::<Vec<_>>();
        act(&w, None, "partition", &format!("{:?} | {:?}", groups(true), groups(false)));
        for i in 0..n {
            for j in 0..n {
                w.links[i][j].up = side[i] == side[j];
            }
        }
        drop(w);
        record_links(world);
    } else if rng.chance(40, 1000) {
        heal_links(world);
    }
    if rng.chance(30, 1000) {
        let mut w = world.borrow_mut();
        w.lossy = !w.lossy;
        let lossy = w.lossy;
        act(&w, None, if lossy { "lossy network" } else { "reliable network" }, "");
        w.trace.event(w.sim.now(), Event::Net { reliable: !lossy, long_reordering: false, long_delays: lossy });
    }
    if rng.chance(params.crash_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        crash(world, victim);
        // Half the crashes are quick reboots: the process is back before its peers noticed.
        if rng.chance(1, 2) {
            start(world, victim);
        }
    }
    if rng.chance(params.disk_death_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        let mut w = world.borrow_mut();
        if w.nodes[victim].is_some() && !w.armed[victim] {
            let (sync, torn) = (1 + rng.below(3), rng.chance(1, 2));
            w.disks[victim].crash_at_sync(sync, torn);
            w.armed[victim] = true;
            let what = format!("the disk dies at its sync #{sync} from now (torn: {torn})");
            w.trace.record(w.sim.now(), format_args!("chaos: node {victim}: {what}"));
            w.trace.event(w.sim.now(), Event::Disk { server: victim, what });
        }
    }
    if rng.chance(params.disk_full_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        let w = world.borrow();
        let disk = &w.disks[victim];
        let what = if disk.capacity().is_none() {
            let left = rng.below(64 << 10);
            disk.set_capacity(Some(disk.used() + left));
            format!("the disk fills up ({left} bytes left)")
        } else {
            disk.set_capacity(None);
            "the disk has room again".to_string()
        };
        w.trace.record(w.sim.now(), format_args!("chaos: node {victim}: {what}"));
        w.trace.event(w.sim.now(), Event::Disk { server: victim, what });
    }
    if rng.chance(80, 1000) {
        let dead: Vec<usize> = (0..n).filter(|&i| world.borrow().nodes[i].is_none()).collect();
        if !dead.is_empty() {
            start(world, *rng.pick(&dead));
        }
    }
    if params.retire_removed || params.reuse_removed_ids {
        retire_removed(world);
    }
    let membership_rng = world.borrow().membership_rng.clone();
    if params.membership_per_mille > 0 && membership_rng.chance(params.membership_per_mille, 1000) {
        change_membership(world, &membership_rng);
    }
}

/// Every node whose removal a running node has committed is stopped for good (once); with
/// `reuse_removed_ids`, it gets an empty disk instead and starts again as `--join` under the same id.
fn retire_removed(world: &Shared) {
    let removed: BTreeSet<NodeId> = world.borrow().nodes.iter().flatten().flat_map(|node| node.replica.node().committed_membership().removed).collect();
    let servers = world.borrow().params.servers;
    for i in (0..servers).filter(|&i| removed.contains(&node_id(i)) && !world.borrow().retired[i]) {
        stop(world, i, "removed: retired");
        let mut w = world.borrow_mut();
        w.retired[i] = true;
        if w.params.reuse_removed_ids {
            w.disks[i] = MemDisk::new(0x6e65_7764_6973_6b00 + i as u64);
            (w.durable_terms[i], w.terms[i], w.known_leaders[i], w.led_configs[i]) = (0, 0, None, None);
            act(&w, Some(i), "empty disk", "its id used again on an empty disk: it starts again as --join");
            w.trace.event(w.sim.now(), Event::Disk { server: i, what: "replaced by an empty disk".into() });
        }
    }
}

/// The connection membership commands come in on: their answers go nowhere (they are not part
/// of the checked history; the configurations they make are checked in `observe`).
const ADMIN_CONN: ConnId = ConnId(u64::MAX);

/// Asks the leader of the highest term for one membership change, as an operator would.
fn change_membership(world: &Shared, rng: &SimRng) {
    let (leader, incarnation, membership) = {
        let w = world.borrow();
        let leaders = w.nodes.iter().enumerate().filter_map(|(i, node)| node.as_ref().filter(|node| node.replica.status().is_leader()).map(|node| (i, node)));
        let Some((leader, node)) = leaders.max_by_key(|(_, node)| node.replica.status().term) else { return };
        (leader, node.incarnation, node.replica.membership().clone())
    };
    let n = world.borrow().params.servers;
    let voters: Vec<u64> = membership.voters().map(|id| id.0).collect();
    let learners: Vec<u64> = membership.members.iter().filter(|(_, member)| !member.voter).map(|(id, _)| id.0).collect();
    let waiting: Vec<u64> = (1..=n as u64).filter(|&id| !membership.is_member(NodeId(id)) && !membership.removed.contains(&NodeId(id))).collect();
    let members: Vec<u64> = membership.members.keys().map(|id| id.0).filter(|&id| voters.len() > 1 || !voters.contains(&id)).collect();
    let others: Vec<u64> = voters.iter().copied().filter(|&id| id != node_id(leader).0).collect();
    let admin = match rng.below(6) {
        0 | 1 if !waiting.is_empty() => {
            let id = NodeId(*rng.pick(&waiting));
            Change::AddLearner { id, address: address(id) }.into()
        }
        0..=2 if !learners.is_empty() => Change::Promote { id: NodeId(*rng.pick(&learners)) }.into(),
        3 if !members.is_empty() => Change::Remove { id: NodeId(*rng.pick(&members)) }.into(),
        4 if !others.is_empty() => Admin::TransferLeader(NodeId(*rng.pick(&others))),
        // SIGTERM to the leader, as a rolling restart does: it hands over, stops, and comes back.
        5 => {
            act(&world.borrow(), Some(leader), "SIGTERM", "");
            let mut target = None;
            with_node(world, leader, incarnation, |replica| {
                target = replica.shut_down();
            });
            let w = world.borrow();
            let statuses: Vec<String> = w.nodes.iter().flatten().map(|node| format!("{}", node.replica.status())).collect();
            w.trace.record(w.sim.now(), format_args!("chaos: SIGTERM's hand-over to {target:?}; nodes: {statuses:?}"));
            return;
        }
        _ => return,
    };
    {
        let mut w = world.borrow_mut();
        w.membership_changes += 1;
        act(&w, Some(leader), "membership", &format!("{admin:?}"));
    }
    if with_node(world, leader, incarnation, |replica| replica.client(ADMIN_CONN, Request::Admin(admin))) {
        if let Some(running) = world.borrow_mut().nodes[leader].as_mut() {
            running.requests += 1;
        }
    }
}

fn record_links(world: &Shared) {
    let w = world.borrow();
    let up = w.links.iter().map(|row| row.iter().map(|link| link.up).collect()).collect();
    w.trace.event(w.sim.now(), Event::Links(up));
}

fn heal_links(world: &Shared) {
    let mut w = world.borrow_mut();
    act(&w, None, "heal partition", "");
    for row in &mut w.links {
        for link in row {
            link.up = true;
        }
    }
    drop(w);
    record_links(world);
}

/// The end of every fault: links up, the network reliable, no disk death armed, every node running.
fn heal(world: &Shared) {
    heal_links(world);
    let n = {
        let mut w = world.borrow_mut();
        w.lossy = false;
        for i in 0..w.params.servers {
            w.disks[i].disarm();
            w.disks[i].set_capacity(None);
            w.armed[i] = false;
        }
        w.trace.event(w.sim.now(), Event::Net { reliable: true, long_reordering: false, long_delays: false });
        w.params.servers
    };
    for i in 0..n {
        if world.borrow().nodes[i].is_none() {
            start(world, i);
        }
    }
}

/// Starts an incarnation of node `i` from what its disk recovers.
fn start(world: &Shared, i: usize) {
    let mut w = world.borrow_mut();
    if w.retired[i] && !w.params.reuse_removed_ids {
        return;
    }
    let disk = w.disks[i].clone();
    let (storage, restored) = match Storage::open(disk, format!("/node{i}")) {
        Ok(opened) => opened,
        Err(error) if error.is_no_space() => {
            // As the server does: it does not start until there is room (heal brings it back).
            act(&w, Some(i), "cannot start", &error.to_string());
            return;
        }
        Err(error) => panic!("node {i} could not recover its storage: {error}"),
    };
    let store = match &restored.snapshot {
        Some(snapshot) => Store::decode_snapshot(&snapshot.data).unwrap_or_else(|error| panic!("node {i}'s snapshot: {error}")),
        None => Store::new(),
    };
    // The bootstrap voters start with `--peers` listing them; the others with `--join` (and so
    // does a retired node's id used again, on an empty disk), by the server's own rule.
    let voters = w.params.voters;
    let join = i >= voters || w.retired[i];
    let mut config = Config::new(node_id(i), replica::bootstrap_voters(node_id(i), (0..voters).map(node_id), join, &restored));
    config.election_timeout_ticks = 50;
    config.heartbeat_ticks = 10;
    config.seed = w.rng.u64();
    // Snapshots of a few kilobytes travel in several chunks (64 B to 8 KiB, by the node's seed),
    // so that lost, duplicated and reordered chunks and leader changes mid-transfer happen.
    config.snapshot_chunk_bytes = 64 << (config.seed % 8);
    // `--peers`: the bootstrap voters, a voter itself among them; a node that joins is not.
    let flags: BTreeMap<NodeId, String> = (0..voters).map(|j| (node_id(j), address(node_id(j)))).collect();
    let options = Options {
        peer_addresses: flags.clone(),
        request_timeout_ticks: REQUEST_TIMEOUT_TICKS,
        snapshot_every: w.params.snapshot_every,
        max_forwards_in_flight: w.params.max_forwards_in_flight,
        forward_id_base: w.rng.u64() << 16,
        // Each node proposes its own id for the cluster, as a server proposes a random one; the
        // first applied names the cluster (not drawn, so that the runs' draws stay as they were).
        cluster_id_proposal: 0xc1_0000 + i as u64,
        mutation: w.mutation,
        ..Options::default()
    };
    let term = restored.hard_state.term.0;
    assert!(term >= w.durable_terms[i], "node {i} saved term {} but recovered {term}", w.durable_terms[i]);
    // (A torn crash may keep a save that was not complete.)
    w.durable_terms[i] = term;
    // Within this incarnation its term only goes up from what it recovered.
    w.terms[i] = term;
    let replica = Replica::new(config, restored, store, options).unwrap_or_else(|error| panic!("node {i}: {error}"));
    w.incarnations += 1;
    let incarnation = w.incarnations;
    let links = PeerLinks { peers: flags.into_iter().filter(|(id, _)| *id != node_id(i)).collect(), ..PeerLinks::default() };
    w.nodes[i] = Some(Running { replica, storage, incarnation, requests: 0, leader_changes: 0, links });
    w.led_configs[i] = None;
    w.known_leaders[i] = None;
    act(&w, Some(i), "start", &format!("incarnation {incarnation}, term {term}"));
    w.trace.event(w.sim.now(), Event::Start { server: i, term });
    let phase = Duration::from_micros(w.rng.below(TICK.as_micros() as u64));
    // Its new connections are not behind what the old ones still carry.
    let now = w.sim.now();
    for link in &mut w.links[i] {
        link.last_arrival = now;
    }
    // What its peers queued for it while it was down comes first, in order, on the new connections.
    let held = std::mem::take(&mut w.held[i]);
    let sim = w.sim.clone();
    drop(w);
    for frame in held {
        let world = world.clone();
        sim.schedule(Duration::from_millis(1), move || arrive(&world, frame));
    }
    schedule_tick(world, i, incarnation, phase);
}

/// Power failure: the process dies, the disk keeps what was synced (torn: and a prefix of what
/// was not).
fn crash(world: &Shared, i: usize) {
    let torn = world.borrow().rng.chance(1, 2);
    if !stop(world, i, if torn { "crash (torn)" } else { "crash" }) {
        return;
    }
    let w = world.borrow();
    if torn {
        w.disks[i].crash_torn();
    } else {
        w.disks[i].crash();
    }
}

/// Takes node `i` down, if it is up. Returns whether it was.
fn stop(world: &Shared, i: usize, why: &str) -> bool {
    let mut w = world.borrow_mut();
    let Some(node) = w.nodes[i].take() else { return false };
    check_metrics(&node);
    act(&w, Some(i), why, "");
    w.trace.event(w.sim.now(), Event::Stop { server: i, why: why.into() });
    w.disks[i].disarm();
    w.armed[i] = false;
    // A term it led in but never saved (a sole voter leads the moment it votes for itself) ends
    // with it: nothing of that term left it, and it comes back in an older one.
    let durable = w.durable_terms[i];
    w.leaders.retain(|&term, leader| !(*leader == i && term > durable));
    // Its clients' connections break: what they had in flight has an unknown outcome.
    let conns = std::mem::take(&mut w.conns[i]);
    for (_, client) in conns {
        match client.checked_sub(CAS_CLIENT_BASE) {
            Some(l) => w.cas_clients[l].connection = None,
            None => disconnect_client(&mut w, client),
        }
    }
    true
}

fn shut_down(world: &Shared) {
    let mut w = world.borrow_mut();
    for node in w.nodes.iter_mut().filter_map(Option::take) {
        check_metrics(&node);
    }
}

/// The simulated wall clocks' time at virtual time 0 (ms since the Unix epoch).
const WALL_CLOCK_START_MS: u64 = 1_700_000_000_000;

fn schedule_tick(world: &Shared, i: usize, incarnation: u64, delay: Duration) {
    let world_for_tick = world.clone();
    let sim = world.borrow().sim.clone();
    sim.schedule(delay, move || {
        if with_node(&world_for_tick, i, incarnation, Replica::tick) {
            schedule_tick(&world_for_tick, i, incarnation, TICK);
        }
    });
}

/// Runs `input` on node `i` if its incarnation is still the one running, then carries out its
/// outputs. Returns whether it ran.
fn with_node(world: &Shared, i: usize, incarnation: u64, input: impl FnOnce(&mut Replica)) -> bool {
    {
        let mut w = world.borrow_mut();
        let now = w.sim.now();
        let Some(node) = w.nodes[i].as_mut().filter(|node| node.incarnation == incarnation) else { return false };
        // As the server does before every event. Each node's wall clock is off from the others' by
        // a fixed skew (400 ms per node): keys must expire by the log's time, whichever leader
        // stamped it.
        node.replica.set_clock(WALL_CLOCK_START_MS + now.as_millis() as u64 + i as u64 * 400);
        input(&mut node.replica);
    }
    // As the server's loop does: what carrying out a batch gives the replica (frames it could not
    // queue) is taken after the whole batch, so that no later answer overtakes one of the batch.
    loop {
        let outputs = {
            let mut w = world.borrow_mut();
            let Some(node) = w.nodes[i].as_mut().filter(|node| node.incarnation == incarnation) else { break };
            node.replica.take_outputs()
        };
        if outputs.is_empty() {
            break;
        }
        carry_out(world, i, incarnation, outputs);
    }
    observe(world, i);
    true
}

/// Election safety and term monotonicity, and the node's lane in the drawing.
fn observe(world: &Shared, i: usize) {
    let mut w = world.borrow_mut();
    let Some(status) = w.nodes[i].as_ref().map(|node| node.replica.status()) else { return };
    let previous_leader = w.known_leaders[i];
    if status.leader != previous_leader {
        w.known_leaders[i] = status.leader;
        if let Some(node) = w.nodes[i].as_mut() {
            node.leader_changes += 1;
            check_metrics(node);
        }
    }
    let term = status.term.0;
    if status.is_leader() && w.leaders.get(&term) != Some(&i) {
        let voters: Vec<u64> = w.nodes[i].as_ref().map(|node| node.replica.membership().voters().map(|id| id.0).collect()).unwrap_or_default();
        let last = status.last_index.0;
        w.trace.record(w.sim.now(), format_args!("node {i} leads term {term} (last index {last}, commit {}) with voters {voters:?}", status.commit.0));
    }
    assert!(term >= w.terms[i], "node {i}'s term went down from {} to {term}", w.terms[i]);
    if status.role != raft::Role::Follower {
        if let Some(node) = w.nodes[i].as_ref() {
            let removed = node.replica.node().committed_membership().removed.contains(&node_id(i));
            assert!(!removed, "node {i} campaigns or leads ({:?}, term {term}) after its removal committed", status.role);
        }
    }
    if status.is_leader() {
        let previous = *w.leaders.entry(term).or_insert(i);
        assert_eq!(previous, i, "election safety: nodes {previous} and {i} both lead term {term}");
        check_config_change(&mut w, i, term);
    }
    w.terms[i] = term;
}

/// The rules of single-server changes, where a leader makes them: a new configuration differs by
/// one voter at most from the one before it in the leader's log (so that a majority of either
/// intersects a majority of the other), and that one was committed when the new one was proposed
/// (one change at a time; the commit index only grows, so one not committed now was not then).
fn check_config_change(w: &mut World, i: usize, term: u64) {
    let Some(node) = w.nodes[i].as_ref() else { return };
    let core = node.replica.node();
    let (index, commit) = (core.membership_index(), core.status().commit);
    if let Some((led_term, led_index)) = w.led_configs[i] {
        if led_term == term && index > led_index {
            let (before_index, before) = core.membership_at(index.prev());
            let changed_anything = before != *core.membership();
            // An uncommitted entry that only recorded the committed configuration changed nothing.
            let before_changed_nothing = core.membership_at(commit).1 == before;
            let voters: Vec<u64> = core.membership().voters().map(|id| id.0).collect();
            let before: Vec<u64> = before.voters().map(|id| id.0).collect();
            let changed = before.iter().filter(|id| !voters.contains(id)).count() + voters.iter().filter(|id| !before.contains(id)).count();
            assert!(changed <= 1, "node {i} went from voters {before:?} to {voters:?} in one change (term {term}, index {index})");
            assert!(
                !changed_anything || core.log().term_at(commit) == Some(raft::Term(term)),
                "node {i} changed the configuration at index {index} before committing an entry of its term {term} (commit {commit})"
            );
            assert!(
                commit >= before_index || !changed_anything || before_changed_nothing,
                "node {i} proposed voters {voters:?} at index {index} while the configuration before it (index {before_index}) was not committed (commit {commit})"
            );
        }
    }
    w.led_configs[i] = Some((term, index));
}

fn carry_out(world: &Shared, i: usize, incarnation: u64, outputs: Vec<Output>) {
    for output in outputs {
        match output {
            Output::Send { to, frame } => send(world, i, index_of(to), incarnation, frame),
            Output::Reply { conn, answer } => reply(world, i, conn, answer.owned()),
            Output::Save { id, persist } => {
                let (sim, delay) = {
                    let w = world.borrow();
                    (w.sim.clone(), Duration::from_micros(100 + w.rng.below(2000)))
                };
                let world = world.clone();
                sim.schedule(delay, move || {
                    let saved = {
                        let mut w = world.borrow_mut();
                        let Some(node) = w.nodes[i].as_mut().filter(|node| node.incarnation == incarnation) else { return };
                        let saved = node.storage.save(&persist);
                        if let (Ok(()), Some(state)) = (&saved, persist.hard_state) {
                            w.durable_terms[i] = w.durable_terms[i].max(state.term.0);
                        }
                        saved
                    };
                    match saved {
                        Ok(()) => {
                            with_node(&world, i, incarnation, |replica| replica.persisted(id));
                        }
                        // Nothing was written: the replica hands the save again later.
                        Err(error) if error.is_no_space() => {
                            world.borrow_mut().saves_on_full_disk += 1;
                            with_node(&world, i, incarnation, |replica| replica.save_failed_no_space(id));
                        }
                        // What reached the disk is unknown: the node stops, as the server does.
                        Err(_) if world.borrow().armed[i] => {
                            stop(&world, i, "save failed, stop");
                        }
                        Err(error) => panic!("node {i}: a save failed with no disk fault injected: {error}"),
                    }
                });
            }
            Output::Snapshot { index, store, .. } => {
                let (sim, delay) = {
                    let w = world.borrow();
                    (w.sim.clone(), Duration::from_millis(w.rng.below(50)))
                };
                let world = world.clone();
                sim.schedule(delay, move || {
                    let data: Arc<[u8]> = store.encode_snapshot().into();
                    with_node(&world, i, incarnation, |replica| replica.snapshot_taken(index, data));
                });
            }
            // What the transport is told: whom it sends to and admits, what its Hellos say.
            Output::Peers(links) => {
                let mut w = world.borrow_mut();
                let now = w.sim.now();
                w.trace.record(now, format_args!("node {i}'s links: {links:?}"));
                if let Some(node) = w.nodes[i].as_mut().filter(|node| node.incarnation == incarnation) {
                    node.links = links;
                }
            }
            Output::Stopped => {
                stop(&world, i, "stopped after SIGTERM");
                // As a rolling restart does, the node comes back at once. (Left down, it could
                // take the last quorum with it — the leader of two voters hands over and stops —
                // and the requests waiting meanwhile would time out with no fault injected: node
                // chaos seed 218, once followers served their own reads.)
                start(&world, i);
            }
            // Every member of the simulation has an address.
            Output::Warning(warning) => panic!("node {i}: {warning}"),
            // No peer here sends anything to refuse: a refusal is a defect.
            Output::Refused(reason) | Output::Fatal(reason) => panic!("node {i}: {reason}"),
        }
    }
}

/// What the node's `/metrics` and `/health` answer (the production text) agrees with what the
/// simulation saw of it.
fn check_metrics(node: &Running) {
    let view = node.replica.view();
    let head = b"GET /metrics HTTP/1.1\r\n\r\n".as_slice();
    let response = replica::metrics::respond(Some(head), &view, &Default::default(), &Default::default());
    let text = String::from_utf8(response).expect("metrics are text");
    let sample = |name| replica::metrics::sample(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"));
    let status = view.status;
    assert_eq!(sample("raftkv_term"), status.term.0, "{text}");
    assert_eq!(sample("raftkv_leader_id"), status.leader.map_or(0, |leader| leader.0));
    assert_eq!(sample("raftkv_is_leader"), u64::from(status.is_leader()));
    assert_eq!(sample("raftkv_commit_index"), status.commit.0);
    assert_eq!(sample("raftkv_applied_index"), node.replica.store().applied_index());
    assert_eq!(sample("raftkv_disk_full"), u64::from(node.replica.disk_full()));
    assert_eq!(sample("raftkv_requests_total"), node.requests, "requests the clients sent this incarnation");
    assert_eq!(sample("raftkv_leader_changes_total"), node.leader_changes, "leader changes the simulation saw");
    let health = replica::metrics::respond(Some(b"GET /health HTTP/1.1\r\n\r\n"), &view, &Default::default(), &Default::default());
    assert_eq!(health.starts_with(b"HTTP/1.1 200"), status.leader.is_some(), "/health is 200 exactly while a leader is known");
}

/// Carries a frame from `from` to `to` over their link: encoded and decoded with the real codec
/// and limit, in order, refused when the link's queue is full, lost when the link is down or
/// (lossy network) reset.
fn send(world: &Shared, from: usize, to: usize, incarnation: u64, frame: Frame) {
    // Nothing of a term leaves a node before that term (and its vote in it) is on its disk: a
    // crash would bring it back in an older term, free to vote again in that one. A pre-vote
    // only asks.
    if let Frame::Raft(message) = &frame {
        let durable = world.borrow().durable_terms[from];
        assert!(message.is_pre_vote() || message.term.0 <= durable, "node {from} sent {} of term {} before that term was durable (its disk has term {durable})", crate::trace::describe(&frame), message.term.0);
    }
    let mut bytes = Vec::new();
    let encoded = wire::encode(&Wire::Frame(frame.clone()), wire::DEFAULT_MAX_FRAME_BYTES, &mut bytes);
    let mut w = world.borrow_mut();
    let now = w.sim.now();
    // As the transport does: a frame for a node it does not dial is dropped.
    let (advertise, cluster, dialled) = match w.nodes[from].as_ref() {
        Some(node) => (node.links.advertise.clone(), node.links.cluster, node.links.peers.contains_key(&node_id(to))),
        None => return,
    };
    if !dialled {
        w.trace.record(now, format_args!("{from}->{to} not a peer of {from}, dropped"));
        return;
    }
    if matches!(&frame, Frame::Raft(message) if matches!(message.body, raft::MessageBody::SnapshotRequest { .. })) {
        w.snapshot_chunks += 1;
    }
    if encoded.is_err() {
        w.trace.record(now, format_args!("{from}->{to} frame over the limit, dropped"));
        return;
    }
    if w.links[from][to].in_flight >= w.params.queue_frames {
        w.trace.record(now, format_args!("{from}->{to} queue full"));
        // Told at once, its outputs taken after the batch being carried out (see `with_node`).
        if let Some(node) = w.nodes[from].as_mut().filter(|node| node.incarnation == incarnation) {
            node.replica.undeliverable(node_id(to), frame);
        }
        return;
    }
    let lost = !w.links[from][to].up || (w.lossy && w.rng.chance(w.params.loss_per_mille, 1000));
    if lost {
        w.trace.message(from, to, now, &frame, Fate::LinkDown, None);
        return;
    }
    let mut delay = Duration::from_micros(100 + w.rng.below(400));
    if w.lossy && w.rng.chance(w.params.long_delay_per_mille, 1000) {
        delay += Duration::from_millis(w.rng.below(1000));
    }
    // Only a lossy network with duplication draws for it, so that seeds without keep their runs.
    let copies = if w.lossy && w.params.duplicate_per_mille > 0 && w.rng.chance(w.params.duplicate_per_mille, 1000) { 2 } else { 1 };
    let link = &mut w.links[from][to];
    let arrival = (now + delay).max(link.last_arrival);
    link.last_arrival = arrival;
    link.in_flight += copies;
    let (sim, target) = (w.sim.clone(), w.nodes[to].as_ref().map(|node| node.incarnation));
    for _ in 0..copies {
        let id = w.trace.message(from, to, now, &frame, Fate::Delivered, Some(arrival));
        let frame = InFlight { from, to, sender: incarnation, cluster, advertise: advertise.clone(), target, bytes: bytes.clone(), id };
        let world = world.clone();
        sim.schedule(arrival - now, move || arrive(&world, frame));
    }
}

/// A frame on a link, and the incarnation of its receiver when it was sent.
struct InFlight {
    from: usize,
    to: usize,
    /// The sender's incarnation, and its cluster id and address (what its connection's Hello carries).
    sender: u64,
    cluster: u64,
    advertise: String,
    target: Option<u64>,
    bytes: Vec<u8>,
    id: crate::trace::MessageId,
}

/// A frame reaches the end of its link. If its receiver is down, it waits in the link's queue (as
/// a transport keeps what it queued while it reconnects) for the next incarnation; a frame meant
/// for an earlier incarnation reaches the new one half the time (sent on the new connection) and
/// is lost otherwise (it was on the wire when the old connection broke).
fn arrive(world: &Shared, frame: InFlight) {
    // The Hello of a connection admitted now: the receiver learns where its sender is.
    let mut hello = None;
    let (decoded, incarnation) = {
        let mut w = world.borrow_mut();
        let current = w.nodes[frame.to].as_ref().map(|node| node.incarnation);
        if current.is_none() && w.links[frame.from][frame.to].up {
            w.held[frame.to].push(frame);
            return;
        }
        w.links[frame.from][frame.to].in_flight -= 1;
        let deliver = current.is_some() && w.links[frame.from][frame.to].up && (current == frame.target || w.rng.chance(1, 2));
        if !deliver {
            w.trace.message_lost(frame.id, w.sim.now());
            return;
        }
        let incarnation = current.unwrap_or_default();
        // A connection is admitted by its Hello as the transport admits it, with the receiver's
        // peers as they are when it opens; a refused one is dialled again (a fresh Hello) with
        // the next frame.
        let key = (frame.to, frame.from, frame.sender, incarnation);
        if !w.admissions.contains_key(&key) {
            let receiver = w.nodes[frame.to].as_ref().expect("running");
            let ours = receiver.links.cluster;
            let opening = Wire::hello(node_id(frame.from), frame.cluster, frame.advertise.clone());
            let mut admission = Admission::new(node_id(frame.to));
            match admission.admit(opening, ours, receiver.links.joining, |id| receiver.links.peers.contains_key(&id), |_| true) {
                Ok(Admitted::Hello { from, address, cluster, .. }) => {
                    w.admissions.insert(key, admission);
                    hello = Some((from, address, cluster));
                }
                Ok(Admitted::Frame(..)) => unreachable!("a Hello is admitted as one"),
                Err(refusal) => {
                    let now = w.sim.now();
                    w.trace.record(now, format_args!("{}->{} connection refused: {refusal}", frame.from, frame.to));
                    w.trace.message_lost(frame.id, now);
                    return;
                }
            }
        }
        let admission = w.admissions.get_mut(&key).expect("admitted");
        let decoded = match wire::decode(&frame.bytes, admission.frame_limit(wire::DEFAULT_MAX_FRAME_BYTES)) {
            Ok(Some((wire, used))) if used == frame.bytes.len() => wire,
            other => panic!("a frame did not decode to itself: {other:?}"),
        };
        match admission.admit(decoded, 0, false, |_| false, |_| true) {
            Ok(Admitted::Frame(_, decoded)) => (decoded, incarnation),
            other => panic!("node {} refused a frame from node {}: {other:?}", node_id(frame.to), node_id(frame.from)),
        }
    };
    if let Some((from, address, cluster)) = hello {
        with_node(world, frame.to, incarnation, |replica| replica.peer_hello(from, address, cluster));
    }
    with_node(world, frame.to, incarnation, |replica| replica.peer_frame(node_id(frame.from), decoded));
}

fn stamp(w: &mut World) -> u64 {
    let now = w.sim.now().as_nanos() as u64;
    let stamp = now.max(w.last_stamp + 1);
    w.last_stamp = stamp;
    stamp
}

/// An answer for connection `conn` of node `i`: the next one its client waits for.
fn reply(world: &Shared, i: usize, conn: ConnId, answer: Answer) {
    let mut w = world.borrow_mut();
    let Some(&c) = w.conns[i].get(&conn) else { return };
    let now = w.sim.now();
    if let Some(l) = c.checked_sub(CAS_CLIENT_BASE) {
        let client = &mut w.cas_clients[l];
        assert!(client.answer.is_none(), "lock client {} got an answer it did not ask for: {answer:?}", client.id);
        let bound = TICK * REQUEST_TIMEOUT_TICKS as u32 + Duration::from_millis(50);
        assert!(now - client.sent_at <= bound, "lock client {}'s request to node {i} was answered after {:?}, over the bound {bound:?}", client.id, now - client.sent_at);
        client.answer = Some(answer);
        return;
    }
    // What the client reads: the connection's pipeline writes the answer, in RESP, in its place.
    let client = &mut w.clients[c];
    let asked = format!("{answer:?}");
    assert!(client.pipeline.answered(answer, &mut client.session), "client {} got an answer it did not ask for: {asked}", client.id);
    read_replies(&mut w, i, c);
}

/// The client reads what its connection (to node `i`) wrote, if the pipeline has made it due,
/// and checks each reply against the one it waits for next.
fn read_replies(w: &mut World, i: usize, c: usize) {
    let client = &mut w.clients[c];
    if !client.pipeline.flush_due() {
        return;
    }
    let mut written = client.pipeline.output();
    let mut replies = Vec::new();
    while let Some((value, used)) = resp::parse(written, &resp::Limits::default()).expect("the client port writes RESP") {
        replies.push(value);
        written = &written[used..];
    }
    assert!(written.is_empty(), "client {} was written part of a reply: {written:?}", client.id);
    client.pipeline.written();
    for value in replies {
        match w.clients[c].replies_due.pop_front() {
            Some(Some(token)) => assert_eq!(value, resp::Value::Bulk(Some(token.into_bytes())), "client {}: a reply out of its place", w.clients[c].id),
            Some(None) => kv_answered(w, i, c, answer_of(value)),
            None => panic!("client {} read a reply it did not ask for: {value:?}", w.clients[c].id),
        }
    }
}

/// A reply as the KV client reads it, in the node's terms (an error's text without its code
/// `ERR`).
fn answer_of(value: resp::Value) -> Answer {
    match value {
        resp::Value::Bulk(value) => Answer::Reply(kv::Reply::Value(value)),
        resp::Value::Simple(text) if text == "OK" => Answer::Reply(kv::Reply::Done),
        resp::Value::Integer(length) => Answer::Reply(kv::Reply::Length(length.try_into().expect("a length"))),
        resp::Value::Error(text) => Answer::Error(text.strip_prefix("ERR ").unwrap_or(&text).to_string()),
        other => panic!("a reply no GET, SET or APPEND gives: {other:?}"),
    }
}

/// The answer to the client's earliest request it has not had one for.
fn kv_answered(w: &mut World, i: usize, c: usize, answer: Answer) {
    let now = w.sim.now();
    let stamp = stamp(w);
    let client = &mut w.clients[c];
    let sent = client.outstanding.remove(0);
    client.released -= 1;
    let client_id = client.id;
    if let Answer::Error(message) = &answer {
        let members_change = w.params.servers > w.params.voters || w.params.membership_per_mille > 0;
        if members_change && (message.starts_with("no leader") || message.contains("removed from the cluster")) {
            w.clients[c].move_on = true;
        }
    }
    if sent.tag.is_some() && matches!(answer, Answer::Error(_)) && w.running {
        // Outcome unknown: the same tagged append again, on whatever connection comes next.
        w.errors += 1;
        w.clients[c].retry = Some(sent);
        return;
    }
    if let (Some(tag), Answer::Reply(_)) = (sent.tag, &answer) {
        w.acknowledged_tags.push((tag, sent.input.key.clone(), sent.input.value.clone()));
    }
    let bound = TICK * REQUEST_TIMEOUT_TICKS as u32 + Duration::from_millis(50);
    assert!(
        now - sent.sent_at <= bound,
        "client {client_id}'s request {:?} to node {i} was answered after {:?}, over the bound {bound:?}",
        sent.input,
        now - sent.sent_at
    );
    let output = match (&answer, sent.input.op) {
        (Answer::Error(_), KvOp::Get) => None,
        (Answer::Error(_), _) => Some(None),
        (Answer::Reply(kv::Reply::Value(value)), KvOp::Get) => {
            Some(Some(String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned()))
        }
        // Each write its own kind of answer: one meant for another request means a connection's
        // answers were shifted.
        (Answer::Reply(kv::Reply::Done), KvOp::Put) | (Answer::Reply(kv::Reply::Length(_)), KvOp::Append) => Some(Some(String::new())),
        other => panic!("client {client_id}: answer {other:?} does not fit request {:?}", sent.input),
    };
    if matches!(answer, Answer::Error(_)) {
        w.errors += 1;
    } else {
        w.answered += 1;
    }
    // Per-connection order: a read sees every append its client got +OK for before it, in the
    // order they were sent (a client's pipelines follow one another, so that is history order).
    if let (Some(Some(value)), KvOp::Get) = (&output, sent.input.op) {
        let mut after = 0;
        let earlier = w.history.iter().filter(|op| {
            op.client == client_id && op.input.op == KvOp::Append && op.input.key == sent.input.key && op.output.is_some()
        });
        for token in earlier.map(|op| &op.input.value) {
            let Some(at) = value.find(token.as_str()) else {
                panic!("client {client_id} read {:?} = {value:?}, missing its own earlier append {token:?}", sent.input.key)
            };
            assert!(at >= after, "client {client_id} read {:?} = {value:?}: its append {token:?} took effect out of order", sent.input.key);
            after = at;
        }
    }
    // The same for appends: a key that only grows is longer after each of a client's appends than
    // after the one it sent before.
    if let (Answer::Reply(kv::Reply::Length(length)), KvOp::Append) = (&answer, sent.input.op) {
        let last = w.append_lengths.insert((client_id, sent.input.key.clone()), *length).unwrap_or(0);
        assert!(
            *length > last,
            "client {client_id}'s append {:?} to {:?} left it {length} bytes long, after its previous one had left it {last}: out of order",
            sent.input.value,
            sent.input.key
        );
    }
    // Without faults nothing waits out its deadline: a request is answered, or refused at once.
    if let Answer::Error(message) = &answer {
        let p = &w.params;
        // (Stopping a removed node to give it an empty disk is a fault too: it may have led.)
        let faultless = p.crash_per_mille == 0 && p.disk_death_per_mille == 0 && p.disk_full_per_mille == 0 && p.partition_per_mille == 0 && p.loss_per_mille == 0 && p.long_delay_per_mille == 0 && p.duplicate_per_mille == 0 && !p.retire_removed && !p.reuse_removed_ids;
        let status = w.nodes[i].as_ref().map(|node| (node.replica.status(), node.replica.membership().voters().count()));
        assert!(
            !(faultless && message.starts_with("timeout")),
            "client {client_id}'s request {:?} to node {i} (status and voters {status:?}) timed out with no fault injected: {message}",
            sent.input
        );
    }
    match output {
        None => {}
        Some(None) => w.history.push(Operation { client: client_id, input: sent.input, call: sent.call, output: None, return_time: None }),
        Some(Some(value)) => w.history.push(Operation {
            client: client_id,
            input: sent.input,
            call: sent.call,
            output: Some(KvOutput::new(value)),
            return_time: Some(stamp),
        }),
    }
}

/// The client's connection broke: what it had in flight has an unknown outcome (writes) or none.
fn disconnect_client(w: &mut World, c: usize) {
    let window = w.params.window;
    let client = &mut w.clients[c];
    client.connection = None;
    client.pipeline = Pipeline::new(window);
    client.released = 0;
    client.replies_due.clear();
    let mut outstanding = std::mem::take(&mut client.outstanding);
    if let Some(at) = outstanding.iter().position(|sent| sent.tag.is_some()) {
        client.retry = Some(outstanding.remove(at));
    }
    let id = client.id;
    for sent in outstanding {
        if sent.input.op != KvOp::Get {
            w.history.push(Operation { client: id, input: sent.input, call: sent.call, output: None, return_time: None });
        }
    }
}

/// A client: connects to a random running node, sends a pipeline of requests, waits for all the
/// answers, and again, until the run ends.
async fn client_loop(world: Shared, c: usize) {
    let (sim, rng) = {
        let w = world.borrow();
        (w.sim.clone(), w.rng.clone())
    };
    loop {
        sim.sleep(Duration::from_millis(rng.below(50))).await;
        if !world.borrow().running || world.borrow().sent >= MAX_REQUESTS {
            return;
        }
        let (node, conn) = {
            let mut w = world.borrow_mut();
            if w.clients[c].move_on && !w.clients[c].outstanding.is_empty() {
                // Nothing more on this connection: wait for what it has in flight.
                continue;
            }
            if w.clients[c].move_on {
                // A node waiting to join, or removed: another node, as a client with several
                // endpoints would.
                w.clients[c].move_on = false;
                let connection = w.clients[c].connection.take();
                close(&mut w, connection);
            }
            if w.clients[c].connection.is_none() {
                let live: Vec<usize> = (0..w.params.servers).filter(|&i| w.nodes[i].is_some()).collect();
                if live.is_empty() {
                    continue;
                }
                let node = *rng.pick(&live);
                w.next_conn += 1;
                let conn = ConnId(w.next_conn);
                w.conns[node].insert(conn, c);
                w.clients[c].connection = Some((node, conn));
            }
            let Some((node, conn)) = w.clients[c].connection else { continue };
            let Some(status) = w.nodes[node].as_ref().map(|running| running.replica.status()) else { continue };
            let tagged = w.clients[c].tagged_id;
            let count = if tagged.is_some() { 1 } else { 1 + rng.below(w.params.pipeline as u64) as usize };
            let mut queued = 0;
            if let Some(again) = w.clients[c].retry.take() {
                let echo = w.client_port_rng.chance(1, 4);
                submit(&mut w.clients[c], again, &status, echo);
                w.sent += 1;
                queued += 1;
            }
            for _ in 0..count - queued {
                // Appends and sets go to keys of their own, so that a connection's reads can be
                // checked for its own appends (no set of another client wipes them).
                let kind = rng.below(10);
                let space = if kind == 9 && tagged.is_none() || (kind <= 3 && rng.chance(1, 4)) { "s" } else { "k" };
                let key = format!("{space}{}", rng.below(w.params.keys as u64));
                let (token, seq) = {
                    let client = &mut w.clients[c];
                    client.next_token += 1;
                    (format!("[{}.{}]", client.id, client.next_token), client.next_token)
                };
                let input = match kind {
                    0..=3 => KvInput::get(key),
                    4..=8 => KvInput::append(key, token),
                    _ if tagged.is_some() => KvInput::append(key, token),
                    _ => KvInput::put(key, token),
                };
                let tag = tagged.filter(|_| input.op == KvOp::Append).map(|id| (id, seq));
                if tag.is_some() {
                    w.issued_tags.push((input.key.clone(), input.value.clone()));
                }
                let sent = Sent { input, call: stamp(&mut w), sent_at: w.sim.now(), tag };
                let echo = w.client_port_rng.chance(1, 4);
                submit(&mut w.clients[c], sent, &status, echo);
                w.sent += 1;
            }
            (node, conn)
        };
        release(&world, c);
        // Wait for every answer (streaming: for room) or the connection breaking.
        // A tagged client has one request outstanding at a time: sessions remember a client's last
        // write only, so a retried write must be its newest.
        let streaming = world.borrow().params.streaming && world.borrow().clients[c].tagged_id.is_none();
        let room = if streaming { world.borrow().params.pipeline } else { 0 };
        while world.borrow().clients[c].connection == Some((node, conn)) && world.borrow().clients[c].outstanding.len() > room {
            sim.sleep(Duration::from_millis(1)).await;
            release(&world, c);
        }
    }
}

/// A request goes on the client's connection: as RESP through its session into its pipeline,
/// after an ECHO of its own (which the connection answers itself) if `echo`.
fn submit(client: &mut Client, sent: Sent, status: &raft::Status, echo: bool) {
    let words = words_of(&sent);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if echo {
        let token = format!("echo-{}-{}", client.id, client.next_token);
        resp::encode_array_of_bulks(&["ECHO", &token], client.session.read_space());
        client.replies_due.push_back(Some(token));
    }
    resp::encode_array_of_bulks(&words, client.session.read_space());
    let steps = client.session.parse(&replica::session::NodeView::of(*status));
    let one_request = match &steps[..] {
        [Step::Request { .. }] => !echo,
        [Step::Reply(_), Step::Request { .. }] => echo,
        _ => false,
    };
    assert!(one_request, "{words:?} (after an ECHO: {echo}) is not one request for the node: {steps:?}");
    client.pipeline.push(steps);
    client.replies_due.push_back(None);
    client.outstanding.push(sent);
}

/// Hands the next round of the client's pipeline to its node, as the client port does once the
/// replies of the round before are written (here: read at once). A request's deadline runs from
/// then.
fn release(world: &Shared, c: usize) {
    let (node, conn, incarnation, requests) = {
        let mut w = world.borrow_mut();
        let Some((node, conn)) = w.clients[c].connection else { return };
        let Some(incarnation) = w.nodes[node].as_ref().map(|running| running.incarnation) else { return };
        let now = w.sim.now();
        // A round of replies the connection gives itself alone is written at once, and the next
        // round goes.
        let requests = loop {
            let requests = w.clients[c].pipeline.next_round();
            read_replies(&mut w, node, c);
            let pipeline = &w.clients[c].pipeline;
            if !requests.is_empty() || pipeline.awaiting() || pipeline.done() {
                break requests;
            }
        };
        let client = &mut w.clients[c];
        for sent in client.outstanding.iter_mut().skip(client.released).take(requests.len()) {
            sent.sent_at = now;
        }
        client.released += requests.len();
        let window = w.params.window;
        assert!(w.clients[c].released <= window, "client {} has {} requests with node {node}, over its connection's window of {window}", w.clients[c].id, w.clients[c].released);
        (node, conn, incarnation, requests)
    };
    // The node's loop may take a round in several batches, with ticks and peer frames between
    // (the connection's task descheduled mid-round): each request arrives a little after the one
    // before it, now and then up to 2 ms after.
    let sim = world.borrow().sim.clone();
    let mut at = Duration::ZERO;
    for request in requests {
        let gap = {
            let rng = &world.borrow().client_port_rng;
            1 + if rng.chance(1, 4) { rng.below(2000) } else { rng.below(20) }
        };
        at += Duration::from_micros(gap);
        let world = world.clone();
        sim.schedule(at, move || {
            // Nothing arrives from a connection after it closed.
            if world.borrow().clients[c].connection != Some((node, conn)) {
                return;
            }
            if with_node(&world, node, incarnation, |replica| replica.client(conn, request)) {
                if let Some(running) = world.borrow_mut().nodes[node].as_mut() {
                    running.requests += 1;
                }
            }
        });
    }
}

/// A lock client: connects to a random running node; takes the lock with SET NX PX and its own
/// token; if it got it, holds it a while (sometimes past its lease) and gives it back with DELEX
/// IFEQ its token (which does nothing if the lease ran out and another took the lock).
async fn lock_client_loop(world: Shared, l: usize) {
    let (sim, rng) = {
        let w = world.borrow();
        (w.sim.clone(), w.rng.clone())
    };
    let skew = Duration::from_millis(400 * (world.borrow().params.servers as u64 - 1));
    let usable = LOCK_LEASE - skew;
    let lease_ms = LOCK_LEASE.as_millis().to_string();
    loop {
        sim.sleep(Duration::from_millis(rng.below(100))).await;
        if !world.borrow().running {
            return;
        }
        let id = world.borrow().cas_clients[l].id.clone();
        let sent_at = sim.now();
        let Some(answer) = cas_request(&world, l, &["SET", "lock", &id, "NX", "PX", &lease_ms]).await else { continue };
        if !matches!(answer, Answer::Reply(kv::Reply::Done)) {
            continue; // held by another, or the outcome is unknown: not ours to use
        }
        let start = sim.now();
        // Hold it for up to 1.5 leases: a holder that overstays stops using it at its lease's end.
        // Midway it reads the lock (on whatever node its connection is to): answered while it may
        // still use the lock, the read must show its token — no one may have taken it, and no
        // replica may have let it expire early.
        let hold = Duration::from_millis(rng.below(LOCK_LEASE.as_millis() as u64 * 3 / 2));
        sim.sleep(hold / 2).await;
        if let Some(Answer::Reply(kv::Reply::Value(value))) = cas_request(&world, l, &["GET", "lock"]).await {
            let now = sim.now();
            assert!(
                now >= sent_at + usable || value.as_deref() == Some(id.as_bytes()),
                "{id}, holding the lock since {start:?}, read it at {now:?} as {:?}",
                value.map(|value| String::from_utf8_lossy(&value).into_owned())
            );
        }
        sim.sleep(hold - hold / 2).await;
        let end = sim.now().min(sent_at + usable);
        if start < end {
            world.borrow_mut().holds.push(Hold { holder: id.clone(), start, end, past_lease: end < sim.now() });
        }
        // By its token, which no later holder has. (Released with VDEL at the version a VGET
        // read, 5 of 300 seeds had two holders: a version starts again at 1 when the key is
        // created again, so a holder whose lease ran out between its VGET and its VDEL deleted
        // the next holder's lock.)
        cas_request(&world, l, &["DELEX", "lock", "IFEQ", &id]).await;
    }
}

/// A versioned client (the lab's "one put"): reads a key's value and version with VGET, then
/// writes its own token there with VSET at that version; both recorded for the versioned model.
/// A VSET whose answer is lost (an error, a broken connection) has an unknown outcome.
async fn versioned_client_loop(world: Shared, l: usize) {
    let (sim, rng) = {
        let w = world.borrow();
        (w.sim.clone(), w.rng.clone())
    };
    let client = l as u64 + 1000;
    let mut tokens = 0;
    loop {
        sim.sleep(Duration::from_millis(rng.below(50))).await;
        if !world.borrow().running {
            return;
        }
        let key = format!("v{}", rng.below(2));
        let call = stamp(&mut world.borrow_mut());
        let read = match cas_request(&world, l, &["VGET", &key]).await {
            Some(Answer::Reply(kv::Reply::Multi(replies))) => match &replies[..] {
                [kv::Reply::Value(value), kv::Reply::Integer(version)] => {
                    (String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into_owned(), *version as u64)
                }
                other => panic!("VGET answered {other:?}"),
            },
            // A read that failed tells nothing: it is not recorded.
            _ => continue,
        };
        {
            let mut w = world.borrow_mut();
            let return_time = stamp(&mut w);
            let output = VersionedOutput::Value { value: read.0, version: read.1 };
            w.versioned_history.push(Operation { client, input: VersionedInput::Get { key: key.clone() }, call, output: Some(output), return_time: Some(return_time) });
        }
        tokens += 1;
        let (token, version) = (format!("[{client}.{tokens}]"), read.1);
        let call = stamp(&mut world.borrow_mut());
        let answer = cas_request(&world, l, &["VSET", &key, &token, &version.to_string()]).await;
        let output = match &answer {
            Some(Answer::Reply(kv::Reply::Integer(new))) => {
                assert_eq!(*new as u64, version + 1, "VSET at version {version} answered version {new}");
                Some(VersionedOutput::Ok)
            }
            Some(Answer::Reply(kv::Reply::Error(error))) if error.starts_with("VERSION ") => Some(VersionedOutput::ErrVersion),
            Some(Answer::Error(_)) | None => None,
            Some(other) => panic!("VSET at version {version} answered {other:?}"),
        };
        let mut w = world.borrow_mut();
        let return_time = output.as_ref().map(|_| stamp(&mut w));
        let input = VersionedInput::Put { key, value: token, version };
        w.versioned_history.push(Operation { client, input, call, output, return_time });
    }
}

/// A client of counters, expiring keys and transactions, one request at a time on two keys of
/// each kind: tagged INCRBY on `c0`/`c1`, sent again with its tag until answered (it must count
/// once); SET with PX on `e0`/`e1`; MULTI, two APPENDs, GET, EXEC on `t0`/`t1`; and GETs of all
/// of them. Its history is checked with the strings model, each expiring key's window drawn
/// from the simulation's clocks (see `LOCK_LEASE`).
async fn strings_client_loop(world: Shared, l: usize) {
    let (sim, rng) = {
        let w = world.borrow();
        (w.sim.clone(), w.rng.clone())
    };
    let client = l as u64 + 2000;
    let tag = rng.u64().max(1);
    let (mut seq, mut tokens) = (0u64, 0u64);
    // How far a node's clock (10 ms ticks) may be behind the true time, and the most one is ahead.
    let behind = 2 * TICK;
    let ahead = Duration::from_millis(400 * (world.borrow().params.servers as u64 - 1)) + TICK;
    loop {
        sim.sleep(Duration::from_millis(rng.below(50))).await;
        if !world.borrow().running {
            return;
        }
        let key = rng.below(2);
        let call = stamp(&mut world.borrow_mut());
        let (input, output) = match rng.below(7) {
            0 | 1 => {
                let (key, by) = (format!("c{key}"), 1 + rng.below(5) as i64);
                seq += 1;
                let words = ["TAGGED", &tag.to_string(), &seq.to_string(), "INCRBY", &key, &by.to_string()];
                let output = loop {
                    match cas_request(&world, l, &words).await {
                        Some(Answer::Reply(kv::Reply::Integer(value))) => break Some(StringsOutput::Integer(value)),
                        Some(other @ (Answer::Reply(_) | Answer::Count(_) | Answer::Value(_))) => panic!("INCRBY {key} {by} answered {other:?}"),
                        // Outcome unknown: the same again, with its tag, elsewhere.
                        Some(Answer::Error(_)) | None => {
                            drop_cas_connection(&mut world.borrow_mut(), l);
                            sim.sleep(Duration::from_millis(10)).await;
                            if !world.borrow().running {
                                break None;
                            }
                        }
                    }
                };
                (StringsInput::IncrBy { key, by }, output)
            }
            2 => {
                tokens += 1;
                let (key, value, ttl) = (format!("e{key}"), format!("[{client}.{tokens}]"), Duration::from_millis(50 + rng.below(1500)));
                let not_before = (Duration::from_nanos(call) + ttl).saturating_sub(behind).as_nanos() as u64;
                let output = match cas_request(&world, l, &["SET", &key, &value, "PX", &ttl.as_millis().to_string()]).await {
                    Some(Answer::Reply(kv::Reply::Done)) => Some(StringsOutput::Done),
                    Some(other @ (Answer::Reply(_) | Answer::Count(_) | Answer::Value(_))) => panic!("SET {key} PX answered {other:?}"),
                    Some(Answer::Error(_)) | None => None,
                };
                (StringsInput::SetExpiring { key, value, not_before }, output)
            }
            3 => {
                tokens += 1;
                let key = format!("t{key}");
                let appends = vec![format!("<{client}.{tokens}"), format!("{client}.{tokens}>")];
                let commands: [&[&str]; 5] = [&["MULTI"], &["APPEND", &key, &appends[0]], &["APPEND", &key, &appends[1]], &["GET", &key], &["EXEC"]];
                let output = match cas_commands(&world, l, &commands).await {
                    Some(Answer::Reply(kv::Reply::Multi(replies))) => match &replies[..] {
                        [kv::Reply::Length(first), kv::Reply::Length(second), kv::Reply::Value(value)] => Some(StringsOutput::Exec {
                            lengths: vec![*first, *second],
                            value: value.as_ref().map(|value| String::from_utf8_lossy(value).into_owned()),
                        }),
                        other => panic!("EXEC of two APPENDs and a GET answered {other:?}"),
                    },
                    Some(other @ (Answer::Reply(_) | Answer::Count(_) | Answer::Value(_))) => panic!("EXEC answered {other:?}"),
                    Some(Answer::Error(_)) | None => None,
                };
                (StringsInput::Transaction { key, appends }, output)
            }
            kind => {
                let key = format!("{}{key}", ["c", "e", "t", "e"][kind as usize - 3]);
                let value = match cas_request(&world, l, &["GET", &key]).await {
                    Some(Answer::Reply(kv::Reply::Value(value))) => value.map(|value| String::from_utf8_lossy(&value).into_owned()),
                    Some(other @ (Answer::Reply(_) | Answer::Count(_) | Answer::Value(_))) => panic!("GET {key} answered {other:?}"),
                    // A read that failed tells nothing: it is not recorded.
                    Some(Answer::Error(_)) | None => continue,
                };
                let latest = Duration::from_nanos(stamp(&mut world.borrow_mut())) + ahead;
                (StringsInput::Get { key, latest: latest.as_nanos() as u64 }, Some(StringsOutput::Value(value)))
            }
        };
        let mut w = world.borrow_mut();
        let return_time = output.as_ref().map(|_| stamp(&mut w));
        w.strings_history.push(Operation { client, input, call, output, return_time });
    }
}

/// Closes the client's connection (its next request goes to a random running node).
fn drop_cas_connection(w: &mut World, l: usize) {
    let connection = w.cas_clients[l].connection.take();
    close(w, connection);
}

/// A client closes its connection (if it has one): the node forgets it.
fn close(w: &mut World, connection: Option<(usize, ConnId)>) {
    if let Some((node, conn)) = connection {
        w.conns[node].remove(&conn);
        if let Some(running) = w.nodes[node].as_mut() {
            running.replica.disconnected(conn);
        }
    }
}

/// Sends one command on the lock client's connection (connecting to a random running node first
/// if it has none) and waits for its answer; None if the connection broke first.
async fn cas_request(world: &Shared, l: usize, words: &[&str]) -> Option<Answer> {
    cas_commands(world, l, &[words]).await
}

/// Sends commands on the client's connection, all at once, and waits for the answer the node
/// gives (the last command's: the ones before must be answered by the session, as MULTI and the
/// commands it queues are); None if the connection broke first.
async fn cas_commands(world: &Shared, l: usize, commands: &[&[&str]]) -> Option<Answer> {
    let sim = world.borrow().sim.clone();
    let (node, conn, request, incarnation) = {
        let mut w = world.borrow_mut();
        if w.cas_clients[l].connection.is_none() {
            let live: Vec<usize> = (0..w.params.servers).filter(|&i| w.nodes[i].is_some()).collect();
            if live.is_empty() {
                return None;
            }
            let node = *w.rng.pick(&live);
            w.next_conn += 1;
            let conn = ConnId(w.next_conn);
            w.conns[node].insert(conn, CAS_CLIENT_BASE + l);
            w.cas_clients[l].connection = Some((node, conn));
        }
        let (node, conn) = w.cas_clients[l].connection?;
        let running = w.nodes[node].as_ref()?;
        let (status, incarnation) = (running.replica.status(), running.incarnation);
        let commands: Vec<Vec<String>> = commands.iter().map(|words| words.iter().map(|word| word.to_string()).collect()).collect();
        let now = w.sim.now();
        let client = &mut w.cas_clients[l];
        client.answer = None;
        client.sent_at = now;
        (node, conn, encode_commands(&commands, &mut client.session, &status), incarnation)
    };
    if with_node(world, node, incarnation, |replica| replica.client(conn, request)) {
        if let Some(running) = world.borrow_mut().nodes[node].as_mut() {
            running.requests += 1;
        }
    }
    loop {
        {
            let mut w = world.borrow_mut();
            if let Some(answer) = w.cas_clients[l].answer.take() {
                return Some(answer);
            }
            if w.cas_clients[l].connection != Some((node, conn)) {
                return None;
            }
        }
        sim.sleep(Duration::from_millis(1)).await;
    }
}

/// No two holders of the lock at once.
fn check_holds(w: &World) {
    let mut holds = w.holds.clone();
    holds.sort_by_key(|hold| hold.start);
    for pair in holds.windows(2) {
        assert!(
            pair[1].start >= pair[0].end,
            "two holders of the lock at once: {} held it from {:?} to {:?}, {} from {:?}",
            pair[0].holder,
            pair[0].start,
            pair[0].end,
            pair[1].holder,
            pair[1].start
        );
    }
}

/// The command a request is sent as, in Redis's words.
fn words_of(sent: &Sent) -> Vec<String> {
    let input = &sent.input;
    let mut words: Vec<String> = match sent.tag {
        Some((id, seq)) => vec!["TAGGED".into(), id.to_string(), seq.to_string()],
        None => Vec::new(),
    };
    match input.op {
        KvOp::Get => words.extend(["GET".into(), input.key.clone()]),
        KvOp::Append => words.extend(["APPEND".into(), input.key.clone(), input.value.clone()]),
        KvOp::Put => words.extend(["SET".into(), input.key.clone(), input.value.clone()]),
    }
    words
}

/// Commands sent at once: the last must be a request for the node, the ones before answered by
/// the session itself (MULTI, and the commands it queues).
fn encode_commands(commands: &[Vec<String>], session: &mut Session, status: &raft::Status) -> replica::request::Request {
    for words in commands {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        resp::encode_array_of_bulks(&words, session.read_space());
    }
    let mut steps = session.parse(&replica::session::NodeView::of(*status));
    let last = steps.pop();
    assert!(steps.iter().all(|step| matches!(step, Step::Reply(_))), "{commands:?}: the node was asked more than the last: {steps:?}");
    match last {
        Some(Step::Request { request, .. }) => request,
        other => panic!("{commands:?} is not a request for the node: {other:?}"),
    }
}

/// Every request still waiting on a live connection must be answered within the bound.
async fn watchdog(world: Shared) {
    let sim = world.borrow().sim.clone();
    let bound = TICK * REQUEST_TIMEOUT_TICKS as u32 + Duration::from_millis(100);
    loop {
        sim.sleep(Duration::from_millis(100)).await;
        let w = world.borrow();
        if !w.running && w.clients.iter().all(|client| client.outstanding.is_empty()) {
            return;
        }
        for client in &w.clients {
            // (One still in the client's pipeline has not reached the node yet.)
            if let (Some((node, _)), Some(oldest)) = (client.connection, client.outstanding.first().filter(|_| client.released > 0)) {
                let waited = w.sim.now() - oldest.sent_at;
                assert!(waited <= bound, "client {}'s request {:?} to node {node} is unanswered after {waited:?}", client.id, oldest.input);
            }
        }
    }
}

/// After the heal: every member of the configuration applies the leader's commit index within the liveness bound.
async fn await_progress(world: &Shared) {
    let sim = world.borrow().sim.clone();
    let healed = sim.now();
    loop {
        sim.sleep(Duration::from_millis(100)).await;
        let w = world.borrow();
        let leader = (0..w.params.servers)
            .filter(|&i| w.nodes[i].as_ref().is_some_and(|node| node.replica.status().is_leader()))
            .max_by_key(|&i| w.nodes[i].as_ref().map(|node| node.replica.status().term));
        let caught_up = leader.is_some_and(|leader| {
            let node = w.nodes[leader].as_ref().expect("running");
            let (commit, membership) = (node.replica.status().commit, node.replica.membership());
            // Nodes waiting to join, or removed, follow no one.
            members_of(&w, membership).all(|node| node.replica.store().applied_index() >= commit.0)
        });
        if caught_up {
            let detail = format!("leader {leader:?}, every node applied its commit index, {:?} after the heal", sim.now() - healed);
            w.trace.check(sim.now(), "liveness", true, detail);
            return;
        }
        if sim.now() - healed >= LIVENESS_BOUND {
            let states: Vec<String> = w
                .nodes
                .iter()
                .enumerate()
                .map(|(i, node)| match node {
                    Some(node) => format!(
                        "{i}: {:?} applied {} voters {:?} dials {:?}",
                        node.replica.status(),
                        node.replica.store().applied_index(),
                        node.replica.membership().voters().map(|id| id.0).collect::<Vec<_>>(),
                        node.links.peers.keys().map(|id| id.0).collect::<Vec<_>>()
                    ),
                    None => format!("{i}: down"),
                })
                .collect();
            let clients: Vec<String> = w.clients.iter().map(|client| format!("client {} on {:?}, {} outstanding", client.id, client.connection, client.outstanding.len())).collect();
            panic!(
                "liveness: the healed cluster did not converge within {LIVENESS_BOUND:?}: leader {leader:?}, answered {}, errors {}, sent {}\n{}\n{}",
                w.answered,
                w.errors,
                w.sent,
                states.join("\n"),
                clients.join("\n")
            );
        }
    }
}

/// The running nodes that are members of `membership`.
fn members_of<'a>(w: &'a World, membership: &'a raft::Membership) -> impl Iterator<Item = &'a Running> {
    w.nodes.iter().enumerate().filter(|(i, _)| membership.is_member(node_id(*i))).filter_map(|(_, node)| node.as_ref())
}

/// Appends of unknown outcome make the checker's search explode (each may take effect anywhere
/// after its call). Their keys only ever grow, by unique tokens, so the end tells: once every
/// node's log is committed and applied, a token in the final value was appended — no later than
/// the first read that saw it, or the end — and a token missing never was.
fn settle_unknown_appends(w: &mut World) {
    let Some(leader) = w.nodes.iter().flatten().filter(|node| node.replica.status().is_leader()).max_by_key(|node| node.replica.status().term) else {
        return;
    };
    let settled = members_of(w, leader.replica.membership()).all(|node| {
        let status = node.replica.status();
        status.last_index == status.commit && node.replica.store().applied_index() >= status.commit.0
    });
    if !settled {
        return;
    }
    let store = leader.replica.store().clone();
    check_exactly_once(w, &store);
    let end = stamp(w);
    let history = std::mem::take(&mut w.history);
    let mut first_seen: BTreeMap<(String, String), u64> = BTreeMap::new();
    for op in history.iter().filter(|op| op.input.op == KvOp::Get) {
        if let (Some(output), Some(returned)) = (&op.output, op.return_time) {
            for token in output.value.split_inclusive(']') {
                let seen = first_seen.entry((op.input.key.clone(), token.to_string())).or_insert(returned);
                *seen = (*seen).min(returned);
            }
        }
    }
    for mut op in history {
        if op.input.op == KvOp::Append && op.return_time.is_none() {
            let value = store.get(op.input.key.as_bytes()).unwrap_or_default();
            if !String::from_utf8_lossy(value).contains(&op.input.value) {
                continue;
            }
            op.return_time = Some(first_seen.get(&(op.input.key.clone(), op.input.value.clone())).copied().unwrap_or(end).max(op.call + 1));
            op.output = Some(KvOutput::default());
        }
        w.history.push(op);
    }
}

/// Tagged appends take effect exactly once: none twice, and every acknowledged one once.
fn check_exactly_once(w: &World, store: &Store) {
    let count = |key: &str, token: &str| String::from_utf8_lossy(store.get(key.as_bytes()).unwrap_or_default()).matches(token).count();
    for (key, token) in &w.issued_tags {
        let times = count(key, token);
        assert!(times <= 1, "exactly-once: the tagged append {token} is in {key:?} {times} times");
    }
    for (tag, key, token) in &w.acknowledged_tags {
        assert_eq!(count(key, token), 1, "exactly-once: the acknowledged tagged append {token} (tag {tag:?}) is not in {key:?}");
    }
    let detail = format!("{} tagged appends, {} acknowledged", w.issued_tags.len(), w.acknowledged_tags.len());
    w.trace.check(w.sim.now(), "exactly once", true, detail);
}

fn check_history(world: &Shared) {
    let mut w = world.borrow_mut();
    // Tagged appends still waiting to be sent again: their outcome is unknown.
    for c in 0..w.clients.len() {
        if let Some(sent) = w.clients[c].retry.take() {
            let client = w.clients[c].id;
            w.history.push(Operation { client, input: sent.input, call: sent.call, output: None, return_time: None });
        }
    }
    settle_unknown_appends(&mut w);
    check_holds(&w);
    let versioned = std::mem::take(&mut w.versioned_history);
    check_model(&mut w, &VersionedModel, &versioned, ("versioned history linearizable", "versioned history", "versioned operations"));
    w.versioned_history = versioned;
    let strings = std::mem::take(&mut w.strings_history);
    check_model(&mut w, &StringsModel, &strings, ("strings history linearizable", "strings history", "strings operations"));
    w.strings_history = strings;
    let history = std::mem::take(&mut w.history);
    check_model(&mut w, &KvModel, &history, ("linearizable", "history", "operations"));
    w.history = history;
}

/// Checks one history against `model`: an illegal one fails the run (and is drawn with it), one
/// the budget cannot decide is counted as undecided. `names`: the trace's check, what the history
/// is, what its operations are called.
fn check_model<M: linearizability::Model>(w: &mut World, model: &M, history: &[Operation<M::Input, M::Output>], names: (&str, &str, &str)) {
    let (name, what, unit) = names;
    let result = linearizability::check(model, history, CHECK_BUDGET);
    let detail = format!("{} {unit}", history.len());
    match result {
        CheckResult::Ok => w.trace.check(w.sim.now(), name, true, detail),
        CheckResult::Unknown => {
            w.undecided = true;
            w.trace.check(w.sim.now(), name, true, format!("{detail}: undecided within the budget"));
        }
        CheckResult::Illegal(_) => {
            let html = linearizability::render_html(model, history, &result);
            w.trace.set_history(Rc::new(move || Some(html.clone())));
            w.trace.check(w.sim.now(), name, false, detail.clone());
            panic!("the {what} is not linearizable ({detail})");
        }
    }
}
