//! Membership changes, learners and leadership transfer, step by step: each rule of
//! `membership.rs` and `transfer.rs`, and the regressions the thesis and other implementations met.

mod support;

use raft::{Change, ChangeError, Config, Node, NodeId, ProposeError, Restored};
use support::Cluster;

/// A node that joins: no bootstrap voters, so it waits to be added.
fn joiner(id: u64) -> Node {
    let mut config = Config::new(NodeId(id), Vec::new());
    config.election_timeout_ticks = 10;
    config.heartbeat_ticks = 2;
    config.noop_on_election = false;
    config.seed = 42;
    Node::new(config, Restored::default()).expect("a joiner")
}

/// `Cluster::led_by_one(3)`, and node 4 started as a joiner.
fn three_and_a_joiner() -> Cluster {
    let mut cluster = Cluster::led_by_one(3);
    cluster.nodes.insert(4, joiner(4));
    cluster
}

fn add(cluster: &mut Cluster, id: u64) {
    let change = Change::AddLearner { id: NodeId(id), address: format!("h:{id}") };
    cluster.node_mut(1).propose_change(&change).expect("valid").expect("a change");
    cluster.settle();
}

fn voters(node: &Node) -> Vec<u64> {
    node.membership().voters().map(|id| id.0).collect()
}

#[test]
fn a_learner_gets_the_log_but_never_counts_in_a_quorum_or_campaigns() {
    let mut cluster = three_and_a_joiner();
    add(&mut cluster, 4);
    assert_eq!(cluster.node(4).status().last_index, cluster.node(1).status().last_index, "the learner has the log");
    assert!(cluster.node(4).membership().is_member(NodeId(4)) && !cluster.node(4).membership().is_voter(NodeId(4)));
    // With both other voters cut off, the learner's acknowledgement commits nothing.
    cluster.isolated.extend([2, 3]);
    let (index, _) = cluster.node_mut(1).propose(b"y".to_vec()).expect("leader");
    cluster.settle();
    assert_eq!(cluster.node(4).status().last_index, index);
    assert!(cluster.node(1).status().commit < index, "a learner counted in the quorum");
    // A learner never campaigns, however long it hears nothing.
    cluster.isolated.insert(1);
    for _ in 0..100 {
        cluster.node_mut(4).tick();
        cluster.flush();
    }
    assert_eq!(cluster.node(4).status().role, raft::Role::Follower);
}

/// The single-server change bug (thesis errata): a leader that changes the configuration before
/// it committed an entry of its own term can form a quorum that does not overlap one of a
/// previous, uncommitted change. The rule: no change until it has; and one change at a time.
#[test]
fn a_change_waits_for_the_leaders_first_commit_and_for_the_previous_change() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    let change = Change::AddLearner { id: NodeId(4), address: "h:4".into() };
    assert_eq!(cluster.node_mut(1).propose_change(&change), Err(ChangeError::NotReady));
    cluster.node_mut(1).propose(b"x".to_vec()).expect("leader");
    cluster.settle();
    cluster.isolated.extend([2, 3]);
    assert!(cluster.node_mut(1).propose_change(&change).expect("valid").is_some());
    cluster.settle();
    let second = Change::AddLearner { id: NodeId(5), address: "h:5".into() };
    assert_eq!(cluster.node_mut(1).propose_change(&second), Err(ChangeError::InProgress));
    cluster.isolated.clear();
    cluster.tick_all(10);
    assert!(cluster.node_mut(1).propose_change(&second).expect("valid").is_some(), "the first committed");
    assert_eq!(cluster.node_mut(2).propose_change(&second), Err(ChangeError::NotLeader { leader: Some(NodeId(1)) }));
}

#[test]
fn a_promotion_waits_until_the_learner_caught_up() {
    let mut cluster = three_and_a_joiner();
    cluster.isolated.insert(4);
    add(&mut cluster, 4);
    assert!(matches!(cluster.node_mut(1).propose_change(&Change::Promote { id: NodeId(4) }), Err(ChangeError::NotCaughtUp { .. })));
    cluster.isolated.clear();
    cluster.tick_all(10);
    assert!(cluster.node_mut(1).propose_change(&Change::Promote { id: NodeId(4) }).expect("valid").is_some());
    cluster.settle();
    assert_eq!(voters(cluster.node(4)), vec![1, 2, 3, 4]);
    assert_eq!(cluster.node_mut(1).propose_change(&Change::Promote { id: NodeId(4) }), Ok(None), "a repeat");
}

/// etcd's bug: a learner promoted in the leader's log, that has not received that entry yet,
/// refused to vote as if it were still a learner, and the cluster could not elect a leader.
#[test]
fn a_promoted_learner_that_does_not_know_it_yet_still_votes() {
    let mut cluster = three_and_a_joiner();
    add(&mut cluster, 4);
    cluster.tick_all(2);
    cluster.isolated.insert(4);
    cluster.node_mut(1).propose_change(&Change::Promote { id: NodeId(4) }).expect("valid").expect("a change");
    cluster.settle();
    assert_eq!(voters(cluster.node(2)), vec![1, 2, 3, 4]);
    assert_eq!(voters(cluster.node(4)), vec![1, 2, 3], "node 4 has not heard of its promotion");
    // The leader goes; a new one needs 3 of the 4 voters: 2, 3 and the unaware 4.
    cluster.isolated = [1].into();
    cluster.tick_all(100);
    let leaders: Vec<u64> = [2, 3].into_iter().filter(|&id| cluster.node(id).status().is_leader()).collect();
    assert_eq!(leaders.len(), 1, "a leader was elected with node 4's vote");
    assert_eq!(voters(cluster.node(4)), vec![1, 2, 3, 4], "and node 4 learned of its promotion from it");
}

