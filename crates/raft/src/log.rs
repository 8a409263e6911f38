//! The in-memory view of the replicated log: a snapshot boundary, the entries after it, and three
//! cursors into it.
//!
//! ```text
//!   snapshot.index   applied        commit          stable        last
//!        |  (compacted) |  handed out  | committed,     | persisted  | not yet
//!        |              |  to apply    | not yet applied|            | persisted
//! ```
//! Invariants (checked by `check`): snapshot.index <= applied <= commit <= last, and
//! snapshot.index <= stable <= last; entries are contiguous from snapshot.index + 1.
//! `commit` may run ahead of `stable` on a follower: committed means a majority holds the entry,
//! and the driver persists a Ready's entries before applying them.

use crate::types::{Entry, LogIndex, SnapshotMeta, Term};

#[derive(Debug, Clone)]
pub struct RaftLog {
    /// Last index and term covered by the snapshot; entries at or below it are gone.
    snapshot: SnapshotMeta,
    /// entries[k].index == snapshot.index + 1 + k.
    entries: Vec<Entry>,
    /// Highest index known durable on this node's disk.
    pub(crate) stable: LogIndex,
    /// Highest index known committed (§5.3).
    pub(crate) commit: LogIndex,
    /// Highest index handed to the service (in a Ready) for applying.
    pub(crate) applied: LogIndex,
}

