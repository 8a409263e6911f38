//! The 2025 lab's versioned key/value tests (kvsrv1) and its lock, on the production node: the
//! lab's Get and versioned Put are raftkv's VGET and VSET (`Clerk::vget`, `Clerk::vput`), the
//! history is checked with `linearizability::versioned`, and the lock keeps all its state in the
//! store. The helpers are those of `LAB-TESTS-2025.md` §1.7 and §3.2.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use linearizability::versioned::{VersionedInput, VersionedModel, VersionedOutput};
use linearizability::{CheckResult, Operation};

use crate::kv_tester::{partitioner, KvTester, TestClerk, Workload, ELECTION_TIMEOUT};
use crate::kvraft::PutOutcome;

/// Search steps the checker may take; generous, so that "unknown" never happens in practice (and
/// fails the test if it does, rather than passing silently as the original does).
const CHECK_BUDGET: u64 = 200_000_000;

/// A KV tester that records versioned operations.
pub struct VersionedTester {
    pub t: Rc<KvTester>,
    history: RefCell<Vec<Operation<VersionedInput, VersionedOutput>>>,
}

/// What a client's run of "one client put" came to: (ok, maybe) Puts.
pub type Counts = (u64, u64);

impl VersionedTester {
    pub fn new(t: Rc<KvTester>) -> Rc<VersionedTester> {
        Rc::new(VersionedTester { t, history: RefCell::default() })
    }

    fn record(&self, client: u64, input: VersionedInput, call: u64, output: VersionedOutput) {
        let return_time = self.t.timestamp();
        self.t.count_operation();
        self.history.borrow_mut().push(Operation { client, input, call, output: Some(output), return_time: Some(return_time) });
    }

    /// A recorded Get: the value and version, None for a missing key (recorded as ("", 0)).
    pub async fn get(&self, clerk: &TestClerk, key: &str, client: u64) -> Option<(String, u64)> {
        let call = self.t.timestamp();
        let read = clerk.clerk.vget(key).await;
        let (value, version) = read.clone().unwrap_or_default();
        self.record(client, VersionedInput::Get { key: key.into() }, call, VersionedOutput::Value { value, version });
        read
    }

    /// A recorded Put. ErrNoKey is never a legal answer to one (no recorded Put names a version
    /// above 0 for a missing key), so it fails the test.
    pub async fn put(&self, clerk: &TestClerk, key: &str, value: &str, version: u64, client: u64) -> PutOutcome {
        let call = self.t.timestamp();
        let outcome = clerk.clerk.vput(key, value, version).await;
        let output = match outcome {
            PutOutcome::Ok => VersionedOutput::Ok,
            PutOutcome::ErrVersion => VersionedOutput::ErrVersion,
            PutOutcome::Maybe => VersionedOutput::ErrMaybe,
            PutOutcome::ErrNoKey => {
                self.t.verdict("recorded put", false, || format!("Put({key}, version {version}) answered ErrNoKey"));
                unreachable!("the verdict failed the test")
            }
        };
        self.record(client, VersionedInput::Put { key: key.into(), value: value.into(), version }, call, output);
        outcome
    }

    /// The lab's "one put": Put at `version` until it is Ok or Maybe, reading the key after each
    /// try; returns the version read last and whether it was Ok.
    pub async fn one_put(&self, clerk: &TestClerk, me: u64, key: &str, mut version: u64) -> (u64, PutOutcome) {
        loop {
            let value = format!("{{\"Id\":{me},\"Version\":{version}}}");
            let outcome = self.put(clerk, key, &value, version, me).await;
            let Some((stored, read)) = self.get(clerk, key, me).await else {
                self.t.verdict("get after put", false, || format!("Get({key}) after a Put answered ErrNoKey"));
                unreachable!("the verdict failed the test")
            };
            // Stricter than the original (which needs both to differ): either field wrong fails.
            if outcome == PutOutcome::Ok && read == version + 1 {
                self.t.verdict("wrong value", stored == value, || format!("client {me}: Put({key}) at version {version} was Ok, yet version {read} holds {stored}, not {value}"));
            }
            version = read;
            if outcome != PutOutcome::ErrVersion {
                return (version, outcome);
            }
        }
    }