#[test]
fn a_removed_leader_leads_until_the_change_commits_then_steps_down_for_good() {
    let mut cluster = Cluster::led_by_one(3);
    cluster.isolated.extend([2, 3]);
    cluster.node_mut(1).propose_change(&Change::Remove { id: NodeId(1) }).expect("valid").expect("a change");
    cluster.settle();
    assert!(cluster.node(1).status().is_leader(), "not committed yet: it still manages the cluster");
    cluster.isolated.clear();
    cluster.tick_all(10);
    assert!(!cluster.node(1).status().is_leader(), "committed: it stepped down");
    assert_eq!(voters(cluster.node(2)), vec![2, 3]);
    cluster.tick_all(100);
    let leaders: Vec<u64> = (1..=3).filter(|&id| cluster.node(id).status().is_leader()).collect();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 1, "the removed node never leads again");
    assert_eq!(cluster.node_mut(leaders[0]).propose_change(&Change::AddLearner { id: NodeId(1), address: "h:1".into() }), Err(ChangeError::Removed(NodeId(1))));
}

#[test]
fn a_removed_node_that_missed_its_removal_disturbs_no_one() {
    let mut cluster = Cluster::led_by_one(3);
    cluster.isolated.insert(3);
    cluster.node_mut(1).propose_change(&Change::Remove { id: NodeId(3) }).expect("valid").expect("a change");
    cluster.tick_all(3);
    let term = cluster.node(1).status().term;
    assert_eq!(voters(cluster.node(3)), vec![1, 2, 3], "node 3 never heard");
    cluster.isolated.clear();
    // It campaigns again and again; the others drop its requests.
    for _ in 0..200 {
        cluster.node_mut(3).tick();
        cluster.settle();
    }
    assert!(cluster.node(1).status().is_leader());
    assert_eq!(cluster.node(1).status().term, term, "no election was forced on the cluster");
}

#[test]
fn a_transfer_catches_a_lagging_target_up_first_and_holds_proposals_meanwhile() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    cluster.isolated.insert(3);
    for i in 0..5u8 {
        cluster.node_mut(1).propose(vec![i]).expect("leader");
    }
    cluster.settle();
    let last = cluster.node(1).status().last_index;
    assert!(cluster.node(3).status().last_index < last);
    cluster.isolated.clear();
    cluster.node_mut(1).transfer_leadership(NodeId(3)).expect("a voter");
    assert_eq!(cluster.node_mut(1).propose(b"z".to_vec()), Err(ProposeError::Transferring));
    cluster.tick_all(5);
    assert!(cluster.node(3).status().is_leader(), "node 3 leads");
    assert!(cluster.node(3).status().last_index >= last, "with every entry");
    assert!(!cluster.node(1).status().is_leader());
}

#[test]
fn an_impossible_transfer_is_abandoned_within_an_election_timeout() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    cluster.isolated.insert(3);
    cluster.node_mut(1).transfer_leadership(NodeId(3)).expect("a voter");
    assert_eq!(cluster.node(1).transferring(), Some(NodeId(3)));
    for _ in 0..10 {
        cluster.node_mut(1).tick();
        cluster.settle();
    }
    assert_eq!(cluster.node(1).transferring(), None);
    assert!(cluster.node(1).status().is_leader());
    assert!(cluster.node_mut(1).propose(b"again".to_vec()).is_ok(), "proposals resume");
    assert!(matches!(cluster.node_mut(1).transfer_leadership(NodeId(9)), Err(raft::TransferError::NotAVoter(_))));
}

#[test]
fn a_removed_member_gets_the_entry_that_removes_it_and_stops_campaigning() {
    let mut cluster = Cluster::led_by_one(3);
    cluster.node_mut(1).propose_change(&Change::Remove { id: NodeId(3) }).expect("valid").expect("a change");
    cluster.settle();
    assert!(cluster.node(3).membership().removed.contains(&NodeId(3)), "node 3 knows it was removed");
    cluster.isolated.insert(1);
    for _ in 0..100 {
        cluster.node_mut(3).tick();
        cluster.flush();
    }
    assert_eq!(cluster.node(3).status().role, raft::Role::Follower, "it never campaigns");
}

/// A configuration entry a new leader's log overwrites is undone on the follower that had it.
/// Before, a follower kept a configuration from an entry replaced by entries of another kind,
/// and if it later led, it built the next change on it: the simulation of the production node
/// caught one leader going from five voters to three in one entry (node chaos seed 624).
#[test]
fn a_configuration_overwritten_by_a_new_leader_is_undone() {
    let mut cluster = Cluster::led_by_one(5);
    // Only node 2 gets the change: it is not committed.
    cluster.isolated.extend([3, 4, 5]);
    cluster.node_mut(1).propose_change(&Change::AddLearner { id: NodeId(6), address: "h:6".into() }).expect("valid").expect("a change");
    cluster.settle();
    assert!(cluster.node(2).membership().is_member(NodeId(6)));
    // Nodes 3, 4 and 5 elect a leader, which writes entries of its term over that index.
    cluster.isolated = [1, 2].into();
    cluster.tick_all(100);
    let leader = [3, 4, 5].into_iter().find(|&id| cluster.node(id).status().is_leader()).expect("a leader among 3, 4, 5");
    cluster.node_mut(leader).propose(b"y".to_vec()).expect("leader");
    cluster.node_mut(leader).propose(b"z".to_vec()).expect("leader");
    cluster.settle();
    cluster.isolated = [1].into();
    cluster.tick_all(20);
    assert_eq!(cluster.node(2).status().last_index, cluster.node(leader).status().last_index);
    assert!(!cluster.node(2).membership().is_member(NodeId(6)), "node 2 still has the overwritten configuration");
}
