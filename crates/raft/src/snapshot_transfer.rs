//! InstallSnapshot (§7) in chunks, on both sides. The leader sends its snapshot as a window of
//! chunks and moves the window on as the follower acknowledges them; the follower assembles the
//! chunks in order, checks the whole against the checksum, and installs it. So no message is
//! larger than a chunk however large the state, a lost chunk costs one resend, and a transfer cut
//! by a leader change resumes where it stopped if the new leader sends the same bytes.
//!
//! Memory: the leader shares its one snapshot between followers and copies out one window per
//! follower at most; a follower assembles one snapshot at a time.

use bytes::Bytes;

use crate::crc32c::crc32c;
use crate::message::MessageBody;
use crate::node::Node;
use crate::types::{LogIndex, NodeId, Role, Snapshot, SnapshotMeta};

/// A snapshot a follower is receiving: the bytes it holds so far, from the first.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    meta: SnapshotMeta,
    total: u64,
    checksum: u32,
    data: Vec<u8>,
}

/// Preallocated at most this much for an incoming snapshot: a peer's `total` is not trusted for
/// an allocation, the bytes that actually arrive are.
const PREALLOCATE_MAX: u64 = 64 << 20;

impl Node {
    /// Starts or continues sending `peer` the current snapshot, as far as its window allows.
    pub(crate) fn send_snapshot(&mut self, peer: NodeId) {
        let Some(snapshot) = self.snapshot.clone() else { return };
        let checksum = self.snapshot_checksum();
        let total = snapshot.data.len() as u64;
        let chunk = self.config.snapshot_chunk_bytes as u64;
        let window = chunk.saturating_mul(self.config.snapshot_chunks_inflight as u64);
        let Some(progress) = self.progress.get_mut(&peer) else { return };
        progress.begin_snapshot(snapshot.meta.index);
        for (start, end) in progress.next_snapshot_chunks(total, chunk, window) {
            let data = Bytes::copy_from_slice(&snapshot.data[start as usize..end as usize]);
            self.send(peer, MessageBody::SnapshotRequest { meta: snapshot.meta, total, checksum, offset: start, data });
        }
    }

    /// The checksum of the current snapshot, computed once per snapshot and only if it is sent.
    fn snapshot_checksum(&mut self) -> u32 {
        let Some(snapshot) = &self.snapshot else { return 0 };
        match self.snapshot_checksum {
            Some((meta, checksum)) if meta == snapshot.meta => checksum,
            _ => {
                let checksum = crc32c(&snapshot.data);
                self.snapshot_checksum = Some((snapshot.meta, checksum));
                checksum
            }
        }
    }

    pub(crate) fn on_snapshot_response(&mut self, from: NodeId, index: LogIndex, received: u64) {
        if self.role != Role::Leader {
            return;
        }
        let total = self.snapshot.as_ref().map_or(0, |snapshot| snapshot.data.len() as u64);
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.recently_active = true;
        if progress.on_snapshot_ack(index, received, total) {
            self.send_snapshot(from);
        }
    }

    pub(crate) fn on_snapshot_request(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        total: u64,
        checksum: u32,
        offset: u64,
        data: Bytes,
    ) {
        if !self.accept_leader(from) {
            return;
        }
        if meta.index <= self.log.commit {
            // Everything it covers is committed here already (a stale or duplicated chunk).
            if self.incoming.as_ref().is_some_and(|incoming| incoming.meta.index <= self.log.commit) {
                self.incoming = None;
            }
            self.accept(from, self.log.commit, 0);
            return;
        }
        let same = self.incoming.as_ref().is_some_and(|incoming| (incoming.meta, incoming.total, incoming.checksum) == (meta, total, checksum));
        if !same {
            if offset != 0 {
                self.answer_chunk(from, meta.index, 0);
                return;
            }
            let data = Vec::with_capacity(total.min(PREALLOCATE_MAX) as usize);
            self.incoming = Some(IncomingSnapshot { meta, total, checksum, data });
        }
        let Some(incoming) = &mut self.incoming else { return };
        if offset == incoming.data.len() as u64 {
            incoming.data.extend_from_slice(&data);
        }
        let received = incoming.data.len() as u64;
        if received < total {
            self.answer_chunk(from, meta.index, received);
            return;
        }
        let Some(complete) = self.incoming.take() else { return };
        if received != total || crc32c(&complete.data) != checksum {
            // Damaged on the way: start over rather than install it.
            self.answer_chunk(from, meta.index, 0);
            return;
        }
        let snapshot = Snapshot { meta, data: complete.data.into() };
        if self.config.hold_received_snapshots {
            self.received_snapshot = Some(snapshot);
        } else {
            self.install_snapshot(snapshot, None);
        }
    }

    fn answer_chunk(&mut self, to: NodeId, index: LogIndex, received: u64) {
        self.respond(to, self.term, MessageBody::SnapshotResponse { index, received });
    }

    /// A complete snapshot received from the leader and held for the driver to check its contents
    /// (`Config::hold_received_snapshots`): install it with `install_snapshot`, or drop it to refuse.
    pub fn take_received_snapshot(&mut self) -> Option<Snapshot> {
        self.received_snapshot.take()
    }

    /// Installs a snapshot received from the leader of this term and answers the leader. If this
    /// node already holds the snapshot's last entry, its log matches up to there and what follows
    /// is kept (§7); otherwise the log is replaced by the snapshot, and `membership` (the
    /// configuration the service found in it; None: none recorded) is in effect from there.
    pub fn install_snapshot(&mut self, snapshot: Snapshot, membership: Option<crate::membership::Membership>) {
        let Some(leader) = self.leader.filter(|_| self.role == Role::Follower) else { return };
        let meta = snapshot.meta;
        if meta.index <= self.log.commit {
            self.accept(leader, self.log.commit, 0);
            return;
        }
        if self.log.term_at(meta.index) == Some(meta.term) {
            self.log.commit_to(meta.index);
        } else {
            // Without one from the service, what this node knew of the configuration at that index.
            let base = membership.map_or_else(|| self.membership_at(meta.index), |membership| (meta.index, membership));
            self.log.reset_to_snapshot(meta);
            self.base_membership = base;
            self.refresh_membership();
            self.snapshot = Some(snapshot);
            self.snapshot_unpersisted = true;
            self.snapshot_unapplied = true;
        }
        self.accept(leader, meta.index, 0);
    }
}
