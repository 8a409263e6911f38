//! # raft: a pure Raft core
//!
//! This crate implements the Raft consensus protocol (Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", extended version; section numbers below refer to it, and
//! "thesis" to Ongaro's dissertation) as a deterministic state machine with no I/O of its own:
//! no threads, sockets, clocks, files or OS randomness.
//!
//! ```text
//!   tick() ──┐                       ┌──> persist: hard state, entries, snapshot
//!   step(m) ─┼──> Node ── ready() ───┼──> send_now / send_after_persist: messages
//!   propose ─┤                       ├──> apply: committed entries, installed snapshots
//!   compact ─┘        <── advance() ─┘    (driver acknowledges once it carried them out)
//! ```
//!
//! What it implements: leader election with randomized timeouts (§5.2) and the election
//! restriction (§5.4.1); log replication with fast conflict backtracking (§5.3); commitment only by
//! counting replicas of current-term entries (§5.4.2, Figure 8); log compaction and InstallSnapshot
//! (§7) in checksummed chunks under a window, resumable; pre-vote and check-quorum with leader stickiness (thesis §9.6, §6.2); pipelined appends with
//! per-follower flow control; batching (all proposals between two `ready()` calls travel together).
//!
//! Linearizable reads use ReadIndex (thesis §6.4): the leader notes its commit index and confirms
//! it still leads with one heartbeat round, shared by every read that arrived in the same step.
//! Optionally (`Config::lease_reads`, off by default), a leader holding a lease answers reads with
//! no round at all, under the clock assumptions stated in `lease.rs` (thesis §6.4.1).
//!
//! Left out on purpose, for now: membership changes, leadership transfer.
//! Drivers live elsewhere: the simulator (`sim`) and, later, the server.
//!
//! ## Glossary
//! - **term**: a logical epoch with at most one leader.
//! - **log index**: position of an entry in the log, from 1.
//! - **commit index**: highest index known stored on a majority in a way that survives any election.
//! - **match index / next index**: the leader's knowledge of a follower's log, and what to send next.
//! - **quorum**: a majority of the voters.
//! - **snapshot**: the service's state up to an index, replacing the log prefix up to it.
//! - **tick**: one unit of the driver's clock; every timeout is a number of ticks.

pub mod codec;
pub mod crc32c;
mod config;
mod election;
mod lease;
pub mod membership;
pub mod log;
mod message;
mod node;
mod progress;
pub mod quorum;
mod read_index;
mod ready;
mod replication;
mod rng;
mod snapshot_transfer;
mod transfer;
mod types;

pub use bytes::Bytes;
pub use config::{Broken, Config, ConfigError};
pub use membership::{Change, ChangeError, Member, Membership};
pub use message::{AppendResponse, Message, MessageBody};
pub use transfer::TransferError;
pub use node::{CompactError, InitError, Node, ProposeError, Restored};
pub use read_index::ReadError;
pub use ready::{Apply, Persist, Ready, ReadyRead, Status};
pub use rng::Rng;
pub use types::{Entry, EntryKind, HardState, LogIndex, NodeId, Role, Snapshot, SnapshotMeta, Term};
