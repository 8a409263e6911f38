//! What the driver must do after feeding the node some inputs, in the order it must do it.

use std::fmt;

use crate::message::Message;
use crate::types::{Entry, HardState, LogIndex, NodeId, Role, Snapshot, Term};

/// One batch of work for the driver. Carry out the fields in declaration order, then call
/// `Node::advance` with the same value:
///
/// 1. `persist`: make it durable (fsync) — the snapshot first, then the entries, then the hard state.
/// 2. `send_now`: may go out before or while persisting (a leader replicates in parallel with its own
///    write, §10.2.1 of the thesis).
/// 3. `send_after_persist`: votes and acknowledgements promise durable state; only after step 1.
/// 4. `apply`: committed entries and installed snapshots, in order, to the state machine.
/// 5. `reads`: linearizable reads whose read index a quorum confirmed: serve each once the state
///    machine has applied up to its index (or tell the caller to retry, if it failed).
#[derive(Debug, Default)]
pub struct Ready {
    pub persist: Persist,
    pub send_now: Vec<Message>,
    pub send_after_persist: Vec<Message>,
    pub apply: Vec<Apply>,
    pub reads: Vec<ReadyRead>,
    pub status: Status,
}

/// The outcome of one `Node::read_index` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyRead {
    /// The caller's tag for the request.
    pub context: u64,
    /// Serve the read once the state machine has applied this index. None: this node lost (or never
    /// confirmed) its leadership; the caller should retry with the leader.
    pub index: Option<LogIndex>,
}

/// The changes to durable state. Storage applies them as one atomic step when it can (the lab's
/// persister does); a write-ahead log applies them in the order listed.
#[derive(Debug, Default, Clone)]
pub struct Persist {
    /// Set when term, vote or commit changed.
    pub hard_state: Option<HardState>,
    /// A snapshot to store. If storage holds an entry at the snapshot's index with the snapshot's
    /// term, it keeps the entries after it and drops the rest; otherwise it drops every entry (§7).
    pub snapshot: Option<Snapshot>,
    /// Entries to write. Storage first deletes any entry at or after `entries[0].index`: a follower's
    /// conflicting suffix is rewritten this way (§5.3).
    pub entries: Vec<Entry>,
}

impl Persist {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none() && self.snapshot.is_none() && self.entries.is_empty()
    }
}

/// One item for the state machine, in log order.
#[derive(Debug, Clone)]
pub enum Apply {
    Entry(Entry),
    /// Replace the state machine with this snapshot; entries after it follow.
    Snapshot(Snapshot),
}

impl Apply {
    pub fn index(&self) -> LogIndex {
        match self {
            Apply::Entry(entry) => entry.index,
            Apply::Snapshot(snapshot) => snapshot.meta.index,
        }
    }
}

/// A node's externally visible state, for `state()`, status pages and invariant checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    pub snapshot_index: LogIndex,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            id: NodeId(0),
            role: Role::Follower,
            term: Term(0),
            leader: None,
            commit: LogIndex::ZERO,
            applied: LogIndex::ZERO,
            last_index: LogIndex::ZERO,
            snapshot_index: LogIndex::ZERO,
        }
    }
}

impl Status {
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} leader={} commit={} applied={} last={} snapshot={}",
            self.id,
            self.role,
            self.term,
            self.leader.map_or_else(|| "none".to_string(), |id| id.to_string()),
            self.commit,
            self.applied,
            self.last_index,
            self.snapshot_index
        )
    }
}
