//! Lease-based reads (`Config::lease_reads`, thesis §6.4.1; the argument and its clock assumptions
//! are in `crates/raft/src/lease.rs`). These drive the nodes message by message and tick by tick,
//! so that each boundary of the lease is checked at the exact tick where it falls.

mod support;

use raft::{
    AppendResponse, Config, ConfigError, Entry, EntryKind, HardState, InitError, LogIndex, Message, MessageBody, Node,
    NodeId, ReadyRead, Restored, Role, Rng, Term,
};
use support::Cluster;

/// The harness's election timeout (`support::config`).
const ELECTION_TIMEOUT: u32 = 10;

fn lease_config(id: u64, size: u64) -> Config {
    let mut config = support::config(id, size);
    config.lease_reads = true;
    config.noop_on_election = true;
    config
}

fn lease_cluster(size: u64) -> Cluster {
    Cluster::new(size, |config| {
        config.lease_reads = true;
        config.noop_on_election = true;
    })
}

/// The node that leads in the highest term, if any.
fn leader_of(cluster: &Cluster) -> Option<u64> {
    let leaders = cluster.nodes.iter().filter(|(_, node)| node.status().is_leader());
    leaders.max_by_key(|(_, node)| node.status().term).map(|(&id, _)| id)
}

/// Ticks every node until one leads, then lets everything settle. With lease reads every node
/// starts behind its restart fence, so the harness's one-node `elect` would wait forever.
fn elect_any(cluster: &mut Cluster) -> u64 {
    for _ in 0..1000 {
        cluster.tick_all(1);
        if let Some(id) = leader_of(cluster) {
            cluster.settle();
            return id;
        }
    }
    panic!("no leader after 1000 ticks");
}

/// Carries out a node's Readies by hand: returns what it sent (delivered to nobody) and its reads.
fn drain(node: &mut Node) -> (Vec<Message>, Vec<ReadyRead>) {
    let (mut sent, mut reads) = (Vec::new(), Vec::new());
    while node.has_ready() {
        let ready = node.ready();
        node.advance(&ready);
        sent.extend(ready.send_now.iter().chain(&ready.send_after_persist).cloned());
        reads.extend(ready.reads.iter().copied());
    }
    (sent, reads)
}

/// Delivers `message` to its recipient and returns what the recipient sent in answer.
fn deliver(cluster: &mut Cluster, message: Message) -> Vec<Message> {
    let to = message.to.0;
    cluster.node_mut(to).step(message);
    drain(cluster.node_mut(to)).0
}

fn is_read_round_heartbeat(message: &Message) -> bool {
    matches!(message.body, MessageBody::AppendRequest { read_round, .. } if read_round > 0)
}

fn followers_of(cluster: &Cluster, leader: u64) -> Vec<u64> {
    cluster.nodes.keys().copied().filter(|&id| id != leader).collect()
}

/// Thesis §6.4.1: with a lease (a majority answered a heartbeat sent less than `lease_ticks` ago),
/// the leader answers a read in the very next Ready, at its commit index, sending nothing. In steady
/// state every heartbeat renews the lease, so it holds after any number of ticks.
#[test]
fn a_leader_holding_a_lease_answers_a_read_at_once_without_a_message() {
    let mut cluster = lease_cluster(3);
    let leader = elect_any(&mut cluster);
    cluster.tick_all(5 * ELECTION_TIMEOUT);
    assert_eq!(leader_of(&cluster), Some(leader));
    let status = cluster.node(leader).status();
    assert_eq!(status.commit, status.last_index, "the leader's no-op committed");
    let node = cluster.node_mut(leader);
    node.read_index(7).expect("leader");
    node.read_index(8).expect("leader");
    assert!(node.has_ready());
    let ready = node.ready();
    node.advance(&ready);
    let served = |context| ReadyRead { context, index: Some(status.commit) };
    assert_eq!(ready.reads, vec![served(7), served(8)]);
    assert!(ready.send_now.is_empty() && ready.send_after_persist.is_empty(), "no heartbeat round: {:?}", ready.send_now);
    assert!(ready.persist.is_empty(), "no log write");
    assert!(!node.has_ready());
}