    /// The lab's "spawn clients": `n` clients, each with a fresh clerk, run "one client put" on
    /// `key` for `duration`, then stop between operations; each one's (ok, maybe).
    pub async fn spawn_put_clients(self: &Rc<Self>, n: u64, duration: Duration, key: &'static str) -> Vec<Counts> {
        let stop = Rc::new(Cell::new(false));
        let handles = self.start_put_clients(n, &[key.to_string()], &stop);
        self.t.sleep(duration).await;
        stop.set(true);
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await);
        }
        results
    }

    /// `n` clients running "one client put" until `stop`, each on a key of `keys` picked at random
    /// per Put (a version kept per key), as the lab's random-keys mode does.
    fn start_put_clients(self: &Rc<Self>, n: u64, keys: &[String], stop: &Rc<Cell<bool>>) -> Vec<crate::executor::JoinHandle<Counts>> {
        (0..n)
            .map(|me| {
                let (tester, stop, keys) = (self.clone(), stop.clone(), keys.to_vec());
                self.t.sim.spawn(async move {
                    let clerk = tester.t.make_client(&tester.t.all());
                    let mut versions = vec![0; keys.len()];
                    let mut counts = (0, 0);
                    while !stop.get() {
                        let k = tester.t.rng.below(keys.len() as u64) as usize;
                        let (read, outcome) = tester.one_put(&clerk, me, &keys[k], versions[k]).await;
                        versions[k] = read;
                        match outcome {
                            PutOutcome::Ok => counts.0 += 1,
                            _ => counts.1 += 1,
                        }
                    }
                    counts
                })
            })
            .collect()
    }

    /// The lab's "check concurrent puts": the key's version is the number of Ok Puts (reliable),
    /// or at most Ok + Maybe.
    pub async fn check_concurrent_puts(&self, clerk: &TestClerk, key: &str, results: &[Counts], reliable: bool) {
        let version = self.get(clerk, key, 0).await.map_or(0, |(_, version)| version);
        let (ok, maybe) = results.iter().fold((0, 0), |(ok, maybe), (o, m)| (ok + o, maybe + m));
        if reliable {
            self.t.verdict("wrong number of puts", version == ok, || format!("version {version}, but {ok} Puts were Ok"));
        } else {
            self.t.verdict("wrong number of puts", version <= ok + maybe, || format!("version {version} > {ok} Ok + {maybe} Maybe Puts"));
        }
    }

    /// Checks the whole history with the versioned model; "unknown" fails.
    pub fn check_linearizable(&self) {
        let history = self.history.borrow();
        let result = linearizability::check(&VersionedModel, &history, CHECK_BUDGET);
        let operations = history.len();
        let detail = match &result {
            CheckResult::Ok => String::new(),
            CheckResult::Unknown => format!("the check ran out of budget ({operations} operations)"),
            CheckResult::Illegal(_) => format!("history is not linearizable:\n{}", linearizability::render_html(&VersionedModel, &history, &result)),
        };
        self.t.verdict("linearizable", result == CheckResult::Ok, || if detail.is_empty() { format!("{operations} operations") } else { detail });
    }
}

/// The 2025 Lab 4 generic test (`LAB-TESTS-2025.md` §6) with versioned Puts: three iterations of
/// `clients` running "one client put" for 1 s (on "k", or on "k0".."k99" with random keys) — and,
/// with partitions, 1 s more while the partitioner re-partitions every 1 s + U[0, 200) ms from 1 s
/// after the clients started (the lab starts it then; the clients run on so that its partitions
/// meet them) —; then "check concurrent puts" (exact on a reliable network without crashes or
/// partitions), the history checked, a heal or a whole-cluster crash and restart, and the log
/// size checked; at the end, one more Get (the restarted cluster serves again).
pub async fn generic_test(v: Rc<VersionedTester>, workload: Workload, reliable: bool) {
    let t = v.t.clone();
    let Workload { clients, crash, partitions, random_keys } = workload;
    let keys: Vec<String> = if random_keys { (0..100).map(|i| format!("k{i}")).collect() } else { vec!["k".to_string()] };
    let checker = t.make_client(&t.all());
    let mut totals: Vec<Counts> = Vec::new();
    for _ in 0..3 {
        let stop = Rc::new(Cell::new(false));
        let partitioner_done = Rc::new(Cell::new(false));
        let handles = v.start_put_clients(clients, &keys, &stop);
        t.sleep(Duration::from_secs(1)).await;
        let partitioner_task = partitions.then(|| t.sim.spawn(partitioner(t.clone(), partitioner_done.clone())));
        if partitions {
            t.sleep(Duration::from_secs(1)).await;
        }
        stop.set(true);
        partitioner_done.set(true);
        if let Some(task) = partitioner_task {
            task.await;
            t.connect_all();
            t.sleep(ELECTION_TIMEOUT).await;
        }
        for handle in handles {
            totals.push(handle.await);
        }
        if !random_keys {
            v.check_concurrent_puts(&checker, "k", &totals, reliable && !crash && !partitions).await;
        }
        v.check_linearizable();
        if crash {
            t.restart_all().await;
        }
        t.check_log_size();
    }
    // Not in the lab: after the last restart the cluster must serve again, and what it serves
    // must fit the history.
    v.get(&checker, &keys[0], 0).await;
    v.check_linearizable();
}

