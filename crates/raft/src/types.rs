//! Newtypes for the numbers Raft juggles, so that a term is never passed where an index is expected.

use std::fmt;

/// A node's identity in the cluster; ids are chosen by the operator and are >= 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u64);

/// An election term (§5.1). Terms only grow on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Term(pub u64);

/// A position in the replicated log. Index 0 is the empty prefix: no entry lives there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogIndex(pub u64);

impl LogIndex {
    pub const ZERO: LogIndex = LogIndex(0);

    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one; the empty prefix has no predecessor and stays at 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    pub fn plus(self, count: u64) -> LogIndex {
        LogIndex(self.0 + count)
    }
}

impl Term {
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// What a log entry carries. `Noop` is the empty entry a new leader may append so that it can
/// commit entries of earlier terms (§5.4.2) and serve reads; the service skips it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Command,
    Noop,
    /// A configuration (`membership::Membership`): in effect once in the log; the service only
    /// records it (it rides in snapshots).
    Config,
}

/// One log entry. `index` is implied by position in storage but carried here so that every
/// slice of entries is self-describing. `data` is reference-counted: cloning an entry (slicing
/// the log for each follower, handing entries to storage and the service) never copies the
/// payload, and a received entry may point straight into the frame it arrived in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub kind: EntryKind,
    pub data: bytes::Bytes,
}

impl Entry {
    /// Bytes this entry costs in a message, for flow control; an estimate, not the encoding.
    pub fn size_estimate(&self) -> usize {
        self.data.len() + 12
    }
}

/// The state that must be durable before a node answers anything (§5.1, Figure 2 "persistent state"),
/// plus the commit index, which is safe to persist and lets a restarted node re-apply without a leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: LogIndex,
}

/// Identifies the log prefix a snapshot replaces: its last included index and term (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
}

/// A snapshot of the service's state covering the log up to `meta.index`. The bytes are opaque to Raft
/// and shared, because the leader hands the same snapshot to every lagging follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: std::sync::Arc<[u8]>,
}

/// Role of a node in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Running a pre-vote (§9.6 of the Raft thesis): asking whether it could win before bumping its term.
    PreCandidate,
    Candidate,
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(name)
    }
}
