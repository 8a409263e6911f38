//! The Raft tester of the lab (its `config.go`), on the simulator: servers, crashes and restarts,
//! the apply-stream checks, and the helpers the tests are written in (`one`, `check_one_leader`,
//! `wait`, ...), with the lab's windows and counts, in virtual time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::executor::{channel, Receiver, Sim};
use crate::lab::{ApplyMsg, LabRaft};
use crate::network::{EndId, Network};
use crate::persister::Persister;
use crate::rng::SimRng;
use crate::runner::Run;
use crate::trace::{NoteBy, Trace};

/// The lab's election timeout constant, used by the tests' sleeps.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// The tester snapshots at indices 9, 19, 29, ... in snapshot mode.
pub const SNAPSHOT_INTERVAL: u64 = 10;
/// 3D: the Raft state must stay below this many bytes.
pub const MAX_LOG_SIZE: usize = 2000;
/// A cap on executor events per test, standing in for the lab's CPU-time hints: a busy loop fails.
const EVENT_LIMIT: u64 = 30_000_000;

pub fn ms(milliseconds: u64) -> Duration {
    Duration::from_millis(milliseconds)
}

/// A test command: a number, encoded as the lab's tests use numbers.
pub fn cmd(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    raft::codec::put_varint(&mut out, value);
    out
}

fn show(command: &[u8]) -> String {
    let mut reader = raft::codec::Reader::new(command);
    match reader.varint() {
        Ok(value) if reader.finish().is_ok() => value.to_string(),
        _ => format!("<{} bytes>", command.len()),
    }
}

/// The tester's snapshot format: the last included index and every command up to it.
pub(crate) fn encode_snapshot(index: u64, log: &BTreeMap<u64, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    raft::codec::put_varint(&mut out, index);
    for position in 1..=index {
        let command = log.get(&position).map(Vec::as_slice).unwrap_or(&[]);
        raft::codec::put_varint(&mut out, command.len() as u64);
        out.extend_from_slice(command);
    }
    out
}

pub(crate) fn decode_snapshot(data: &[u8]) -> Result<(u64, BTreeMap<u64, Vec<u8>>), raft::codec::DecodeError> {
    let mut reader = raft::codec::Reader::new(data);
    let index = reader.varint()?;
    let mut log = BTreeMap::new();
    for position in 1..=index {
        log.insert(position, reader.bytes()?.to_vec());
    }
    reader.finish()?;
    Ok((index, log))
}

pub struct Tester {
    pub sim: Sim,
    pub rng: SimRng,
    pub trace: Trace,
    pub net: Network,
    pub n: usize,
    snapshot_mode: bool,
    rafts: RefCell<Vec<Option<LabRaft>>>,
    persisters: RefCell<Vec<Persister>>,
    connected: RefCell<Vec<bool>>,
    /// ends[i][j]: the current end from server i to server j.
    ends: RefCell<Vec<Vec<EndId>>>,
    /// Per server, the command it applied at each index (kept across restarts, as in the lab).
    logs: RefCell<Vec<BTreeMap<u64, Vec<u8>>>>,
    last_applied: RefCell<Vec<u64>>,
    max_index: Cell<u64>,
    finished: Cell<bool>,
    begin: Cell<(Duration, u64, u64, u64)>,
}

