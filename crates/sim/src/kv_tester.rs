//! The KV tester of the lab (its kvraft `config.go` and `test_test.go` helpers), on the simulator:
//! servers with partitions, shutdowns and restarts; clerks with chosen connections; a recorded
//! history of every clerk operation, checked for linearizability; and `generic_test`, the workload
//! most 4A/4B tests are made of.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use linearizability::kv::{KvInput, KvModel, KvOp, KvOutput};
use linearizability::{CheckResult, Operation};

use crate::executor::Sim;
use crate::kvraft::{Clerk, KvServer, ReadPath};
use crate::network::{EndId, Network};
use crate::persister::Persister;
use crate::raft_tester::ms;
use crate::rng::SimRng;
use crate::runner::Run;
use crate::trace::{NoteBy, Trace};

pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
const EVENT_LIMIT: u64 = 60_000_000;
/// Each message or call takes 1–3 ms: roughly a loaded machine's RPC, and what bounds how many
/// operations a client does in a test (the lab's runs see hundreds to thousands per client).
const HOP_LATENCY_MIN: Duration = Duration::from_millis(1);
const HOP_LATENCY_MAX: Duration = Duration::from_millis(3);
/// Search steps the linearizability checker may take; generous, since it runs off the clock.
const CHECK_BUDGET: u64 = 50_000_000;

/// A clerk made by the tester, with its ends listed by server so that its links can be changed.
pub struct TestClerk {
    pub clerk: Clerk,
    ends_by_server: Vec<EndId>,
}

pub struct KvTester {
    pub sim: Sim,
    pub rng: SimRng,
    pub trace: Trace,
    pub net: Network,
    pub n: usize,
    max_raft_state: Option<usize>,
    /// How the servers answer Gets (the lab's way, through the log, unless a test asks otherwise).
    read_path: ReadPath,
    servers: RefCell<Vec<Option<KvServer>>>,
    persisters: RefCell<Vec<Persister>>,
    /// ends[i][j]: server i's current end to server j.
    ends: RefCell<Vec<Vec<EndId>>>,
    /// Shared with the trace, which draws it when the run fails.
    history: Rc<RefCell<Vec<Operation<KvInput, KvOutput>>>>,
    /// Strictly increasing timestamps: virtual nanoseconds, nudged so that no two events tie. Ties in
    /// virtual time are real orderings (one thread), so keeping them is stricter than overlapping them.
    last_timestamp: Cell<u64>,
    operations: Cell<u64>,
    clerks_made: Cell<u64>,
    begin: Cell<(Duration, u64, u64)>,
}

impl KvTester {
    /// `n` servers started and connected, then the network's reliability set (the lab's order).
    pub fn new(run: &Run, n: usize, unreliable: bool, max_raft_state: Option<usize>, read_path: ReadPath) -> Rc<KvTester> {
        run.sim.set_event_limit(EVENT_LIMIT);
        let net = Network::new(run.sim.clone(), run.rng.clone(), run.trace.clone(), n);
        net.set_latency(HOP_LATENCY_MIN, HOP_LATENCY_MAX);
        let tester = Rc::new(KvTester {
            sim: run.sim.clone(),
            rng: run.rng.clone(),
            trace: run.trace.clone(),
            net,
            n,
            max_raft_state,
            read_path,
            servers: RefCell::new(vec![None; n]),
            persisters: RefCell::new((0..n).map(|_| Persister::new()).collect()),
            ends: RefCell::new(vec![Vec::new(); n]),
            history: Rc::default(),
            last_timestamp: Cell::new(0),
            operations: Cell::new(0),
            clerks_made: Cell::new(0),
            begin: Cell::new((Duration::ZERO, 0, 0)),
        });
        for i in 0..n {
            tester.start_server(i);
        }
        tester.connect_all();
        tester.net.set_reliable(!unreliable);
        // A drawing of a failed run shows the history next to the Raft events; drawing it costs a
        // check, so it is made only then.
        let history = tester.history.clone();
        run.trace.set_history(Rc::new(move || Some(history_html(&history.borrow()))));
        tester
    }

    pub fn all(&self) -> Vec<usize> {
        (0..self.n).collect()
    }

