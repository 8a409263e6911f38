//! Lab 3B: log replication. Each test is the lab's test of the same name, in virtual time.

use sim::raft_tester::{cmd, ms, run_raft_test, Tester, ELECTION_TIMEOUT};

const FILE: &str = "raft_3b";

/// The number a test command encodes, or None if it is not a number (the lab's "is not an int").
fn number(command: &[u8]) -> Option<u64> {
    let mut reader = raft::codec::Reader::new(command);
    let value = reader.varint().ok()?;
    reader.finish().ok()?;
    Some(value)
}

/// A random command, as the lab's `rand.Int()`: a non-negative 63-bit number.
fn random_cmd(t: &Tester) -> Vec<u8> {
    cmd(t.rng.u64() >> 1)
}

/// The lab's `randstring(n)`: n random printable ASCII characters (base64's URL alphabet).
fn random_string(t: &Tester, n: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..n).map(|_| ALPHABET[t.rng.below(ALPHABET.len() as u64) as usize]).collect()
}

/// The sum of the per-server incoming RPC counts (handler dispatches), as the lab's `rpcs()`.
fn rpcs(t: &Tester) -> u64 {
    t.rpc_count()
}

#[test]
fn basic_agree_3b() {
    run_raft_test(FILE, "basic_agree_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): basic agreement");
        let iters = 3;
        for index in 1..=iters {
            let (nd, _) = t.n_committed(index);
            assert!(nd == 0, "some have committed before Start()");
            let xindex = t.one(cmd(index * 100), servers, false).await;
            assert_eq!(xindex, index, "got index {xindex} but expected {index}");
        }
        t.end();
    });
}

/// Each command should be sent to each peer about once.
#[test]
fn rpc_bytes_3b() {
    run_raft_test(FILE, "rpc_bytes_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): RPC byte count");
        t.one(cmd(99), servers, false).await;
        let bytes0 = t.bytes_total();
        let iters = 10;
        let mut sent: u64 = 0;
        for index in 2..iters + 2 {
            let command = random_string(&t, 5000);
            let length = command.len() as u64;
            let xindex = t.one(command, servers, false).await;
            assert_eq!(xindex, index, "got index {xindex} but expected {index}");
            sent += length;
        }
        let bytes1 = t.bytes_total();
        let got = bytes1 - bytes0;
        let expected = servers as u64 * sent;
        assert!(got <= expected + 50_000, "too many RPC bytes; got {got}, expected {expected}");
        t.end();
    });
}

/// Agreement despite a disconnected follower, and none once the leader is alone.
#[test]
fn follower_failure_3b() {
    run_raft_test(FILE, "follower_failure_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): test progressive failure of followers");
        t.one(cmd(101), servers, false).await;
        // Disconnect one follower from the network.
        let leader1 = t.check_one_leader().await;
        t.disconnect((leader1 + 1) % servers);
        // The leader and the remaining follower should be able to agree despite the disconnected follower.
        t.one(cmd(102), servers - 1, false).await;
        t.sleep(ELECTION_TIMEOUT).await;
        t.one(cmd(103), servers - 1, false).await;
        // Disconnect the remaining follower.
        let leader2 = t.check_one_leader().await;
        t.disconnect((leader2 + 1) % servers);
        t.disconnect((leader2 + 2) % servers);
        // Submit a command.
        let (index, _, ok) = t.raft(leader2).expect("leader2 is alive").start(cmd(104));
        assert!(ok, "leader rejected Start()");
        assert_eq!(index, 4, "expected index 4, got {index}");
        t.sleep(2 * ELECTION_TIMEOUT).await;
        // Check that command 104 did not commit.
        let (n, _) = t.n_committed(index);
        assert!(n == 0, "{n} committed but no majority");
        t.end();
    });
}

/// Agreement after the leader fails, and none once every server is cut off.
#[test]
fn leader_failure_3b() {
    run_raft_test(FILE, "leader_failure_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): test failure of leaders");
        t.one(cmd(101), servers, false).await;
        // Disconnect the first leader.
        let leader1 = t.check_one_leader().await;
        t.disconnect(leader1);
        // The remaining followers should elect a new leader.
        t.one(cmd(102), servers - 1, false).await;
        t.sleep(ELECTION_TIMEOUT).await;
        t.one(cmd(103), servers - 1, false).await;
        // Disconnect the new leader.
        let leader2 = t.check_one_leader().await;
        t.disconnect(leader2);
        // Submit a command to each server.
        for i in 0..servers {
            if let Some(raft) = t.raft(i) {
                raft.start(cmd(104));
            }
        }
        t.sleep(2 * ELECTION_TIMEOUT).await;
        // Check that command 104 did not commit.
        let (n, _) = t.n_committed(4);
        assert!(n == 0, "{n} committed but no majority");
        t.end();
    });
}

