//! One test per claim of the Raft paper (extended version; "thesis" is Ongaro's dissertation),
//! each naming its section. They drive nodes message by message, so each claim is checked exactly
//! where a randomized test would only hit it by luck.

mod support;

use raft::{AppendResponse, Entry, EntryKind, HardState, LogIndex, Message, MessageBody, NodeId, Restored, Role, Term};
use support::Cluster;

fn entry(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: vec![index as u8, term as u8].into() }
}

fn with_log(term: u64, terms: &[u64]) -> Restored {
    Restored {
        hard_state: HardState { term: Term(term), vote: None, commit: LogIndex(0) },
        snapshot: None,
        entries: terms.iter().enumerate().map(|(k, &t)| entry(k as u64 + 1, t)).collect(),
    }
}

fn message(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message { from: NodeId(from), to: NodeId(to), term: Term(term), body }
}

/// §5.4.2 and Figure 8: a leader never commits an entry of an earlier term by counting replicas;
/// it commits it only together with an entry of its own term.
#[test]
fn leader_commits_earlier_term_entries_only_with_one_of_its_own() {
    let mut cluster = Cluster::restored(3, |_| {}, |id| if id == 1 { with_log(1, &[1, 1]) } else { with_log(1, &[]) });
    cluster.elect(1);
    cluster.settle();
    let leader = cluster.node(1).status();
    assert_eq!(leader.term, Term(2));
    for follower in [2, 3] {
        assert_eq!(cluster.node(follower).log().last_index(), LogIndex(2), "the old entries are replicated");
    }
    assert_eq!(leader.commit, LogIndex(0), "term-1 entries on every node, yet not committed by count");
    cluster.node_mut(1).propose(b"new".to_vec()).expect("leader");
    cluster.settle();
    assert_eq!(cluster.node(1).status().commit, LogIndex(3), "a term-2 entry commits, and everything before it");
}

/// §5.2: a candidate wins with votes from a majority *for the same term*; a grant from an
/// earlier election counts for nothing.
#[test]
fn candidate_ignores_grants_from_an_earlier_term() {
    let mut cluster = Cluster::new(3, |config| config.pre_vote = false);
    cluster.isolated.insert(1);
    for _ in 0..100 {
        cluster.node_mut(1).tick();
        cluster.settle();
        if cluster.node(1).status().term == Term(2) {
            break;
        }
    }
    assert_eq!(cluster.node(1).status().role, Role::Candidate);
    assert_eq!(cluster.node(1).status().term, Term(2));
    cluster.node_mut(1).step(message(2, 1, 1, MessageBody::VoteResponse { pre_vote: false, granted: true }));
    assert_eq!(cluster.node(1).status().role, Role::Candidate, "a term-1 grant must not elect a term-2 candidate");
    cluster.node_mut(1).step(message(2, 1, 2, MessageBody::VoteResponse { pre_vote: false, granted: true }));
    assert_eq!(cluster.node(1).status().role, Role::Leader);
}

/// §5.4.1: a voter denies its vote to a candidate whose log is less up-to-date than its own.
#[test]
fn voter_rejects_a_candidate_with_a_less_up_to_date_log() {
    let mut cluster = Cluster::restored(3, |config| config.pre_vote = false, |id| if id == 2 { with_log(1, &[1, 1]) } else { with_log(1, &[1]) });
    cluster.node_mut(2).step(message(1, 2, 2, MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(1), last_log_term: Term(1) }));
    cluster.flush();
    let answer = cluster.queue.pop_front().expect("an answer");
    assert_eq!(answer.body, MessageBody::VoteResponse { pre_vote: false, granted: false });
    cluster.node_mut(2).step(message(3, 2, 2, MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(2), last_log_term: Term(1) }));
    cluster.flush();
    let answer = cluster.queue.pop_front().expect("an answer");
    assert_eq!(answer.body, MessageBody::VoteResponse { pre_vote: false, granted: true });
}

/// Figure 2, AppendEntries receiver rule 5: a follower commits min(leaderCommit, index of the last
/// new entry) — never entries past what this request verified, which may be stale.
#[test]
fn follower_commits_no_further_than_the_request_verified() {
    let mut cluster = Cluster::restored(3, |_| {}, |_| with_log(1, &[1, 1, 1]));
    let heartbeat = MessageBody::AppendRequest {
        prev_log_index: LogIndex(1),
        prev_log_term: Term(1),
        entries: Vec::new(),
        leader_commit: LogIndex(3),
        read_round: 0,
    };
    cluster.node_mut(1).step(message(2, 1, 2, heartbeat));
    assert_eq!(cluster.node(1).status().commit, LogIndex(1));
}

/// §5.2 and Figure 2: the vote is durable before the answer leaves — the Ready that carries the
/// grant also persists the vote, and the grant waits for that persist.
#[test]
fn a_vote_is_persisted_before_it_is_sent() {
    let mut cluster = Cluster::new(3, |config| config.pre_vote = false);
    cluster.node_mut(2).step(message(1, 2, 1, MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(0), last_log_term: Term(0) }));
    let ready = cluster.node_mut(2).ready();
    let hard_state = ready.persist.hard_state.expect("the vote changes the hard state");
    assert_eq!(hard_state.vote, Some(NodeId(1)));
    assert_eq!(hard_state.term, Term(1));
    assert!(ready.send_now.is_empty(), "nothing may leave before the persist");
    assert_eq!(ready.send_after_persist[0].body, MessageBody::VoteResponse { pre_vote: false, granted: true });
}

