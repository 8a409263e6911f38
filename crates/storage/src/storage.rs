//! `Storage`: the durable state of one Raft node — a write-ahead log of segments plus a snapshot
//! file — and `save`, which makes one `Persist` durable with one fsync of the log.
//! Recovery (`Storage::open`) lives in `recovery.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft::{Entry, HardState, LogIndex, Persist, SnapshotMeta, Term};

use crate::disk::{Disk, DiskFile};
use crate::error::{io_error, StorageError};
use crate::snapshot::{SnapshotStager, Staged};
use crate::wal::Marker;
use crate::{snapshot, wal};

pub(crate) const WAL_DIR: &str = "wal";

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// A segment that reached this size is closed and the next save starts a new one. Records never
    /// span segments, so a segment can end up larger by one record.
    pub segment_bytes: u64,
    /// The active segment is extended with zeros this much at a time, ahead of the records (never
    /// past `segment_bytes`); 0: no preallocation. Why: a record written over zeros already on
    /// disk leaves the file's size and block map alone, so its fsync flushes data only, with no
    /// file-system journal commit — about a third cheaper here, and more so while other nodes on
    /// the same disk fsync too. Recovery reads the zeros as "not written yet" (`wal::End::Unwritten`).
    pub preallocate_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { segment_bytes: 64 << 20, preallocate_bytes: 1 << 20 }
    }
}

pub struct Storage<D: Disk> {
    pub(crate) disk: D,
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) hard_state: HardState,
    pub(crate) shape: LogShape,
    /// The number of the snapshot in `snapshot.bin` (0: none yet).
    pub(crate) snapshot_seq: u64,
    /// `snapshot_seq + 1`, shared with the stagers.
    pub(crate) next_seq: Arc<AtomicU64>,
    /// A staged snapshot file that the next saved snapshot may be.
    pub(crate) staged: Option<Staged>,
    /// Oldest first; the last is the one being appended to.
    pub(crate) segments: Vec<Segment>,
    pub(crate) active: D::File,
    /// Where the next record goes: the end of the last one.
    pub(crate) active_len: u64,
    /// The active segment's size on disk: `active_len` and the preallocated zeros after it.
    pub(crate) active_allocated: u64,
    pub(crate) poisoned: bool,
}

/// What storage remembers about a segment without reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub seq: u64,
    /// The lowest and highest entry index any record in it wrote, if any did. A segment whose
    /// highest is covered by the snapshot holds nothing the log still needs.
    pub entries: Option<(LogIndex, LogIndex)>,
}

impl Segment {
    pub(crate) fn note_entries(&mut self, entries: &[Entry]) {
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            self.entries = Some(match self.entries {
                Some((low, high)) => (low.min(first.index), high.max(last.index)),
                None => (first.index, last.index),
            });
        }
    }
}

/// The shape of the log — snapshot boundary, last index, and the term of every entry as runs —
/// which is what `save` needs to apply the `Persist` rules without keeping the entries in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogShape {
    pub meta: SnapshotMeta,
    pub last: LogIndex,
    /// (first index, term) of each run of equal terms among the entries after the snapshot.
    runs: Vec<(LogIndex, Term)>,
}

impl LogShape {
    pub(crate) fn new(meta: SnapshotMeta, entries: &[Entry]) -> LogShape {
        let mut shape = LogShape { meta, last: meta.index, runs: Vec::new() };
        shape.append(entries);
        shape
    }

    /// The term of the stored entry at `index`; the snapshot boundary is not an entry.
    pub(crate) fn entry_term(&self, index: LogIndex) -> Option<Term> {
        if index <= self.meta.index || index > self.last {
            return None;
        }
        let run = self.runs.partition_point(|&(first, _)| first <= index);
        Some(self.runs[run - 1].1)
    }

    pub(crate) fn truncate_from(&mut self, from: LogIndex) {
        self.runs.retain(|&(first, _)| first < from);
        self.last = self.last.min(from.prev());
    }

