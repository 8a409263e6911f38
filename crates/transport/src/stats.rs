//! Counters the tasks bump with relaxed atomics (they are statistics, not synchronization), and the
//! plain snapshot `Transport::stats` returns, for `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};

use raft::NodeId;

/// A point-in-time copy of the transport's counters. Counters only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub peers: BTreeMap<NodeId, PeerStats>,
    /// `send` calls naming a node that is not a peer (or this node itself).
    pub unknown_destination: u64,
    /// TCP connections accepted on the listen address, before their Hello.
    pub inbound_accepted: u64,
    /// Inbound connections closed because their first frame was not a Hello from a known peer
    /// (or none came in time).
    pub inbound_rejected: u64,
    /// Inbound connections closed on a bad frame, an I/O error or a truncated frame.
    pub inbound_errors: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Whether the outbound connection to this peer is up right now.
    pub connected: bool,
    /// Outbound connections established (Hello written).
    pub connects: u64,
    /// Outbound connection attempts that failed.
    pub connect_failures: u64,
    /// Established outbound connections that broke.
    pub disconnects: u64,
    /// Frames written to the outbound socket, and their bytes (Hello not counted).
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Frames `send` dropped because the peer's queue was full.
    pub dropped_full: u64,
    /// Frames queued but never written: the connection was down or broke under them.
    pub dropped_unsent: u64,
    /// Frames dropped because they encode to more than the frame size limit.
    pub dropped_oversize: u64,
    /// Frames waiting in the queue right now.
    pub queued: usize,
    /// Inbound connections this peer opened to us (valid Hellos).
    pub inbound_connections: u64,
    /// Frames received from this peer.
    pub frames_received: u64,
    /// The frame version this node sends the peer: the highest both speak, as the peer's last
    /// Hello said (`wire::agreed_version`).
    pub frame_version: u8,
}

impl PeerStats {
    /// Every frame handed to `send` for this peer that will never be written.
    pub fn frames_dropped(&self) -> u64 {
        self.dropped_full + self.dropped_unsent + self.dropped_oversize
    }
}

#[derive(Default)]
pub(crate) struct PeerCounters {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub disconnects: AtomicU64,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub dropped_full: AtomicU64,
    pub dropped_unsent: AtomicU64,
    pub dropped_oversize: AtomicU64,
    pub inbound_connections: AtomicU64,
    pub frames_received: AtomicU64,
    /// The highest frame version the peer's last Hello said it speaks (0: none heard yet).
    pub speaks: AtomicU8,
}

impl PeerCounters {
    pub fn snapshot(&self, queued: usize) -> PeerStats {
        PeerStats {
            connected: self.connected.load(Relaxed),
            connects: self.connects.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            dropped_full: self.dropped_full.load(Relaxed),
            dropped_unsent: self.dropped_unsent.load(Relaxed),
            dropped_oversize: self.dropped_oversize.load(Relaxed),
            queued,
            inbound_connections: self.inbound_connections.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            frame_version: self.frame_version(),
        }
    }

    /// The frame version to send the peer in.
    pub fn frame_version(&self) -> u8 {
        wire::agreed_version(Some(self.speaks.load(Relaxed)).filter(|&speaks| speaks > 0))
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub unknown_destination: AtomicU64,
    pub inbound_accepted: AtomicU64,
    pub inbound_rejected: AtomicU64,
    pub inbound_errors: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}
