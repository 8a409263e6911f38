//! # kv: the replicated key/value state machine
//!
//! Pure and deterministic, like the Raft core it runs on: no I/O, clock or threads.
//!
//! - `command`: the operations (Get, Put, Append, Delete), tagged (client id, seq), and their
//!   encoding in log entries.
//! - `store`: applying committed commands, with one session per client for exactly-once writes.
//! - `snapshot`: the store (data and sessions) as versioned, checksummed bytes.
//! - `pending`: callers waiting for their proposals, and the rule that tells them they lost.
//!
//! Exactly-once: a client picks a random 64-bit id and numbers its writes 1, 2, 3, ...; it has one
//! outstanding at a time and retries it, with the same number, until some server answers. The store
//! remembers, per client, the last number applied and its reply; a write whose number is not newer
//! is answered from there instead of being applied again. Sessions are part of every snapshot, so the
//! rule survives restarts and InstallSnapshot.

pub mod command;
pub mod expiry;
pub mod pending;
pub mod snapshot;
pub mod store;

pub use command::{Command, CommandRef, Op, OpRef, Reply, SetFlags, Watched, WatchedRef};
pub use expiry::{ExpireIf, Expiry};
pub use pending::{Outcome, Pending};
pub use snapshot::SnapshotError;
pub use store::{parse_float, parse_integer, SharedValue, Store, NOT_AN_INTEGER};
