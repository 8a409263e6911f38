//! Lab 4 tests that are not GenericTest, shared by 4A and 4B.

#![allow(dead_code)] // each test file uses only some of these

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use sim::kv_tester::{check_client_appends, generic_test, run_kv_test_with, KvSetup, KvTester, Workload, ELECTION_TIMEOUT};
use sim::kvraft::ReadPath;
use sim::raft_tester::ms;

/// One lab test made of GenericTest, under `name`, for every selected seed.
pub fn generic(
    file: &'static str,
    name: &'static str,
    description: &'static str,
    servers: usize,
    unreliable: bool,
    max_raft_state: Option<usize>,
    workload: Workload,
) {
    let setup = KvSetup { servers, unreliable, max_raft_state, read_path: ReadPath::ReadIndex };
    generic_with(file, name, description, setup, workload);
}

/// `generic` on any setup (e.g. Gets without the log).
pub fn generic_with(file: &'static str, name: &'static str, description: &'static str, setup: KvSetup, workload: Workload) {
    run_kv_test_with(file, name, setup, move |t| async move {
        t.begin(description);
        generic_test(t.clone(), name, workload).await;
        t.end();
    });
}

pub const fn workload(clients: u64, crash: bool, partitions: bool, random_keys: bool) -> Workload {
    Workload { clients, crash, partitions, random_keys }
}

/// The lab's GenericTestSpeed: 1000 sequential Appends must average at most 100 ms / 3 each,
/// i.e. a leader must replicate at once rather than wait for its next heartbeat.
pub async fn speed_test(t: Rc<KvTester>, description: &'static str) {
    const OPERATIONS: u64 = 1000;
    let ck = t.make_client(&t.all());
    // Wait until we have a leader.
    t.get(&ck, "x", 0).await;
    t.begin(description);
    let start = t.sim.now();
    for i in 0..OPERATIONS {
        t.append(&ck, "x", &format!("x 0 {i} y"), 0).await;
    }
    let elapsed = t.sim.now() - start;
    let value = t.get(&ck, "x", 0).await;
    check_client_appends(0, &value, OPERATIONS);
    t.check_linearizable("speed");
    let bound = Duration::from_millis(100) / 3 * OPERATIONS as u32;
    assert!(elapsed <= bound, "Operations completed too slowly {:?}/op > {:?}/op", elapsed / OPERATIONS as u32, bound / OPERATIONS as u32);
    t.end();
}

/// The lab's TestUnreliableOneKey4A: 5 clients × 10 Appends to one key on an unreliable network;
/// each client's elements appear exactly once, in order.
pub async fn unreliable_one_key(t: Rc<KvTester>) {
    let ck = t.make_client(&t.all());
    t.begin("Test: concurrent append to same key, unreliable (4A)");
    t.put(&ck, "k", "", 0).await;
    const CLIENTS: u64 = 5;
    const UPTO: u64 = 10;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let t = t.clone();
            t.sim.clone().spawn(async move {
                let my_ck = t.make_client(&t.all());
                for n in 0..UPTO {
                    t.append(&my_ck, "k", &format!("x {me} {n} y"), me).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await;
    }
    let value = t.get(&ck, "k", 0).await;
    for me in 0..CLIENTS {
        check_client_appends(me, &value, UPTO);
    }
    // No linearizability check here (the lab has none either): fifty concurrent appends observed by
    // a single final read leave the checker to enumerate their orders, which is exponential.
    t.end();
}

/// The lab's TestOnePartition4A: progress in the majority, none in the minority (for 1 s), and
/// completion of the minority's requests after the heal (within 3 s; stricter than the lab, the Get
/// must complete too).
pub async fn one_partition(t: Rc<KvTester>) {
    let ck = t.make_client(&t.all());
    t.put(&ck, "1", "13", 0).await;

    t.begin("Test: progress in majority (4A)");
    let (p1, p2) = t.make_partition();
    t.partition(&p1, &p2);
    let ckp1 = t.make_client(&p1); // connect ckp1 to p1
    let ckp2a = Rc::new(t.make_client(&p2)); // connect ckp2a to p2
    let ckp2b = Rc::new(t.make_client(&p2)); // connect ckp2b to p2
    t.put(&ckp1, "1", "14", 0).await;
    t.check(&ckp1, "1", "14").await;
    t.end();

    let done0 = Rc::new(Cell::new(false));
    let done1 = Rc::new(Cell::new(false));
    t.begin("Test: no progress in minority (4A)");
    {
        let (t, ck, done) = (t.clone(), ckp2a.clone(), done0.clone());
        t.sim.clone().spawn(async move {
            t.put(&ck, "1", "15", 0).await;
            done.set(true);
        });
    }
    {
        let (t, ck, done) = (t.clone(), ckp2b.clone(), done1.clone());
        t.sim.clone().spawn(async move {
            t.get(&ck, "1", 0).await; // different clerk in p2
            done.set(true);
        });
    }
    t.sleep(ms(1000)).await;
    assert!(!done0.get(), "Put in minority completed");
    assert!(!done1.get(), "Get in minority completed");
    t.check(&ckp1, "1", "14").await;
    t.put(&ckp1, "1", "16", 0).await;
    t.check(&ckp1, "1", "16").await;
    t.end();

    t.begin("Test: completion after heal (4A)");
    t.connect_all();
    t.connect_client(&ckp2a, &t.all());
    t.connect_client(&ckp2b, &t.all());
    t.sleep(ELECTION_TIMEOUT).await;
    let healed = t.sim.now();
    while !(done0.get() && done1.get()) && t.sim.now() - healed < ms(3000) {
        t.sleep(ms(10)).await;
    }
    assert!(done0.get(), "Put did not complete");
    assert!(done1.get(), "Get did not complete");
    t.check(&ck, "1", "15").await;
    t.check_linearizable("one_partition");
    t.end();
}
