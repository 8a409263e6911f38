//! The 2025 Lab 4 tests (`LAB-TESTS-2025.md` §6): the replicated KV with the versioned Put, run by
//! the production node — raftkv's VGET and VSET through Raft on 3 to 7 nodes, with an unreliable
//! network, partitions and whole-cluster crashes as each test asks, and snapshots (4C) at the
//! lab's maxraftstate. Every iteration's history is checked with the versioned model (Gets'
//! versions included). All 22 under their names.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use sim::kv_tester::{run_kv_test, KvTester, TestClerk, Workload, ELECTION_TIMEOUT};
use sim::kvraft::PutOutcome;
use sim::kvsrv_tester::{generic_test, VersionedTester};
use sim::raft_tester::ms;

const FILE: &str = "kv_2025";
const SNAPSHOTS: Option<usize> = Some(1000);

#[allow(clippy::too_many_arguments)]
fn generic(name: &'static str, description: &'static str, clients: u64, servers: usize, unreliable: bool, crash: bool, partitions: bool, random_keys: bool, max_raft_state: Option<usize>) {
    run_kv_test(FILE, name, servers, unreliable, max_raft_state, move |t: Rc<KvTester>| async move {
        t.begin(description);
        generic_test(VersionedTester::new(t.clone()), Workload { clients, crash, partitions, random_keys }, !unreliable).await;
        t.end();
    });
}

/// The lab's speed test: after one Get, 1,000 Puts one after another, each Ok at the version
/// before it; the last Get shows version 1,000; at most 100 ms / 3 per Put on average.
fn speed(name: &'static str, description: &'static str, max_raft_state: Option<usize>) {
    run_kv_test(FILE, name, 3, false, max_raft_state, move |t: Rc<KvTester>| async move {
        const PUTS: u64 = 1000;
        let v = VersionedTester::new(t.clone());
        let ck = t.make_client(&t.all());
        v.get(&ck, "k", 0).await;
        t.begin(description);
        let start = t.sim.now();
        for version in 0..PUTS {
            let outcome = v.put(&ck, "k", &format!("x {version}"), version, 0).await;
            t.verdict("put", outcome == PutOutcome::Ok, || format!("Put at version {version}: {outcome:?}"));
        }
        let elapsed = t.sim.now() - start;
        let read = v.get(&ck, "k", 0).await;
        t.verdict("version", read.as_ref().is_some_and(|(_, version)| *version == PUTS), || format!("after {PUTS} Puts: {read:?}"));
        v.check_linearizable();
        let bound = Duration::from_millis(100) / 3 * PUTS as u32;
        t.verdict("speed", elapsed <= bound, || format!("Operations completed too slowly {:?}/op > {:?}/op", elapsed / PUTS as u32, bound / PUTS as u32));
        t.end();
    });
}

#[test]
fn basic_4b() {
    generic("basic_4b", "Test: one client (4B basic)", 1, 5, false, false, false, false, None);
}

#[test]
fn speed_4b() {
    speed("speed_4b", "Test: one client (4B speed)", None);
}

#[test]
fn concurrent_4b() {
    generic("concurrent_4b", "Test: many clients (4B many clients)", 5, 5, false, false, false, false, None);
}

#[test]
fn unreliable_4b() {
    generic("unreliable_4b", "Test: many clients (4B unreliable net)", 5, 5, true, false, false, false, None);
}

#[test]
fn many_partitions_one_client_4b() {
    generic("many_partitions_one_client_4b", "Test: partitions, one client (4B partitions)", 1, 5, false, false, true, false, None);
}

#[test]
fn many_partitions_many_clients_4b() {
    generic("many_partitions_many_clients_4b", "Test: partitions, many clients (4B partitions)", 5, 5, false, false, true, false, None);
}

#[test]
fn persist_one_client_4b() {
    generic("persist_one_client_4b", "Test: restarts, one client (4B restarts)", 1, 5, false, true, false, false, None);
}

#[test]
fn persist_concurrent_4b() {
    generic("persist_concurrent_4b", "Test: restarts, many clients (4B restarts)", 5, 5, false, true, false, false, None);
}

#[test]
fn persist_concurrent_unreliable_4b() {
    generic("persist_concurrent_unreliable_4b", "Test: restarts, many clients, unreliable (4B restarts)", 5, 5, true, true, false, false, None);
}

#[test]
fn persist_partition_4b() {
    generic("persist_partition_4b", "Test: restarts, partitions, many clients (4B restarts)", 5, 5, false, true, true, false, None);
}

#[test]
fn persist_partition_unreliable_4b() {
    generic("persist_partition_unreliable_4b", "Test: restarts, partitions, many clients, unreliable (4B restarts)", 5, 5, true, true, true, false, None);
}