impl Tester {
    /// A cluster of `n` servers, all started and connected, as the lab's `make_config`.
    pub fn new(run: &Run, n: usize, reliable: bool, snapshot_mode: bool) -> Rc<Tester> {
        run.sim.set_event_limit(EVENT_LIMIT);
        let net = Network::new(run.sim.clone(), run.rng.clone(), run.trace.clone(), n);
        let tester = Rc::new(Tester {
            sim: run.sim.clone(),
            rng: run.rng.clone(),
            trace: run.trace.clone(),
            net,
            n,
            snapshot_mode,
            rafts: RefCell::new(vec![None; n]),
            persisters: RefCell::new((0..n).map(|_| Persister::new()).collect()),
            connected: RefCell::new(vec![false; n]),
            ends: RefCell::new(vec![Vec::new(); n]),
            logs: RefCell::new(vec![BTreeMap::new(); n]),
            last_applied: RefCell::new(vec![0; n]),
            max_index: Cell::new(0),
            finished: Cell::new(false),
            begin: Cell::new((Duration::ZERO, 0, 0, 0)),
        });
        tester.net.set_reliable(reliable);
        // The Raft suite always has long delays on (failed calls take up to 7 s).
        tester.net.set_long_delays(true);
        for i in 0..n {
            tester.start1(i);
        }
        for i in 0..n {
            tester.connect(i);
        }
        tester
    }

    pub fn raft(&self, i: usize) -> Option<LabRaft> {
        self.rafts.borrow()[i].clone()
    }

    pub fn is_connected(&self, i: usize) -> bool {
        self.connected.borrow()[i]
    }

    pub fn now(&self) -> Duration {
        self.sim.now()
    }

    pub async fn sleep(&self, duration: Duration) {
        self.sim.sleep(duration).await;
    }

    fn note(&self, line: impl std::fmt::Display) {
        self.trace.record(self.sim.now(), format_args!("tester: {line}"));
    }

    /// A note of the tester's own action, in the trace and, as an annotation, in the drawing.
    fn act(&self, server: Option<usize>, short: &str, details: &str) {
        match server {
            Some(i) => self.note(format_args!("{short} {i} {details}")),
            None => self.note(format_args!("{short} {details}")),
        }
        self.trace.note(self.now(), server, short, details, NoteBy::Tester);
    }

    /// The lab's `Annotate`: a test's own note, shown at this moment in `server`'s lane (or across
    /// the cluster) in the drawing of the run, and in the trace.
    pub fn annotate(&self, server: Option<usize>, short: &str, details: &str) {
        self.note(format_args!("annotation {server:?}: {short}: {details}"));
        self.trace.annotate(self.now(), server, short, details);
    }

    /// Records a check and its outcome; a failed one fails the test with `detail`.
    fn verdict(&self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        let detail = detail();
        self.trace.check(self.now(), name, ok, detail.clone());
        assert!(ok, "{detail}");
    }

    pub fn set_reliable(&self, reliable: bool) {
        self.net.set_reliable(reliable);
    }

    pub fn set_long_reordering(&self, on: bool) {
        self.net.set_long_reordering(on);
    }

    /// Crashes server i, keeping a copy of what it had persisted (the lab's `crash1`).
    pub fn crash1(&self, i: usize) {
        if self.rafts.borrow()[i].is_some() {
            self.act(Some(i), "crash", "");
        }
        self.disconnect(i);
        self.net.delete_server(i);
        let mut persisters = self.persisters.borrow_mut();
        // Whatever the dead instance still writes goes to the persister it holds; the tester keeps a copy.
        persisters[i] = persisters[i].copy();
        if let Some(raft) = self.rafts.borrow_mut()[i].take() {
            raft.stop("crash");
        }
        persisters[i] = persisters[i].copy();
    }

    /// Starts (or restarts) server i from its persisted state; it stays disconnected (the lab's `start1`).
    pub fn start1(self: &Rc<Self>, i: usize) {
        self.crash1(i);
        self.act(Some(i), "start", "from its persisted state, disconnected");
        let ends: Vec<EndId> = (0..self.n).map(|j| self.net.make_end(i, j)).collect();
        self.ends.borrow_mut()[i] = ends.clone();
        let persister = {
            let mut persisters = self.persisters.borrow_mut();
            persisters[i] = persisters[i].copy();
            persisters[i].clone()
        };
        self.last_applied.borrow_mut()[i] = 0;
        let snapshot = persister.snapshot();
        if self.snapshot_mode && !snapshot.is_empty() {
            self.ingest_snapshot(i, &snapshot, None);
        }
        let (sender, receiver) = channel();
        let seed = self.rng.u64();
        let raft = LabRaft::make(&self.sim, &self.net, &self.trace, ends, i, persister, sender, seed);
        self.sim.spawn(self.clone().read_applies(i, receiver));
        self.net.add_server(i, raft.handler());
        self.rafts.borrow_mut()[i] = Some(raft);
    }

