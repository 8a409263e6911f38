//! How a node is set up: who is in the cluster, its timers in ticks, and its protocol options.

use crate::types::NodeId;

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// The bootstrap voters, this node included: the configuration until the log or a snapshot
    /// holds one. Empty for a node that joins an existing cluster (it waits to be added).
    pub peers: Vec<NodeId>,
    /// The configuration recorded with the restored snapshot, if the service kept one (it rides in
    /// the service's snapshot); None: `peers`, or the log's own configuration entries.
    pub restored_membership: Option<crate::membership::Membership>,
    /// Lower bound of the randomized election timeout; each timeout is drawn from
    /// [election_timeout_ticks, 2 × election_timeout_ticks) so that split votes clear (§5.2).
    pub election_timeout_ticks: u32,
    /// A leader sends a heartbeat to every follower this often. Must be well under the election timeout.
    pub heartbeat_ticks: u32,
    /// Ask before campaigning (§9.6 of the thesis), so a node that was partitioned away does not
    /// disrupt a healthy leader by bumping terms when it returns.
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down, and
    /// followers that heard from a leader within the minimum timeout ignore vote requests
    /// (§6.2 of the thesis: leader stickiness).
    pub check_quorum: bool,
    /// Serve linearizable reads under a leader lease: while a majority answered a heartbeat the
    /// leader sent less than `lease_ticks()` ago, a read is answered at once, with no heartbeat
    /// round. Trades the clock assumptions of `lease.rs` (bounded drift between the nodes' tick
    /// rates; ticks that count real time, pauses included) for a round trip per read batch.
    /// Requires `check_quorum`, whose vote refusal is what the lease stands on.
    pub lease_reads: bool,
    /// Append an empty entry on becoming leader, so entries of earlier terms commit at once and
    /// reads can be served. Off in the lab, whose tests expect commands at exact indexes.
    pub noop_on_election: bool,
    /// Soft cap on the entry bytes in one AppendRequest.
    pub append_bytes_max: usize,
    /// Appends in flight per follower while streaming.
    pub inflight_appends_max: usize,
    /// Entry bytes in flight per follower while streaming (one append may always go): a heartbeat
    /// never queues behind more than this and one append on the link.
    pub inflight_bytes_max: usize,
    /// Heartbeats a snapshot transfer may go unacknowledged before its unacknowledged chunks are
    /// sent again.
    pub snapshot_resend_heartbeats: u32,
    /// Bytes of snapshot in one SnapshotRequest, and chunks in flight per follower.
    pub snapshot_chunk_bytes: usize,
    pub snapshot_chunks_inflight: usize,
    /// Hold a complete snapshot received from the leader until the driver has checked its contents
    /// (`Node::take_received_snapshot`, then `Node::install_snapshot`), instead of installing it at once.
    pub hold_received_snapshots: bool,
    /// Seed of the node's private random generator (election timeouts). Mixed with the id, so one
    /// cluster seed gives every node its own sequence.
    pub seed: u64,
    /// Never set outside the simulator's mutation tests.
    #[doc(hidden)]
    pub broken: Broken,
}

/// Deliberately broken membership rules, for the simulator's mutation tests only: each must be
/// caught by a seed.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Broken {
    #[default]
    None,
    /// A change proposed before the leader committed an entry of its term.
    ChangeBeforeCommitInTerm,
    /// A change proposed while the previous one is uncommitted.
    TwoChangesInFlight,
    /// Learners' acknowledgements counted toward commitment.
    LearnerCounted,
    /// A node that knows its removal committed still campaigns.
    RemovedCampaigns,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("node id {0} is not among the peers")]
    IdNotInPeers(NodeId),
    #[error("peer {0} is listed twice")]
    DuplicatePeer(NodeId),
    #[error("node ids must be >= 1")]
    ZeroId,
    #[error("heartbeat ({heartbeat_ticks} ticks) must be positive and shorter than the election timeout ({election_timeout_ticks} ticks)")]
    BadTimers { election_timeout_ticks: u32, heartbeat_ticks: u32 },
    #[error("at least one append and one snapshot chunk (of at least a byte) must be allowed in flight")]
    ZeroInflight,
    #[error("lease reads rely on check_quorum (followers refusing votes while they hear a leader), which is off")]
    LeaseReadsWithoutCheckQuorum,
}

impl Config {
    /// Defaults in ticks suited to a 10 ms tick: heartbeats every 100 ms, elections after 0.5–1 s.
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> Config {
        Config {
            id,
            peers,
            restored_membership: None,
            election_timeout_ticks: 50,
            heartbeat_ticks: 10,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            noop_on_election: true,
            append_bytes_max: 1 << 20,
            inflight_appends_max: 64,
            inflight_bytes_max: 4 << 20,
            snapshot_resend_heartbeats: 5,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_chunks_inflight: 4,
            hold_received_snapshots: false,
            seed: 0,
            broken: Broken::None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.peers.iter().any(|peer| peer.0 == 0) || self.id.0 == 0 {
            return Err(ConfigError::ZeroId);
        }
        // No bootstrap voters at all: a node that joins an existing cluster.
        if !self.peers.is_empty() && !self.peers.contains(&self.id) {
            return Err(ConfigError::IdNotInPeers(self.id));
        }
        let mut sorted = self.peers.clone();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ConfigError::DuplicatePeer(pair[0]));
        }
        if self.heartbeat_ticks == 0 || self.election_timeout_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::BadTimers {
                election_timeout_ticks: self.election_timeout_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.inflight_appends_max == 0 || self.snapshot_chunks_inflight == 0 || self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError::ZeroInflight);
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::LeaseReadsWithoutCheckQuorum);
        }
        Ok(())
    }

    /// How long a leader's lease lasts, in its own ticks, from the moment it sent a heartbeat that
    /// a majority answered: the election timeout less one tick for the granularity of ticks and
    /// less `lease_drift_margin_ticks()` for clock-rate drift (see `lease.rs` for the argument).
    /// 0 means a lease never holds, and every read takes a ReadIndex round.
    pub fn lease_ticks(&self) -> u32 {
        self.election_timeout_ticks.saturating_sub(1).saturating_sub(self.lease_drift_margin_ticks())
    }

    /// The part of the election timeout a lease gives up to drift between the nodes' tick rates:
    /// a fifth, rounded up (so at least one tick). A follower whose ticks run up to 25% faster than
    /// the leader's still refuses votes until the lease has expired: (T − 1 − ⌈T/5⌉) leader ticks
    /// ≤ (T − 1) / 1.25 follower ticks, for an election timeout of T ticks.
    pub fn lease_drift_margin_ticks(&self) -> u32 {
        self.election_timeout_ticks.div_ceil(5).max(1)
    }
}

