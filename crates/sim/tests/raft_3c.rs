//! Lab 3C: persistence. Each test is the lab's test of the same name, in virtual time.

use std::cell::Cell;
use std::rc::Rc;

use sim::raft_tester::{cmd, ms, run_raft_test, Tester, ELECTION_TIMEOUT};

const FILE: &str = "raft_3c";

/// The lab's `rand.Int()`: a non-negative 63-bit integer, from the run's randomness.
fn rand_int(t: &Tester) -> u64 {
    t.rng.u64() >> 1
}

/// Whether a committed command is one of the tests' integers (the lab's "not an int" checks).
fn as_int(command: &[u8]) -> Option<u64> {
    let mut reader = raft::codec::Reader::new(command);
    let value = reader.varint().ok()?;
    reader.finish().ok()?;
    Some(value)
}

#[test]
fn persist1_3c() {
    run_raft_test(FILE, "persist1_3c", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3C): basic persistence");
        t.one(cmd(11), servers, true).await;
        // Crash and restart all.
        for i in 0..servers {
            t.start1(i);
        }
        for i in 0..servers {
            t.disconnect(i);
            t.connect(i);
        }
        t.one(cmd(12), servers, true).await;

        let leader1 = t.check_one_leader().await;
        t.disconnect(leader1);
        t.start1(leader1);
        t.connect(leader1);
        t.one(cmd(13), servers, true).await;

        let leader2 = t.check_one_leader().await;
        t.disconnect(leader2);
        t.one(cmd(14), servers - 1, true).await;
        t.start1(leader2);
        t.connect(leader2);
        // Wait for leader2 to join before killing i3.
        t.wait(4, servers, None).await;

        let i3 = (t.check_one_leader().await + 1) % servers;
        t.disconnect(i3);
        t.one(cmd(15), servers - 1, true).await;
        t.start1(i3);
        t.connect(i3);
        t.one(cmd(16), servers, true).await;
        t.end();
    });
}

#[test]
fn persist2_3c() {
    run_raft_test(FILE, "persist2_3c", 5, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3C): more persistence");
        let mut index = 1;
        for _ in 0..5 {
            t.one(cmd(10 + index), servers, true).await;
            index += 1;

            let leader1 = t.check_one_leader().await;
            t.disconnect((leader1 + 1) % servers);
            t.disconnect((leader1 + 2) % servers);
            t.one(cmd(10 + index), servers - 2, true).await;
            index += 1;

            t.disconnect(leader1 % servers);
            t.disconnect((leader1 + 3) % servers);
            t.disconnect((leader1 + 4) % servers);

            // These two missed the last entry.
            t.start1((leader1 + 1) % servers);
            t.start1((leader1 + 2) % servers);
            t.connect((leader1 + 1) % servers);
            t.connect((leader1 + 2) % servers);
            t.sleep(ELECTION_TIMEOUT).await;

            // This one holds the last entry; with the persisted term, vote and log it must win.
            t.start1((leader1 + 3) % servers);
            t.connect((leader1 + 3) % servers);
            t.one(cmd(10 + index), servers - 2, true).await;
            index += 1;

            t.connect((leader1 + 4) % servers);
            t.connect(leader1 % servers);
        }
        t.one(cmd(1000), servers, true).await;
        t.end();
    });
}

#[test]
fn persist3_3c() {
    run_raft_test(FILE, "persist3_3c", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3C): partitioned leader and one follower crash, leader restarts");
        t.one(cmd(101), 3, true).await;

        let leader = t.check_one_leader().await;
        t.disconnect((leader + 2) % servers);
        t.one(cmd(102), 2, true).await;

        t.crash1(leader % servers);
        t.crash1((leader + 1) % servers);
        t.connect((leader + 2) % servers);
        t.start1(leader % servers);
        t.connect(leader % servers);
        t.one(cmd(103), 2, true).await;

        t.start1((leader + 1) % servers);
        t.connect((leader + 1) % servers);
        t.one(cmd(104), servers, true).await;
        t.end();
    });
}

/// The lab's Figure-8 sleep: with probability 10 %, U[0, ET/2) ms; otherwise U[0, 13) ms.
async fn figure8_sleep(t: &Tester) {
    if t.rng.below(1000) < 100 {
        let half_et = ELECTION_TIMEOUT.as_millis() as u64 / 2;
        t.sleep(ms(t.rng.below(half_et))).await;
    } else {
        t.sleep(ms(t.rng.below(13))).await;
    }
}

#[test]
fn figure8_3c() {
    run_raft_test(FILE, "figure8_3c", 5, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3C): Figure 8");
        t.one(cmd(rand_int(&t)), 1, true).await;

        let mut nup = servers;
        for _ in 0..1000 {
            let mut leader = None;
            for i in 0..servers {
                if let Some(raft) = t.raft(i) {
                    let (_, _, is_leader) = raft.start(cmd(rand_int(&t)));
                    if is_leader {
                        leader = Some(i);
                    }
                }
            }
            figure8_sleep(&t).await;
            if let Some(leader) = leader {
                t.crash1(leader);
                nup -= 1;
            }
            if nup < 3 {
                let s = t.rng.below(servers as u64) as usize;
                if t.raft(s).is_none() {
                    t.start1(s);
                    t.connect(s);
                    nup += 1;
                }
            }
        }

        for i in 0..servers {
            if t.raft(i).is_none() {
                t.start1(i);
                t.connect(i);
            }
        }
        t.one(cmd(rand_int(&t)), servers, true).await;
        t.end();
    });
}