    pub fn connect(&self, i: usize) {
        if !self.is_connected(i) && self.now() > Duration::ZERO {
            self.act(Some(i), "connect", "");
        }
        let mut connected = self.connected.borrow_mut();
        connected[i] = true;
        let ends = self.ends.borrow();
        for j in 0..self.n {
            if connected[j] {
                self.net.enable(ends[i][j], true);
                self.net.enable(ends[j][i], true);
            }
        }
    }

    pub fn disconnect(&self, i: usize) {
        if self.is_connected(i) {
            self.act(Some(i), "disconnect", "");
        }
        self.connected.borrow_mut()[i] = false;
        let ends = self.ends.borrow();
        for j in 0..self.n {
            if let Some(&end) = ends[i].get(j) {
                self.net.enable(end, false);
            }
            if let Some(&end) = ends[j].get(i) {
                self.net.enable(end, false);
            }
        }
    }

    /// The apply-stream reader of one incarnation: every message is checked, and the first
    /// inconsistency fails the test at once.
    async fn read_applies(self: Rc<Self>, i: usize, mut receiver: Receiver<ApplyMsg>) {
        while let Some(message) = receiver.recv().await {
            match message {
                ApplyMsg::Command { index, command } => {
                    if self.snapshot_mode {
                        let expected = self.last_applied.borrow()[i] + 1;
                        if index != expected {
                            self.verdict("apply in order", false, || format!("server {i} apply out of order: expected index {expected}, got {index}"));
                        }
                    }
                    self.check_log(i, index, command);
                    self.last_applied.borrow_mut()[i] = index;
                    if self.snapshot_mode && (index + 1) % SNAPSHOT_INTERVAL == 0 {
                        let data = encode_snapshot(index, &self.logs.borrow()[i]);
                        if let Some(raft) = self.raft(i) {
                            raft.snapshot(index, data);
                        }
                    }
                }
                ApplyMsg::Snapshot { index, data, .. } => {
                    if self.snapshot_mode {
                        self.ingest_snapshot(i, &data, Some(index));
                    }
                }
                // The lab's tests make no reads.
                ApplyMsg::Read { .. } => {}
            }
        }
    }

    fn ingest_snapshot(&self, i: usize, data: &[u8], index: Option<u64>) {
        let (decoded_index, log) = match decode_snapshot(data) {
            Ok(decoded) => decoded,
            Err(error) => return self.verdict("snapshot decodes", false, || format!("server {i}: undecodable snapshot: {error}")),
        };
        if let Some(index) = index.filter(|&index| index != decoded_index) {
            self.verdict("snapshot index", false, || format!("server {i}: snapshot message index {index} but snapshot holds {decoded_index}"));
        }
        self.logs.borrow_mut()[i] = log;
        self.last_applied.borrow_mut()[i] = decoded_index;
    }

    /// The lab's `checkLogs`: agreement with every other server at this index, and no gap before it.
    fn check_log(&self, i: usize, index: u64, command: Vec<u8>) {
        let mut logs = self.logs.borrow_mut();
        for (j, log) in logs.iter().enumerate() {
            if let Some(other) = log.get(&index).filter(|other| **other != command) {
                let detail = format!("commit index={index} server={i} {} != server={j} {}", show(&command), show(other));
                drop(logs);
                return self.verdict("agreement at an index", false, || detail);
            }
        }
        let previous_ok = index <= 1 || logs[i].contains_key(&(index - 1));
        logs[i].insert(index, command);
        if index > self.max_index.get() {
            self.max_index.set(index);
        }
        drop(logs);
        if !previous_ok {
            self.verdict("apply in order", false, || format!("server {i} apply out of order {index}"));
        }
    }

