//! A node whose save does not complete (a slow or full disk): what it may still do through
//! `ready_volatile`, and how it steps aside with `set_electable(false)`.

mod support;

use raft::{Apply, LogIndex, Message, NodeId, ReadyRead, Role};
use support::Cluster;

/// Delivers messages until none are left; nodes 2 and 3 carry out their Readys as usual, node 1
/// only its volatile ones (its save is stuck). Returns what node 1 applied and the reads it served.
fn run_with_node_1_stuck(cluster: &mut Cluster, mut queue: Vec<Message>) -> (Vec<Apply>, Vec<ReadyRead>) {
    let (mut applied, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        for id in [2, 3] {
            let node = cluster.node_mut(id);
            while node.has_ready() {
                let ready = node.ready();
                node.advance(&ready);
                queue.extend(ready.send_now.iter().chain(&ready.send_after_persist).cloned());
            }
        }
        let node = cluster.node_mut(1);
        while node.has_volatile_ready() {
            let ready = node.ready_volatile();
            assert!(ready.persist.is_empty() && ready.send_after_persist.is_empty(), "nothing that needs a save");
            queue.extend(ready.send_now);
            applied.extend(ready.apply);
            reads.extend(ready.reads);
        }
        if queue.is_empty() {
            return (applied, reads);
        }
        for message in std::mem::take(&mut queue) {
            cluster.node_mut(message.to.0).step(message);
        }
    }
    panic!("messages kept coming");
}

#[test]
fn with_its_save_outstanding_a_leader_still_commits_applies_and_serves_reads() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    let (index, _) = cluster.node_mut(1).propose(b"x".to_vec()).expect("leader");
    // The Ready with the entry is handed out and its save never completes.
    let stuck = cluster.node_mut(1).ready();
    assert_eq!(stuck.persist.entries.len(), 1);
    let (applied, _) = run_with_node_1_stuck(&mut cluster, stuck.send_now.clone());
    assert_eq!(cluster.node(1).status().commit, index, "the followers' copies commit it");
    assert!(applied.iter().any(|apply| matches!(apply, Apply::Entry(entry) if entry.index == index)), "applied: {applied:?}");
    // A read is confirmed by a heartbeat round and served, still without the save.
    cluster.node_mut(1).read_index(7).expect("leader");
    let (_, reads) = run_with_node_1_stuck(&mut cluster, Vec::new());
    assert!(reads.iter().any(|read| read.context == 7 && read.index == Some(index)), "reads: {reads:?}");
    assert!(cluster.node(1).has_ready(), "the save is still owed");
    // The save completes at last: the node goes on as usual.
    cluster.node_mut(1).advance(&stuck);
    cluster.settle();
    assert_eq!(cluster.node(1).status().commit, index);
}

#[test]
fn a_leader_that_cannot_save_steps_aside_and_does_not_campaign_until_it_can() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    cluster.node_mut(1).set_electable(false);
    assert_eq!(cluster.node(1).status().role, Role::Follower, "it steps down at once");
    let mut new_leader = None;
    for _ in 0..200 {
        cluster.tick_all(1);
        assert_eq!(cluster.node(1).status().role, Role::Follower, "it never campaigns");
        new_leader = [2, 3].into_iter().find(|&id| cluster.node(id).status().is_leader());
        if new_leader.is_some() {
            break;
        }
    }
    let new_leader = new_leader.expect("another node leads");
    assert_eq!(cluster.node(1).status().leader, Some(NodeId(new_leader)), "and node 1 follows it");
    // Able to save again, it may lead again: alone with a node that lost its leader, it wins.
    cluster.node_mut(1).set_electable(true);
    cluster.isolated.insert(new_leader);
    let mut led = false;
    for _ in 0..400 {
        cluster.tick_all(1);
        if cluster.node(1).status().is_leader() {
            led = true;
            break;
        }
    }
    let other = 5 - new_leader;
    assert!(led || cluster.node(other).status().is_leader(), "someone of the two leads again");
}

#[test]
fn a_sole_voter_does_not_step_aside() {
    let mut cluster = Cluster::new(1, |_| {});
    cluster.elect(1);
    cluster.node_mut(1).set_electable(false);
    assert!(cluster.node(1).status().is_leader(), "there is no one to step aside for");
    assert_eq!(cluster.node(1).status().commit, LogIndex(0));
}

/// A sole voter that campaigns wins on its own vote at once. Nothing of its new term may leave
/// before that term and vote are durable: had it crashed before the save, it would come back in
/// the old term, could vote for another node in the same term, and its appends of that term,
/// already out, would meet the other leader's (node chaos seed 950 saw two leaders of term 5).
#[test]
fn a_sole_voter_sends_nothing_of_its_new_term_before_its_vote_is_durable() {
    // Node 1, the sole voter, and node 2 its learner.
    let mut cluster = Cluster::led_by_one(1);
    cluster.nodes.insert(2, raft::Node::new(support::config(2, 0), raft::Restored::default()).expect("a joiner"));
    let change = raft::Change::AddLearner { id: NodeId(2), address: "h:2".into() };
    cluster.node_mut(1).propose_change(&change).expect("valid").expect("a change");
    cluster.settle();
    // Node 1 restarts from what it saved, and campaigns.
    let saved = &cluster.readies[&1];
    let restored = raft::Restored {
        hard_state: saved.iter().filter_map(|ready| ready.persist.hard_state).last().expect("a hard state"),
        snapshot: None,
        entries: saved.iter().flat_map(|ready| ready.persist.entries.clone()).collect(),
    };
    let term = restored.hard_state.term;
    let mut node = raft::Node::new(support::config(1, 1), restored).expect("restarts");
    while !node.status().is_leader() {
        node.tick();
    }
    let new_term = node.status().term;
    assert!(new_term > term);
    let early = |messages: &[Message]| messages.iter().filter(|message| message.term >= new_term).count();
    // While an earlier save is outstanding, nothing of the new term goes either.
    assert_eq!(early(&node.ready_volatile().send_now), 0, "a message of the new term went out with no save");
    let ready = node.ready();
    assert_eq!(ready.persist.hard_state.map(|state| state.term), Some(new_term), "the new term is in this save");
    assert_eq!(early(&ready.send_now), 0, "a message of the new term went out before its save");
    assert!(ready.send_after_persist.iter().any(|message| message.to == NodeId(2) && message.term == new_term), "the learner hears of the new term after the save");
    node.advance(&ready);
    for _ in 0..support::config(1, 1).heartbeat_ticks {
        node.tick();
    }
    assert!(early(&node.ready().send_now) > 0, "once the term is durable, heartbeats go at once");
}
