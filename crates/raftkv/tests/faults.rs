//! Randomized process-level fault test: real `raftkv server` processes, real TCP, real disks.
//!
//! Four client threads (the project's own client, 3 s deadlines) append unique tokens
//! (`"<client>:<n>;"`), set, delete and read a few keys, and one reader pinned to each node reads
//! through that node only, while a nemesis, every 1–3 s, kills (-9) and restarts nodes, pauses
//! (SIGSTOP) and resumes them, stalls one briefly, cuts and heals single directed links, isolates a
//! node, partitions the cluster in two, or crashes the whole cluster and restarts it; half of the
//! node faults aim at the current leader. Then everything is healed and the test checks that
//! - the cluster answers again within 10 s of the last heal, and every node catches up;
//! - no client call hangs past its deadline;
//! - no node process exits on its own;
//! - every acknowledged append token is in the final value of its key, exactly once;
//! - no token ever appears twice in any value read (acknowledged or not: exactly-once);
//! - every value read holds only tokens written to that key;
//! - each key's history, the final reads included, is linearizable (`linearizability::check`;
//!   a failing history is drawn to `target/raftkv-faults/`).
//!
//! Knobs (environment): `FAULT_SEED` (the nemesis' and the workload's choices; timing is real, so a
//! seed replays the schedule, not the exact interleaving), `FAULT_SECONDS` (default 20),
//! `FAULT_NODES` (default 5), `FAULT_KEEP_LOGS=1` (keep the node logs of a passing run),
//! `FAULT_EXTRA_FLAGS` (more server flags, e.g. `--snapshot-every 200`). Replay:
//! `FAULT_SEED=... FAULT_SECONDS=... cargo test --release -p raftkv --test faults -- --nocapture`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linearizability::kv::{KvInput, KvModel, KvOp, KvOutput};
use linearizability::{check, write_html, CheckResult, Operation};
use support::{random_split, target_dir, Cluster, Rng, Security};

const DEFAULT_SEED: u64 = 0x5EED_0001;
const DEFAULT_SECONDS: u64 = 20;
const DEFAULT_NODES: u64 = 5;
const CLIENTS: u64 = 4;
/// Client ids of the readers pinned to one node each (node i: READER_BASE + i - 1).
const READER_BASE: u64 = 10;
/// Keys change name every this many seconds, so that no key's history (and value) grows without
/// bound on long runs: the checker's cost grows with both.
const EPOCH: Duration = Duration::from_secs(5);
/// Keys only ever appended to (and read): every acknowledged token must survive.
const APPEND_KEYS: [&str; 2] = ["a0", "a1"];
/// Keys that are also SET and DELeted.
const MIXED_KEYS: [&str; 2] = ["m0", "m1"];
/// How long one client call may retry before it gives up (its outcome is then unknown).
const CLIENT_DEADLINE: Duration = Duration::from_secs(3);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const PATIENT_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2500);
/// All final reads together may take at most this (they take milliseconds on a healthy cluster).
const FINAL_READS_BOUND: Duration = Duration::from_secs(15);
/// A client call that takes longer than this has hung: the client gives up after its deadline,
/// plus one attempt, plus one back-off pause.
const HANG: Duration = Duration::from_secs(7);
/// After the final reads, every node must have applied everything within this.
const CONVERGENCE_BOUND: Duration = Duration::from_secs(10);
/// After the last heal, the cluster must answer within this.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// One client call as observed.
#[derive(Clone, Debug)]
struct Record {
    client: u64,
    input: KvInput,
    call: u64,
    /// Some = it returned (with the value read, for a GET); None = outcome unknown.
    output: Option<KvOutput>,
    return_time: Option<u64>,
    /// When the call came back, answered or not.
    ended: u64,
    error: Option<String>,
}

struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

fn key_name(base: &str, epoch: u64) -> String {
    format!("{base}.e{epoch}")
}

fn is_append_only(key: &str) -> bool {
    APPEND_KEYS.iter().any(|base| key.starts_with(&format!("{base}.")))
}