/// §5.2: at most one vote per term, also across a restart (the vote was persisted).
#[test]
fn a_restarted_node_keeps_its_vote() {
    let restored = |_| Restored { hard_state: HardState { term: Term(5), vote: Some(NodeId(2)), commit: LogIndex(0) }, ..Restored::default() };
    let mut cluster = Cluster::restored(3, |config| config.pre_vote = false, restored);
    cluster.node_mut(1).step(message(3, 1, 5, MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(9), last_log_term: Term(5) }));
    cluster.flush();
    let answer = cluster.queue.pop_front().expect("an answer");
    assert_eq!(answer.body, MessageBody::VoteResponse { pre_vote: false, granted: false });
}

/// §5.3: the leader's fast backup skips a whole conflicting term per round trip.
#[test]
fn leader_backs_up_over_a_conflicting_term_in_one_round_trip() {
    let mut cluster = Cluster::restored(
        3,
        |_| {},
        |id| match id {
            1 => with_log(4, &[1, 1, 4, 4]),
            _ => with_log(3, &[1, 1, 2, 2, 2, 2, 2, 3, 3]),
        },
    );
    cluster.isolated.insert(3);
    cluster.elect(1);
    cluster.node_mut(1).propose(b"x".to_vec()).expect("leader");
    let mut rejections = 0;
    loop {
        cluster.flush();
        let Some(message) = cluster.queue.pop_front() else { break };
        if matches!(message.body, MessageBody::AppendResponse { response: AppendResponse::Rejected { .. }, .. }) {
            rejections += 1;
        }
        cluster.node_mut(message.to.0).step(message);
    }
    assert!(rejections <= 2, "{rejections} round trips to find the match point");
    assert_eq!(cluster.node(2).log().last_index(), cluster.node(1).log().last_index());
    assert_eq!(cluster.node(2).log().term_at(LogIndex(3)), Some(Term(4)));
    assert_eq!(cluster.node(1).status().commit, cluster.node(1).log().last_index());
}

/// Thesis §6.2 (check-quorum): a leader that hears from no majority for an election timeout steps
/// down, so a partitioned leader stops claiming leadership.
#[test]
fn an_isolated_leader_steps_down() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    cluster.isolated.insert(1);
    for _ in 0..25 {
        cluster.node_mut(1).tick();
        cluster.settle();
    }
    assert_eq!(cluster.node(1).status().role, Role::Follower);
}

/// Thesis §9.6 (pre-vote): a node cut off from the cluster does not inflate its term, so when it
/// returns it does not depose the healthy leader.
#[test]
fn a_returning_partitioned_node_does_not_disrupt_the_leader() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    let term = cluster.node(1).status().term;
    cluster.isolated.insert(3);
    cluster.tick_all(200);
    assert_eq!(cluster.node(3).status().term, term, "pre-votes never win, so the term stays");
    cluster.isolated.clear();
    cluster.tick_all(50);
    assert_eq!(cluster.node(1).status().role, Role::Leader);
    assert_eq!(cluster.node(1).status().term, term);
}

/// §7: a snapshot older than what the follower has committed changes nothing.
#[test]
fn a_stale_snapshot_is_ignored() {
    let mut cluster = Cluster::restored(3, |_| {}, |_| with_log(2, &[1, 1, 2]));
    let commit_two = MessageBody::AppendRequest { prev_log_index: LogIndex(3), prev_log_term: Term(2), entries: Vec::new(), leader_commit: LogIndex(3), read_round: 0 };
    cluster.node_mut(1).step(message(2, 1, 2, commit_two));
    assert_eq!(cluster.node(1).status().commit, LogIndex(3));
    cluster.node_mut(1).step(message(2, 1, 2, support::whole_snapshot(2, 1, &[7])));
    assert_eq!(cluster.node(1).status().snapshot_index, LogIndex(0));
    assert_eq!(cluster.node(1).log().last_index(), LogIndex(3));
}

/// A message addressed to someone else is dropped, whatever it says; a vote request of a node the
/// configuration removed too. (A node the configuration does not know is answered: it may be a
/// member added while this node was away, and the candidate it votes for counts only voters.)
#[test]
fn messages_for_others_and_votes_of_removed_nodes_are_dropped() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.node_mut(1).step(message(2, 3, 50, MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: LogIndex(9), last_log_term: Term(9) }));
    assert_eq!(cluster.node(1).status().term, Term(0));
    assert!(!cluster.node(1).has_ready());
    cluster.elect(1);
    cluster.node_mut(1).propose(b"x".to_vec()).expect("leader");
    cluster.settle();
    cluster.node_mut(1).propose_change(&raft::Change::Remove { id: NodeId(3) }).expect("valid").expect("a change");
    cluster.settle();
    // Node 2 learns that the removal committed with the next entry.
    cluster.node_mut(1).propose(b"y".to_vec()).expect("leader");
    cluster.settle();
    assert!(cluster.node(2).committed_membership().removed.contains(&NodeId(3)));
    let term = cluster.node(2).status().term;
    cluster.node_mut(2).step(message(3, 2, 50, MessageBody::VoteRequest { pre_vote: false, transfer: true, last_log_index: LogIndex(9), last_log_term: Term(9) }));
    assert_eq!(cluster.node(2).status().term, term, "a removed node's vote request changed nothing");
}