    /// The entries at or below `meta.index` moved into the snapshot.
    pub(crate) fn compact(&mut self, meta: SnapshotMeta) {
        let boundary = meta.index.next();
        // The run that contains the boundary starts there now; runs wholly below it go.
        let containing = self.runs.partition_point(|&(first, _)| first <= boundary);
        if containing > 0 {
            self.runs[containing - 1].0 = self.runs[containing - 1].0.max(boundary);
            self.runs.drain(..containing - 1);
        }
        if self.last <= meta.index {
            self.runs.clear();
            self.last = meta.index;
        }
        self.meta = meta;
    }

    /// Appends contiguous entries after dropping any at or after the first one's index.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        self.truncate_from(first.index);
        for entry in entries {
            if self.runs.last().map(|&(_, term)| term) != Some(entry.term) {
                self.runs.push((entry.index, entry.term));
            }
            self.last = entry.index;
        }
    }
}

impl<D: Disk> Storage<D> {
    /// Makes `persist` durable, in the order `Persist` documents: the snapshot (its own file, fsync'd
    /// and renamed into place), then the entries, then the hard state — the last two, and the
    /// snapshot marker, as one log record fsync'd once. One record per save makes a save atomic on
    /// recovery: a torn tail drops a whole save, never half of one (entries of a new term without
    /// the hard state that raised the term would fail `Node::new`'s consistency check).
    ///
    /// Syncs: one fsync of the log per call, however many entries (group commit); a snapshot adds
    /// the fsyncs of its file and of the directory, and starting a new segment that of `wal/`.
    ///
    /// After any I/O error the storage is poisoned: every later call fails until it is reopened.
    pub fn save(&mut self, persist: &Persist) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned);
        }
        if persist.is_empty() {
            return Ok(());
        }
        // Plan everything before touching the disk, so that an invalid persist writes nothing.
        let mut shape = self.shape.clone();
        let mut drop_suffix = false;
        if let Some(snapshot) = &persist.snapshot {
            let meta = snapshot.meta;
            // Ready's rule (§7): keep the entries after the snapshot only if they extend it.
            drop_suffix = shape.entry_term(meta.index) != Some(meta.term);
            if drop_suffix {
                shape.truncate_from(meta.index.next());
            }
            shape.compact(meta);
        }
        if !persist.entries.is_empty() {
            check_entries(&shape, &persist.entries)?;
            shape.append(&persist.entries);
        }
        let roll = self.active_len >= self.options.segment_bytes;
        let mut buf = Vec::new();
        if roll {
            // The new segment starts with the state before this save, so that the segments before
            // it can later be deleted without losing the hard state or the snapshot boundary.
            checkpoint(&mut buf, &self.hard_state, Marker { seq: self.snapshot_seq, meta: self.shape.meta })?;
        }
        let start = wal::begin_record(&mut buf);
        let ops = usize::from(persist.snapshot.is_some()) * (1 + usize::from(drop_suffix))
            + usize::from(!persist.entries.is_empty())
            + usize::from(persist.hard_state.is_some());
        wal::put_op_count(&mut buf, ops);
        if let Some(snapshot) = &persist.snapshot {
            if drop_suffix {
                wal::put_truncate(&mut buf, snapshot.meta.index.next());
            }
            wal::put_snapshot(&mut buf, Marker { seq: self.snapshot_seq + 1, meta: snapshot.meta });
        }
        if !persist.entries.is_empty() {
            wal::put_entries(&mut buf, &persist.entries);
        }
        if let Some(hard_state) = &persist.hard_state {
            wal::put_hard_state(&mut buf, hard_state);
        }
        wal::finish_record(&mut buf, start).map_err(too_large)?;

        let result = self.write(persist, &buf, roll);
        if let Err(error) = result {
            // A full disk leaves everything as it was (the record is written again at the same
            // place next time); anything else leaves the disk in an unknown state.
            self.poisoned = !error.is_no_space();
            return Err(error);
        }
        self.shape = shape;
        self.snapshot_seq += u64::from(persist.snapshot.is_some());
        self.next_seq.store(self.snapshot_seq + 1, Ordering::Release);
        if let Some(hard_state) = persist.hard_state {
            self.hard_state = hard_state;
        }
        if persist.snapshot.is_some() {
            if let Err(error) = self.delete_covered_segments() {
                self.poisoned = true;
                return Err(error);
            }
        }
        Ok(())
    }

    fn write(&mut self, persist: &Persist, buf: &[u8], roll: bool) -> Result<(), StorageError> {
        if let Some(snapshot) = &persist.snapshot {
            // Before the log record: a marker must never point at a snapshot that is not on disk.
            snapshot::write_or_install(&self.disk, &self.dir, self.snapshot_seq + 1, snapshot, self.staged.take())?;
        }
        // A new segment becomes the active one only once its first record is durable, so that a
        // save that failed for want of space leaves the storage as it was.
        let seq = self.segments.last().map_or(1, |segment| segment.seq + u64::from(roll));
        let path = self.segment_path(seq);
        let mut fresh = if roll { Some(self.disk.open(&path, true).map_err(io_error("create", &path))?) } else { None };
        let (offset, allocated) = if roll { (0, 0) } else { (self.active_len, self.active_allocated) };
        let (reserve, segment_bytes) = (self.options.preallocate_bytes, self.options.segment_bytes);
        let file = match fresh.as_mut() {
            Some(file) => file,
            None => &mut self.active,
        };
        file.write_at(offset, buf).map_err(io_error("write", &path))?;
        let end = offset + buf.len() as u64;
        let mut allocated = allocated.max(end);
        if reserve > 0 && allocated - end < reserve / 2 {
            // Extend ahead while half a chunk is left, so records keep landing on zeros already
            // on disk; the same fsync makes the new zeros durable.
            let target = (allocated + reserve).min(segment_bytes);
            if target > allocated {
                let zeros = vec![0; (target - allocated) as usize];
                file.write_at(allocated, &zeros).map_err(io_error("preallocate", &path))?;
                allocated = target;
            }
        }
        file.sync().map_err(io_error("fsync", &path))?;
        if roll {
            // The new segment's name must be durable too, or a crash would lose the whole file.
            let wal_dir = self.dir.join(WAL_DIR);
            self.disk.sync_dir(&wal_dir).map_err(io_error("fsync directory", &wal_dir))?;
        }
        if let Some(file) = fresh {
            self.active = file;
            self.segments.push(Segment { seq, entries: None });
        }
        self.active_len = end;
        self.active_allocated = allocated;
        self.segments.last_mut().expect("an active segment").note_entries(&persist.entries);
        Ok(())
    }

    /// Deletes the oldest segments while everything they wrote is covered by the snapshot. Never the
    /// active one, and only from the front: the next segment's checkpoint then carries the hard state
    /// and snapshot boundary. Not fsync'd: a deletion a crash undoes brings back a segment whose
    /// entries the later snapshot marker drops again on replay.
    pub(crate) fn delete_covered_segments(&mut self) -> Result<(), StorageError> {
        let covered = self.shape.meta.index;
        while self.segments.len() > 1 && self.segments[0].entries.is_none_or(|(_, high)| high <= covered) {
            let path = self.segment_path(self.segments[0].seq);
            self.disk.remove(&path).map_err(io_error("remove", &path))?;
            self.segments.remove(0);
        }
        Ok(())
    }

    pub(crate) fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(WAL_DIR).join(wal::segment_name(seq))
    }

    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// A handle that writes snapshot files ahead of their save, on another thread.
    pub fn snapshot_stager(&self) -> SnapshotStager<D>
    where
        D: Clone,
    {
        SnapshotStager { disk: self.disk.clone(), dir: self.dir.clone(), next_seq: self.next_seq.clone() }
    }

    /// Takes a staged snapshot file: if the next saved snapshot is the one staged (same index and
    /// term, and no other snapshot was saved since it was staged), the save renames the file into
    /// place instead of writing it. The caller promises that the staged data is that snapshot's.
    /// A staged file that is never used is removed by the next save of a snapshot or by open.
    pub fn adopt_staged(&mut self, staged: Staged) -> Result<(), StorageError> {
        if let Some(previous) = self.staged.replace(staged) {
            self.disk.remove(&previous.path).map_err(io_error("remove", &previous.path))?;
        }
        Ok(())
    }

    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.shape.meta
    }

    /// The index of the last entry, or of the snapshot if no entry follows it.
    pub fn last_index(&self) -> LogIndex {
        self.shape.last
    }

    /// The term of the stored entry at `index`, if one is stored (the snapshot boundary is not).
    pub fn entry_term(&self, index: LogIndex) -> Option<Term> {
        self.shape.entry_term(index)
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn disk(&self) -> &D {
        &self.disk
    }
}

