//! The KV service with Gets served without the log: under leader leases (`ReadPath::Lease`, the
//! clock assumptions in `crates/raft/src/lease.rs`), and for comparison by ReadIndex. The scenarios
//! are the lab's GenericTest ones with partitions, whole-cluster crashes and an unreliable network,
//! plus TestOnePartition, so every history is checked for linearizability. In the simulator every
//! node ticks on one virtual clock (no drift, no pauses); the restarts exercise the restart fence.
//!
//! `SIM_SEEDS=20 cargo test --release -p sim --test kv_lease` runs 20 seeds of each.

mod kv_common;

use std::rc::Rc;

use kv_common::{generic_with, one_partition, workload};
use sim::kv_tester::{run_kv_test_with, KvSetup, KvTester, Workload, ELECTION_TIMEOUT};
use sim::kvraft::ReadPath;
use sim::raft_tester::ms;

const FILE: &str = "kv_lease";

fn setup(servers: usize, unreliable: bool, max_raft_state: Option<usize>, read_path: ReadPath) -> KvSetup {
    KvSetup { servers, unreliable, max_raft_state, read_path }
}

fn lease(name: &'static str, description: &'static str, servers: usize, unreliable: bool, snapshots: bool, load: Workload) {
    let max_raft_state = snapshots.then_some(1000);
    generic_with(FILE, name, description, setup(servers, unreliable, max_raft_state, ReadPath::Lease), load);
}

/// A leader cut off in the minority must not answer a Get once the majority can have moved on, and
/// its lease must not outlive that; the minority's Get completes after the heal.
#[test]
fn lease_one_partition() {
    run_kv_test_with(FILE, "lease_one_partition", setup(5, false, None, ReadPath::Lease), one_partition);
}

#[test]
fn lease_partitions_many_clients() {
    lease("lease_partitions_many_clients", "Test: leases, partitions, many clients", 5, false, false, workload(5, false, true, false));
}

#[test]
fn lease_restarts_partitions_unreliable() {
    lease(
        "lease_restarts_partitions_unreliable",
        "Test: leases, unreliable net, restarts, partitions, many clients",
        5,
        true,
        false,
        workload(5, true, true, false),
    );
}

#[test]
fn lease_restarts_partitions_unreliable_random_keys() {
    lease(
        "lease_restarts_partitions_unreliable_random_keys",
        "Test: leases, unreliable net, restarts, partitions, random keys, many clients",
        7,
        true,
        false,
        workload(15, true, true, true),
    );
}

#[test]
fn lease_snapshots_restarts_partitions_unreliable() {
    lease(
        "lease_snapshots_restarts_partitions_unreliable",
        "Test: leases, unreliable net, restarts, partitions, snapshots, many clients",
        5,
        true,
        true,
        workload(5, true, true, false),
    );
}

/// The same scenario with ReadIndex, the path a lapsed lease falls back to.
#[test]
fn read_index_restarts_partitions_unreliable() {
    generic_with(
        FILE,
        "read_index_restarts_partitions_unreliable",
        "Test: ReadIndex, unreliable net, restarts, partitions, many clients",
        setup(5, true, None, ReadPath::ReadIndex),
        workload(5, true, true, false),
    );
}

