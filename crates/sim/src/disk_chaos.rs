//! The randomized safety simulation of `chaos`, with every node keeping its Raft state in raftkv's
//! `storage::Storage` on its own simulated disk (`storage::MemDisk`), and disk faults on top of the
//! network's: one seed picks the cluster, the fault mix and every fault.
//!
//! Disk faults:
//! - crash: a running node dies and its disk loses what was not synced (`MemDisk::crash`), or keeps
//!   a random prefix of it (`crash_torn`); it later restarts from `Storage::open`;
//! - death in a save: a crash armed at one of the next few syncs of a running node's disk
//!   (`crash_at_sync`), so that a `save` fails between its write and its fsync (or in a snapshot's
//!   or a new segment's fsyncs); the driver must stop the node at once;
//! - crash in recovery: now and then a restart's `Storage::open` itself dies at a sync;
//! - corruption, rarely: one byte of a down node's log segment or snapshot file flipped, on at most a
//!   minority of the nodes' disks.
//!
//! (The driver saves synchronously and every save fsyncs, so a crash between saves finds only
//! unsynced directory changes — segment deletions — to lose; lost and torn writes come from deaths
//! in a save.)
//!
//! Checked, besides everything `chaos` checks (election safety, log matching, leader completeness,
//! state machine safety, applies in order without gaps, terms never going down across restarts):
//! - a node recovers correctly: `open` gives back exactly what its successful saves made durable,
//!   plus, if it died in a save, all of that save, only its snapshot, or nothing of it; or, if a
//!   byte of its disk was flipped, it refuses to start with `StorageError::Corrupt` naming the file
//!   and the offset of the damaged record or field (a flipped byte in a torn tail, which recovery
//!   cuts off anyway, must not stop it). A node that refused stays down for good;
//! - a node whose save failed never saves again: it must have stopped at once;
//! - no acknowledged write is lost: every command any node applied is applied identically by every
//!   node that is not down for good, once the healed cluster has committed a new command on all of
//!   them within the liveness bound of `chaos` (10 s of virtual time after the heal).
//!
//! Not injected: a flipped byte in the last whole record of a node's newest log segment. Storage
//! cannot tell it from a torn write (its documented limit) and cuts it off, so the node would come
//! back without a save it had acknowledged — amnesia, which Raft does not tolerate even on one node.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use raft::{Persist, Restored};
use storage::{Disk, MemDisk, Options, Storage, StorageError};

use crate::chaos::{
    apply_links, await_progress, change_links, check_logs, heal_network, launch, propose_some, run_scenario,
    shut_down, stop, ChaosParams, Cluster, Shared,
};
use crate::executor::Sim;
use crate::lab::Durable;
use crate::persister::Persister;
use crate::raft_tester::ms;
use crate::rng::SimRng;
use crate::trace::{Event, Trace};

/// What one seed chose. Printed with every failure.
#[derive(Clone, Debug)]
pub struct Params {
    /// The cluster, the network faults and the workload, as `chaos` draws them; its
    /// `crash_per_mille` is the chance of a disk crash per step here.
    pub chaos: ChaosParams,
    /// Of the crashes (plain and armed), the share that tear the last unsynced write, per mille.
    pub torn_per_mille: u64,
    /// Per step, per mille: arm a crash at one of the next `arm_within` syncs of a running node.
    pub arm_per_mille: u64,
    pub arm_within: u64,
    /// Per restart, per mille: `Storage::open` itself dies at one of its first syncs.
    pub recovery_crash_per_mille: u64,
    /// Per step, per mille: flip a byte on a down node's disk (at most a minority of disks).
    pub corrupt_per_mille: u64,
    /// Log segment size: small ones make saves start segments and snapshots delete them.
    pub segment_bytes: u64,
    /// How far ahead of the records the log is extended with zeros (0: not at all).
    pub preallocate_bytes: u64,
}

impl Params {
    pub fn from_seed(rng: &SimRng) -> Params {
        let mut chaos = ChaosParams::from_seed(rng);
        chaos.crash_per_mille = *rng.pick(&[10, 30, 80]);
        Params {
            chaos,
            torn_per_mille: *rng.pick(&[0, 500, 1000]),
            arm_per_mille: *rng.pick(&[10, 30, 80]),
            arm_within: *rng.pick(&[1, 3, 8]),
            recovery_crash_per_mille: *rng.pick(&[0, 0, 100]),
            corrupt_per_mille: *rng.pick(&[0, 0, 2, 5]),
            segment_bytes: *rng.pick(&[Options::default().segment_bytes, 4096, 512]),
            preallocate_bytes: *rng.pick(&[0, 100, Options::default().preallocate_bytes]),
        }
    }
}