#[test]
fn persist_partition_unreliable_linearizable_4b() {
    generic("persist_partition_unreliable_linearizable_4b", "Test: restarts, partitions, random keys, many clients, unreliable (4B restarts)", 15, 7, true, true, true, true, None);
}

#[test]
fn speed_4c() {
    speed("speed_4c", "Test: one client (4C snapshot speed)", SNAPSHOTS);
}

#[test]
fn snapshot_recover_4c() {
    generic("snapshot_recover_4c", "Test: restarts, snapshots, one client (4C restarts, snapshots)", 1, 5, false, true, false, false, SNAPSHOTS);
}

#[test]
fn snapshot_recover_many_clients_4c() {
    generic("snapshot_recover_many_clients_4c", "Test: restarts, snapshots, many clients (4C restarts, snapshots)", 20, 5, false, true, false, false, SNAPSHOTS);
}

#[test]
fn snapshot_unreliable_4c() {
    generic("snapshot_unreliable_4c", "Test: unreliable net, snapshots, many clients (4C snapshots)", 5, 5, true, false, false, false, SNAPSHOTS);
}

#[test]
fn snapshot_unreliable_recover_4c() {
    generic("snapshot_unreliable_recover_4c", "Test: unreliable net, restarts, snapshots, many clients (4C restarts, snapshots)", 5, 5, true, true, false, false, SNAPSHOTS);
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_4c() {
    generic("snapshot_unreliable_recover_concurrent_partition_4c", "Test: unreliable net, restarts, partitions, snapshots, many clients (4C restarts, snapshots)", 5, 5, true, true, true, false, SNAPSHOTS);
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_linearizable_4c() {
    generic(
        "snapshot_unreliable_recover_concurrent_partition_linearizable_4c",
        "Test: unreliable net, restarts, partitions, snapshots, random keys, many clients (4C restarts, snapshots)",
        15,
        7,
        true,
        true,
        true,
        true,
        SNAPSHOTS,
    );
}

/// The lab's "Put at least once": Put at `version`, one version higher after each ErrVersion or
/// ErrMaybe, until Ok; returns the key's version after that Put.
async fn put_at_least_once(v: &VersionedTester, ck: &TestClerk, key: &str, value: &str, mut version: u64) -> u64 {
    loop {
        match v.put(ck, key, value, version, 0).await {
            PutOutcome::Ok => return version + 1,
            PutOutcome::ErrVersion | PutOutcome::Maybe => version += 1,
            // `put` fails the test on ErrNoKey.
            PutOutcome::ErrNoKey => unreachable!("ErrNoKey failed the test"),
        }
    }
}

/// A recorded Get that must show `value` at `version`.
async fn check(v: &VersionedTester, ck: &TestClerk, key: &str, value: &str, version: u64) {
    let read = v.get(ck, key, 0).await;
    let expected = Some((value.to_string(), version));
    v.t.verdict(&format!("Get({key})"), read == expected, || format!("Get({key}): expected {expected:?}, read {read:?}"));
}

/// TestOnePartition4B (2025): the leader in a two-server minority of five, on an unreliable
/// network. The majority makes progress; a Put and a Get in the minority do not finish within 1 s;
/// after the heal the Put finishes within 3 s, its retries moving past the majority's later Put by
/// raising the version, and its value is the last, at the version it reported.
#[test]
fn one_partition_4b() {
    run_kv_test(FILE, "one_partition_4b", 5, true, None, |t: Rc<KvTester>| async move {
        let v = VersionedTester::new(t.clone());
        let ck = t.make_client(&t.all());
        let version = put_at_least_once(&v, &ck, "1", "13", 0).await;

        t.begin("Test: progress in majority (4B)");
        let (majority, minority) = t.make_partition();
        t.partition(&majority, &minority);
        let ckp1 = t.make_client(&majority);
        let ckp2a = Rc::new(t.make_client(&minority));
        let ckp2b = Rc::new(t.make_client(&minority));
        let version = put_at_least_once(&v, &ckp1, "1", "14", version).await;
        check(&v, &ckp1, "1", "14", version).await;
        t.end();

        t.begin("Test: no progress in minority (4B)");
        let put_done: Rc<Cell<Option<u64>>> = Rc::new(Cell::new(None));
        let get_done = Rc::new(Cell::new(false));
        {
            let (v, ck, done) = (v.clone(), ckp2a.clone(), put_done.clone());
            t.sim.clone().spawn(async move { done.set(Some(put_at_least_once(&v, &ck, "1", "15", version).await)) });
        }
        {
            let (v, ck, done) = (v.clone(), ckp2b.clone(), get_done.clone());
            t.sim.clone().spawn(async move {
                v.get(&ck, "1", 0).await;
                done.set(true);
            });
        }
        t.sleep(ms(1000)).await;
        t.verdict("minority put", put_done.get().is_none(), || "Put in minority completed".into());
        t.verdict("minority get", !get_done.get(), || "Get in minority completed".into());
        check(&v, &ckp1, "1", "14", version).await;
        let version = put_at_least_once(&v, &ckp1, "1", "16", version).await;
        check(&v, &ckp1, "1", "16", version).await;
        t.end();

        t.begin("Test: completion after heal (4B)");
        t.connect_all();
        t.connect_client(&ckp2a, &t.all());
        t.connect_client(&ckp2b, &t.all());
        t.sleep(ELECTION_TIMEOUT).await;
        let healed = t.sim.now();
        while put_done.get().is_none() && t.sim.now() - healed < ms(3000) {
            t.sleep(ms(10)).await;
        }
        let Some(final_version) = put_done.get() else {
            t.verdict("put after heal", false, || "Put did not complete".into());
            unreachable!("the verdict failed the test")
        };
        check(&v, &ck, "1", "15", final_version).await;
        v.check_linearizable();
        t.end();
    });
}

/// TestSnapshotRPC4C: a majority trims its log while a third server is cut off; that server,
/// needed for the next majority, catches up (by a snapshot); every read checks its version.
#[test]
fn snapshot_rpc_4c() {
    run_kv_test(FILE, "snapshot_rpc_4c", 3, false, SNAPSHOTS, |t: Rc<KvTester>| async move {
        let v = VersionedTester::new(t.clone());
        let ck = t.make_client(&t.all());
        t.begin("Test: InstallSnapshot RPC (4C)");
        // Each Put's version is the one it reported (a resent Put may have taken effect twice).
        let a = put_at_least_once(&v, &ck, "a", "A", 0).await;
        check(&v, &ck, "a", "A", a).await;
        t.partition(&[0, 1], &[2]);
        let mut numbers = Vec::new();
        let b;
        {
            let ck1 = t.make_client(&[0, 1]);
            for i in 0..50 {
                numbers.push(put_at_least_once(&v, &ck1, &i.to_string(), &i.to_string(), 0).await);
            }
            t.sleep(ELECTION_TIMEOUT).await;
            b = put_at_least_once(&v, &ck1, "b", "B", 0).await;
        }
        let size = t.log_size();
        let limit = 8 * SNAPSHOTS.unwrap_or_default();
        t.verdict("log size", size <= limit, || format!("logs were not trimmed ({size} > {limit})"));
        t.partition(&[0, 2], &[1]);
        let c;
        {
            let ck1 = t.make_client(&[0, 2]);
            c = put_at_least_once(&v, &ck1, "c", "C", 0).await;
            put_at_least_once(&v, &ck1, "d", "D", 0).await;
            check(&v, &ck1, "a", "A", a).await;
            check(&v, &ck1, "b", "B", b).await;
            check(&v, &ck1, "1", "1", numbers[1]).await;
            check(&v, &ck1, "49", "49", numbers[49]).await;
        }
        t.partition(&[0, 1, 2], &[]);
        let e = put_at_least_once(&v, &ck, "e", "E", 0).await;
        check(&v, &ck, "c", "C", c).await;
        check(&v, &ck, "e", "E", e).await;
        check(&v, &ck, "1", "1", numbers[1]).await;
        v.check_linearizable();
        t.end();
    });
}

/// TestSnapshotSize4C: 200 rounds of Put x=0, Get, Put x=1, Get, each at the version the last
/// left; the Raft state stays under 8 × maxraftstate and the snapshot under 500 bytes.
#[test]
fn snapshot_size_4c() {
    run_kv_test(FILE, "snapshot_size_4c", 3, false, SNAPSHOTS, |t: Rc<KvTester>| async move {
        const MAX_SNAPSHOT_STATE: usize = 500;
        let v = VersionedTester::new(t.clone());
        let ck = t.make_client(&t.all());
        t.begin("Test: snapshot size is reasonable (4C)");
        let mut version = 0;
        for _ in 0..200 {
            version = put_at_least_once(&v, &ck, "x", "0", version).await;
            check(&v, &ck, "x", "0", version).await;
            version = put_at_least_once(&v, &ck, "x", "1", version).await;
            check(&v, &ck, "x", "1", version).await;
        }
        let size = t.log_size();
        let limit = 8 * SNAPSHOTS.unwrap_or_default();
        t.verdict("log size", size <= limit, || format!("logs were not trimmed ({size} > {limit})"));
        let snapshot_size = t.snapshot_size();
        t.verdict("snapshot size", snapshot_size <= MAX_SNAPSHOT_STATE, || format!("snapshot too large ({snapshot_size} > {MAX_SNAPSHOT_STATE})"));
        v.check_linearizable();
        t.end();
    });
}