    fn note(&self, line: impl std::fmt::Display) {
        self.trace.record(self.sim.now(), format_args!("tester: {line}"));
    }

    /// A note of the tester's own action, in the trace and, as an annotation, in the drawing.
    fn act(&self, server: Option<usize>, short: &str, details: &str) {
        self.note(format_args!("{short} {details}"));
        self.trace.note(self.sim.now(), server, short, details, NoteBy::Tester);
    }

    /// The lab's `Annotate`: a test's own note, shown at this moment in `server`'s lane (or across
    /// the cluster) in the drawing of the run, and in the trace.
    pub fn annotate(&self, server: Option<usize>, short: &str, details: &str) {
        self.note(format_args!("annotation {server:?}: {short}: {details}"));
        self.trace.annotate(self.sim.now(), server, short, details);
    }

    /// Records a check and its outcome; a failed one fails the test with `detail`.
    pub fn verdict(&self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        let detail = detail();
        self.trace.check(self.sim.now(), name, ok, detail.clone());
        assert!(ok, "{detail}");
    }

    pub async fn sleep(&self, duration: Duration) {
        self.sim.sleep(duration).await;
    }

    /// Splits the servers into two groups that cannot talk to each other (either may be empty).
    /// Clerks' links are not affected.
    pub fn partition(&self, group1: &[usize], group2: &[usize]) {
        self.act(None, "partition", &format!("{group1:?} | {group2:?}"));
        let ends = self.ends.borrow();
        for i in 0..self.n {
            for j in 0..self.n {
                let together = (group1.contains(&i) && group1.contains(&j)) || (group2.contains(&i) && group2.contains(&j));
                if let Some(&end) = ends[i].get(j) {
                    self.net.enable(end, together);
                }
            }
        }
    }

    pub fn connect_all(&self) {
        self.partition(&self.all(), &[]);
    }