/// When the followers stop answering, the lease lapses `lease_ticks` after the last answered
/// heartbeat was sent; a read then takes a ReadIndex round and is answered only once a majority
/// (here 3 of 5) confirmed it. The confirmed round renews the lease for the next read.
#[test]
fn after_the_lease_lapses_a_read_takes_a_read_index_round() {
    let mut cluster = lease_cluster(5);
    let leader = elect_any(&mut cluster);
    cluster.tick_all(2 * ELECTION_TIMEOUT);
    let commit = cluster.node(leader).status().commit;
    let followers = followers_of(&cluster, leader);
    cluster.isolated.extend(followers.iter().copied());
    for _ in 0..lease_config(1, 5).lease_ticks() {
        cluster.node_mut(leader).tick();
        cluster.settle();
    }
    assert!(cluster.node(leader).status().is_leader(), "check-quorum has not deposed it yet");
    cluster.isolated.clear();

    cluster.node_mut(leader).read_index(8).expect("still the leader");
    let (sent, reads) = drain(cluster.node_mut(leader));
    assert!(reads.is_empty(), "the lease lapsed: no answer without a round");
    let heartbeats: Vec<Message> = sent.into_iter().filter(is_read_round_heartbeat).collect();
    assert_eq!(heartbeats.len(), 4, "one heartbeat per follower");
    for (answered, heartbeat) in heartbeats.into_iter().enumerate() {
        for answer in deliver(&mut cluster, heartbeat) {
            cluster.node_mut(leader).step(answer);
        }
        let (_, reads) = drain(cluster.node_mut(leader));
        if answered == 0 {
            assert!(reads.is_empty(), "2 of 5 is no majority");
        } else if answered == 1 {
            assert_eq!(reads, vec![ReadyRead { context: 8, index: Some(commit) }], "3 of 5 confirmed the round");
        } else {
            assert!(reads.is_empty());
        }
    }

    cluster.node_mut(leader).read_index(9).expect("leader");
    let (sent, reads) = drain(cluster.node_mut(leader));
    assert_eq!(reads, vec![ReadyRead { context: 9, index: Some(commit) }], "the round renewed the lease");
    assert!(sent.is_empty());
}

/// The lease runs from when the leader *sent* the heartbeat a majority answered, not from when the
/// answers came back: a follower's refusal to vote starts when it received the heartbeat, which may
/// be long before its answer arrives. Here the answers arrive 5 ticks late, so the lease has only
/// `lease_ticks` − 5 ticks left.
#[test]
fn the_lease_runs_from_when_the_round_was_sent_not_when_it_was_answered() {
    let mut cluster = lease_cluster(3);
    let leader = elect_any(&mut cluster);
    cluster.tick_all(2 * ELECTION_TIMEOUT);
    let commit = cluster.node(leader).status().commit;
    let lease_ticks = lease_config(1, 3).lease_ticks();
    // From here the leader runs alone, and this test carries its messages by hand.
    let held = loop {
        let node = cluster.node_mut(leader);
        node.tick();
        let heartbeats: Vec<Message> = drain(node).0.into_iter().filter(is_read_round_heartbeat).collect();
        if !heartbeats.is_empty() {
            break heartbeats;
        }
    };
    let late = 5;
    for _ in 0..late {
        cluster.node_mut(leader).tick();
        drain(cluster.node_mut(leader));
    }
    for heartbeat in held {
        for answer in deliver(&mut cluster, heartbeat) {
            cluster.node_mut(leader).step(answer);
        }
    }
    drain(cluster.node_mut(leader));
    for (context, elapsed) in (1u64..).zip(late..lease_ticks) {
        cluster.node_mut(leader).read_index(context).expect("leader");
        let (sent, reads) = drain(cluster.node_mut(leader));
        assert_eq!(reads, vec![ReadyRead { context, index: Some(commit) }], "{elapsed} ticks after the send: lease holds");
        assert!(sent.is_empty());
        cluster.node_mut(leader).tick();
        drain(cluster.node_mut(leader));
    }
    cluster.node_mut(leader).read_index(99).expect("leader");
    let (sent, reads) = drain(cluster.node_mut(leader));
    assert!(reads.is_empty(), "{lease_ticks} ticks after the send the lease is over, however late the answers came");
    assert!(sent.iter().any(is_read_round_heartbeat), "a ReadIndex round instead");
    assert!(cluster.node(leader).status().is_leader());
}

