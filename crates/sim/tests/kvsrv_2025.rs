//! The 2025 lab 2 tests (kvsrv1: the versioned Put; and the lock), ported as
//! `LAB-TESTS-2025.md` §2–3 describe them, on the production node: the lab's one server is a
//! one-node raftkv cluster (every Put goes through its log and its disk), its Get and Put are VGET
//! and VSET, and every recorded history is checked with the versioned model (Gets' versions
//! included, which the original leaves out). Each test runs under its own name, in virtual time.

use std::rc::Rc;
use std::time::Duration;

use sim::kv_tester::{run_kv_test, KvTester};
use sim::kvraft::PutOutcome;
use sim::kvsrv_tester::{run_lock_clients, VersionedTester};

const FILE: &str = "kvsrv_2025";
/// The lab's harness: one server.
const SERVERS: usize = 1;

type Body = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

fn test(name: &'static str, unreliable: bool, body: impl Fn(Rc<VersionedTester>) -> Body + 'static) {
    test_on(name, SERVERS, unreliable, body);
}

/// A test on `servers` nodes (the extra three-node variants: forwarding and elections too).
fn test_on(name: &'static str, servers: usize, unreliable: bool, body: impl Fn(Rc<VersionedTester>) -> Body + 'static) {
    run_kv_test(FILE, name, servers, unreliable, None, move |t: Rc<KvTester>| body(VersionedTester::new(t)));
}

#[test]
fn reliable_put() {
    test("reliable_put", false, |v| {
        Box::pin(async move {
            let t = v.t.clone();
            let ck = t.make_client(&t.all());
            t.begin("One client and reliable Put");
            let value = "6.5840";
            assert_eq!(ck.clerk.vput("k", value, 0).await, PutOutcome::Ok, "Put err");
            assert_eq!(ck.clerk.vget("k").await, Some((value.to_string(), 1)), "Get: wrong value or version");
            assert_eq!(ck.clerk.vput("k", value, 0).await, PutOutcome::ErrVersion, "expected Put to fail with ErrVersion");
            assert_eq!(ck.clerk.vput("y", value, 1).await, PutOutcome::ErrNoKey, "expected Put to fail with ErrNoKey");
            assert_eq!(ck.clerk.vget("y").await, None, "expected Get to fail with ErrNoKey");
            t.end();
        })
    });
}

#[test]
fn put_concurrent_reliable() {
    test("put_concurrent_reliable", false, |v| {
        Box::pin(async move {
            let t = v.t.clone();
            t.begin("Test: many clients racing to put values to the same key");
            let results = v.spawn_put_clients(10, Duration::from_secs(1), "k").await;
            let ck = t.make_client(&t.all());
            v.check_concurrent_puts(&ck, "k", &results, true).await;
            v.check_linearizable();
            t.end();
        })
    });
}

/// 100,000 clerks, each with its own connection, each doing one Put in turn: the server may keep
/// nothing per clerk. The original reads the Go heap; here the measure is what the server retains
/// (the encoded size of its store, sessions included) and how many client sessions it remembers,
/// against the same 200 bytes per clerk. A table keeping each clerk's reply, or its 1,000-byte
/// value, would need far more. Clerks here keep no state past their call.
#[test]
fn mem_put_many_clients_reliable() {
    test("mem_put_many_clients_reliable", false, |v| {
        Box::pin(async move {
            const CLERKS: usize = 100_000;
            const PER_CLERK: usize = 200;
            let t = v.t.clone();
            // The lab's server answers from memory in microseconds; 100,000 Puts one after another
            // must fit the 120 s limit here too.
            t.net.set_latency(Duration::from_micros(10), Duration::from_micros(30));
            let clerks: Vec<_> = (0..CLERKS).map(|_| t.make_client(&t.all())).collect();
            for clerk in &clerks {
                assert_eq!(clerk.clerk.vput("k", "", 1).await, PutOutcome::ErrNoKey, "Put at version 1 of a missing key");
            }
            t.begin("Test: memory use many put clients");
            t.sleep(Duration::from_secs(1)).await;
            let before: usize = t.retained().iter().map(|(bytes, _)| bytes).sum();
            let value: String = (0..1000).map(|_| char::from(b'a' + t.rng.below(26) as u8)).collect();
            for (i, clerk) in clerks.iter().enumerate() {
                assert_eq!(clerk.clerk.vput("k", &value, i as u64).await, PutOutcome::Ok, "clerk {i}: Put at version {i}");
            }
            t.sleep(Duration::from_secs(1)).await;
            let retained = t.retained();
            let after: usize = retained.iter().map(|(bytes, _)| bytes).sum();
            let sessions: usize = retained.iter().map(|(_, sessions)| sessions).sum();
            t.verdict("server using too much memory", after <= before + CLERKS * PER_CLERK, || {
                format!("retained state grew from {before} to {after} bytes over {CLERKS} clerks")
            });
            t.verdict("no session per clerk", sessions == 0, || format!("{sessions} client sessions remembered for untagged versioned Puts"));
            t.end();
        })
    });
}