fn tokens(value: &str) -> Vec<&str> {
    value.split(';').filter(|token| !token.is_empty()).collect()
}

fn client_loop(index: u64, seed: u64, endpoints: Vec<String>, security: Security, clock: Arc<Clock>, stop: Arc<AtomicBool>) -> Vec<Record> {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(index + 1));
    // Each client starts at a different node, so that followers forward.
    let mut rotated = endpoints.clone();
    rotated.rotate_left(index as usize % endpoints.len());
    let mut client = security.client(rotated);
    client.deadline = CLIENT_DEADLINE;
    // Half the clients wait long on one node (they see what a stalled node answers when it wakes),
    // half give up on it quickly and try another.
    client.attempt_timeout = if index.is_multiple_of(2) { ATTEMPT_TIMEOUT } else { PATIENT_ATTEMPT_TIMEOUT };
    let mut records = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let epoch = clock.0.elapsed().as_secs() / EPOCH.as_secs();
        let all: Vec<&str> = APPEND_KEYS.iter().chain(MIXED_KEYS.iter()).copied().collect();
        n += 1;
        let value = format!("{index}:{n};");
        let roll = rng.below(100);
        let input = match roll {
            0..=34 => KvInput::append(key_name(rng.pick(&APPEND_KEYS), epoch), value),
            35..=49 => KvInput::append(key_name(rng.pick(&MIXED_KEYS), epoch), value),
            50..=61 => KvInput::put(key_name(rng.pick(&MIXED_KEYS), epoch), value),
            // A DEL reads as "" afterwards: the model's Put of "".
            62..=65 => KvInput::put(key_name(rng.pick(&MIXED_KEYS), epoch), ""),
            _ => KvInput::get(key_name(rng.pick(&all), epoch)),
        };
        let key = input.key.as_bytes().to_vec();
        let call = clock.now();
        let result: Result<Option<KvOutput>, String> = match input.op {
            KvOp::Get => client
                .get(&key)
                .map(|value| Some(KvOutput::new(String::from_utf8_lossy(&value.unwrap_or_default()).into_owned())))
                .map_err(|error| error.to_string()),
            KvOp::Put if input.value.is_empty() => client.del(&[&key]).map(|_| Some(KvOutput::default())).map_err(|error| error.to_string()),
            KvOp::Put => client.set(&key, input.value.as_bytes()).map(|_| Some(KvOutput::default())).map_err(|error| error.to_string()),
            KvOp::Append => client
                .append(&key, input.value.as_bytes())
                .map(|_| Some(KvOutput::default()))
                .map_err(|error| error.to_string()),
        };
        let returned = clock.now();
        match result {
            Ok(output) => records.push(Record { client: index, input, call, output, return_time: Some(returned), ended: returned, error: None }),
            Err(error) => records.push(Record { client: index, input, call, output: None, return_time: None, ended: returned, error: Some(error) }),
        }
        // A little think time keeps histories (and the checker's work) bounded.
        std::thread::sleep(Duration::from_millis(rng.below(4)));
    }
    records
}

/// A reader pinned to one node: GETs of the current keys through that node only.
fn reader_loop(id: u64, seed: u64, endpoint: String, security: Security, clock: Arc<Clock>, stop: Arc<AtomicBool>) -> Vec<Record> {
    let mut rng = Rng::new(seed.wrapping_mul(37).wrapping_add(id));
    let mut client = security.client(vec![endpoint]);
    client.deadline = ATTEMPT_TIMEOUT;
    client.attempt_timeout = ATTEMPT_TIMEOUT;
    let all: Vec<&str> = APPEND_KEYS.iter().chain(MIXED_KEYS.iter()).copied().collect();
    let mut records = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let epoch = clock.0.elapsed().as_secs() / EPOCH.as_secs();
        let input = KvInput::get(key_name(rng.pick(&all), epoch));
        let call = clock.now();
        let result = client.get(input.key.as_bytes());
        let returned = clock.now();
        match result {
            Ok(value) => {
                let output = KvOutput::new(String::from_utf8_lossy(&value.unwrap_or_default()).into_owned());
                records.push(Record { client: id, input, call, output: Some(output), return_time: Some(returned), ended: returned, error: None });
            }
            Err(error) => {
                records.push(Record { client: id, input, call, output: None, return_time: None, ended: returned, error: Some(error.to_string()) });
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.range(2, 6)));
    }
    records
}

