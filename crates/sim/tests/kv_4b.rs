//! Lab 4B: the fault-tolerant KV service with snapshots (maxraftstate = 1000). Each test is the
//! lab's test of the same name, in virtual time; every GenericTest history is checked for
//! linearizability, and the Raft state must stay within 8 × maxraftstate.

mod kv_common;

use kv_common::{speed_test, workload};
use sim::kv_tester::{run_kv_test, Workload, ELECTION_TIMEOUT};

const FILE: &str = "kv_4b";
const MAX_RAFT_STATE: usize = 1000;

/// GenericTest with snapshots (maxraftstate = 1000).
fn generic(name: &'static str, description: &'static str, servers: usize, unreliable: bool, workload: Workload) {
    kv_common::generic(FILE, name, description, servers, unreliable, Some(MAX_RAFT_STATE), workload);
}

#[test]
fn snapshot_rpc_4b() {
    run_kv_test(FILE, "snapshot_rpc_4b", 3, false, Some(MAX_RAFT_STATE), |t| async move {
        let ck = t.make_client(&t.all());
        t.begin("Test: InstallSnapshot RPC (4B)");
        t.put(&ck, "a", "A", 0).await;
        t.check(&ck, "a", "A").await;
        // A bunch of puts into the majority partition.
        t.partition(&[0, 1], &[2]);
        {
            let ck1 = t.make_client(&[0, 1]);
            for i in 0..50 {
                t.put(&ck1, &i.to_string(), &i.to_string(), 0).await;
            }
            t.sleep(ELECTION_TIMEOUT).await;
            t.put(&ck1, "b", "B", 0).await;
        }
        // The majority must have thrown away most of its log although server 2 does not answer.
        let size = t.log_size();
        assert!(size <= 8 * MAX_RAFT_STATE, "logs were not trimmed ({size} > 8*{MAX_RAFT_STATE})");
        // A group that needs the lagging server, which must catch up (by InstallSnapshot).
        t.partition(&[0, 2], &[1]);
        {
            let ck1 = t.make_client(&[0, 2]);
            t.put(&ck1, "c", "C", 0).await;
            t.put(&ck1, "d", "D", 0).await;
            t.check(&ck1, "a", "A").await;
            t.check(&ck1, "b", "B").await;
            t.check(&ck1, "1", "1").await;
            t.check(&ck1, "49", "49").await;
        }
        // Now everybody.
        t.partition(&[0, 1, 2], &[]);
        t.put(&ck, "e", "E", 0).await;
        t.check(&ck, "c", "C").await;
        t.check(&ck, "e", "E").await;
        t.check(&ck, "1", "1").await;
        t.check_linearizable("snapshot_rpc_4b");
        t.end();
    });
}

#[test]
fn snapshot_size_4b() {
    run_kv_test(FILE, "snapshot_size_4b", 3, false, Some(MAX_RAFT_STATE), |t| async move {
        let max_snapshot_state = 500;
        let ck = t.make_client(&t.all());
        t.begin("Test: snapshot size is reasonable (4B)");
        for _ in 0..200 {
            t.put(&ck, "x", "0", 0).await;
            t.check(&ck, "x", "0").await;
            t.put(&ck, "x", "1", 0).await;
            t.check(&ck, "x", "1").await;
        }
        let size = t.log_size();
        assert!(size <= 8 * MAX_RAFT_STATE, "logs were not trimmed ({size} > 8*{MAX_RAFT_STATE})");
        let snapshot_size = t.snapshot_size();
        assert!(snapshot_size <= max_snapshot_state, "snapshot too large ({snapshot_size} > {max_snapshot_state})");
        t.check_linearizable("snapshot_size_4b");
        t.end();
    });
}

#[test]
fn speed_4b() {
    run_kv_test(FILE, "speed_4b", 3, false, Some(MAX_RAFT_STATE), |t| speed_test(t, "Test: ops complete fast enough (4B)"));
}

#[test]
fn snapshot_recover_4b() {
    generic("snapshot_recover_4b", "Test: restarts, snapshots, one client (4B)", 5, false, workload(1, true, false, false));
}

#[test]
fn snapshot_recover_many_clients_4b() {
    generic(
        "snapshot_recover_many_clients_4b",
        "Test: restarts, snapshots, many clients (4B)",
        5,
        false,
        workload(20, true, false, false),
    );
}

#[test]
fn snapshot_unreliable_4b() {
    generic("snapshot_unreliable_4b", "Test: unreliable net, snapshots, many clients (4B)", 5, true, workload(5, false, false, false));
}

#[test]
fn snapshot_unreliable_recover_4b() {
    generic(
        "snapshot_unreliable_recover_4b",
        "Test: unreliable net, restarts, snapshots, many clients (4B)",
        5,
        true,
        workload(5, true, false, false),
    );
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_4b() {
    generic(
        "snapshot_unreliable_recover_concurrent_partition_4b",
        "Test: unreliable net, restarts, partitions, snapshots, many clients (4B)",
        5,
        true,
        workload(5, true, true, false),
    );
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_linearizable_4b() {
    generic(
        "snapshot_unreliable_recover_concurrent_partition_linearizable_4b",
        "Test: unreliable net, restarts, partitions, snapshots, random keys, many clients (4B)",
        7,
        true,
        workload(15, true, true, true),
    );
}
