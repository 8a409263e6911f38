//! The leader's view of one follower: how much of the log it is known to hold, what to send next,
//! and how many appends may be in flight. Knows nothing of `Node`.

use std::collections::VecDeque;

use crate::types::LogIndex;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// Looking for the point where the follower's log matches: one append at a time, resent each
    /// heartbeat until answered (a large one after as many heartbeats as its bytes take, see
    /// `PATIENCE_BYTES`). `bytes`: the entry bytes of the one in flight; `waited`: heartbeats since.
    Probe { sent: bool, bytes: u64, waited: u32 },
    /// The logs match up to `match_index`; appends stream optimistically. `inflight` holds the last
    /// index and the entry bytes of each unacknowledged append, oldest first, bounded in number and
    /// in bytes by the config.
    Replicate { inflight: VecDeque<(LogIndex, u64)> },
    /// The entries the follower needs are compacted; the snapshot covering `index` is on its way
    /// in chunks. Bytes `acked..sent` are in flight; `finished` once the last chunk was sent.
    /// `ticks` counts heartbeats without an acknowledgement, so a lost chunk is sent again.
    Snapshot { index: LogIndex, ticks: u32, sent: u64, acked: u64, finished: bool },
}

#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known replicated on the follower (0 until it answers in this term).
    pub match_index: LogIndex,
    /// Next index to send; invariant: match_index < next_index.
    pub next_index: LogIndex,
    pub state: ReplicationState,
    /// Whether the follower answered anything since the last check-quorum round.
    pub recently_active: bool,
    /// The leader's tick when the follower last answered an append (0: not in this term).
    pub heard_at: u64,
    /// The oldest unacknowledged append at the previous heartbeat, and for how many heartbeats it
    /// has been the oldest: once that is more than its bytes could take to arrive, it (or its
    /// answer) was lost.
    pub oldest_inflight_at_heartbeat: Option<LogIndex>,
    pub oldest_inflight_heartbeats: u32,
}

/// What a link is assumed to carry at least in one heartbeat interval (4 MiB: 40 MB/s at the
/// production 100 ms): an unanswered append is taken for lost after one interval, plus one more
/// for every this many bytes in flight ahead of and with it. Small appends are given up on after
/// one interval, as before; a train of large ones is not resent while it is still on its way
/// (on a 1 Gbit/s link a 16 MiB append takes longer than an interval).
pub const PATIENCE_BYTES: u64 = 4 << 20;

/// Heartbeats an append may go unanswered, with `bytes` in flight, before it is taken for lost.
fn patience(bytes: u64) -> u32 {
    1 + u32::try_from(bytes / PATIENCE_BYTES).unwrap_or(u32::MAX)
}

