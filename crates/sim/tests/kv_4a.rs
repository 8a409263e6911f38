//! Lab 4A: the fault-tolerant KV service without snapshots (maxraftstate = -1). Each test is the
//! lab's test of the same name, in virtual time; every GenericTest history is checked for
//! linearizability.

mod kv_common;

use kv_common::{one_partition, speed_test, unreliable_one_key, workload};
use sim::kv_tester::{run_kv_test, Workload};

const FILE: &str = "kv_4a";

/// GenericTest without snapshots (maxraftstate = -1).
fn generic(name: &'static str, description: &'static str, servers: usize, unreliable: bool, workload: Workload) {
    kv_common::generic(FILE, name, description, servers, unreliable, None, workload);
}

#[test]
fn basic_4a() {
    generic("basic_4a", "Test: one client (4A)", 5, false, workload(1, false, false, false));
}

#[test]
fn speed_4a() {
    run_kv_test(FILE, "speed_4a", 3, false, None, |t| speed_test(t, "Test: ops complete fast enough (4A)"));
}

#[test]
fn concurrent_4a() {
    generic("concurrent_4a", "Test: many clients (4A)", 5, false, workload(5, false, false, false));
}

#[test]
fn unreliable_4a() {
    generic("unreliable_4a", "Test: unreliable net, many clients (4A)", 5, true, workload(5, false, false, false));
}

#[test]
fn unreliable_one_key_4a() {
    run_kv_test(FILE, "unreliable_one_key_4a", 3, true, None, unreliable_one_key);
}

#[test]
fn one_partition_4a() {
    run_kv_test(FILE, "one_partition_4a", 5, false, None, one_partition);
}

#[test]
fn many_partitions_one_client_4a() {
    generic("many_partitions_one_client_4a", "Test: partitions, one client (4A)", 5, false, workload(1, false, true, false));
}

#[test]
fn many_partitions_many_clients_4a() {
    generic("many_partitions_many_clients_4a", "Test: partitions, many clients (4A)", 5, false, workload(5, false, true, false));
}

#[test]
fn persist_one_client_4a() {
    generic("persist_one_client_4a", "Test: restarts, one client (4A)", 5, false, workload(1, true, false, false));
}

#[test]
fn persist_concurrent_4a() {
    generic("persist_concurrent_4a", "Test: restarts, many clients (4A)", 5, false, workload(5, true, false, false));
}

#[test]
fn persist_concurrent_unreliable_4a() {
    generic(
        "persist_concurrent_unreliable_4a",
        "Test: unreliable net, restarts, many clients (4A)",
        5,
        true,
        workload(5, true, false, false),
    );
}

#[test]
fn persist_partition_4a() {
    generic("persist_partition_4a", "Test: restarts, partitions, many clients (4A)", 5, false, workload(5, true, true, false));
}

#[test]
fn persist_partition_unreliable_4a() {
    generic(
        "persist_partition_unreliable_4a",
        "Test: unreliable net, restarts, partitions, many clients (4A)",
        5,
        true,
        workload(5, true, true, false),
    );
}

#[test]
fn persist_partition_unreliable_linearizable_4a() {
    generic(
        "persist_partition_unreliable_linearizable_4a",
        "Test: unreliable net, restarts, partitions, random keys, many clients (4A)",
        7,
        true,
        workload(15, true, true, true),
    );
}