/// The nemesis: one random fault (or repair) every 1–3 s until `stop`.
fn nemesis(seed: u64, cluster: Arc<Mutex<Cluster>>, clock: Arc<Clock>, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<String>>>, problems: Arc<Mutex<Vec<String>>>) {
    let mut rng = Rng::new(seed ^ 0xFA17);
    let note = |text: String| {
        let line = format!("[{:7.3}s] {text}", clock.secs());
        eprintln!("nemesis {line}");
        log.lock().unwrap().push(line);
    };
    loop {
        let pause = Duration::from_millis(rng.range(1000, 3000));
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut cluster = cluster.lock().unwrap();
        for (id, status) in cluster.crashed() {
            let text = format!("node {id} exited on its own ({status}) — a server crash");
            note(text.clone());
            problems.lock().unwrap().push(text);
        }
        let ids = cluster.ids();
        let running: Vec<u64> = cluster.running().into_iter().filter(|id| !cluster.paused().contains(id)).collect();
        let dead = cluster.dead();
        let paused = cluster.paused();
        let cut = cluster.cut_links();
        // Half the node-level faults hit the current leader, where they hurt most.
        let leader = if rng.below(2) == 0 { cluster.leader().filter(|id| running.contains(id)) } else { None };
        let target = |rng: &mut Rng, from: &[u64]| -> (u64, &'static str) {
            match leader {
                Some(id) if from.contains(&id) => (id, " (the leader)"),
                _ => (rng.pick(from), ""),
            }
        };
        // Re-roll until the drawn action applies (a restart needs a dead node, and so on).
        let action = loop {
            match rng.below(100) {
                0..=11 if !running.is_empty() => {
                    let (id, what) = target(&mut rng, &running);
                    cluster.kill(id);
                    break format!("kill -9 node {id}{what}");
                }
                12..=22 if !dead.is_empty() => {
                    let id = rng.pick(&dead);
                    cluster.restart(id);
                    break format!("restart node {id}");
                }
                23..=30 if !running.is_empty() => {
                    let (id, what) = target(&mut rng, &running);
                    cluster.pause(id);
                    break format!("pause (SIGSTOP) node {id}{what}");
                }
                31..=37 if !paused.is_empty() => {
                    let id = rng.pick(&paused);
                    cluster.resume(id);
                    break format!("resume (SIGCONT) node {id}");
                }
                38..=45 if !running.is_empty() => {
                    // A stall shorter than a client's patience (a GC pause, a slow disk): the
                    // node wakes up believing whatever it believed, with requests queued.
                    let (id, what) = target(&mut rng, &running);
                    let stall = rng.range(300, 1800);
                    cluster.pause(id);
                    std::thread::sleep(Duration::from_millis(stall));
                    cluster.resume(id);
                    break format!("stall node {id}{what} for {stall} ms (SIGSTOP, SIGCONT)");
                }
                46..=55 => {
                    let (from, _) = target(&mut rng, &ids);
                    let others: Vec<u64> = ids.iter().copied().filter(|&id| id != from).collect();
                    let to = rng.pick(&others);
                    cluster.cut(from, to);
                    break format!("cut link {from}→{to}");
                }
                56..=60 if !cut.is_empty() => {
                    let (from, to) = rng.pick(&cut);
                    cluster.heal(from, to);
                    break format!("heal link {from}→{to}");
                }
                61..=70 => {
                    let (id, what) = target(&mut rng, &ids);
                    cluster.isolate(id);
                    break format!("isolate node {id}{what}");
                }
                71..=82 => {
                    let (a, b) = match leader {
                        // The leader with a minority, the rest with the majority.
                        Some(leader) => {
                            let mut others: Vec<u64> = ids.iter().copied().filter(|&id| id != leader).collect();
                            rng.shuffle(&mut others);
                            let extra = rng.below((ids.len() as u64 - 1) / 2) as usize;
                            let mut minority = vec![leader];
                            minority.extend(others.drain(..extra));
                            minority.sort();
                            others.sort();
                            (minority, others)
                        }
                        None => random_split(&mut rng, &ids),
                    };
                    cluster.partition(&a, &b);
                    let minority = if a.len() < b.len() { &a } else { &b };
                    let what = if leader.is_some_and(|id| minority.contains(&id)) { " (the leader in the minority)" } else { "" };
                    break format!("partition {a:?} | {b:?}{what}");
                }
                83..=88 => {
                    let down = rng.range(0, 500);
                    cluster.kill_all();
                    std::thread::sleep(Duration::from_millis(down));
                    cluster.restart_dead();
                    break format!("crash the whole cluster (kill -9 all), restart all after {down} ms");
                }
                89..=99 if !(dead.is_empty() && paused.is_empty() && cut.is_empty()) => {
                    cluster.heal_all();
                    break "heal everything (links, resume, restart)".to_string();
                }
                _ => continue,
            }
        };
        note(action);
    }
}