/// A vote request from a node whose removal is not committed is answered: the entry removing it
/// may be cut off by a leader whose log wins, and its vote may be the one the others lack
/// (node chaos seed 6,167: three nodes each held a different uncommitted configuration and none
/// could be elected, because the one that could win was "removed" in the log of the one it
/// needed).
#[test]
fn a_vote_request_from_a_node_whose_removal_is_not_committed_is_answered() {
    let mut cluster = Cluster::led_by_one(3);
    cluster.node_mut(1).propose_change(&raft::Change::Remove { id: NodeId(3) }).expect("valid").expect("a change");
    // The change reaches node 2, but it does not learn that it committed.
    cluster.flush();
    for message in std::mem::take(&mut cluster.queue) {
        if message.to == NodeId(2) {
            cluster.node_mut(2).step(message);
        }
    }
    cluster.flush();
    cluster.queue.clear();
    assert!(cluster.node(2).membership().removed.contains(&NodeId(3)));
    assert!(!cluster.node(2).committed_membership().removed.contains(&NodeId(3)));
    let term = cluster.node(2).status().term;
    cluster.node_mut(2).step(message(3, 2, term.0 + 5, MessageBody::VoteRequest { pre_vote: false, transfer: true, last_log_index: LogIndex(90), last_log_term: Term(term.0 + 4) }));
    assert_eq!(cluster.node(2).status().term, Term(term.0 + 5), "the vote request was looked at");
}

fn take_reads(cluster: &mut Cluster, id: u64) -> Vec<raft::ReadyRead> {
    cluster.readies.get_mut(&id).map(|readies| readies.iter_mut().flat_map(|ready| std::mem::take(&mut ready.reads)).collect()).unwrap_or_default()
}

/// Thesis §6.4: a read is served at the commit index once a majority confirmed the leader, without
/// writing the log; reads arriving together share one heartbeat round.
#[test]
fn read_index_confirms_leadership_with_one_round_and_no_log_write() {
    let mut cluster = Cluster::new(3, |config| config.noop_on_election = true);
    cluster.elect(1);
    cluster.settle();
    let last = cluster.node(1).log().last_index();
    let rpcs_before = cluster.readies[&1].iter().map(|ready| ready.send_now.len()).sum::<usize>();
    cluster.node_mut(1).read_index(7).expect("leader");
    cluster.node_mut(1).read_index(8).expect("leader");
    cluster.settle();
    let reads = take_reads(&mut cluster, 1);
    let commit = cluster.node(1).status().commit;
    assert_eq!(reads, vec![raft::ReadyRead { context: 7, index: Some(commit) }, raft::ReadyRead { context: 8, index: Some(commit) }]);
    assert_eq!(cluster.node(1).log().last_index(), last, "no log write");
    let rpcs_after = cluster.readies[&1].iter().map(|ready| ready.send_now.len()).sum::<usize>();
    assert_eq!(rpcs_after - rpcs_before, 2, "one heartbeat per follower for both reads");
}

/// Thesis §6.4: a leader cut off from the majority never confirms a read; when it steps down, the
/// read fails instead of hanging or answering from stale state.
#[test]
fn read_index_on_a_partitioned_leader_fails_and_never_answers() {
    let mut cluster = Cluster::new(3, |config| config.noop_on_election = true);
    cluster.elect(1);
    cluster.settle();
    cluster.isolated.insert(1);
    cluster.node_mut(1).read_index(9).expect("still believes it leads");
    cluster.settle();
    assert!(take_reads(&mut cluster, 1).is_empty(), "no quorum, no answer");
    for _ in 0..30 {
        cluster.node_mut(1).tick();
        cluster.settle();
    }
    assert_eq!(take_reads(&mut cluster, 1), vec![raft::ReadyRead { context: 9, index: None }]);
    assert!(cluster.node_mut(1).read_index(10).is_err());
}

/// Thesis §6.4: before a new leader commits an entry of its own term, its commit index may lag what
/// an earlier leader committed, so reads wait for that commit.
#[test]
fn read_index_waits_for_a_commit_in_the_leaders_term() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.elect(1);
    cluster.settle();
    cluster.node_mut(1).read_index(1).expect("leader");
    cluster.settle();
    assert!(take_reads(&mut cluster, 1).is_empty(), "nothing of term 1 committed yet (no no-op here)");
    cluster.node_mut(1).propose(b"x".to_vec()).expect("leader");
    cluster.settle();
    assert_eq!(take_reads(&mut cluster, 1), vec![raft::ReadyRead { context: 1, index: Some(LogIndex(1)) }]);
}