impl RaftLog {
    /// A log restored from durable state: a snapshot boundary and the entries after it.
    pub fn restore(snapshot: SnapshotMeta, entries: Vec<Entry>, commit: LogIndex) -> RaftLog {
        let last = snapshot.index.plus(entries.len() as u64);
        let commit = commit.max(snapshot.index).min(last);
        let log = RaftLog { snapshot, entries, stable: last, commit, applied: snapshot.index };
        log.check();
        log
    }

    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot
    }

    pub fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    pub fn last_index(&self) -> LogIndex {
        self.snapshot.index.plus(self.entries.len() as u64)
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |entry| entry.term)
    }

    /// The term of the entry at `index`, if this log still knows it (the snapshot boundary counts).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index.0 - self.snapshot.index.0 - 1) as usize)
    }

    /// Entries from `from` up to `to` inclusive, at most `max_bytes` (but always at least one entry
    /// when any is available, so that a large entry still moves).
    pub fn slice(&self, from: LogIndex, to: LogIndex, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut index = from;
        while index <= to {
            let Some(entry) = self.entry(index) else { break };
            bytes += entry.size_estimate();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(entry.clone());
            index = index.next();
        }
        out
    }

    /// §5.4.1: a candidate's log is at least as up-to-date as ours if its last term is higher, or the
    /// same with an index at least as large.
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The leader's own append: the entry goes at the end, in the leader's term.
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index().next(), "leader appends must be contiguous");
        self.entries.push(entry);
    }

    /// Merges entries a leader sent after (prev_index, prev_term) matched (§5.3 step 3 and 4): an
    /// existing entry that conflicts (same index, other term) is deleted with all that follow;
    /// entries already present are kept, so a stale or duplicated request never truncates.
    /// Returns false, changing nothing, if a conflict would cut into committed entries: only a
    /// misbehaving peer can send that.
    pub fn merge(&mut self, entries: &[Entry]) -> bool {
        let conflict = entries.iter().position(|entry| self.term_at(entry.index) != Some(entry.term));
        let Some(position) = conflict else { return true };
        let first_new = entries[position].index;
        if first_new <= self.commit {
            return false;
        }
        if first_new <= self.last_index() {
            self.entries.truncate((first_new.0 - self.snapshot.index.0 - 1) as usize);
            self.stable = self.stable.min(first_new.prev());
        }
        if first_new != self.last_index().next() {
            return false;
        }
        self.entries.extend_from_slice(&entries[position..]);
        true
    }

    /// The hint for a rejected AppendRequest whose prev entry does not match ours (see `AppendResponse`).
    pub fn conflict_hint(&self, prev_index: LogIndex) -> (LogIndex, Option<Term>) {
        let Some(term) = self.term_at(prev_index).filter(|_| prev_index <= self.last_index()) else {
            return (self.last_index().next(), None);
        };
        let mut first = prev_index;
        while first > self.first_index() && self.term_at(first.prev()) == Some(term) {
            first = first.prev();
        }
        (first, Some(term))
    }

    /// The last index this log holds with `term`, used by the leader to jump over a follower's
    /// conflicting term in one step.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries.iter().rev().find(|entry| entry.term == term).map(|entry| entry.index)
    }

    /// Drops the prefix a snapshot now covers (the service's own snapshot). `index` must be applied.
    pub fn compact(&mut self, index: LogIndex) {
        let Some(term) = self.term_at(index) else { return };
        if index <= self.snapshot.index {
            return;
        }
        let drop = (index.0 - self.snapshot.index.0) as usize;
        self.entries.drain(..drop);
        self.snapshot = SnapshotMeta { index, term };
        self.stable = self.stable.max(index);
        self.check();
    }

    /// Replaces the whole log with a snapshot received from the leader (§7: the follower's log does
    /// not contain the snapshot's last entry, so everything it holds is discarded).
    pub fn reset_to_snapshot(&mut self, meta: SnapshotMeta) {
        self.entries.clear();
        self.snapshot = meta;
        self.stable = meta.index;
        self.commit = meta.index;
        self.applied = meta.index;
        self.check();
    }

    /// Entries appended or rewritten since the last time the driver reported them durable.
    pub fn unstable(&self) -> &[Entry] {
        let start = (self.stable.0 - self.snapshot.index.0) as usize;
        &self.entries[start..]
    }

    /// The driver wrote everything up to (index, term): mark it durable, unless the log changed under
    /// it since (then the term no longer matches and the write said nothing about what is there now).
    pub fn stable_to(&mut self, index: LogIndex, term: Term) {
        if index > self.stable && self.term_at(index) == Some(term) {
            self.stable = index;
        }
    }

    pub fn commit_to(&mut self, index: LogIndex) {
        debug_assert!(index <= self.last_index(), "commit beyond the log");
        if index > self.commit {
            self.commit = index;
        }
    }

    pub fn check(&self) {
        assert!(self.snapshot.index <= self.applied, "applied {} below snapshot {}", self.applied, self.snapshot.index);
        assert!(self.applied <= self.commit, "applied {} above commit {}", self.applied, self.commit);
        assert!(self.commit <= self.last_index(), "commit {} above last {}", self.commit, self.last_index());
        assert!(self.snapshot.index <= self.stable && self.stable <= self.last_index(), "stable out of range");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: vec![index as u8].into() }
    }

    fn log_with(terms: &[u64]) -> RaftLog {
        let entries = terms.iter().enumerate().map(|(k, &t)| entry(k as u64 + 1, t)).collect();
        RaftLog::restore(SnapshotMeta::default(), entries, LogIndex(0))
    }

    #[test]
    fn merge_keeps_matching_entries_and_truncates_at_conflict() {
        let mut log = log_with(&[1, 1, 2, 2]);
        assert!(log.merge(&[entry(2, 1), entry(3, 3)]));
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.term_at(LogIndex(3)), Some(Term(3)));
        assert_eq!(log.stable, LogIndex(2));
    }

    #[test]
    fn stale_duplicate_append_never_truncates() {
        let mut log = log_with(&[1, 1, 2, 2]);
        assert!(log.merge(&[entry(2, 1)]));
        assert_eq!(log.last_index(), LogIndex(4));
    }

    #[test]
    fn merge_refuses_to_rewrite_committed_entries() {
        let mut log = log_with(&[1, 1, 2]);
        log.commit_to(LogIndex(2));
        assert!(!log.merge(&[entry(2, 5)]));
        assert_eq!(log.term_at(LogIndex(2)), Some(Term(1)));
    }

    #[test]
    fn conflict_hint_names_first_index_of_conflicting_term() {
        let log = log_with(&[1, 2, 2, 2]);
        assert_eq!(log.conflict_hint(LogIndex(4)), (LogIndex(2), Some(Term(2))));
        assert_eq!(log.conflict_hint(LogIndex(9)), (LogIndex(5), None));
    }

    #[test]
    fn compact_drops_prefix_and_keeps_terms() {
        let mut log = log_with(&[1, 1, 2, 3]);
        log.commit_to(LogIndex(3));
        log.applied = LogIndex(3);
        log.compact(LogIndex(2));
        assert_eq!(log.first_index(), LogIndex(3));
        assert_eq!(log.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(log.term_at(LogIndex(1)), None);
        assert_eq!(log.slice(LogIndex(3), LogIndex(4), usize::MAX).len(), 2);
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let log = log_with(&[1, 2]);
        assert!(log.is_up_to_date(LogIndex(1), Term(3)));
        assert!(log.is_up_to_date(LogIndex(2), Term(2)));
        assert!(!log.is_up_to_date(LogIndex(5), Term(1)));
    }
}
