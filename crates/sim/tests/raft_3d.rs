//! Lab 3D: log compaction and snapshots. Each test is the lab's test of the same name, in virtual
//! time, with the lab's snapshot applier (the tester snapshots at indices 9, 19, 29, ...).

use std::rc::Rc;

use sim::raft_tester::{cmd, run_raft_test, Tester, MAX_LOG_SIZE, SNAPSHOT_INTERVAL};

const FILE: &str = "raft_3d";

/// The lab's `rand.Int()`: a non-negative 63-bit integer, from the run's randomness.
fn rand_int(t: &Tester) -> u64 {
    t.rng.u64() >> 1
}

/// The lab's `snapcommon`: 30 rounds of load with a victim that is cut off, crashed, or neither.
async fn snapcommon(t: Rc<Tester>, name: &'static str, disconnect: bool, reliable: bool, crash: bool) {
    const ITERATIONS: usize = 30;
    let servers = t.n;
    assert_eq!(servers, 3);
    // `snap_test` already made the network as `reliable` says (setting it again changes nothing).
    t.set_reliable(reliable);
    t.begin(name);

    t.one(cmd(rand_int(&t)), servers, true).await;
    let mut leader1 = t.check_one_leader().await;

    for i in 0..ITERATIONS {
        let mut victim = (leader1 + 1) % servers;
        let mut sender = leader1;
        if i % 3 == 1 {
            sender = (leader1 + 1) % servers;
            victim = leader1;
        }

        if disconnect {
            t.disconnect(victim);
            t.one(cmd(rand_int(&t)), servers - 1, true).await;
        }
        if crash {
            t.crash1(victim);
            t.one(cmd(rand_int(&t)), servers - 1, true).await;
        }

        // Perhaps send enough to get a snapshot.
        let nn = SNAPSHOT_INTERVAL / 2 + t.rng.below(SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let raft = t.raft(sender).expect("the sender is never the victim, so it is alive");
            raft.start(cmd(rand_int(&t)));
        }

        // Let the appliers catch up with the starts.
        if !disconnect && !crash {
            // Make sure all followers have caught up, so that no InstallSnapshot is needed for
            // snapshot_basic_3d.
            t.one(cmd(rand_int(&t)), servers, true).await;
        } else {
            t.one(cmd(rand_int(&t)), servers - 1, true).await;
        }

        let size = t.log_size();
        assert!(size < MAX_LOG_SIZE, "Log size too large: {size} bytes (limit {MAX_LOG_SIZE})");

        if disconnect {
            // Reconnect a follower, who may be behind and need a snapshot to catch up.
            t.connect(victim);
            t.one(cmd(rand_int(&t)), servers, true).await;
            leader1 = t.check_one_leader().await;
        }
        if crash {
            t.start1(victim);
            t.connect(victim);
            t.one(cmd(rand_int(&t)), servers, true).await;
            leader1 = t.check_one_leader().await;
        }
    }
    t.end();
}

/// One scenario test: a 3-server cluster in snapshot mode, reliable or not, running `snapcommon`.
fn snap_test(test_name: &str, description: &'static str, disconnect: bool, reliable: bool, crash: bool) {
    run_raft_test(FILE, test_name, 3, reliable, true, move |t| snapcommon(t, description, disconnect, reliable, crash));
}

#[test]
fn snapshot_basic_3d() {
    snap_test("snapshot_basic_3d", "Test (3D): snapshots basic", false, true, false);
}

#[test]
fn snapshot_install_3d() {
    snap_test("snapshot_install_3d", "Test (3D): install snapshots (disconnect)", true, true, false);
}

#[test]
fn snapshot_install_unreliable_3d() {
    snap_test("snapshot_install_unreliable_3d", "Test (3D): install snapshots (disconnect+unreliable)", true, false, false);
}

#[test]
fn snapshot_install_crash_3d() {
    snap_test("snapshot_install_crash_3d", "Test (3D): install snapshots (crash)", false, true, true);
}

#[test]
fn snapshot_install_uncrash_3d() {
    snap_test("snapshot_install_uncrash_3d", "Test (3D): install snapshots (unreliable+crash)", false, false, true);
}

#[test]
fn snapshot_all_crash_3d() {
    run_raft_test(FILE, "snapshot_all_crash_3d", 3, true, true, |t| async move {
        let servers = t.n;
        t.begin("Test (3D): crash and restart all servers");
        t.one(cmd(rand_int(&t)), servers, true).await;

        for _ in 0..5 {
            // Perhaps enough to get a snapshot.
            let nn = SNAPSHOT_INTERVAL / 2 + t.rng.below(SNAPSHOT_INTERVAL);
            for _ in 0..nn {
                t.one(cmd(rand_int(&t)), servers, true).await;
            }
            let index1 = t.one(cmd(rand_int(&t)), servers, true).await;

            // Crash all, then revive all.
            for i in 0..servers {
                t.crash1(i);
            }
            for i in 0..servers {
                t.start1(i);
                t.connect(i);
            }

            let index2 = t.one(cmd(rand_int(&t)), servers, true).await;
            assert!(index2 >= index1 + 1, "index decreased from {index1} to {index2}");
        }
        t.end();
    });
}

#[test]
fn snapshot_init_3d() {
    run_raft_test(FILE, "snapshot_init_3d", 3, true, true, |t| async move {
        let servers = t.n;
        t.begin("Test (3D): snapshot initialization after crash");
        t.one(cmd(rand_int(&t)), servers, true).await;

        // Enough ops to make a snapshot.
        for _ in 0..SNAPSHOT_INTERVAL + 1 {
            t.one(cmd(rand_int(&t)), servers, true).await;
        }

        // Crash all, then revive all.
        for i in 0..servers {
            t.crash1(i);
        }
        for i in 0..servers {
            t.start1(i);
            t.connect(i);
        }

        // A single op, to get something written back to persistent storage.
        t.one(cmd(rand_int(&t)), servers, true).await;

        // Crash all, then revive all.
        for i in 0..servers {
            t.crash1(i);
        }
        for i in 0..servers {
            t.start1(i);
            t.connect(i);
        }

        // Another op, to trigger the potential bug.
        t.one(cmd(rand_int(&t)), servers, true).await;
        t.end();
    });
}