/// Clock assumption (c), end to end. A follower `f` answers the leader's heartbeats, then reboots
/// straight into the other side of a partition, with `c`, which stopped hearing from the leader
/// long ago (and whose log is as up to date, since nothing was written meanwhile). The leader, cut
/// off, still holds the lease `f`'s answers gave it. Without the restart fence `f` would vote for
/// `c` at once, and a Put through the new leader could complete while the old one still answered
/// Gets from its lease: a stale read. With the fence, `c` can win only after the lease is over.
/// Each round is a chance for `c`'s election timer to fire inside the lease; four rounds per seed.
#[test]
fn lease_survives_a_follower_reboot() {
    run_kv_test_with(FILE, "lease_survives_a_follower_reboot", setup(3, false, None, ReadPath::Lease), |t| async move {
        t.begin("Test: leases, a follower reboots into the other side of a partition");
        let ck = t.make_client(&t.all());
        for round in 0..4usize {
            let old = format!("old {round}");
            t.put(&ck, "k", &old, 0).await;
            t.sleep(ELECTION_TIMEOUT).await;
            let Some(leader) = t.leader() else { panic!("round {round}: no leader on a healthy cluster") };
            let followers: Vec<usize> = t.all().into_iter().filter(|&i| i != leader).collect();
            let (f, c) = (followers[round % 2], followers[1 - round % 2]);
            // This clerk only reaches the leader, and asks it first from now on.
            let at_leader = Rc::new(t.make_client(&[leader]));
            t.check(&at_leader, "k", &old).await;
            t.partition(&[leader, f], &[c]);
            t.sleep(ELECTION_TIMEOUT).await;
            // The instant: f forgets the heartbeat it just answered, and can only reach c.
            t.shutdown_server(f);
            t.start_server(f);
            t.partition(&[f, c], &[leader]);
            let new = format!("new {round}");
            t.put(&t.make_client(&[f, c]), "k", &new, 0).await;
            let get = {
                let (t, clerk) = (t.clone(), at_leader.clone());
                t.sim.clone().spawn(async move { t.get(&clerk, "k", 0).await })
            };
            t.sleep(ms(500)).await;
            t.connect_all();
            t.connect_client(&at_leader, &t.all());
            let got = get.await;
            assert!(got == new, "round {round}: a Get begun after the Put of {new:?} completed returned {got:?}");
        }
        t.check_linearizable("lease_survives_a_follower_reboot");
        t.end();
    });
}

const GETS: u64 = 200;

/// `GETS` sequential Gets at the leader of a quiet, healthy cluster; returns the RPCs sent
/// meanwhile (the clerk's calls and the Raft requests; responses are not counted). The clerk asks
/// the leader itself, so that no Get is forwarded.
async fn rpcs_for_gets(t: Rc<KvTester>) -> u64 {
    t.put(&t.make_client(&t.all()), "k", "v", 0).await;
    t.sleep(ms(1000)).await;
    let Some(leader) = t.leader() else { panic!("no leader on a quiet, healthy cluster") };
    let ck = t.make_client(&[leader]);
    let before = t.net.total_rpcs();
    for _ in 0..GETS {
        t.check(&ck, "k", "v").await;
    }
    t.net.total_rpcs() - before
}

/// In steady state the lease is what answers: no heartbeat round per Get (only the clerk's call
/// and the periodic heartbeats), where ReadIndex sends one request per follower per Get.
#[test]
fn lease_reads_spare_the_heartbeat_round() {
    run_kv_test_with(FILE, "lease_reads_spare_the_heartbeat_round", setup(3, false, None, ReadPath::Lease), |t| async move {
        t.begin("Test: leases answer Gets without a heartbeat round");
        let rpcs = rpcs_for_gets(t.clone()).await;
        println!("  {GETS} Gets under a lease: {rpcs} RPCs");
        assert!(rpcs < GETS + GETS / 2, "{rpcs} RPCs for {GETS} Gets: the lease is not being used");
        t.check_linearizable("lease_reads_spare_the_heartbeat_round");
        t.end();
    });
    run_kv_test_with(FILE, "lease_reads_spare_the_heartbeat_round", setup(3, false, None, ReadPath::ReadIndex), |t| async move {
        t.begin("Test: ReadIndex sends a round per Get");
        let rpcs = rpcs_for_gets(t.clone()).await;
        println!("  {GETS} Gets by ReadIndex: {rpcs} RPCs");
        assert!(rpcs >= 3 * GETS, "{rpcs} RPCs for {GETS} Gets: expected a round (2 requests) per Get");
        t.end();
    });
}