impl Progress {
    pub fn new(last_index: LogIndex) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index: last_index.next(),
            state: ReplicationState::Probe { sent: false, bytes: 0, waited: 0 },
            recently_active: false,
            heard_at: 0,
            oldest_inflight_at_heartbeat: None,
            oldest_inflight_heartbeats: 0,
        }
    }

    pub fn become_probe(&mut self) {
        self.next_index = self.match_index.next();
        self.state = ReplicationState::Probe { sent: false, bytes: 0, waited: 0 };
    }

    pub fn become_replicate(&mut self) {
        self.next_index = self.match_index.next();
        self.state = ReplicationState::Replicate { inflight: VecDeque::new() };
    }

    /// The follower acknowledged everything up to `index`. Returns whether that was news.
    pub fn on_accepted(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        self.next_index = self.next_index.max(self.match_index.next());
        match &mut self.state {
            ReplicationState::Probe { .. } => self.become_replicate(),
            ReplicationState::Replicate { inflight } => {
                while inflight.front().is_some_and(|&(last, _)| last <= self.match_index) {
                    inflight.pop_front();
                }
            }
            ReplicationState::Snapshot { index, .. } => {
                if self.match_index >= *index {
                    self.become_replicate();
                }
            }
        }
        advanced
    }

    /// Starts sending the snapshot at `index` unless that transfer is already under way.
    pub fn begin_snapshot(&mut self, index: LogIndex) {
        if !matches!(self.state, ReplicationState::Snapshot { index: current, .. } if current == index) {
            self.state = ReplicationState::Snapshot { index, ticks: 0, sent: 0, acked: 0, finished: false };
        }
    }

    /// The chunks of a `total`-byte snapshot to send now, as byte ranges of at most `chunk` bytes,
    /// keeping at most `window` bytes unacknowledged. Always at least one chunk, even for an empty
    /// snapshot, so that it too is delivered.
    pub fn next_snapshot_chunks(&mut self, total: u64, chunk: u64, window: u64) -> Vec<(u64, u64)> {
        let mut chunks = Vec::new();
        if let ReplicationState::Snapshot { sent, acked, finished, .. } = &mut self.state {
            while !*finished && *sent - *acked < window {
                let end = sent.saturating_add(chunk).min(total);
                chunks.push((*sent, end));
                *finished = end == total;
                *sent = end;
            }
        }
        chunks
    }

    /// The follower holds the first `received` bytes of the snapshot at `index`. Within what was
    /// sent, the window moves on; anything else (it lost what it had, or it already held more,
    /// from an earlier leader's transfer of the same bytes) restarts the sending from there.
    pub fn on_snapshot_ack(&mut self, index: LogIndex, received: u64, total: u64) -> bool {
        match &mut self.state {
            ReplicationState::Snapshot { index: current, ticks, sent, acked, finished } if *current == index && received <= total => {
                if (*acked..=*sent).contains(&received) {
                    *acked = received;
                } else {
                    (*sent, *acked, *finished) = (received, received, false);
                }
                *ticks = 0;
                true
            }
            _ => false,
        }
    }

    /// Nothing was acknowledged for a while: send again from the last acknowledged byte.
    pub fn resend_snapshot(&mut self) {
        if let ReplicationState::Snapshot { ticks, sent, acked, finished, .. } = &mut self.state {
            (*ticks, *sent, *finished) = (0, *acked, false);
        }
    }

    /// Whether another append may be sent now: fewer than `max_inflight` unacknowledged, and
    /// fewer than `max_inflight_bytes` entry bytes (one append may always go, however large).
    /// The byte bound is what keeps a heartbeat from queueing behind a long train of large
    /// entries on the link: it waits behind at most that many bytes and one more append.
    pub fn can_send(&self, max_inflight: usize, max_inflight_bytes: u64) -> bool {
        match &self.state {
            ReplicationState::Probe { sent, .. } => !sent,
            ReplicationState::Replicate { inflight } => {
                inflight.len() < max_inflight && (inflight.is_empty() || inflight.iter().map(|&(_, bytes)| bytes).sum::<u64>() < max_inflight_bytes)
            }
            ReplicationState::Snapshot { .. } => false,
        }
    }

    /// Records an append covering up to `last`, carrying `bytes` of entries, that was just sent.
    pub fn on_sent(&mut self, last: LogIndex, has_entries: bool, bytes: u64) {
        match &mut self.state {
            ReplicationState::Probe { sent, bytes: probe_bytes, waited } => (*sent, *probe_bytes, *waited) = (true, bytes, 0),
            ReplicationState::Replicate { inflight } => {
                if has_entries {
                    self.next_index = last.next();
                    inflight.push_back((last, bytes));
                }
            }
            ReplicationState::Snapshot { .. } => {}
        }
    }

    /// A heartbeat interval passed: let a probe be resent, and treat an append that stayed
    /// unacknowledged for a whole interval (more, for large ones: `patience`) as lost (fall back
    /// to probing, which resends).
    pub fn on_heartbeat(&mut self) {
        match &mut self.state {
            ReplicationState::Probe { sent, bytes, waited } => {
                *waited += 1;
                if *waited >= patience(*bytes) {
                    (*sent, *waited) = (false, 0);
                }
            }
            ReplicationState::Replicate { inflight } => {
                let oldest = inflight.front().map(|&(last, _)| last);
                let bytes = inflight.iter().map(|&(_, bytes)| bytes).sum();
                if oldest.is_some() && oldest == self.oldest_inflight_at_heartbeat {
                    self.oldest_inflight_heartbeats += 1;
                    if self.oldest_inflight_heartbeats >= patience(bytes) {
                        self.become_probe();
                    }
                } else {
                    self.oldest_inflight_heartbeats = 0;
                }
            }
            ReplicationState::Snapshot { ticks, .. } => *ticks += 1,
        }
        self.oldest_inflight_at_heartbeat = match &self.state {
            ReplicationState::Replicate { inflight } => inflight.front().map(|&(last, _)| last),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_then_replicate_pipelines_and_bounds_inflight() {
        let mut progress = Progress::new(LogIndex(5));
        assert!(progress.can_send(2, 100));
        progress.on_sent(LogIndex(5), false, 0);
        assert!(!progress.can_send(2, 100), "one probe at a time");
        progress.on_accepted(LogIndex(5));
        assert!(matches!(progress.state, ReplicationState::Replicate { .. }));
        progress.on_sent(LogIndex(7), true, 10);
        progress.on_sent(LogIndex(9), true, 10);
        assert!(!progress.can_send(2, 100));
        assert_eq!(progress.next_index, LogIndex(10));
        progress.on_accepted(LogIndex(7));
        assert!(progress.can_send(2, 100));
    }

    #[test]
    fn bytes_in_flight_are_bounded_but_one_large_append_may_always_go() {
        let mut progress = Progress::new(LogIndex(0));
        progress.on_accepted(LogIndex(0));
        assert!(progress.can_send(64, 100));
        progress.on_sent(LogIndex(1), true, 500);
        assert!(!progress.can_send(64, 100), "500 bytes in flight, over the 100 allowed");
        progress.on_accepted(LogIndex(1));
        assert!(progress.can_send(64, 100));
        progress.on_sent(LogIndex(2), true, 60);
        assert!(progress.can_send(64, 100), "60 of 100");
        progress.on_sent(LogIndex(3), true, 60);
        assert!(!progress.can_send(64, 100), "120 of 100");
        progress.on_accepted(LogIndex(2));
        assert!(progress.can_send(64, 100));
    }

    #[test]
    fn stalled_stream_falls_back_to_probe_after_a_silent_interval() {
        let mut progress = Progress::new(LogIndex(0));
        progress.on_accepted(LogIndex(0));
        progress.on_sent(LogIndex(3), true, 1);
        progress.on_heartbeat();
        assert!(matches!(progress.state, ReplicationState::Replicate { .. }), "just sent: not yet stalled");
        progress.on_heartbeat();
        assert!(matches!(progress.state, ReplicationState::Probe { .. }));
        assert_eq!(progress.next_index, LogIndex(1));
    }

    /// A 16 MiB append takes longer than a heartbeat interval on a 1 Gbit/s link: it is not
    /// taken for lost (and sent again) until its bytes had time to arrive; a probe of that size is
    /// not resent every interval either.
    #[test]
    fn a_large_append_is_given_the_time_its_bytes_take() {
        let large = 16 << 20;
        let mut progress = Progress::new(LogIndex(0));
        progress.on_accepted(LogIndex(0));
        progress.on_sent(LogIndex(1), true, large);
        for heartbeat in 1..=5 {
            progress.on_heartbeat();
            assert!(matches!(progress.state, ReplicationState::Replicate { .. }), "given up on at heartbeat {heartbeat}");
        }
        progress.on_heartbeat();
        assert!(matches!(progress.state, ReplicationState::Probe { .. }), "lost after 1 + 16/4 intervals");
        assert!(progress.can_send(64, 4 << 20));
        progress.on_sent(LogIndex(1), true, large);
        for heartbeat in 1..=4 {
            progress.on_heartbeat();
            assert!(!progress.can_send(64, 4 << 20), "the large probe sent again at heartbeat {heartbeat}");
        }
        progress.on_heartbeat();
        assert!(progress.can_send(64, 4 << 20), "and again once its bytes had time");
        // A small probe is resent every interval, as before.
        progress.on_sent(LogIndex(1), true, 100);
        progress.on_heartbeat();
        assert!(progress.can_send(64, 4 << 20));
    }

    #[test]
    fn snapshot_chunks_move_with_the_window_and_restart_where_the_follower_stands() {
        let mut progress = Progress::new(LogIndex(0));
        progress.begin_snapshot(LogIndex(9));
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![(0, 10), (10, 20)]);
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![], "the window is full");
        assert!(progress.on_snapshot_ack(LogIndex(9), 10, 25));
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![(20, 25)]);
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![], "the last chunk was sent");
        assert!(!progress.on_snapshot_ack(LogIndex(8), 0, 25), "an answer about another snapshot");
        assert!(progress.on_snapshot_ack(LogIndex(9), 0, 25), "the follower lost what it had");
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![(0, 10), (10, 20)]);
        progress.resend_snapshot();
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![(0, 10), (10, 20)], "resent from the last acknowledged byte");
        progress.begin_snapshot(LogIndex(9));
        assert_eq!(progress.next_snapshot_chunks(25, 10, 20), vec![], "the same transfer goes on");
        progress.begin_snapshot(LogIndex(12));
        assert_eq!(progress.next_snapshot_chunks(0, 10, 20), vec![(0, 0)], "an empty snapshot is one empty chunk");
    }
}