/// Appends a record holding the current hard state and snapshot boundary: the first record of
/// every segment.
pub(crate) fn checkpoint(buf: &mut Vec<u8>, hard_state: &HardState, marker: Marker) -> Result<(), StorageError> {
    let start = wal::begin_record(buf);
    wal::put_op_count(buf, 2);
    wal::put_hard_state(buf, hard_state);
    wal::put_snapshot(buf, marker);
    wal::finish_record(buf, start).map_err(too_large)
}

fn too_large(size: usize) -> StorageError {
    StorageError::Invalid(format!("one save is {size} bytes, more than a record can hold (4 GiB)"))
}

/// Entries must run contiguously from a point inside the log (after the snapshot, at most one past
/// the last entry): anything else would leave a hole.
fn check_entries(shape: &LogShape, entries: &[Entry]) -> Result<(), StorageError> {
    let first = entries[0].index;
    if first <= shape.meta.index || first > shape.last.next() {
        return Err(StorageError::Invalid(format!(
            "entries start at {first}, outside ({}, {}]",
            shape.meta.index,
            shape.last.next()
        )));
    }
    for (offset, entry) in entries.iter().enumerate() {
        if entry.index != first.plus(offset as u64) {
            return Err(StorageError::Invalid(format!(
                "entry {} where {} was expected",
                entry.index,
                first.plus(offset as u64)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { term: Term(term), index: LogIndex(index), kind: raft::EntryKind::Command, data: raft::Bytes::new() }
    }

    /// The run-length shape answers like the vector of terms it stands for.
    #[test]
    fn log_shape_matches_a_vector_of_terms() {
        let mut seed = 1u64;
        let mut random = |bound: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % bound
        };
        let mut shape = LogShape::default();
        let mut terms: Vec<(u64, u64)> = Vec::new(); // (index, term) after the snapshot
        let mut meta = SnapshotMeta::default();
        for _ in 0..5000 {
            let last = terms.last().map_or(meta.index.0, |&(index, _)| index);
            match random(3) {
                0 => {
                    let first = meta.index.0 + 1 + random(last - meta.index.0 + 1);
                    let count = 1 + random(4);
                    let mut term = random(3) + 1;
                    let entries: Vec<Entry> = (first..first + count)
                        .map(|index| {
                            term += random(2);
                            entry(index, term)
                        })
                        .collect();
                    shape.append(&entries);
                    terms.retain(|&(index, _)| index < first);
                    terms.extend(entries.iter().map(|entry| (entry.index.0, entry.term.0)));
                }
                1 => {
                    let from = meta.index.0 + 1 + random(last - meta.index.0 + 1);
                    shape.truncate_from(LogIndex(from));
                    terms.retain(|&(index, _)| index < from);
                }
                _ => {
                    meta =
                        SnapshotMeta { index: LogIndex(meta.index.0 + random(last - meta.index.0 + 3)), term: Term(1) };
                    shape.compact(meta);
                    terms.retain(|&(index, _)| index > meta.index.0);
                }
            }
            let last = terms.last().map_or(meta.index.0, |&(index, _)| index);
            assert_eq!(shape.last, LogIndex(last));
            for index in 0..last + 2 {
                let expected = terms.iter().find(|&&(at, _)| at == index).map(|&(_, term)| Term(term));
                assert_eq!(shape.entry_term(LogIndex(index)), expected, "index {index}");
            }
        }
    }
}