    /// The lab's `ShutdownServer`: cut it off from the other servers, delete it (clerk calls to it
    /// fail), keep a copy of its persisted state, kill it.
    pub fn shutdown_server(&self, i: usize) {
        self.act(Some(i), "shutdown", &format!("server {i}"));
        {
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
        self.net.delete_server(i);
        let mut persisters = self.persisters.borrow_mut();
        persisters[i] = persisters[i].copy();
        if let Some(server) = self.servers.borrow_mut()[i].take() {
            server.kill("shutdown");
        }
    }

    /// The lab's `StartServer`: fresh ends, a copy of the persisted state; links to the other
    /// servers come back with the next `connect_all`.
    pub fn start_server(&self, i: usize) {
        self.act(Some(i), "start", &format!("server {i}, from its persisted state"));
        let ends: Vec<EndId> = (0..self.n).map(|j| self.net.make_end(i, j)).collect();
        self.ends.borrow_mut()[i] = ends.clone();
        let persister = {
            let mut persisters = self.persisters.borrow_mut();
            persisters[i] = persisters[i].copy();
            persisters[i].clone()
        };
        let server =
            KvServer::start(&self.sim, &self.net, &self.trace, ends, i, persister, self.max_raft_state, &self.rng, self.read_path);
        self.net.add_server(i, server.handler());
        self.net.add_service(i, server.service());
        self.servers.borrow_mut()[i] = Some(server);
    }

    /// The first server, by index, whose Raft believes it leads (possibly a stale leader).
    pub fn leader(&self) -> Option<usize> {
        let servers = self.servers.borrow();
        (0..self.n).find(|&i| servers[i].as_ref().is_some_and(|server| server.state().1))
    }

    /// Groups for a test's partition: the current leader in a minority of n/2 servers.
    pub fn make_partition(&self) -> (Vec<usize>, Vec<usize>) {
        let leader = self.leader().unwrap_or(0);
        let others: Vec<usize> = (0..self.n).filter(|&i| i != leader).collect();
        let majority = self.n / 2 + 1;
        let mut minority = others[majority..].to_vec();
        minority.push(leader);
        (others[..majority].to_vec(), minority)
    }

    /// A clerk with fresh ends to every server, in shuffled order, enabled only towards `to`.
    pub fn make_client(&self, to: &[usize]) -> TestClerk {
        let index = self.clerks_made.get();
        self.clerks_made.set(index + 1);
        let from = self.n + index as usize;
        let ends_by_server: Vec<EndId> = (0..self.n).map(|j| self.net.make_end(from, j)).collect();
        let mut shuffled = ends_by_server.clone();
        for k in (1..shuffled.len()).rev() {
            shuffled.swap(k, self.rng.below(k as u64 + 1) as usize);
        }
        let client_id = self.rng.u64().max(1);
        let clerk = TestClerk { clerk: Clerk::new(&self.sim, &self.net, shuffled, client_id), ends_by_server };
        self.connect_client(&clerk, to);
        clerk
    }

    pub fn connect_client(&self, clerk: &TestClerk, to: &[usize]) {
        for (server, &end) in clerk.ends_by_server.iter().enumerate() {
            self.net.enable(end, to.contains(&server));
        }
    }

    pub(crate) fn timestamp(&self) -> u64 {
        let now = self.sim.now().as_nanos() as u64;
        let stamp = now.max(self.last_timestamp.get() + 1);
        self.last_timestamp.set(stamp);
        stamp
    }

    fn record(&self, client: u64, op: KvOp, key: &str, value: &str, call: u64, output: String) {
        let input = KvInput { op, key: key.to_string(), value: value.to_string() };
        let return_time = self.timestamp();
        self.history.borrow_mut().push(Operation {
            client,
            input,
            call,
            output: Some(KvOutput { value: output }),
            return_time: Some(return_time),
        });
    }

    /// Get through `clerk`, recorded in the history under `client`.
    pub async fn get(&self, clerk: &TestClerk, key: &str, client: u64) -> String {
        let call = self.timestamp();
        let value = clerk.clerk.get(key).await;
        self.operations.set(self.operations.get() + 1);
        self.record(client, KvOp::Get, key, "", call, value.clone());
        value
    }

    pub async fn put(&self, clerk: &TestClerk, key: &str, value: &str, client: u64) {
        let call = self.timestamp();
        clerk.clerk.put(key, value).await;
        self.operations.set(self.operations.get() + 1);
        self.record(client, KvOp::Put, key, value, call, String::new());
    }

    pub async fn append(&self, clerk: &TestClerk, key: &str, value: &str, client: u64) {
        let call = self.timestamp();
        clerk.clerk.append(key, value).await;
        self.operations.set(self.operations.get() + 1);
        self.record(client, KvOp::Append, key, value, call, String::new());
    }

    /// A Get whose result must be `expected` (the lab's `check`).
    pub async fn check(&self, clerk: &TestClerk, key: &str, expected: &str) {
        let value = self.get(clerk, key, 0).await;
        self.verdict(&format!("Get({key})"), value == expected, || format!("Get({key}): expected:\n{expected}\nreceived:\n{value}"));
    }

    /// The largest Raft state any server persisted.
    pub fn log_size(&self) -> usize {
        self.persisters.borrow().iter().map(Persister::raft_state_size).max().unwrap_or(0)
    }

    /// The largest snapshot any server persisted.
    pub fn snapshot_size(&self) -> usize {
        self.persisters.borrow().iter().map(Persister::snapshot_size).max().unwrap_or(0)
    }

    pub fn begin(&self, description: &str) {
        println!("{description} ...");
        self.act(None, "begin", description);
        self.begin.set((self.sim.now(), self.net.total_rpcs(), self.operations.get()));
    }

    pub fn end(&self) {
        let (start, rpcs, operations) = self.begin.get();
        let line = format!(
            "  ... Passed -- {:.1}s {} {} {}",
            (self.sim.now() - start).as_secs_f64(),
            self.n,
            self.net.total_rpcs() - rpcs,
            self.operations.get() - operations
        );
        self.note(&line);
        println!("{line}");
    }

    /// Checks the whole recorded history; an illegal one fails the test and leaves a picture of it
    /// (also embedded in the drawing of the run).
    pub fn check_linearizable(&self, test_name: &str) {
        let history = self.history.borrow();
        let result = linearizability::check(&KvModel, &history, CHECK_BUDGET);
        let operations = history.len();
        match result {
            CheckResult::Ok => self.verdict("linearizable", true, || format!("{operations} operations")),
            CheckResult::Unknown => self.verdict("linearizable", false, || {
                format!("linearizability check ran out of budget ({operations} operations): result unknown")
            }),
            CheckResult::Illegal(_) => {
                let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../target/sim-traces")
                    .join(format!("{test_name}-history.html"));
                let _ = std::fs::create_dir_all(path.parent().expect("a file has a directory"));
                let written = linearizability::write_html(&KvModel, &history, &result, &path);
                drop(history);
                self.verdict("linearizable", false, || match written {
                    Ok(()) => format!("history is not linearizable; visualisation: {}", path.display()),
                    Err(error) => format!("history is not linearizable (could not write the visualisation: {error})"),
                });
            }
        }
    }


    /// Counts an operation for the "Passed" line.
    pub(crate) fn count_operation(&self) {
        self.operations.set(self.operations.get() + 1);
    }

    /// Each live server's retained state (`KvServer::retained`).
    pub fn retained(&self) -> Vec<(usize, usize)> {
        self.servers.borrow().iter().flatten().map(KvServer::retained).collect()
    }

    pub fn history_len(&self) -> usize {
        self.history.borrow().len()
    }

    pub fn cleanup(&self) {
        // The first leader named the cluster; every node that applied a name has that one.
        let mut ids: Vec<u64> = self.servers.borrow().iter().flatten().map(KvServer::cluster_id).filter(|&id| id != 0).collect();
        ids.dedup();
        self.verdict("one cluster id", ids.len() == 1, || format!("cluster ids applied by the servers: {ids:?}"));
        for server in self.servers.borrow().iter().flatten() {
            server.kill("end of the test");
        }
        self.net.close();
        let limit = crate::runner::LAB_TEST_TIME_LIMIT;
        self.verdict("time limit", self.sim.now() <= limit, || format!("test took {:?} of virtual time; the limit is 120 seconds", self.sim.now()));
    }
}

/// The linearizability report of a history, as a page.
fn history_html(history: &[Operation<KvInput, KvOutput>]) -> String {
    let result = linearizability::check(&KvModel, history, CHECK_BUDGET);
    linearizability::render_html(&KvModel, history, &result)
}

/// Runs one KV lab test for every selected seed, with reads through the log (the lab's way).
pub fn run_kv_test<F, Fut>(test_file: &str, test_name: &str, servers: usize, unreliable: bool, max_raft_state: Option<usize>, body: F)
where
    F: Fn(Rc<KvTester>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let setup = KvSetup { servers, unreliable, max_raft_state, read_path: ReadPath::ReadIndex };
    run_kv_test_with(test_file, test_name, setup, body);
}

/// The cluster a KV test runs on.
#[derive(Clone, Copy, Debug)]
pub struct KvSetup {
    pub servers: usize,
    pub unreliable: bool,
    pub max_raft_state: Option<usize>,
    pub read_path: ReadPath,
}

/// `run_kv_test` on any setup, e.g. with Gets served by ReadIndex or under leases.
pub fn run_kv_test_with<F, Fut>(test_file: &str, test_name: &str, setup: KvSetup, body: F)
where
    F: Fn(Rc<KvTester>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let KvSetup { servers, unreliable, max_raft_state, read_path } = setup;
    let make = |run: &Run| KvTester::new(run, servers, unreliable, max_raft_state, read_path);
    crate::runner::run_harness(test_file, test_name, make, KvTester::cleanup, body);
}

/// The lab's `checkClntAppends`: client `client`'s `count` elements appear in `value` exactly once,
/// in order.
pub fn check_client_appends(client: u64, value: &str, count: u64) {
    let mut last_offset: Option<usize> = None;
    for j in 0..count {
        let wanted = format!("x {client} {j} y");
        let Some(offset) = value.find(&wanted) else { panic!("{client} missing element {wanted} in Append result {value}") };
        let last = value.rfind(&wanted).expect("found once, so found from the end");
        assert_eq!(last, offset, "duplicate element {wanted} in Append result");
        if let Some(previous) = last_offset {
            assert!(offset > previous, "wrong order for element {wanted} in Append result");
        }
        last_offset = Some(offset);
    }
}

/// The parameters of `generic_test` that the cluster does not already fix.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub clients: u64,
    pub crash: bool,
    pub partitions: bool,
    pub random_keys: bool,
}