/// The fault runs take real time and most of the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn randomized_faults() {
    run(DEFAULT_SEED, &[], false);
}

/// The same nemesis and checks with reads served under leader leases: pauses (SIGSTOP) and
/// restarts are exactly what the lease's clock assumptions must survive.
#[test]
fn randomized_faults_with_lease_reads() {
    run(DEFAULT_SEED + 1, &["--lease-reads"], false);
}

/// The same nemesis and checks on a cluster secured as the README's three-machine example is:
/// mutual TLS on the peer links (through the nemesis's proxies), TLS on the client ports and a
/// password, every client over TLS and authenticated.
#[test]
fn randomized_faults_over_tls_with_a_password() {
    run(DEFAULT_SEED + 2, &[], true);
}

/// One fault run, alone on the machine: its seed (`default_seed` unless FAULT_SEED says), length and
/// cluster size from the environment.
fn run(default_seed: u64, flags: &[&str], secure: bool) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let seed = env_u64("FAULT_SEED", default_seed);
    let seconds = env_u64("FAULT_SECONDS", DEFAULT_SECONDS);
    let nodes = env_u64("FAULT_NODES", DEFAULT_NODES);
    assert!(nodes >= 3, "FAULT_NODES must be at least 3");
    let test = match (flags.is_empty(), secure) {
        (_, true) => "randomized_faults_over_tls_with_a_password",
        (true, false) => "randomized_faults",
        (false, false) => "randomized_faults_with_lease_reads",
    };
    let extra = std::env::var("FAULT_EXTRA_FLAGS").map(|flags| format!("FAULT_EXTRA_FLAGS={flags:?} ")).unwrap_or_default();
    let replay = format!("{extra}FAULT_SEED={seed} FAULT_SECONDS={seconds} FAULT_NODES={nodes} cargo test --release -p raftkv --test faults -- --exact {test} --nocapture");
    eprintln!("faults: seed {seed}, {seconds} s, {nodes} nodes; replay with: {replay}");
    let started = Instant::now();
    // FAULT_EXTRA_FLAGS adds server flags, e.g. "--snapshot-every 200" to snapshot under faults.
    let extra = std::env::var("FAULT_EXTRA_FLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.iter().copied().chain(extra.split_whitespace()).collect();
    eprintln!("faults: server flags {flags:?}");
    let mut cluster = if secure { Cluster::start_secure(&format!("faults-{seed}"), nodes, &flags) } else { Cluster::start_with_flags(&format!("faults-{seed}"), nodes, &flags) };
    let security = cluster.security.clone();
    // FAULT_KEEP_LOGS=1 keeps the node logs even when the run passes.
    cluster.keep = std::env::var("FAULT_KEEP_LOGS").is_ok_and(|value| value == "1");
    let endpoints = cluster.endpoints();
    let cluster = Arc::new(Mutex::new(cluster));
    let mut problems: Vec<String> = Vec::new();

    let fresh = cluster.lock().unwrap().wait_ready(Duration::from_secs(15));
    if let Err(error) = fresh {
        fail(&cluster, seed, &replay, &[format!("the fresh cluster never answered: {error}")], &[], None);
    }
    eprintln!("faults: cluster of {nodes} up after {:.1} s", started.elapsed().as_secs_f64());

    let clock = Arc::new(Clock(Instant::now()));
    let stop = Arc::new(AtomicBool::new(false));
    let nemesis_log = Arc::new(Mutex::new(Vec::new()));
    let nemesis_problems = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (endpoints, security, clock, stop) = (endpoints.clone(), security.clone(), clock.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("client-{index}"))
                .spawn(move || client_loop(index, seed, endpoints, security, clock, stop))
                .expect("spawning a client thread")
        })
        .collect();
    // One reader pinned to each node: it never fails over, so it asks a deposed or cut-off node
    // for reads exactly when a stale answer would show.
    let readers: Vec<_> = endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| {
            let (endpoint, security, clock, stop) = (endpoint.clone(), security.clone(), clock.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("reader-{}", index + 1))
                .spawn(move || reader_loop(READER_BASE + index as u64, seed, endpoint, security, clock, stop))
                .expect("spawning a reader thread")
        })
        .collect();
    let nemesis_thread = {
        let (cluster, clock, stop, log, problems) = (cluster.clone(), clock.clone(), stop.clone(), nemesis_log.clone(), nemesis_problems.clone());
        std::thread::Builder::new()
            .name("nemesis".into())
            .spawn(move || nemesis(seed, cluster, clock, stop, log, problems))
            .expect("spawning the nemesis")
    };

    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let nemesis_result = nemesis_thread.join();
    if nemesis_result.is_err() {
        problems.push("the nemesis thread panicked".into());
    }
    // Heal everything; the cluster must answer within RECOVERY_BOUND of this.
    {
        let mut cluster = cluster.lock().unwrap();
        for (id, status) in cluster.crashed() {
            problems.push(format!("node {id} exited on its own ({status}) — a server crash"));
        }
        cluster.heal_all();
    }
    let healed = Instant::now();
    let healed_at = clock.secs();
    nemesis_log.lock().unwrap().push(format!("[{healed_at:7.3}s] end: heal everything (links, resume, restart)"));
    problems.extend(nemesis_problems.lock().unwrap().iter().cloned());

    let mut records: Vec<Record> = Vec::new();
    for (index, handle) in clients.into_iter().enumerate() {
        match handle.join() {
            Ok(mut mine) => records.append(&mut mine),
            Err(_) => problems.push(format!("client thread {index} panicked")),
        }
    }
    for (index, handle) in readers.into_iter().enumerate() {
        match handle.join() {
            Ok(mut mine) => records.append(&mut mine),
            Err(_) => problems.push(format!("reader thread {} panicked", index + 1)),
        }
    }
    let clients_done = healed.elapsed();

    let ready = cluster.lock().unwrap().wait_ready(RECOVERY_BOUND.saturating_sub(healed.elapsed()));
    match &ready {
        Ok(_) => eprintln!("faults: the cluster answered {:.2} s after the last heal", healed.elapsed().as_secs_f64()),
        Err(error) => problems.push(format!("after healing: {error} (clients stopped {clients_done:?} after the heal)")),
    }

    // Final reads: every key the workload could have touched, through every node in turn (each
    // read is sequential after all others, so they must agree with the history).
    let epochs = clock.0.elapsed().as_secs() / EPOCH.as_secs() + 1;
    let mut keys: BTreeSet<String> = records.iter().map(|record| record.input.key.clone()).collect();
    for epoch in 0..epochs {
        for base in APPEND_KEYS.iter().chain(MIXED_KEYS.iter()) {
            keys.insert(key_name(base, epoch));
        }
    }
    let mut final_values: BTreeMap<String, String> = BTreeMap::new();
    if ready.is_ok() {
        let guard = cluster.lock().unwrap();
        let reads_started = Instant::now();
        for (n, endpoint) in endpoints.iter().enumerate() {
            if reads_started.elapsed() > FINAL_READS_BOUND {
                problems.push(format!("final reads took over {FINAL_READS_BOUND:?}; nodes from {} on not read", n + 1));
                break;
            }
            let mut client = security.client(vec![endpoint.clone()]);
            client.deadline = Duration::from_secs(5);
            client.attempt_timeout = Duration::from_secs(2);
            for key in &keys {
                let call = clock.now();
                match client.get(key.as_bytes()) {
                    Ok(value) => {
                        let value = String::from_utf8_lossy(&value.unwrap_or_default()).into_owned();
                        let returned = clock.now();
                        if let Some(previous) = final_values.get(key) {
                            if *previous != value {
                                problems.push(format!("final reads disagree on {key:?}: {previous:?} then {value:?} via {endpoint}"));
                            }
                        }
                        final_values.insert(key.clone(), value.clone());
                        records.push(Record {
                            client: 100 + n as u64,
                            input: KvInput::get(key.clone()),
                            call,
                            output: Some(KvOutput::new(value)),
                            return_time: Some(returned),
                            ended: returned,
                            error: None,
                        });
                    }
                    Err(error) => {
                        problems.push(format!("final GET {key:?} via node {} ({endpoint}) failed: {error} (no more reads through it)", n + 1));
                        break;
                    }
                }
            }
        }
        drop(guard);
    }

    // Every node catches up: with the clients stopped, all must reach the same applied index.
    if ready.is_ok() {
        let guard = cluster.lock().unwrap();
        let started = Instant::now();
        let (converged, last) = loop {
            let last = guard
                .ids()
                .into_iter()
                .map(|id| {
                    let info = guard.info(id).unwrap_or_default();
                    let field = |name: &str| info.lines().find_map(|line| line.strip_prefix(&format!("{name}:"))?.trim().parse::<u64>().ok());
                    (id, field("commit_index"), field("applied_index"))
                })
                .collect::<Vec<_>>();
            let highest_commit = last.iter().filter_map(|(_, commit, _)| *commit).max().unwrap_or(0);
            if highest_commit > 0 && last.iter().all(|(_, _, applied)| *applied == Some(highest_commit)) {
                break (true, last);
            }
            if started.elapsed() > CONVERGENCE_BOUND {
                break (false, last);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if converged {
            eprintln!("faults: all nodes applied index {:?} within {:.2} s", last[0].2, started.elapsed().as_secs_f64());
        } else {
            problems.push(format!("the nodes did not all catch up within {CONVERGENCE_BOUND:?} of the final reads: (id, commit, applied) = {last:?}"));
        }
        drop(guard);
    }

    // Summary of the workload.
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for record in records.iter().filter(|record| record.client < 100) {
        let kind = match (record.input.op, record.input.value.is_empty()) {
            (KvOp::Get, _) if record.client >= READER_BASE => "get (pinned reader)",
            (KvOp::Get, _) => "get",
            (KvOp::Put, true) => "del",
            (KvOp::Put, false) => "set",
            (KvOp::Append, _) => "append",
        };
        let entry = counts.entry(kind.into()).or_default();
        if record.return_time.is_some() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if let Some(error) = &record.error {
            // Group by the message's start (the rest names addresses and durations).
            let short: String = error.split("last error:").nth(1).unwrap_or(error).trim().chars().take(60).collect();
            *errors.entry(short).or_default() += 1;
        }
    }
    eprintln!("faults: operations (ok, unknown): {counts:?}");
    let slowest = records.iter().filter(|record| record.client < 100).max_by_key(|record| record.ended - record.call);
    if let Some(slowest) = slowest {
        let took = Duration::from_nanos(slowest.ended - slowest.call);
        eprintln!("faults: slowest call {took:.2?} ({:?} {:?} at {:.3} s)", slowest.input.op, slowest.input.key, slowest.call as f64 / 1e9);
    }
    for record in records.iter().filter(|record| record.client < 100 && record.ended - record.call > HANG.as_nanos() as u64).take(10) {
        problems.push(format!(
            "client {} call {:?} {:?} at {:.3} s took {:.2?} (deadline {CLIENT_DEADLINE:?}): it hung; error {:?}",
            record.client,
            record.input.op,
            record.input.key,
            record.call as f64 / 1e9,
            Duration::from_nanos(record.ended - record.call),
            record.error
        ));
    }
    eprintln!("faults: errors seen: {errors:#?}");

    // Token checks.
    let mut writer_of: HashMap<String, (String, bool, bool)> = HashMap::new(); // token -> (key, acked, is_append)
    for record in &records {
        if record.input.op != KvOp::Get && !record.input.value.is_empty() {
            let token = record.input.value.trim_end_matches(';').to_string();
            writer_of.insert(token, (record.input.key.clone(), record.return_time.is_some(), record.input.op == KvOp::Append));
        }
    }
    let mut bad_reads = 0;
    for record in &records {
        let (Some(output), KvOp::Get) = (&record.output, record.input.op) else { continue };
        let mut seen = BTreeSet::new();
        for token in tokens(&output.value) {
            let mut complaint = None;
            if !seen.insert(token) {
                complaint = Some(format!("token {token:?} appears twice (a write applied twice)"));
            } else {
                match writer_of.get(token) {
                    None => complaint = Some(format!("token {token:?} was never written by anyone")),
                    Some((key, _, _)) if *key != record.input.key => complaint = Some(format!("token {token:?} was written to {key:?}, not here")),
                    _ => {}
                }
            }
            if let Some(complaint) = complaint {
                bad_reads += 1;
                if bad_reads <= 20 {
                    problems.push(format!(
                        "GET {:?} by client {} at {:.3} s returned {:?}: {complaint}",
                        record.input.key,
                        record.client,
                        record.call as f64 / 1e9,
                        shorten(&output.value)
                    ));
                }
            }
        }
    }
    if bad_reads > 20 {
        problems.push(format!("... {} more bad token reads", bad_reads - 20));
    }
    if ready.is_ok() {
        let mut lost = Vec::new();
        for (token, (key, acked, is_append)) in &writer_of {
            if !*acked || !*is_append || !is_append_only(key) {
                continue;
            }
            let present = final_values.get(key).map_or(0, |value| tokens(value).iter().filter(|t| **t == token.as_str()).count());
            if present != 1 {
                lost.push(format!("acknowledged APPEND {token:?} to {key:?} is present {present} times in the final value"));
            }
        }
        lost.sort();
        if !lost.is_empty() {
            problems.push(format!("{} acknowledged appends lost or duplicated: {}", lost.len(), lost.iter().take(20).cloned().collect::<Vec<_>>().join("; ")));
        }
    }

    // Linearizability. Failed GETs are left out (a read with an unknown outcome constrains nothing).
    let history: Vec<Operation<KvInput, KvOutput>> = records
        .iter()
        .filter(|record| !(record.input.op == KvOp::Get && record.return_time.is_none()))
        .map(|record| Operation {
            client: record.client,
            input: record.input.clone(),
            call: record.call,
            output: record.output.clone(),
            return_time: record.return_time,
        })
        .collect();
    let budget = 2_000_000 + 300 * history.len() as u64;
    let check_started = Instant::now();
    let verdict = check(&KvModel, &history, budget);
    eprintln!(
        "faults: {} operations checked for linearizability in {:.2} s: {}",
        history.len(),
        check_started.elapsed().as_secs_f64(),
        match &verdict {
            CheckResult::Ok => "linearizable".to_string(),
            CheckResult::Illegal(_) => "NOT linearizable".to_string(),
            CheckResult::Unknown => "undecided (budget exhausted)".to_string(),
        }
    );
    let mut html = None;
    if !verdict.is_ok() {
        let dir = target_dir().join("raftkv-faults");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("faults-seed-{seed}-history.html"));
        match write_html(&KvModel, &history, &verdict, &path) {
            Ok(()) => html = Some(path.clone()),
            Err(error) => problems.push(format!("cannot write {}: {error}", path.display())),
        }
        match &verdict {
            CheckResult::Illegal(failure) => {
                let mut text = format!("history is not linearizable:\n{failure}");
                let describe = |i: usize| {
                    let op = &history[i];
                    let who = if op.client >= 100 {
                        format!("final reader via node {}", op.client - 99)
                    } else if op.client >= READER_BASE {
                        format!("reader pinned to node {}", op.client - READER_BASE + 1)
                    } else {
                        format!("client {}", op.client)
                    };
                    let output = match (op.input.op, &op.output) {
                        (KvOp::Get, Some(output)) => format!(" → {}", shorten(&output.value)),
                        (_, None) => " (outcome unknown)".to_string(),
                        _ => String::new(),
                    };
                    format!(
                        "op {i}: {who}: {:?} {:?} {}{output}, called {:.6} s, returned {}",
                        op.input.op,
                        op.input.key,
                        shorten(&op.input.value),
                        op.call as f64 / 1e9,
                        op.return_time.map_or("never".to_string(), |t| format!("{:.6} s", t as f64 / 1e9))
                    )
                };
                for part in &failure.partitions {
                    text.push_str(&format!("\n  {}: could not place {}", part.label, describe(part.blocking)));
                    for &candidate in part.candidates.iter().filter(|&&c| c != part.blocking).take(5) {
                        text.push_str(&format!("\n    other candidate {}", describe(candidate)));
                    }
                    if let Some(last) = part.prefix.last() {
                        text.push_str(&format!("\n    after {} (state {})", describe(last.op), last.state));
                    }
                }
                problems.push(text);
            }
            _ => problems.push(format!("the linearizability check ran out of its budget of {budget} steps (not proven correct)")),
        }
    }

    let log = nemesis_log.lock().unwrap().clone();
    if !problems.is_empty() {
        fail(&cluster, seed, &replay, &problems, &log, html);
    }
    eprintln!("faults: seed {seed} passed in {:.1} s ({} nemesis actions)", started.elapsed().as_secs_f64(), log.len());
}

