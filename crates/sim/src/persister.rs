//! The lab's persister: Raft state and snapshot, saved together in one atomic step.
//!
//! A node gets a handle; the tester keeps another. At a crash the tester swaps its own for a copy,
//! so whatever the dead instance still writes lands in an object nobody reads again.
//!
//! The state is kept decoded, and a save applies one `Persist` delta to it, so saving costs what
//! changed rather than the whole log (the KV tests run tens of thousands of operations). Its size is
//! tracked as the exact length of its encoding (`raft::codec::encode_state`), which is what the lab's
//! size limits are about; `raft_state()` produces that encoding.

use std::cell::RefCell;
use std::rc::Rc;

use raft::codec::{encode_state, encoded_entry_len, varint_len};
use raft::{Entry, HardState, Persist, Restored, Snapshot, SnapshotMeta};

#[derive(Default, Clone)]
struct Saved {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// The entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    /// Sum of `encoded_entry_len` over `entries`.
    entries_len: usize,
}

impl Saved {
    /// Applies one Ready's changes, in the order `Persist` documents.
    fn apply(&mut self, persist: &Persist) {
        if let Some(snapshot) = &persist.snapshot {
            let meta = snapshot.meta;
            match self.entries.iter().position(|entry| entry.index == meta.index && entry.term == meta.term) {
                Some(position) => self.drop_front(position + 1),
                None => self.truncate(0),
            }
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = persist.entries.first() {
            let keep = (first.index.0 - self.meta().index.0 - 1) as usize;
            self.truncate(keep);
            self.entries_len += persist.entries.iter().map(encoded_entry_len).sum::<usize>();
            self.entries.extend_from_slice(&persist.entries);
        }
        if let Some(hard_state) = persist.hard_state {
            self.hard_state = hard_state;
        }
    }

    fn meta(&self) -> SnapshotMeta {
        self.snapshot.as_ref().map(|snapshot| snapshot.meta).unwrap_or_default()
    }

    fn truncate(&mut self, keep: usize) {
        if keep < self.entries.len() {
            self.entries_len -= self.entries[keep..].iter().map(encoded_entry_len).sum::<usize>();
            self.entries.truncate(keep);
        }
    }

    fn drop_front(&mut self, count: usize) {
        self.entries_len -= self.entries[..count].iter().map(encoded_entry_len).sum::<usize>();
        self.entries.drain(..count);
    }

    fn encoded_len(&self) -> usize {
        let hard_state = &self.hard_state;
        let meta = self.meta();
        varint_len(hard_state.term.0)
            + varint_len(hard_state.vote.map_or(0, |vote| vote.0))
            + varint_len(hard_state.commit.0)
            + varint_len(meta.index.0)
            + varint_len(meta.term.0)
            + varint_len(self.entries.len() as u64)
            + self.entries_len
    }
}

#[derive(Clone, Default)]
pub struct Persister(Rc<RefCell<Saved>>);

impl Persister {
    pub fn new() -> Persister {
        Persister::default()
    }

    /// A new persister with the same contents, sharing nothing with this one.
    pub fn copy(&self) -> Persister {
        Persister(Rc::new(RefCell::new(self.0.borrow().clone())))
    }

    /// Saves one Ready's durable changes, atomically.
    pub fn save(&self, persist: &Persist) {
        self.0.borrow_mut().apply(persist);
    }

    /// What a node restarting from this persister recovers.
    pub fn restored(&self) -> Restored {
        let saved = self.0.borrow();
        Restored { hard_state: saved.hard_state, snapshot: saved.snapshot.clone(), entries: saved.entries.clone() }
    }

    /// The Raft state in its encoded form (hard state, snapshot boundary, entries).
    pub fn raft_state(&self) -> Vec<u8> {
        let saved = self.0.borrow();
        encode_state(&saved.hard_state, saved.meta(), &saved.entries)
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.0.borrow().snapshot.as_ref().map(|snapshot| snapshot.data.to_vec()).unwrap_or_default()
    }

    /// Bytes of the encoded Raft state, without the snapshot.
    pub fn raft_state_size(&self) -> usize {
        self.0.borrow().encoded_len()
    }

    pub fn snapshot_size(&self) -> usize {
        self.0.borrow().snapshot.as_ref().map_or(0, |snapshot| snapshot.data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{EntryKind, LogIndex, NodeId, Term};

    fn entry(index: u64, term: u64, size: usize) -> Entry {
        Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: vec![9; size].into() }
    }

    #[test]
    fn tracked_size_equals_the_encoding_through_appends_truncations_and_snapshots() {
        let persister = Persister::new();
        let check = || assert_eq!(persister.raft_state_size(), persister.raft_state().len());
        check();
        persister.save(&Persist {
            hard_state: Some(HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(1) }),
            snapshot: None,
            entries: (1..=5).map(|i| entry(i, 1, 100 * i as usize)).collect(),
        });
        check();
        persister.save(&Persist { hard_state: None, snapshot: None, entries: vec![entry(3, 3, 1)] });
        check();
        assert_eq!(persister.restored().entries.len(), 3);
        let snapshot = Snapshot { meta: SnapshotMeta { index: LogIndex(2), term: Term(1) }, data: vec![1, 2].into() };
        persister.save(&Persist { hard_state: None, snapshot: Some(snapshot), entries: Vec::new() });
        check();
        assert_eq!(persister.restored().entries, vec![entry(3, 3, 1)]);
        assert_eq!(persister.snapshot(), vec![1, 2]);
        let copy = persister.copy();
        persister.save(&Persist { hard_state: None, snapshot: None, entries: vec![entry(4, 3, 1)] });
        assert_eq!(copy.restored().entries.len(), 1, "a copy shares nothing");
    }
}
