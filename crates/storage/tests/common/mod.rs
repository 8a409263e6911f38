//! Shared by the integration tests: a seeded generator, a model of the `Persist` rules, and a
//! generator of random `Persist` values that a Raft node could plausibly hand its storage.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::{Entry, EntryKind, HardState, LogIndex, NodeId, Persist, Restored, Snapshot, SnapshotMeta, Term};

/// SplitMix64: small, seeded, good enough to drive tests.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x1234_5678)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [low, high].
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        low + self.next() % (high - low + 1)
    }

    /// True with probability numerator / denominator.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.next() % denominator < numerator
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

pub fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: raft::Bytes::copy_from_slice(data) }
}

pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|index| entry(index, term, format!("e{index}").as_bytes())).collect()
}

pub fn snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    Snapshot { meta: SnapshotMeta { index: LogIndex(index), term: Term(term) }, data: Arc::from(data) }
}

pub fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState { term: Term(term), vote: vote.map(NodeId), commit: LogIndex(commit) }
}

pub fn persist(hard_state: Option<HardState>, snapshot: Option<Snapshot>, entries: Vec<Entry>) -> Persist {
    Persist { hard_state, snapshot, entries }
}

/// The durable state as the `Persist` documentation defines it, kept the simplest way: the same
/// rules as the simulator's persister, applied to a vector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Model {
    pub fn from_restored(restored: Restored) -> Model {
        Model { hard_state: restored.hard_state, snapshot: restored.snapshot, entries: restored.entries }
    }

    pub fn meta(&self) -> SnapshotMeta {
        self.snapshot.as_ref().map(|snapshot| snapshot.meta).unwrap_or_default()
    }

    pub fn last_index(&self) -> LogIndex {
        self.entries.last().map_or(self.meta().index, |entry| entry.index)
    }

    pub fn entry_term(&self, index: LogIndex) -> Option<Term> {
        self.entries.iter().find(|entry| entry.index == index).map(|entry| entry.term)
    }

    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        let meta = snapshot.meta;
        match self.entries.iter().position(|entry| entry.index == meta.index && entry.term == meta.term) {
            Some(position) => {
                self.entries.drain(..=position);
            }
            None => self.entries.clear(),
        }
        self.snapshot = Some(snapshot.clone());
    }

    pub fn apply_entries(&mut self, entries: &[Entry]) {
        if let Some(first) = entries.first() {
            let keep = (first.index.0 - self.meta().index.0 - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend_from_slice(entries);
        }
    }

    /// Applies one persist, in the documented order. Returns the state between the snapshot step and
    /// the rest, when there is a snapshot: a crash can expose it, since the snapshot file is made
    /// durable before the log record.
    pub fn apply(&mut self, persist: &Persist) -> Option<Model> {
        let mut middle = None;
        if let Some(snapshot) = &persist.snapshot {
            self.apply_snapshot(snapshot);
            middle = Some(self.clone());
        }
        self.apply_entries(&persist.entries);
        if let Some(hard_state) = persist.hard_state {
            self.hard_state = hard_state;
        }
        middle
    }
}

/// A random `Persist` valid for `model`: snapshots inside the log (matching the stored term or not),
/// past its end, and now and then at or below the current one; appends and conflicting rewrites;
/// hard states. `large` makes some entries big enough to fill small segments quickly.
pub fn random_persist(rng: &mut Prng, model: &Model, large: bool) -> Persist {
    let mut after = model.clone();
    let snapshot = rng.chance(1, 8).then(|| {
        let meta = after.meta();
        let last = after.last_index();
        let index = if meta.index.0 > 0 && rng.chance(1, 20) {
            LogIndex(rng.range(1, meta.index.0))
        } else {
            LogIndex(rng.range(meta.index.0 + 1, last.0 + 2))
        };
        let term = match after.entry_term(index) {
            Some(term) if rng.chance(3, 4) => term,
            _ => Term(rng.range(1, 8)),
        };
        let data_len = rng.range(0, 64) as usize;
        let snapshot = Snapshot { meta: SnapshotMeta { index, term }, data: rng.bytes(data_len).into() };
        after.apply_snapshot(&snapshot);
        snapshot
    });
    let mut entries = Vec::new();
    if rng.chance(3, 4) {
        let meta = after.meta();
        let last = after.last_index();
        let first =
            if last > meta.index && rng.chance(1, 4) { rng.range(meta.index.0 + 1, last.0) } else { last.0 + 1 };
        let mut term = after.entry_term(LogIndex(first - 1)).unwrap_or(meta.term).0.max(1);
        for index in first..first + rng.range(1, 6) {
            term += u64::from(rng.chance(1, 6));
            let len = if large && rng.chance(1, 5) { rng.range(100, 400) } else { rng.range(0, 24) } as usize;
            let kind = if rng.chance(1, 10) { EntryKind::Noop } else { EntryKind::Command };
            entries.push(Entry { term: Term(term), index: LogIndex(index), kind, data: rng.bytes(len).into() });
        }
    }
    let hard_state = rng.chance(1, 2).then(|| HardState {
        term: Term(rng.range(0, 9)),
        vote: rng.chance(1, 2).then(|| NodeId(rng.range(1, 5))),
        commit: LogIndex(rng.range(0, 40)),
    });
    Persist { hard_state, snapshot, entries }
}

/// The path of segment `seq` in a storage directory.
pub fn segment(dir: &Path, seq: u64) -> PathBuf {
    dir.join("wal").join(format!("{seq:016}.log"))
}

/// The byte offsets at which the records of a segment start, read from their length fields.
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut position = 0;
    while position + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break; // preallocated zeros: no more records
        }
        offsets.push(position);
        position += 8 + len;
    }
    offsets
}

/// Where the records of a segment end (the preallocated zeros, if any, start).
pub fn records_end(bytes: &[u8]) -> usize {
    record_offsets(bytes).last().map_or(0, |&last| last + 8 + u32::from_le_bytes(bytes[last..last + 4].try_into().unwrap()) as usize)
}
