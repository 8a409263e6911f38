//! Lab 3A: leader election. Each test is the lab's test of the same name, in virtual time.

use sim::raft_tester::{ms, run_raft_test, ELECTION_TIMEOUT};

const FILE: &str = "raft_3a";

#[test]
fn initial_election_3a() {
    run_raft_test(FILE, "initial_election_3a", 3, true, false, |t| async move {
        t.begin("Test (3A): initial election");
        t.check_one_leader().await;
        // Sleep a bit so that followers learn the leader's term before we compare terms.
        t.sleep(ms(50)).await;
        let term1 = t.check_terms();
        assert!(term1 >= 1, "term is {term1}, but should be at least 1");
        // With no failure, the leader and the term stay.
        t.sleep(2 * ELECTION_TIMEOUT).await;
        let term2 = t.check_terms();
        if term1 != term2 {
            println!("warning: term changed even though there were no failures");
        }
        t.check_one_leader().await;
        t.end();
    });
}

#[test]
fn re_election_3a() {
    run_raft_test(FILE, "re_election_3a", 3, true, false, |t| async move {
        let servers = t.n;
        t.begin("Test (3A): election after network failure");
        let leader1 = t.check_one_leader().await;
        // If the leader disconnects, a new one must be elected.
        t.disconnect(leader1);
        t.check_one_leader().await;
        // The old leader rejoining must not disturb the new leader.
        t.connect(leader1);
        let leader2 = t.check_one_leader().await;
        // Without a quorum, no new leader may be elected.
        t.disconnect(leader2);
        t.disconnect((leader2 + 1) % servers);
        t.sleep(2 * ELECTION_TIMEOUT).await;
        t.check_no_leader();
        // With a quorum back, a leader must be elected.
        t.connect((leader2 + 1) % servers);
        t.check_one_leader().await;
        // Rejoining the last node must not prevent a leader from existing.
        t.connect(leader2);
        t.check_one_leader().await;
        t.end();
    });
}

#[test]
fn many_elections_3a() {
    run_raft_test(FILE, "many_elections_3a", 7, true, false, |t| async move {
        let servers = t.n as u64;
        t.begin("Test (3A): multiple elections");
        t.check_one_leader().await;
        for _ in 0..9 {
            // Disconnect three nodes at random (repeats allowed).
            let picks = [t.rng.below(servers), t.rng.below(servers), t.rng.below(servers)].map(|i| i as usize);
            for &i in &picks {
                t.disconnect(i);
            }
            // Either the current leader survives or the remaining four or more elect a new one.
            t.check_one_leader().await;
            for &i in &picks {
                t.connect(i);
            }
        }
        t.check_one_leader().await;
        t.end();
    });
}