fn shorten(value: &str) -> String {
    if value.len() <= 160 {
        value.to_string()
    } else {
        format!("{}…({} bytes)…{}", &value[..80], value.len(), &value[value.len() - 60..])
    }
}

/// Prints what went wrong and how to replay it, then panics with the cluster still alive so that
/// its drop (during the unwind) prints the node logs and keeps them.
fn fail(cluster: &Arc<Mutex<Cluster>>, seed: u64, replay: &str, problems: &[String], log: &[String], html: Option<std::path::PathBuf>) -> ! {
    eprintln!("\n===== faults: FAILED with seed {seed} =====");
    eprintln!("replay: {replay}");
    eprintln!("nemesis timeline:");
    for line in log {
        eprintln!("  {line}");
    }
    eprintln!("problems:");
    for problem in problems {
        eprintln!("  - {problem}");
    }
    if let Some(path) = &html {
        eprintln!("history drawn to {}", path.display());
    }
    let cluster = cluster.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let panics = cluster.grep_logs(&["panicked", "ERROR", "error:"]);
    if !panics.is_empty() {
        eprintln!("alarming log lines:");
        for line in panics.iter().take(30) {
            eprintln!("  {line}");
        }
    }
    drop(cluster);
    panic!(
        "fault test failed (seed {seed}): {} problem(s), first: {}\nreplay: {replay}{}",
        problems.len(),
        problems[0],
        html.map(|path| format!("\nhistory: {}", path.display())).unwrap_or_default()
    );
}