/// The lab's lock, kept in the store under its name: "" (or no key) when free, the holder's id
/// when held; taken and given back with versioned Puts.
pub struct Lock {
    name: String,
    id: String,
}

impl Lock {
    pub fn new(t: &KvTester, name: &str) -> Lock {
        Lock { name: name.into(), id: format!("{:016x}", t.rng.u64()) }
    }

    /// Blocks until this client holds the lock. After a Maybe, the key says whether it took.
    pub async fn acquire(&self, t: &KvTester, clerk: &TestClerk) {
        loop {
            let (holder, version) = clerk.clerk.vget(&self.name).await.unwrap_or_default();
            if holder == self.id {
                return;
            }
            if !holder.is_empty() {
                t.sleep(Duration::from_millis(10)).await;
                continue;
            }
            match clerk.clerk.vput(&self.name, &self.id, version).await {
                PutOutcome::Ok => return,
                PutOutcome::Maybe | PutOutcome::ErrVersion => {} // read again: the key says whether it took
                PutOutcome::ErrNoKey => panic!("lock {}: Put at version {version} answered ErrNoKey", self.name),
            }
        }
    }

    /// Gives the lock up; it must be held by this client.
    pub async fn release(&self, clerk: &TestClerk) {
        loop {
            let (holder, version) = clerk.clerk.vget(&self.name).await.unwrap_or_default();
            if holder != self.id {
                return; // a Maybe that took effect
            }
            match clerk.clerk.vput(&self.name, "", version).await {
                PutOutcome::Ok => return,
                PutOutcome::Maybe | PutOutcome::ErrVersion => {}
                PutOutcome::ErrNoKey => panic!("lock {}: Put at version {version} answered ErrNoKey", self.name),
            }
        }
    }
}

/// The lab's lock client loop (§3.2), `nclients` of them for `duration`: each takes lock "l" and,
/// while holding it, checks that the data key "l0" is empty, writes its number there and empties
/// it again. `nested`: the later revision's loop, which first takes and releases two locks once.
pub async fn run_lock_clients(t: Rc<KvTester>, nclients: u64, duration: Duration, nested: bool) {
    let stop = Rc::new(Cell::new(false));
    let handles: Vec<_> = (0..nclients)
        .map(|me| {
            let (t, stop) = (t.clone(), stop.clone());
            t.sim.clone().spawn(async move {
                let clerk = t.make_client(&t.all());
                let lock = Lock::new(&t, "l");
                if nested {
                    let other = Lock::new(&t, "l-other");
                    lock.acquire(&t, &clerk).await;
                    other.acquire(&t, &clerk).await;
                    other.release(&clerk).await;
                    lock.release(&clerk).await;
                }
                let _ = clerk.clerk.vput("l0", "", 0).await;
                while !stop.get() {
                    lock.acquire(&t, &clerk).await;
                    let Some((value, version)) = clerk.clerk.vget("l0").await else {
                        t.verdict("get failed", false, || "Get(l0) answered ErrNoKey".into());
                        unreachable!("the verdict failed the test")
                    };
                    t.verdict("two clients acquired lock", value.is_empty(), || format!("client {me} took the lock and found l0 = {value:?}"));
                    let outcome = clerk.clerk.vput("l0", &me.to_string(), version).await;
                    t.verdict("put failed", matches!(outcome, PutOutcome::Ok | PutOutcome::Maybe), || format!("client {me}: Put(l0) at {version}: {outcome:?}"));
                    t.sleep(Duration::from_millis(10)).await;
                    let outcome = clerk.clerk.vput("l0", "", version + 1).await;
                    t.verdict("put failed", matches!(outcome, PutOutcome::Ok | PutOutcome::Maybe), || format!("client {me}: Put(l0) at {}: {outcome:?}", version + 1));
                    lock.release(&clerk).await;
                }
            })
        })
        .collect();
    t.sleep(duration).await;
    stop.set(true);
    for handle in handles {
        handle.await;
    }
}