/// Thesis §6.4: the lease does not lift the ReadIndex precondition: before a new leader commits
/// an entry of its own term, its commit index may lag what earlier leaders committed.
#[test]
fn a_lease_read_waits_for_a_commit_in_the_leaders_term() {
    let mut cluster = Cluster::new(3, |config| config.lease_reads = true);
    let leader = elect_any(&mut cluster);
    cluster.node_mut(leader).read_index(1).expect("leader");
    cluster.settle();
    assert!(cluster.readies[&leader].iter().all(|ready| ready.reads.is_empty()), "nothing of this term committed (no no-op)");
    cluster.node_mut(leader).propose(b"x".to_vec()).expect("leader");
    cluster.settle();
    let reads: Vec<ReadyRead> = cluster.readies[&leader].iter().flat_map(|ready| ready.reads.iter().copied()).collect();
    assert_eq!(reads, vec![ReadyRead { context: 1, index: Some(LogIndex(1)) }]);
}

fn entry(index: u64, term: u64) -> Entry {
    Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: vec![index as u8].into() }
}

fn vote_request(from: u64, term: u64, pre_vote: bool) -> Message {
    let body = MessageBody::VoteRequest { pre_vote, transfer: false, last_log_index: LogIndex(2), last_log_term: Term(2) };
    Message { from: NodeId(from), to: NodeId(1), term: Term(term), body }
}

/// The VoteResponses a node sent, as (real or pre-vote, granted).
fn vote_answers(node: &mut Node) -> Vec<(bool, bool)> {
    drain(node)
        .0
        .into_iter()
        .filter_map(|message| match message.body {
            MessageBody::VoteResponse { pre_vote, granted } => Some((pre_vote, granted)),
            _ => None,
        })
        .collect()
}

/// Node 1 restarting at term 2 with a two-entry log and no vote in term 2.
fn restarted(lease_reads: bool) -> Node {
    let mut config = support::config(1, 3);
    config.lease_reads = lease_reads;
    let restored = Restored {
        hard_state: HardState { term: Term(2), vote: None, commit: LogIndex(2) },
        snapshot: None,
        entries: vec![entry(1, 1), entry(2, 2)],
    };
    Node::new(config, restored).expect("valid")
}

/// Clock assumption (c): a restarted node may have answered a leader's heartbeat just before it
/// went down and forgot it, so for its first election timeout it refuses every vote and pre-vote
/// (later-term requests are dropped, same-term ones rejected); afterwards it votes as usual.
#[test]
fn a_restarted_node_refuses_votes_for_its_first_election_timeout() {
    let mut node = restarted(true);
    for tick in 0..ELECTION_TIMEOUT {
        node.step(vote_request(2, 3, true));
        node.step(vote_request(2, 3, false));
        assert!(vote_answers(&mut node).is_empty(), "tick {tick}: later-term requests are dropped");
        node.step(vote_request(3, 2, false));
        assert_eq!(vote_answers(&mut node), vec![(false, false)], "tick {tick}: a same-term vote is refused");
        assert_eq!(node.status().term, Term(2), "tick {tick}: nothing moved the term");
        node.tick();
    }
    node.step(vote_request(2, 3, true));
    assert_eq!(vote_answers(&mut node), vec![(true, true)], "after the fence: pre-vote granted");
    node.step(vote_request(2, 3, false));
    assert_eq!(vote_answers(&mut node), vec![(false, true)], "after the fence: vote granted");

    let mut without_leases = restarted(false);
    without_leases.step(vote_request(2, 3, false));
    assert_eq!(vote_answers(&mut without_leases), vec![(false, true)], "without lease reads, no fence");
}

/// A follower inside its fence whose term moves on through a message that names no leader (here a
/// stray rejection of a later term) forgets its leader, but must still not vote: the leader's
/// lease counts on it for an election timeout after it last heard from it.
#[test]
fn a_follower_whose_term_moved_on_without_a_leader_still_refuses_votes() {
    for lease_reads in [true, false] {
        let mut cluster = Cluster::new(3, |config| config.lease_reads = lease_reads);
        let leader = elect_any(&mut cluster);
        let follower = followers_of(&cluster, leader)[0];
        let other = 6 - leader - follower;
        let term = cluster.node(follower).status().term.0;
        let stray = AppendResponse::Rejected { rejected_prev_index: LogIndex(0), conflict_index: LogIndex(0), conflict_term: None };
        let node = cluster.node_mut(follower);
        let message = |body| Message { from: NodeId(other), to: NodeId(follower), term: Term(term + 1), body };
        node.step(message(MessageBody::AppendResponse { response: stray, read_round: 0 }));
        assert_eq!(node.status().leader, None, "the term moved on and the leader is forgotten");
        let last = node.log().last_index();
        let last_term = node.log().last_term();
        node.step(message(MessageBody::VoteRequest { pre_vote: false, transfer: false, last_log_index: last, last_log_term: last_term }));
        let granted = drain(node).0.iter().any(|message| matches!(message.body, MessageBody::VoteResponse { granted: true, .. }));
        assert_eq!(granted, !lease_reads, "lease_reads={lease_reads}");
    }
}