/// How many of each fault a run injected, and how the nodes took them.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub crashes: u32,
    pub torn_crashes: u32,
    /// Saves that failed because the disk died in their fsync; the node stopped.
    pub died_in_save: u32,
    pub crashed_in_recovery: u32,
    pub restarts: u32,
    pub corrupted: u32,
    /// Restarts refused with `StorageError::Corrupt`: those nodes stayed down.
    pub refused: u32,
    /// Restarts that cut off a torn tail holding a flipped byte, and went on.
    pub recovered_from_corruption: u32,
    /// Restarts after a death in a save that found all of that save, or only its snapshot, durable.
    pub failed_save_landed: u32,
    pub failed_save_snapshot_only: u32,
}

/// What a passing seed did, so that a run that exercised nothing is visible.
#[derive(Clone)]
pub struct Summary {
    pub params: Params,
    pub committed: usize,
    pub terms_with_leader: usize,
    pub virtual_time: Duration,
    pub faults: Faults,
    pub trace: Trace,
}

/// One node's disk and what the checks know about what it holds.
struct NodeDisk {
    disk: MemDisk,
    mirror: Rc<RefCell<Mirror>>,
    /// A crash is armed at one of the disk's next syncs: the one failure of `save` expected.
    armed: bool,
    /// The flipped byte not yet seen by a restart, and what that restart must do.
    corruption: Option<Corruption>,
    ever_corrupted: bool,
    /// Refused to start: down for good, left out of the liveness and acknowledgement checks.
    refused: bool,
}

/// What the node's storage must give back on restart: a reference model of every save.
#[derive(Default)]
struct Mirror {
    /// Every save that returned Ok, applied to the lab's persister (an atomic, in-memory model).
    model: Persister,
    /// The save the node died in, if it has not restarted since: it may have landed whole, in part
    /// (its snapshot), or not at all.
    failed: Option<Persist>,
}

struct Corruption {
    file: PathBuf,
    byte: u64,
    expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The byte is in a torn tail recovery cuts off: the node starts.
    Recover,
    /// Recovery must refuse, naming the file and this offset.
    Refuse { offset: u64 },
}

struct Disks {
    params: Params,
    nodes: Vec<NodeDisk>,
    faults: Faults,
}

type DiskCluster = Shared<Disks>;

/// A disk fault, in the trace and in the drawing.
fn disk_fault(c: &Cluster<Disks>, i: usize, what: String) {
    c.trace.record(c.sim.now(), format_args!("chaos: node {i}: {what}"));
    c.trace.event(c.sim.now(), Event::Disk { server: i, what });
}

fn node_dir(i: usize) -> PathBuf {
    PathBuf::from(format!("/node{i}"))
}

/// The storage a node saves through, mirrored into the reference model.
struct Checked {
    node: usize,
    storage: Storage<MemDisk>,
    mirror: Rc<RefCell<Mirror>>,
    failed: bool,
}

impl Durable for Checked {
    fn save(&mut self, persist: &Persist) -> Result<(), StorageError> {
        assert!(!self.failed, "node {} saved again after a failed save: it must have stopped", self.node);
        let result = self.storage.save(persist);
        let mut mirror = self.mirror.borrow_mut();
        match &result {
            Ok(()) => mirror.model.save(persist),
            Err(_) => {
                self.failed = true;
                mirror.failed = Some(persist.clone());
            }
        }
        result
    }
}