/// The lab's GenericTest: 3 iterations of concurrent clients (with partitions and crashes as asked),
/// each followed by the exactly-once, in-order check per client and the log-size checks; then the
/// whole history's linearizability.
pub async fn generic_test(t: Rc<KvTester>, test_name: &str, workload: Workload) {
    let Workload { clients, crash, partitions, random_keys } = workload;
    let checker = t.make_client(&t.all());
    for _ in 0..3 {
        let clients_done = Rc::new(Cell::new(false));
        let partitioner_done = Rc::new(Cell::new(false));
        let handles: Vec<_> = (0..clients)
            .map(|client| t.sim.spawn(client_loop(t.clone(), client, clients, random_keys, clients_done.clone())))
            .collect();
        let partitioner = if partitions {
            t.sleep(ms(1000)).await;
            Some(t.sim.spawn(partitioner(t.clone(), partitioner_done.clone())))
        } else {
            None
        };
        t.sleep(ms(5000)).await;
        clients_done.set(true);
        partitioner_done.set(true);
        if let Some(partitioner) = partitioner {
            partitioner.await;
            t.connect_all();
            // Wait for a while so that we have a new term.
            t.sleep(ELECTION_TIMEOUT).await;
        }
        if crash {
            t.restart_all().await;
        }
        for (client, handle) in handles.into_iter().enumerate() {
            let count = handle.await;
            let key = client.to_string();
            let value = t.get(&checker, &key, 0).await;
            if !random_keys {
                check_client_appends(client as u64, &value, count);
            }
        }
        t.check_log_size();
    }
    t.check_linearizable(test_name);
}