/// The restart fence delays elections and cannot block them: whatever the order and spacing in
/// which the nodes start (all at once included), a leader is elected within 4 election timeouts of
/// the last start (27 ticks at worst over these seeds, with the fences and without them). Each seed
/// picks the cluster size and the start ticks; a failure names its seed.
#[test]
fn elections_succeed_however_the_nodes_start() {
    let (with_fences, without) = (worst_election_after_last_start(true), worst_election_after_last_start(false));
    println!("worst election, in ticks after the last start: {with_fences} with lease reads, {without} without");
}

fn worst_election_after_last_start(lease_reads: bool) -> u32 {
    let mut worst = 0;
    for seed in 1..=300u64 {
        let mut rng = Rng::new(seed);
        let size = if rng.range(0, 2) == 0 { 3 } else { 5 };
        let all_at_once = seed % 4 == 0;
        let starts: Vec<u32> =
            (0..size).map(|_| if all_at_once { 0 } else { rng.range(0, 2 * ELECTION_TIMEOUT) }).collect();
        let last_start = starts.iter().copied().max().unwrap_or(0);
        let mut cluster = Cluster::new(size, |config| {
            config.lease_reads = lease_reads;
            config.seed = seed;
        });
        // A node that has not started yet neither ticks nor hears anything.
        cluster.isolated = (1..=size).collect();
        let mut now = 0;
        while leader_of(&cluster).is_none() {
            for id in 1..=size {
                if now >= starts[id as usize - 1] {
                    cluster.isolated.remove(&id);
                    cluster.node_mut(id).tick();
                }
            }
            cluster.settle();
            now += 1;
            assert!(
                now <= last_start + 4 * ELECTION_TIMEOUT,
                "seed {seed} (lease_reads={lease_reads}): no leader {now} ticks in; starts {starts:?}"
            );
        }
        worst = worst.max(now.saturating_sub(last_start));
    }
    worst
}

/// Lease reads stand on check-quorum's vote refusal; a config without it is rejected.
#[test]
fn config_rejects_lease_reads_without_check_quorum() {
    let mut config = lease_config(1, 3);
    assert_eq!(config.validate(), Ok(()));
    config.check_quorum = false;
    assert_eq!(config.validate(), Err(ConfigError::LeaseReadsWithoutCheckQuorum));
    assert!(matches!(Node::new(config, Restored::default()), Err(InitError::Config(ConfigError::LeaseReadsWithoutCheckQuorum))));
    let defaults = Config::new(NodeId(1), vec![NodeId(1)]);
    assert!(!defaults.lease_reads, "off by default");
    assert_eq!(defaults.lease_ticks(), 50 - 1 - 10);
    let mut short = defaults.clone();
    short.election_timeout_ticks = 2;
    short.heartbeat_ticks = 1;
    assert_eq!(short.lease_ticks(), 0, "too short to leave any lease after the margins");
}

/// A lone node is its own majority: its lease holds from every heartbeat it "sends".
#[test]
fn a_single_node_serves_reads_under_its_own_lease() {
    let mut config = lease_config(1, 1);
    config.seed = 7;
    let mut node = Node::new(config, Restored::default()).expect("valid");
    while node.status().role != Role::Leader {
        node.tick();
        drain(&mut node);
    }
    for context in 0..3 * u64::from(ELECTION_TIMEOUT) {
        node.read_index(context).expect("leader");
        let (sent, reads) = drain(&mut node);
        assert_eq!(reads, vec![ReadyRead { context, index: Some(node.status().commit) }]);
        assert!(sent.is_empty());
        node.tick();
        drain(&mut node);
    }
}