/// Runs one seed. Returns the failure, with the seed's parameters, or what the run did.
pub fn run(seed: u64) -> Result<Summary, (Params, String, Trace)> {
    let sim = Sim::new();
    let rng = SimRng::new(seed);
    let trace = Trace::default();
    let params = Params::from_seed(&rng);
    let nodes = (0..params.chaos.servers)
        .map(|_| NodeDisk {
            disk: MemDisk::new(rng.u64()),
            mirror: Rc::default(),
            armed: false,
            corruption: None,
            ever_corrupted: false,
            refused: false,
        })
        .collect();
    let disks = Disks { params: params.clone(), nodes, faults: Faults::default() };
    let cluster = Cluster::new(&sim, &rng, &trace, &params.chaos, disks);
    match run_scenario(&sim, &trace, scenario(cluster.clone())) {
        Ok(()) => {
            let c = cluster.borrow();
            Ok(Summary {
                params,
                committed: c.committed.len(),
                terms_with_leader: c.leaders.len(),
                virtual_time: sim.now(),
                faults: c.store.faults.clone(),
                trace: trace.clone(),
            })
        }
        Err(message) => Err((params, message, trace)),
    }
}

async fn scenario(cluster: DiskCluster) {
    let (sim, rng, params) = {
        let c = cluster.borrow();
        (c.sim.clone(), c.rng.clone(), c.store.params.clone())
    };
    let n = params.chaos.servers;
    for i in 0..n {
        restart(&cluster, i, false);
    }
    if params.chaos.unreliable {
        cluster.borrow().net.set_reliable(false);
    }
    cluster.borrow().net.set_long_reordering(params.chaos.long_reordering);
    for _ in 0..params.chaos.steps {
        sim.sleep(ms(rng.below(150))).await;
        disk_step(&cluster, &rng, &params);
        check_logs(&cluster);
    }
    heal(&cluster);
    let live: Vec<usize> = (0..n).filter(|&i| !cluster.borrow().store.nodes[i].refused).collect();
    assert!(live.len() > n / 2, "the run corrupted a majority of the disks");
    let index = await_progress(&cluster, &sim, &live).await;
    check_logs(&cluster);
    check_acknowledged(&cluster, &live, index);
    shut_down(&cluster);
}

fn disk_step(cluster: &DiskCluster, rng: &SimRng, params: &Params) {
    let n = params.chaos.servers;
    change_links(cluster, rng, &params.chaos);
    if rng.chance(params.chaos.crash_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        let torn = rng.chance(params.torn_per_mille, 1000);
        crash(cluster, victim, torn);
    }
    if rng.chance(params.arm_per_mille, 1000) {
        let victim = rng.below(n as u64) as usize;
        let sync = 1 + rng.below(params.arm_within);
        let torn = rng.chance(params.torn_per_mille, 1000);
        arm(cluster, victim, sync, torn);
    }
    if rng.chance(params.corrupt_per_mille, 1000) {
        corrupt_some(cluster, rng);
    }
    if rng.chance(60, 1000) {
        let dead: Vec<usize> = (0..n).filter(|&i| is_down(cluster, i)).collect();
        if !dead.is_empty() {
            restart(cluster, *rng.pick(&dead), true);
        }
    }
    propose_some(cluster, rng);
}

/// Down, and not for good: a restart may bring it back.
fn is_down(cluster: &DiskCluster, i: usize) -> bool {
    let c = cluster.borrow();
    c.rafts[i].is_none() && !c.store.nodes[i].refused
}

/// Power failure on a running node: the process dies, the disk keeps what was synced (and, torn,
/// part of what was not).
fn crash(cluster: &DiskCluster, i: usize, torn: bool) {
    if !stop(cluster, i, if torn { "crash (torn)" } else { "crash" }) {
        return;
    }
    let mut c = cluster.borrow_mut();
    disk_fault(&c, i, if torn { "power failure: unsynced writes torn" } else { "power failure: unsynced writes lost" }.to_string());
    let disks = &mut c.store;
    let node = &mut disks.nodes[i];
    node.armed = false;
    if torn {
        node.disk.crash_torn();
        disks.faults.torn_crashes += 1;
    } else {
        node.disk.crash();
        disks.faults.crashes += 1;
    }
}

/// The `sync`-th next sync of a running node's disk crashes it instead.
fn arm(cluster: &DiskCluster, i: usize, sync: u64, torn: bool) {
    let mut c = cluster.borrow_mut();
    if c.rafts[i].is_none() || c.store.nodes[i].armed {
        return;
    }
    disk_fault(&c, i, format!("the disk dies at its sync #{sync} from now (torn: {torn})"));
    let node = &mut c.store.nodes[i];
    node.disk.crash_at_sync(sync, torn);
    node.armed = true;
}

