//! The 2025 Lab 4 tests (`LAB-TESTS-2025.md` §6): the replicated KV with the versioned Put, run by
//! the production node — raftkv's VGET and VSET through Raft on 3 to 7 nodes, with an unreliable
//! network, partitions and whole-cluster crashes as each test asks, and snapshots (4C) at the
//! lab's maxraftstate. Every iteration's history is checked with the versioned model (Gets'
//! versions included). Not ported yet: TestOnePartition4B, TestSnapshotRPC4C, TestSnapshotSize4C.

use std::rc::Rc;
use std::time::Duration;

use sim::kv_tester::{run_kv_test, KvTester, Workload};
use sim::kvraft::PutOutcome;
use sim::kvsrv_tester::{generic_test, VersionedTester};

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