#[test]
fn unreliable_net() {
    test("unreliable_net", true, unreliable_net_body);
}

/// Not in the lab: the same on three nodes, where a Put may reach a follower and be forwarded.
#[test]
fn unreliable_net_three_nodes() {
    test_on("unreliable_net_three_nodes", 3, true, unreliable_net_body);
}

fn unreliable_net_body(v: Rc<VersionedTester>) -> Body {
    Box::pin(async move {
        const NTRY: u64 = 100;
        let t = v.t.clone();
        let ck = t.make_client(&t.all());
        t.begin("One client");
        let mut retried = false;
        for attempt in 0..NTRY {
            for i in 0.. {
                let outcome = v.put(&ck, "k", &i.to_string(), attempt, 0).await;
                if outcome == PutOutcome::Maybe {
                    retried = true;
                    continue;
                }
                if i > 0 {
                    t.verdict("Put shouldn't have happened more than once", outcome == PutOutcome::ErrVersion, || format!("try {attempt}: Put {i} answered {outcome:?}"));
                }
                break;
            }
            let read = v.get(&ck, "k", 0).await;
            t.verdict("wrong version", read.as_ref().is_some_and(|(_, version)| *version == attempt + 1), || format!("try {attempt}: read {read:?}"));
            t.verdict("wrong value", read.as_ref().is_some_and(|(value, _)| value == "0"), || format!("try {attempt}: read {read:?}"));
        }
        t.verdict("Clerk.Put never returned ErrMaybe", retried, String::new);
        v.check_linearizable();
        t.end();
    })
}

fn lock_test(name: &'static str, description: &'static str, clients: u64, unreliable: bool, nested: bool) {
    lock_test_on(name, SERVERS, description, clients, unreliable, nested);
}

fn lock_test_on(name: &'static str, servers: usize, description: &'static str, clients: u64, unreliable: bool, nested: bool) {
    test_on(name, servers, unreliable, move |v| {
        Box::pin(async move {
            let t = v.t.clone();
            t.begin(description);
            run_lock_clients(t.clone(), clients, Duration::from_secs(2), nested).await;
            t.end();
        })
    });
}

#[test]
fn one_client_reliable() {
    lock_test("one_client_reliable", "Test: 1 lock clients (reliable network)", 1, false, false);
}

#[test]
fn many_clients_reliable() {
    lock_test("many_clients_reliable", "Test: 10 lock clients (reliable network)", 10, false, false);
}

#[test]
fn one_client_unreliable() {
    lock_test("one_client_unreliable", "Test: 1 lock clients (unreliable network)", 1, true, false);
}

#[test]
fn many_clients_unreliable() {
    lock_test("many_clients_unreliable", "Test: 10 lock clients (unreliable network)", 10, true, false);
}

/// The later revision's loop (§3.4): each client first takes and releases two locks.
#[test]
fn many_clients_unreliable_nested() {
    lock_test("many_clients_unreliable_nested", "Test: 10 lock clients, two locks (unreliable network)", 10, true, true);
}

/// Not in the lab: ten lock clients on three nodes over an unreliable network.
#[test]
fn many_clients_unreliable_three_nodes() {
    lock_test_on("many_clients_unreliable_three_nodes", 3, "Test: 10 lock clients, three nodes (unreliable network)", 10, true, false);
}