/// A save of node `i` failed and the node stopped itself: the disk crashed in the save's fsync.
fn died_in_save(cluster: &DiskCluster, i: usize, error: &StorageError) {
    {
        let mut c = cluster.borrow_mut();
        let armed = std::mem::replace(&mut c.store.nodes[i].armed, false);
        assert!(armed, "node {i}: a save failed with no disk fault armed: {error}");
        c.store.faults.died_in_save += 1;
    }
    stop(cluster, i, "save failed, stop");
}

/// Starts node `i` from what `Storage::open` recovers on its disk, checking it against what the
/// node saved; a node whose disk was corrupted must refuse instead, or recover if only a torn tail
/// was hit. `faults`: the open itself may crash.
fn restart(cluster: &DiskCluster, i: usize, faults: bool) {
    let (disk, torn, recovery_crash, segment_bytes, preallocate_bytes) = {
        let c = cluster.borrow();
        let params = &c.store.params;
        c.act(Some(i), "start", "from what its disk recovers");
        let recovery_crash = faults && c.rng.chance(params.recovery_crash_per_mille, 1000);
        let torn = recovery_crash && c.rng.chance(params.torn_per_mille, 1000);
        (c.store.nodes[i].disk.clone(), torn, recovery_crash, params.segment_bytes, params.preallocate_bytes)
    };
    if recovery_crash {
        let sync = 1 + cluster.borrow().rng.below(3);
        disk.crash_at_sync(sync, torn);
    }
    let opened = Storage::open_with(disk.clone(), node_dir(i), Options { segment_bytes, preallocate_bytes });
    disk.disarm();
    let mut c = cluster.borrow_mut();
    let corruption = c.store.nodes[i].corruption.take();
    let (storage, restored) = match opened {
        Err(StorageError::Io { source, .. }) if recovery_crash && source.to_string() == "simulated crash" => {
            disk_fault(&c, i, "crashed in recovery".to_string());
            c.store.faults.crashed_in_recovery += 1;
            c.store.nodes[i].corruption = corruption;
            return;
        }
        Err(error) => {
            let Some(Corruption { file, byte, expect: Expect::Refuse { offset } }) = corruption else {
                panic!("node {i} could not reopen its storage: {error}");
            };
            match &error {
                StorageError::Corrupt { file: named, offset: at, .. } if *named == file && *at == offset => {}
                _ => panic!(
                    "node {i} refused to start with the wrong error: {error}; byte {byte} of {} was flipped, \
                     so Corrupt naming that file at offset {offset} was expected",
                    file.display()
                ),
            }
            disk_fault(&c, i, format!("refuses to start, down for good: {error}"));
            c.trace.check(c.sim.now(), "corruption refused", true, format!("node {i}: {error}"));
            c.store.nodes[i].refused = true;
            c.store.faults.refused += 1;
            return;
        }
        Ok(opened) => opened,
    };
    if let Some(Corruption { file, byte, expect }) = &corruption {
        assert_eq!(
            *expect,
            Expect::Recover,
            "node {i} started from a disk whose byte {byte} of {} was flipped: recovery must refuse it",
            file.display()
        );
        disk_fault(&c, i, "recovered, cutting off its corrupted torn tail".to_string());
        c.store.faults.recovered_from_corruption += 1;
    }
    c.trace.record(c.sim.now(), format_args!("chaos: node {i} recovered {}", Show(&restored)));
    let mirror = c.store.nodes[i].mirror.clone();
    check_recovered(&mirror, i, &restored, &mut c.store.faults);
    c.trace.check(c.sim.now(), "recovery", true, format!("node {i} recovered what it saved: {}", Show(&restored)));
    let term = restored.hard_state.term.0;
    assert!(term >= c.terms[i], "node {i}'s term went down across a restart, from {} to {term}", c.terms[i]);
    c.store.faults.restarts += 1;
    drop(c);
    let durable = Checked { node: i, storage, mirror, failed: false };
    let raft = launch(cluster, i, restored, Box::new(durable));
    let observed = Rc::downgrade(cluster);
    raft.set_on_failure(Rc::new(move |error: &StorageError| {
        if let Some(cluster) = observed.upgrade() {
            died_in_save(&cluster, i, error);
        }
    }));
}

