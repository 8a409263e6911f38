//! # replica: one raftkv node, as a deterministic state machine
//!
//! Everything a node decides lives here: the Raft core (`raft::Node`) and carrying out its Readys,
//! the KV store and the callers waiting for their writes, ReadIndex reads, requests forwarded to the
//! leader and their answers, requests waiting for a leader, the order of each client connection's
//! commands, deadlines, and when to snapshot. No sockets, no clock, no threads, no async runtime:
//! the server (real sockets, a timer, a disk thread) and the simulator (a virtual network and
//! disk) carry inputs in and outputs out, so one seed replays any behaviour of the production node.
//!
//! ```text
//!  inputs                                        outputs
//!  tick()                        ┐            ┌  Send { to, frame }
//!  peer_frame(from, frame)       │            │  Reply { conn, answer }     (in each connection's order)
//!  client(conn, request)         │            │  Save { id, persist }       (then persisted(id),
//!  persisted(id)                 ├─ Replica ──┤                              or save_failed_no_space(id))
//!  save_failed_no_space(id)      │            │  Snapshot { index, store }  (then snapshot_taken,
//!  snapshot_taken(index, data)   │            │                              or snapshot_skipped)
//!  snapshot_skipped()            │            │  Refused(reason)            (a peer's message)
//!  undeliverable(to, frame)      │            │  Peers(links)               (whom to dial where)
//!  peer_hello(from, .., cluster) │            │  Warning(text)
//!  shut_down()                   ┘            │  Stopped                    (after shut_down)
//!                                             └  Fatal(reason)
//! ```
//!
//! Inputs only record; `take_outputs` carries out the core's work for all of them at once (one
//! Ready, one save for a batch). Saves complete later: while one is outstanding the node goes on
//! taking messages and requests, and what they change goes into the next save (group commit);
//! meanwhile what needs no save goes on too (heartbeats, applying committed entries, reads), so a
//! slow or full disk stops no read. The leader's appends leave before its own save. A save that
//! found the disk full wrote nothing: the node refuses writes, steps aside as leader, and hands
//! the same save again every few ticks until it succeeds.

mod admin;
mod command_docs;
mod connections;
pub mod glob;
pub mod links;
mod membership;
pub mod metrics;
pub mod pipeline;
mod replica;
pub mod request;
pub mod session;
pub mod users;

pub use connections::{ConnId, Slot};
pub use membership::{bootstrap_voters, fresh};
pub use replica::{Mutation, Options, Output, Replica, SaveId, OUT_OF_MEMORY};