    /// The lab's `checkOneLeader`: up to 10 rounds of ~0.5 s; two leaders in one term fail at once.
    pub async fn check_one_leader(&self) -> usize {
        for _ in 0..10 {
            self.sleep(ms(450 + self.rng.below(100))).await;
            let mut leaders: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for i in 0..self.n {
                if !self.is_connected(i) {
                    continue;
                }
                if let Some((term, true)) = self.raft(i).map(|raft| raft.state()) {
                    leaders.entry(term).or_default().push(i);
                }
            }
            for (term, servers) in &leaders {
                if servers.len() > 1 {
                    self.verdict("one leader", false, || format!("term {term} has {} (>1) leaders: {servers:?}", servers.len()));
                }
            }
            if let Some((term, servers)) = leaders.iter().next_back() {
                self.verdict("one leader", true, || format!("server {} leads term {term}", servers[0]));
                return servers[0];
            }
        }
        self.verdict("one leader", false, || "expected one leader, got none".to_string());
        unreachable!("a failed verdict panics")
    }

    /// The lab's `checkTerms`: every connected server reports the same term.
    pub fn check_terms(&self) -> u64 {
        let mut term = None;
        for i in 0..self.n {
            if !self.is_connected(i) {
                continue;
            }
            if let Some((server_term, _)) = self.raft(i).map(|raft| raft.state()) {
                match term {
                    None => term = Some(server_term),
                    Some(term) if term != server_term => {
                        self.verdict("terms agree", false, || format!("servers disagree on term: {term} and server {i}'s {server_term}"));
                    }
                    Some(_) => {}
                }
            }
        }
        self.verdict("terms agree", true, || format!("every connected server is in term {}", term.unwrap_or(0)));
        term.unwrap_or(0)
    }

    /// The lab's `checkNoLeader`: no connected server claims leadership.
    pub fn check_no_leader(&self) {
        for i in 0..self.n {
            if self.is_connected(i) {
                if let Some((_, true)) = self.raft(i).map(|raft| raft.state()) {
                    self.verdict("no leader", false, || format!("expected no leader among connected servers, but {i} claims to be leader"));
                }
            }
        }
        self.verdict("no leader", true, || "no connected server leads".to_string());
    }

    /// How many servers have applied `index`, and the command they agree on.
    pub fn n_committed(&self, index: u64) -> (usize, Option<Vec<u8>>) {
        let mut count = 0;
        let mut agreed: Option<Vec<u8>> = None;
        let mut disagreement = None;
        for log in self.logs.borrow().iter() {
            if let Some(command) = log.get(&index) {
                if let Some(previous) = agreed.as_ref().filter(|previous| *previous != command) {
                    disagreement = Some(format!("committed values do not match: index {index}, {} vs {}", show(previous), show(command)));
                    break;
                }
                count += 1;
                agreed = Some(command.clone());
            }
        }
        if let Some(detail) = disagreement {
            self.verdict("agreement at an index", false, || detail);
        }
        (count, agreed)
    }

    /// The lab's `wait`: polls with backoff until `n` servers applied `index`. Returns None (the lab's
    /// −1) if some server moved past `start_term`, meaning the caller should retry.
    pub async fn wait(&self, index: u64, n: usize, start_term: Option<u64>) -> Option<Vec<u8>> {
        let mut pause = ms(10);
        for _ in 0..30 {
            if self.n_committed(index).0 >= n {
                break;
            }
            self.sleep(pause).await;
            if pause < Duration::from_secs(1) {
                pause *= 2;
            }
            if let Some(start_term) = start_term {
                for i in 0..self.n {
                    if let Some((term, _)) = self.raft(i).map(|raft| raft.state()) {
                        if term > start_term {
                            return None;
                        }
                    }
                }
            }
        }
        let (count, command) = self.n_committed(index);
        self.verdict("agreement at an index", count >= n, || format!("{count} of the wanted {n} servers decided index {index}"));
        command
    }