/// What `open` recovered must be what the node's successful saves made durable, plus all, the
/// snapshot only, or nothing of the save it died in. The model then follows what was recovered.
fn check_recovered(mirror: &Rc<RefCell<Mirror>>, i: usize, restored: &Restored, faults: &mut Faults) {
    let mut mirror = mirror.borrow_mut();
    let mut candidates = vec![(Landed::Nothing, "every save that returned Ok", mirror.model.copy())];
    if let Some(failed) = mirror.failed.take() {
        if failed.snapshot.is_some() {
            let partial = mirror.model.copy();
            partial.save(&Persist { hard_state: None, snapshot: failed.snapshot.clone(), entries: Vec::new() });
            candidates.push((Landed::Snapshot, "those plus the snapshot of the save it died in", partial));
        }
        let whole = mirror.model.copy();
        whole.save(&failed);
        candidates.push((Landed::Whole, "those plus the whole save it died in", whole));
    }
    // Checked in this order: a failed save that changed nothing matches the first.
    match candidates.iter().find(|(_, _, model)| same(&model.restored(), restored)) {
        Some((landed, _, model)) => {
            match landed {
                Landed::Nothing => {}
                Landed::Snapshot => faults.failed_save_snapshot_only += 1,
                Landed::Whole => faults.failed_save_landed += 1,
            }
            mirror.model = model.copy();
        }
        None => {
            let expected: Vec<String> =
                candidates.iter().map(|(_, what, model)| format!("{what}: {}", Show(&model.restored()))).collect();
            panic!("node {i} recovered {} but expected {}", Show(restored), expected.join(", or "));
        }
    }
}

enum Landed {
    Nothing,
    Snapshot,
    Whole,
}

fn same(a: &Restored, b: &Restored) -> bool {
    a.hard_state == b.hard_state && a.snapshot == b.snapshot && a.entries == b.entries
}

/// A restored state, briefly.
struct Show<'a>(&'a Restored);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Restored { hard_state, snapshot, entries } = self.0;
        write!(f, "[{hard_state:?}, snapshot ")?;
        match snapshot {
            Some(snapshot) => write!(f, "{} {} ({} bytes)", snapshot.meta.index, snapshot.meta.term, snapshot.data.len())?,
            None => write!(f, "none")?,
        }
        match (entries.first(), entries.last()) {
            (Some(first), Some(last)) => {
                write!(f, ", entries {}..={} ending in term {}]", first.index, last.index, last.term)
            }
            _ => write!(f, ", no entries]"),
        }
    }
}

/// Flips one byte of a down node's log segment or snapshot file, on at most a minority of disks,
/// and notes what its next restart must do.
fn corrupt_some(cluster: &DiskCluster, rng: &SimRng) {
    let mut c = cluster.borrow_mut();
    let n = c.params.servers;
    let corrupted = c.store.nodes.iter().filter(|node| node.ever_corrupted).count();
    if corrupted >= (n - 1) / 2 {
        return;
    }
    let down: Vec<usize> =
        (0..n).filter(|&i| c.rafts[i].is_none() && !c.store.nodes[i].refused && !c.store.nodes[i].ever_corrupted).collect();
    if down.is_empty() {
        return;
    }
    let i = *rng.pick(&down);
    let disk = c.store.nodes[i].disk.clone();
    let targets = corruption_targets(&disk, &node_dir(i));
    if targets.is_empty() {
        return;
    }
    // A torn tail, when there is one, is a small target: aim at it a third of the time.
    let tail = targets.iter().find_map(|(file, ranges)| {
        ranges.iter().find(|(_, expect)| *expect == Expect::Recover).map(|&range| (file.clone(), vec![range]))
    });
    let (file, ranges) = match tail {
        Some(tail) if rng.chance(1, 3) => tail,
        _ => rng.pick(&targets).clone(),
    };
    let total: u64 = ranges.iter().map(|(range, _)| range.1 - range.0).sum();
    let mut pick = rng.below(total);
    let (byte, expect) = ranges
        .iter()
        .find_map(|&((start, end), expect)| {
            if pick < end - start {
                Some((start + pick, expect))
            } else {
                pick -= end - start;
                None
            }
        })
        .expect("the pick is inside the ranges");
    disk.corrupt(&file, byte);
    disk_fault(&c, i, format!("flip byte {byte} of {} (expect {expect:?})", file.display()));
    let node = &mut c.store.nodes[i];
    node.corruption = Some(Corruption { file, byte, expect });
    node.ever_corrupted = true;
    c.store.faults.corrupted += 1;
}