impl KvTester {
    /// GenericTest's whole-cluster crash: every server shut down, a pause (shutdown is not a real
    /// crash: give the old incarnations time to go), every server started again and connected.
    pub(crate) async fn restart_all(&self) {
        for i in 0..self.n {
            self.shutdown_server(i);
        }
        self.sleep(ELECTION_TIMEOUT).await;
        for i in 0..self.n {
            self.start_server(i);
        }
        self.connect_all();
    }

    /// GenericTest's end of an iteration: the logs trimmed to 8 × maxraftstate, or no snapshot
    /// at all without one.
    pub(crate) fn check_log_size(&self) {
        match self.max_raft_state {
            Some(limit) => {
                let size = self.log_size();
                self.verdict("log size", size <= 8 * limit, || format!("logs were not trimmed ({size} > 8*{limit})"));
            }
            None => {
                let size = self.snapshot_size();
                self.verdict("no snapshot", size == 0, || format!("snapshot too large ({size}), should not be used when maxraftstate = -1"));
            }
        }
    }
}

async fn client_loop(t: Rc<KvTester>, client: u64, clients: u64, random_keys: bool, done: Rc<Cell<bool>>) -> u64 {
    let clerk = t.make_client(&t.all());
    let mut j = 0u64;
    let mut last = String::new();
    if !random_keys {
        t.put(&clerk, &client.to_string(), &last, client).await;
    }
    while !done.get() {
        let key = if random_keys { t.rng.below(clients).to_string() } else { client.to_string() };
        let value = format!("x {client} {j} y");
        if t.rng.below(1000) < 500 {
            t.append(&clerk, &key, &value, client).await;
            if !random_keys {
                last.push_str(&value);
            }
            j += 1;
        } else if random_keys && t.rng.below(1000) < 100 {
            t.put(&clerk, &key, &value, client).await;
            j += 1;
        } else {
            let got = t.get(&clerk, &key, client).await;
            if !random_keys {
                assert!(got == last, "get wrong value, key {key}, wanted:\n{last}\n, got\n{got}");
            }
        }
    }
    j
}

pub(crate) async fn partitioner(t: Rc<KvTester>, done: Rc<Cell<bool>>) {
    while !done.get() {
        let mut groups = (Vec::new(), Vec::new());
        for i in 0..t.n {
            if t.rng.below(2) == 0 {
                groups.0.push(i);
            } else {
                groups.1.push(i);
            }
        }
        t.partition(&groups.0, &groups.1);
        t.sleep(ELECTION_TIMEOUT + ms(t.rng.below(200))).await;
    }
}