    /// The lab's `one`: submits `command` to whichever connected server accepts it as leader, and
    /// waits until `expected` servers applied it. Fails after 10 s (or at once without `retry`).
    pub async fn one(&self, command: Vec<u8>, expected: usize, retry: bool) -> u64 {
        let started = self.now();
        let mut next = 0;
        while self.now() - started < ms(10_000) && !self.finished.get() {
            let mut accepted = None;
            for _ in 0..self.n {
                next = (next + 1) % self.n;
                if !self.is_connected(next) {
                    continue;
                }
                if let Some(raft) = self.raft(next) {
                    let (index, _, is_leader) = raft.start(command.clone());
                    if is_leader {
                        self.act(Some(next), &format!("start({})", show(&command)), &format!("accepted at index {index}"));
                        accepted = Some(index);
                        break;
                    }
                }
            }
            if let Some(index) = accepted {
                let submitted = self.now();
                while self.now() - submitted < ms(2_000) {
                    let (count, applied) = self.n_committed(index);
                    if count > 0 && count >= expected && applied.as_deref() == Some(command.as_slice()) {
                        let detail = || format!("{} committed at index {index} on {count} servers", show(&command));
                        self.verdict(&format!("one({})", show(&command)), true, detail);
                        return index;
                    }
                    self.sleep(ms(20)).await;
                }
                if !retry {
                    self.verdict(&format!("one({})", show(&command)), false, || format!("one({}) failed to reach agreement", show(&command)));
                }
            } else {
                self.sleep(ms(50)).await;
            }
        }
        if !self.finished.get() {
            self.verdict(&format!("one({})", show(&command)), false, || format!("one({}) failed to reach agreement", show(&command)));
        }
        0
    }

    /// The largest Raft state any server persisted (crashed ones included).
    pub fn log_size(&self) -> usize {
        self.persisters.borrow().iter().map(Persister::raft_state_size).max().unwrap_or(0)
    }

    /// Sum of handler dispatches over all servers (the lab's `rpcCount` summed).
    pub fn rpc_count(&self) -> u64 {
        (0..self.n).map(|i| self.net.incoming(i)).sum()
    }

    pub fn bytes_total(&self) -> u64 {
        self.net.total_bytes()
    }

    pub fn begin(&self, description: &str) {
        self.act(None, "begin", description);
        self.begin.set((self.now(), self.net.total_rpcs(), self.net.total_bytes(), self.max_index.get()));
    }

    /// The lab's "Passed" line: virtual seconds, peers, RPCs, bytes, commands committed.
    pub fn end(&self) {
        let (start, rpcs, bytes, index) = self.begin.get();
        let line = format!(
            "  ... Passed -- {:.1}s {} {} {} {}",
            (self.now() - start).as_secs_f64(),
            self.n,
            self.net.total_rpcs() - rpcs,
            self.net.total_bytes() - bytes,
            self.max_index.get() - index
        );
        self.note(&line);
        println!("{line}");
    }

    /// Stops `one` from retrying, kills every server, tears the network down and checks the time limit.
    pub fn cleanup(&self) {
        self.finished.set(true);
        for i in 0..self.n {
            if let Some(raft) = self.raft(i) {
                raft.kill();
            }
        }
        self.net.close();
        let limit = crate::runner::LAB_TEST_TIME_LIMIT;
        self.verdict("time limit", self.now() <= limit, || format!("test took {:?} of virtual time; the limit is 120 seconds", self.now()));
    }
}

/// Runs one Raft lab test for every selected seed: a fresh cluster of `servers`, the body, cleanup.
pub fn run_raft_test<F, Fut>(test_file: &str, test_name: &str, servers: usize, reliable: bool, snapshot_mode: bool, body: F)
where
    F: Fn(Rc<Tester>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let make = |run: &Run| Tester::new(run, servers, reliable, snapshot_mode);
    crate::runner::run_harness(test_file, test_name, make, Tester::cleanup, body);
}