#[test]
fn unreliable_agree_3c() {
    run_raft_test(FILE, "unreliable_agree_3c", 5, false, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3C): unreliable agreement");
        let mut handles = Vec::new();
        for iteration in 1..50u64 {
            for j in 0..4u64 {
                let tester = t.clone();
                handles.push(t.sim.spawn(async move {
                    tester.one(cmd(100 * iteration + j), 1, true).await;
                }));
            }
            t.one(cmd(iteration), 1, true).await;
        }
        t.set_reliable(true);
        for handle in handles {
            handle.await;
        }
        t.one(cmd(100), servers, true).await;
        t.end();
    });
}

#[test]
fn figure8_unreliable_3c() {
    run_raft_test(FILE, "figure8_unreliable_3c", 5, false, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3C): Figure 8 (unreliable)");
        t.one(cmd(rand_int(&t) % 10_000), 1, true).await;

        let mut nup = servers;
        for iteration in 0..1000 {
            if iteration == 200 {
                t.set_long_reordering(true);
            }
            let mut leader = None;
            for i in 0..servers {
                // Every server, connected or not (none is crashed in this test).
                let raft = t.raft(i).expect("no server is crashed in this test");
                let (_, _, is_leader) = raft.start(cmd(rand_int(&t) % 10_000));
                if is_leader && t.is_connected(i) {
                    leader = Some(i);
                }
            }
            figure8_sleep(&t).await;
            if let Some(leader) = leader {
                let half_et = ELECTION_TIMEOUT.as_millis() as u64 / 2;
                if t.rng.below(1000) < half_et {
                    t.disconnect(leader);
                    nup -= 1;
                }
            }
            if nup < 3 {
                let s = t.rng.below(servers as u64) as usize;
                if !t.is_connected(s) {
                    t.connect(s);
                    nup += 1;
                }
            }
        }

        for i in 0..servers {
            if !t.is_connected(i) {
                t.connect(i);
            }
        }
        // Still unreliable, with long reordering still on.
        t.one(cmd(rand_int(&t) % 10_000), servers, true).await;
        t.end();
    });
}

/// One churn client (the lab's `cfn`): proposes random values to every live server until told to
/// stop, and returns the values it saw committed at the index a leader gave it.
async fn churn_client(t: Rc<Tester>, me: u64, stop: Rc<Cell<bool>>) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    while !stop.get() {
        let x = cmd(rand_int(&t));
        let mut accepted = None;
        for i in 0..t.n {
            // Try them all (connected or not); maybe one of them is a leader.
            if let Some(raft) = t.raft(i) {
                let (index, _, is_leader) = raft.start(x.clone());
                if is_leader {
                    accepted = Some(index);
                }
            }
        }
        if let Some(index) = accepted {
            // Maybe the leader will commit our value, maybe not; but don't wait forever.
            for pause in [10, 20, 50, 100, 200] {
                let (count, command) = t.n_committed(index);
                if count > 0 {
                    let command = command.expect("a committed index has a command");
                    assert!(as_int(&command).is_some(), "wrong command type");
                    if command == x {
                        values.push(x.clone());
                    }
                    break;
                }
                t.sleep(ms(pause)).await;
            }
        } else {
            t.sleep(ms(79 + me * 17)).await;
        }
    }
    values
}

/// The lab's `internalChurn`.
async fn churn(t: Rc<Tester>, unreliable: bool) {
    let servers = t.n;
    if unreliable {
        t.begin("Test (3C): unreliable churn");
    } else {
        t.begin("Test (3C): churn");
    }
    let stop = Rc::new(Cell::new(false));
    let clients: Vec<_> = (0..3).map(|me| t.sim.spawn(churn_client(t.clone(), me, stop.clone()))).collect();

    for _ in 0..20 {
        if t.rng.below(1000) < 200 {
            let i = t.rng.below(servers as u64) as usize;
            t.disconnect(i);
        }
        if t.rng.below(1000) < 500 {
            let i = t.rng.below(servers as u64) as usize;
            if t.raft(i).is_none() {
                t.start1(i);
            }
            t.connect(i);
        }
        if t.rng.below(1000) < 200 {
            let i = t.rng.below(servers as u64) as usize;
            if t.raft(i).is_some() {
                t.crash1(i);
            }
        }
        // Often enough that peers are still catching up from one change to the next, rarely
        // enough that they often can: a bit less than the election timeout.
        t.sleep(ELECTION_TIMEOUT * 7 / 10).await;
    }

    t.sleep(ELECTION_TIMEOUT).await;
    t.set_reliable(true);
    for i in 0..servers {
        if t.raft(i).is_none() {
            t.start1(i);
        }
        t.connect(i);
    }

    stop.set(true);
    let mut values = Vec::new();
    for client in clients {
        // A client that failed panics, which fails the test (the lab's "client failed").
        values.extend(client.await);
    }

    t.sleep(ELECTION_TIMEOUT).await;

    let last_index = t.one(cmd(rand_int(&t)), servers, true).await;
    let mut really = Vec::new();
    for index in 1..=last_index {
        let value = t.wait(index, servers, None).await.expect("wait without a start term gives a value");
        assert!(as_int(&value).is_some(), "not an int");
        really.push(value);
    }
    for value in &values {
        assert!(really.contains(value), "didn't find a value");
    }
    t.end();
}

#[test]
fn reliable_churn_3c() {
    run_raft_test(FILE, "reliable_churn_3c", 5, true, false, |t| churn(t, false));
}

#[test]
fn unreliable_churn_3c() {
    run_raft_test(FILE, "unreliable_churn_3c", 5, false, false, |t| churn(t, true));
}