/// A follower that was disconnected catches up when it rejoins.
#[test]
fn fail_agree_3b() {
    run_raft_test(FILE, "fail_agree_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): agreement after follower reconnects");
        t.one(cmd(101), servers, false).await;
        // Disconnect one follower from the network.
        let leader = t.check_one_leader().await;
        t.disconnect((leader + 1) % servers);
        // The leader and the remaining follower should be able to agree despite the disconnected follower.
        t.one(cmd(102), servers - 1, false).await;
        t.one(cmd(103), servers - 1, false).await;
        t.sleep(ELECTION_TIMEOUT).await;
        t.one(cmd(104), servers - 1, false).await;
        t.one(cmd(105), servers - 1, false).await;
        // Reconnect.
        t.connect((leader + 1) % servers);
        // The full set of servers should preserve previous agreements and agree on new commands.
        t.one(cmd(106), servers, true).await;
        t.sleep(ELECTION_TIMEOUT).await;
        t.one(cmd(107), servers, true).await;
        t.end();
    });
}

/// No agreement when three of five followers disconnect.
#[test]
fn fail_no_agree_3b() {
    run_raft_test(FILE, "fail_no_agree_3b", 5, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): no agreement if too many followers disconnect");
        t.one(cmd(10), servers, false).await;
        // 3 of 5 followers disconnect.
        let leader = t.check_one_leader().await;
        t.disconnect((leader + 1) % servers);
        t.disconnect((leader + 2) % servers);
        t.disconnect((leader + 3) % servers);
        let (index, _, ok) = t.raft(leader).expect("the leader is alive").start(cmd(20));
        assert!(ok, "leader rejected Start()");
        assert_eq!(index, 2, "expected index 2, got {index}");
        t.sleep(2 * ELECTION_TIMEOUT).await;
        let (n, _) = t.n_committed(index);
        assert!(n == 0, "{n} committed but no majority");
        // Repair.
        t.connect((leader + 1) % servers);
        t.connect((leader + 2) % servers);
        t.connect((leader + 3) % servers);
        // The disconnected majority may have chosen a leader from among their own ranks, forgetting index 2.
        let leader2 = t.check_one_leader().await;
        let (index2, _, ok2) = t.raft(leader2).expect("leader2 is alive").start(cmd(30));
        assert!(ok2, "leader2 rejected Start()");
        assert!((2..=3).contains(&index2), "unexpected index {index2}");
        t.one(cmd(1000), servers, true).await;
        t.end();
    });
}

#[test]
fn concurrent_starts_3b() {
    run_raft_test(FILE, "concurrent_starts_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): concurrent Start()s");
        let mut success = false;
        'attempt: for attempt in 0..5 {
            if attempt > 0 {
                // Give the solution some time to settle.
                t.sleep(ms(3000)).await;
            }
            let leader = t.check_one_leader().await;
            let raft = t.raft(leader).expect("the leader is alive");
            let (_, term, ok) = raft.start(cmd(1));
            if !ok {
                // The leader moved on really quickly.
                continue;
            }
            let iters = 5;
            let handles: Vec<_> = (0..iters)
                .map(|i| {
                    let raft = raft.clone();
                    t.sim.spawn(async move {
                        let (index, term1, ok) = raft.start(cmd(100 + i));
                        (term1 == term && ok).then_some(index)
                    })
                })
                .collect();
            let mut indices = Vec::new();
            for handle in handles {
                if let Some(index) = handle.await {
                    indices.push(index);
                }
            }
            for j in 0..servers {
                if let Some((term_j, _)) = t.raft(j).map(|raft| raft.state()) {
                    if term_j != term {
                        // The term changed: we cannot expect low RPC counts.
                        continue 'attempt;
                    }
                }
            }
            let mut cmds = Vec::new();
            for index in indices {
                match t.wait(index, servers, Some(term)).await {
                    // Peers have moved on to later terms, so we cannot expect all Start()s to have succeeded.
                    None => continue 'attempt,
                    Some(command) => match number(&command) {
                        Some(x) => cmds.push(x),
                        None => panic!("value {command:?} is not an int"),
                    },
                }
            }
            for i in 0..iters {
                let x = 100 + i;
                assert!(cmds.contains(&x), "cmd {x} missing in {cmds:?}");
            }
            success = true;
            break;
        }
        assert!(success, "term changed too often");
        t.end();
    });
}

/// A partitioned leader's uncommitted entries are overwritten when it rejoins.
#[test]
fn rejoin_3b() {
    run_raft_test(FILE, "rejoin_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): rejoin of partitioned leader");
        t.one(cmd(101), servers, true).await;
        // Leader network failure.
        let leader1 = t.check_one_leader().await;
        t.disconnect(leader1);
        // Make the old leader try to agree on some entries.
        let old = t.raft(leader1).expect("leader1 is alive");
        old.start(cmd(102));
        old.start(cmd(103));
        old.start(cmd(104));
        // The new leader commits, also for index 2.
        t.one(cmd(103), 2, true).await;
        // New leader network failure.
        let leader2 = t.check_one_leader().await;
        t.disconnect(leader2);
        // The old leader connects again.
        t.connect(leader1);
        t.one(cmd(104), 2, true).await;
        // All together now.
        t.connect(leader2);
        t.one(cmd(105), servers, true).await;
        t.end();
    });
}