/// Per file that may be corrupted, its byte ranges [start, end) and what flipping one must do on
/// restart, following storage's documented formats and recovery rules.
fn corruption_targets(disk: &MemDisk, dir: &Path) -> Vec<(PathBuf, Vec<Target>)> {
    let mut targets = Vec::new();
    let snapshot = dir.join("snapshot.bin");
    if let Some(bytes) = disk.read(&snapshot) {
        // Magic (0..8), the rest of the header and its checksum (..52: the header checksum, at
        // 48, fails), the data (its checksum fails; reported at the data's offset, 52).
        let len = bytes.len() as u64;
        let ranges = [((0, 8), 0), ((8, 52), 48), ((52, len), 52)];
        let ranges = ranges
            .into_iter()
            .map(|((start, end), offset)| ((start.min(len), end.min(len)), Expect::Refuse { offset }))
            .filter(|((start, end), _)| start < end)
            .collect::<Vec<_>>();
        if !ranges.is_empty() {
            targets.push((snapshot, ranges));
        }
    }
    let wal = dir.join("wal");
    let mut segments: Vec<String> = disk.list(&wal).unwrap_or_default();
    segments.retain(|name| name.ends_with(".log"));
    for (position, name) in segments.iter().enumerate() {
        let path = wal.join(name);
        let bytes = disk.read(&path).unwrap_or_default();
        let last_segment = position + 1 == segments.len();
        let (records, tail) = whole_records(&bytes);
        assert!(last_segment || tail == bytes.len() as u64, "{} has a torn tail but is not the last segment", path.display());
        // A flipped byte makes its record bad; unless it is the newest whole record, a valid one
        // follows (or the segment is not the last one), so recovery must refuse at the record.
        let mut ranges: Vec<Target> =
            records.iter().map(|&(start, end)| ((start, end), Expect::Refuse { offset: start })).collect();
        if last_segment {
            ranges.pop();
        }
        if tail < bytes.len() as u64 {
            ranges.push(((tail, bytes.len() as u64), Expect::Recover));
        }
        if !ranges.is_empty() {
            targets.push((path, ranges));
        }
    }
    targets
}

/// A byte range [start, end) of a file, and what flipping a byte in it must do on restart.
type Target = ((u64, u64), Expect);

/// The [start, end) of each whole, checksummed record of a log segment, and where the rest (a torn
/// tail) begins. Format: len u32 LE, crc32c u32 LE, payload[len].
fn whole_records(bytes: &[u8]) -> (Vec<(u64, u64)>, u64) {
    let mut records = Vec::new();
    let mut position = 0;
    while let Some(header) = bytes.get(position..position + 8) {
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        match bytes.get(position + 8..position + 8 + len) {
            Some(payload) if len > 0 && raft::crc32c::crc32c(payload) == crc => {
                records.push((position as u64, (position + 8 + len) as u64));
                position += 8 + len;
            }
            _ => break,
        }
    }
    (records, position as u64)
}

/// The end of every fault: links up, the network reliable, no crash armed, every node that did not
/// refuse to start running again.
fn heal(cluster: &DiskCluster) {
    heal_network(cluster);
    let n = cluster.borrow().params.servers;
    for node in &mut cluster.borrow_mut().store.nodes {
        node.disk.disarm();
        node.armed = false;
    }
    for i in 0..n {
        if is_down(cluster, i) {
            restart(cluster, i, false);
        }
    }
    apply_links(cluster);
}

/// No acknowledged write lost: every command applied anywhere, up to the one the healed cluster
/// committed on every live node, is applied identically by each of them.
fn check_acknowledged(cluster: &DiskCluster, live: &[usize], up_to: u64) {
    let c = cluster.borrow();
    for (&index, (command, _)) in c.committed.range(..=up_to) {
        for &i in live {
            assert!(
                c.machines[i].get(&index) == Some(command),
                "acknowledged write lost: node {i} does not hold the command applied at {index}"
            );
        }
    }
    c.trace.check(c.sim.now(), "no acknowledged write lost", true, format!("indexes up to {up_to} on nodes {live:?}"));
}
