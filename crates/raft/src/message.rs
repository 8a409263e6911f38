//! The messages nodes exchange, as request/response pairs, with a one-line `Display` for traces.

use std::fmt;

use bytes::Bytes;

use crate::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};

/// One message between two nodes. `term` is the sender's term, except in a granted pre-vote
/// response, where it echoes the term the pre-candidate proposed (§9.6 of the thesis).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// RequestVote (§5.2), or a pre-vote when `pre_vote` is set: then `term` is the term the
    /// candidate would use, and nobody changes state on receiving it.
    /// `transfer`: the election a leader asked for by handing over leadership (`TimeoutNow`).
    VoteRequest { pre_vote: bool, transfer: bool, last_log_index: LogIndex, last_log_term: Term },
    VoteResponse { pre_vote: bool, granted: bool },
    /// AppendEntries (§5.3). An empty `entries` is a heartbeat that still carries the commit index.
    /// `read_round` is the leader's latest ReadIndex round (thesis §6.4), echoed in the response: an
    /// answer at the leader's term to round r confirms its leadership for the reads of rounds <= r.
    AppendRequest {
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        read_round: u64,
    },
    AppendResponse { response: AppendResponse, read_round: u64 },
    /// InstallSnapshot (§7), one chunk at a time: bytes `offset..offset + data.len()` of the
    /// snapshot `meta`, which is `total` bytes long with CRC-32C `checksum`. (meta, total, checksum)
    /// name the bytes, so a transfer cut by a lost chunk or a leader change resumes where it stopped.
    SnapshotRequest { meta: SnapshotMeta, total: u64, checksum: u32, offset: u64, data: Bytes },
    /// The follower holds the first `received` bytes of the snapshot at `index` (0: send it from
    /// the start). A complete snapshot is answered with an `AppendResponse` once it is installed.
    SnapshotResponse { index: LogIndex, received: u64 },
    /// The leader hands over leadership: campaign now (thesis §3.10).
    TimeoutNow,
}

/// The answer to an AppendRequest or a SnapshotRequest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendResponse {
    /// The follower's log matches the leader's up to and including `match_index`.
    Accepted { match_index: LogIndex },
    /// The follower has no entry matching (`rejected_prev_index`, its term). The hint lets the leader
    /// skip a whole term per round trip instead of one entry (the "fast backup" of §5.3's footnote):
    /// `conflict_term` is the follower's term at that index (None if its log is too short), and
    /// `conflict_index` the first index the follower holds with that term (or its last index + 1).
    Rejected { rejected_prev_index: LogIndex, conflict_index: LogIndex, conflict_term: Option<Term> },
}

impl MessageBody {
    /// A snapshot small enough to travel as one chunk: what tests and tools send by hand.
    pub fn whole_snapshot(meta: SnapshotMeta, data: &[u8]) -> MessageBody {
        let checksum = crate::crc32c::crc32c(data);
        MessageBody::SnapshotRequest { meta, total: data.len() as u64, checksum, offset: 0, data: Bytes::copy_from_slice(data) }
    }
}

impl Message {
    /// Whether this message answers a request. Responses promise durable state (a vote, appended
    /// entries), so the driver sends them only after persisting; the simulator also treats them as
    /// RPC replies.
    pub fn is_response(&self) -> bool {
        matches!(self.body, MessageBody::VoteResponse { .. } | MessageBody::AppendResponse { .. } | MessageBody::SnapshotResponse { .. })
    }

    /// A pre-vote request or its answer: a question about a term, which binds no one to it (so
    /// it may leave before its sender's term is durable).
    pub fn is_pre_vote(&self) -> bool {
        matches!(self.body, MessageBody::VoteRequest { pre_vote: true, .. } | MessageBody::VoteResponse { pre_vote: true, .. })
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} {} ", self.from, self.to, self.term)?;
        match &self.body {
            MessageBody::VoteRequest { pre_vote, transfer, last_log_index, last_log_term } => {
                let kind = match (*pre_vote, *transfer) {
                    (true, _) => "PreVoteRequest",
                    (false, true) => "VoteRequest(transfer)",
                    (false, false) => "VoteRequest",
                };
                write!(f, "{kind} last={last_log_index}/{last_log_term}")
            }
            MessageBody::VoteResponse { pre_vote, granted } => {
                let kind = if *pre_vote { "PreVoteResponse" } else { "VoteResponse" };
                write!(f, "{kind} {}", if *granted { "granted" } else { "rejected" })
            }
            MessageBody::AppendRequest { prev_log_index, prev_log_term, entries, leader_commit, read_round } => {
                write!(f, "AppendRequest prev={prev_log_index}/{prev_log_term} commit={leader_commit} entries=")?;
                match (entries.first(), entries.last()) {
                    (Some(first), Some(last)) => write!(f, "[{}..={}]", first.index, last.index)?,
                    _ => write!(f, "[]")?,
                }
                if *read_round > 0 {
                    write!(f, " read_round={read_round}")?;
                }
                Ok(())
            }
            MessageBody::AppendResponse { response: AppendResponse::Accepted { match_index }, .. } => {
                write!(f, "AppendResponse accepted match={match_index}")
            }
            MessageBody::AppendResponse {
                response: AppendResponse::Rejected { rejected_prev_index, conflict_index, conflict_term },
                ..
            } => {
                write!(f, "AppendResponse rejected prev={rejected_prev_index} hint={conflict_index}")?;
                match conflict_term {
                    Some(term) => write!(f, "/{term}"),
                    None => Ok(()),
                }
            }
            MessageBody::SnapshotRequest { meta, total, offset, data, .. } => {
                let end = *offset + data.len() as u64;
                write!(f, "SnapshotRequest last={}/{} bytes={offset}..{end} of {total}", meta.index, meta.term)
            }
            MessageBody::SnapshotResponse { index, received } => {
                write!(f, "SnapshotResponse last={index} received={received}")
            }
            MessageBody::TimeoutNow => write!(f, "TimeoutNow"),
        }
    }
}