/// The leader must back up quickly over incorrect follower logs.
#[test]
fn backup_3b() {
    run_raft_test(FILE, "backup_3b", 5, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): leader backs up quickly over incorrect follower logs");
        t.one(random_cmd(&t), servers, true).await;
        // Put the leader and one follower in a partition.
        let leader1 = t.check_one_leader().await;
        t.disconnect((leader1 + 2) % servers);
        t.disconnect((leader1 + 3) % servers);
        t.disconnect((leader1 + 4) % servers);
        // Submit lots of commands that won't commit.
        let raft1 = t.raft(leader1).expect("leader1 is alive");
        for _ in 0..50 {
            raft1.start(random_cmd(&t));
        }
        t.sleep(ELECTION_TIMEOUT / 2).await;
        t.disconnect(leader1 % servers);
        t.disconnect((leader1 + 1) % servers);
        // Allow the other partition to recover.
        t.connect((leader1 + 2) % servers);
        t.connect((leader1 + 3) % servers);
        t.connect((leader1 + 4) % servers);
        // Lots of successful commands to the new group.
        for _ in 0..50 {
            t.one(random_cmd(&t), 3, true).await;
        }
        // Now another partitioned leader and one follower.
        let leader2 = t.check_one_leader().await;
        let mut other = (leader1 + 2) % servers;
        if leader2 == other {
            other = (leader2 + 1) % servers;
        }
        t.disconnect(other);
        // Lots more commands that won't commit.
        let raft2 = t.raft(leader2).expect("leader2 is alive");
        for _ in 0..50 {
            raft2.start(random_cmd(&t));
        }
        t.sleep(ELECTION_TIMEOUT / 2).await;
        // Bring the original leader back to life.
        for i in 0..servers {
            t.disconnect(i);
        }
        t.connect(leader1 % servers);
        t.connect((leader1 + 1) % servers);
        t.connect(other);
        // Lots of successful commands to the new group.
        for _ in 0..50 {
            t.one(random_cmd(&t), 3, true).await;
        }
        // Now everyone.
        for i in 0..servers {
            t.connect(i);
        }
        t.one(random_cmd(&t), servers, true).await;
        t.end();
    });
}

/// RPC counts for an election, for agreement, and while idle must not be too high.
#[test]
fn count_3b() {
    run_raft_test(FILE, "count_3b", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3B): RPC counts aren't too high");
        t.check_one_leader().await;
        let total1 = rpcs(&t);
        assert!((1..=30).contains(&total1), "too many or few RPCs ({total1}) to elect initial leader");

        let mut total2 = 0;
        let mut success = false;
        'attempt: for attempt in 0..5 {
            if attempt > 0 {
                // Give the solution some time to settle.
                t.sleep(ms(3000)).await;
            }
            let leader = t.check_one_leader().await;
            let total1 = rpcs(&t);
            let iters: u64 = 10;
            let raft = t.raft(leader).expect("the leader is alive");
            let (starti, term, ok) = raft.start(cmd(1));
            if !ok {
                // The leader moved on really quickly.
                continue;
            }
            let mut cmds = Vec::new();
            for i in 1..iters + 2 {
                // The lab's rand.Int31(): a non-negative 31-bit number.
                let x = t.rng.u64() >> 33;
                cmds.push(x);
                let (index1, term1, ok) = raft.start(cmd(x));
                if term1 != term {
                    // The term changed while starting.
                    continue 'attempt;
                }
                if !ok {
                    // No longer the leader, so the term has changed.
                    continue 'attempt;
                }
                assert_eq!(starti + i, index1, "Start() failed");
            }
            for i in 1..iters + 1 {
                match t.wait(starti + i, servers, Some(term)).await {
                    // The term changed: try again.
                    None => continue 'attempt,
                    Some(command) => {
                        let expected = cmds[(i - 1) as usize];
                        assert!(
                            number(&command) == Some(expected),
                            "wrong value {command:?} committed for index {}; expected {cmds:?}",
                            starti + i
                        );
                    }
                }
            }
            let mut failed = false;
            total2 = 0;
            for j in 0..servers {
                if let Some((term_j, _)) = t.raft(j).map(|raft| raft.state()) {
                    if term_j != term {
                        // The term changed: we cannot expect low RPC counts (keep going to update total2).
                        failed = true;
                    }
                }
                total2 += t.net.incoming(j);
            }
            if failed {
                continue 'attempt;
            }
            assert!(
                total2 - total1 <= (iters + 1 + 3) * 3,
                "too many RPCs ({}) for {iters} entries",
                total2 - total1
            );
            success = true;
            break;
        }
        assert!(success, "term changed too often");

        t.sleep(ELECTION_TIMEOUT).await;
        let total3 = rpcs(&t);
        assert!(total3 - total2 <= 3 * 20, "too many RPCs ({}) for 1 second of idleness", total3 - total2);
        t.end();
    });
}
