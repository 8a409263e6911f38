//! `Storage::open`: rebuilding the durable state from the files, cutting off a torn tail and
//! refusing anything else that is damaged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use raft::{Entry, HardState, Restored};

use crate::disk::{Disk, DiskFile};
use crate::error::{io_error, StorageError};
use crate::storage::{checkpoint, LogShape, Options, Segment, Storage, WAL_DIR};
use crate::wal::{self, End, Marker, Op};

/// The state the log's records describe, built by replaying them in order.
#[derive(Default)]
struct Replay {
    hard_state: HardState,
    marker: Marker,
    /// A map, not a vector: once the oldest segments are deleted, the first surviving records may
    /// write entries above a gap that a later snapshot marker covers.
    entries: BTreeMap<u64, Entry>,
}

impl Replay {
    fn apply(&mut self, op: Op, segment: &mut Segment) {
        match op {
            Op::Entries(entries) => {
                segment.note_entries(&entries);
                self.entries.split_off(&entries[0].index.0);
                self.entries.extend(entries.into_iter().map(|entry| (entry.index.0, entry)));
            }
            Op::HardState(hard_state) => self.hard_state = hard_state,
            Op::TruncateFrom(from) => {
                self.entries.split_off(&from.0);
            }
            Op::Snapshot(marker) => {
                self.entries = match marker.meta.index.0.checked_add(1) {
                    Some(after) => self.entries.split_off(&after),
                    None => BTreeMap::new(),
                };
                self.marker = marker;
            }
        }
    }
}

impl<D: Disk> Storage<D> {
    /// Opens (creating if needed) the storage in `dir` and recovers what a node restarts from.
    pub fn open(disk: D, dir: impl Into<PathBuf>) -> Result<(Storage<D>, Restored), StorageError> {
        Storage::open_with(disk, dir, Options::default())
    }

    /// Recovery:
    /// 1. Remove a leftover `snapshot.tmp` and staged snapshots (writes that never finished or were
    ///    never recorded).
    /// 2. Replay every segment in order. A bad record at the end of the last segment with nothing
    ///    valid after it is a torn write: it is cut off. Any other bad record is `Corrupt`.
    /// 3. Read and verify `snapshot.bin`. If the log's last snapshot marker names the snapshot before
    ///    it (by sequence number), a crash came between renaming the snapshot into place and logging
    ///    its marker: apply the snapshot rule now, and log the marker, so that later records build
    ///    on it. Any other disagreement is `Inconsistent`.
    /// 4. Make sure the last segment starts with a checkpoint (it is empty after a tear at its
    ///    first record, or when the directory is new).
    /// 5. Delete the segments the snapshot covers, in case a crash undid their deletion.
    pub fn open_with(
        disk: D,
        dir: impl Into<PathBuf>,
        options: Options,
    ) -> Result<(Storage<D>, Restored), StorageError> {
        let dir = dir.into();
        let wal_dir = dir.join(WAL_DIR);
        disk.create_dir_all(&wal_dir).map_err(io_error("create directory", &wal_dir))?;
        disk.sync_dir(&dir).map_err(io_error("fsync directory", &dir))?;
        crate::snapshot::remove_leftovers(&disk, &dir)?;

        let (mut replay, mut segments, tail) = replay_segments(&disk, &wal_dir)?;
        let snapshot = crate::snapshot::read(&disk, &dir)?;
        let checkpoint_marker = replay.marker;
        let logged = replay.marker;
        let mut repair = Vec::new();
        match &snapshot {
            None if logged.seq == 0 => {}
            None => {
                let reason = format!("the log names snapshot #{} but snapshot.bin is missing", logged.seq);
                return Err(inconsistent(&dir, reason));
            }
            Some((seq, snapshot)) if *seq == logged.seq => {
                if snapshot.meta != logged.meta {
                    let reason = format!(
                        "snapshot.bin (#{seq}) covers up to {} {}, the log says {} {}",
                        snapshot.meta.index, snapshot.meta.term, logged.meta.index, logged.meta.term
                    );
                    return Err(inconsistent(&dir, reason));
                }
            }
            Some((seq, snapshot)) if *seq == logged.seq + 1 => {
                // The save that wrote this snapshot crashed before its log record was durable.
                let marker = Marker { seq: *seq, meta: snapshot.meta };
                let meta = snapshot.meta;
                let keep = replay.entries.get(&meta.index.0).is_some_and(|entry| entry.term == meta.term);
                let start = wal::begin_record(&mut repair);
                wal::put_op_count(&mut repair, 1 + usize::from(!keep));
                if !keep {
                    wal::put_truncate(&mut repair, meta.index.next());
                    replay.apply(Op::TruncateFrom(meta.index.next()), &mut Segment { seq: 0, entries: None });
                }
                wal::put_snapshot(&mut repair, marker);
                wal::finish_record(&mut repair, start).expect("a tiny record");
                replay.apply(Op::Snapshot(marker), &mut Segment { seq: 0, entries: None });
            }
            Some((seq, _)) => {
                let reason = format!("snapshot.bin is snapshot #{seq} but the log's last marker names #{}", logged.seq);
                return Err(inconsistent(&dir, reason));
            }
        }
        let meta = replay.marker.meta;

        let entries: Vec<Entry> = replay.entries.into_values().collect();
        if let Some((position, entry)) = entries
            .iter()
            .enumerate()
            .find(|(position, entry)| entry.index != meta.index.plus(*position as u64 + 1))
        {
            let expected = meta.index.plus(position as u64 + 1);
            return Err(inconsistent(&dir, format!("the log has entry {} where {expected} was expected", entry.index)));
        }

        // The segment to append to: the last one, cut back to its last whole record, or a new one.
        let created = segments.is_empty();
        if created {
            segments.push(Segment { seq: 1, entries: None });
        }
        let seq = segments.last().expect("at least one segment").seq;
        let path = wal_dir.join(wal::segment_name(seq));
        let mut active = disk.open(&path, created).map_err(io_error("open", &path))?;
        let file_len = active.len().map_err(io_error("stat", &path))?;
        let mut active_len = match tail {
            Tail::Clean => file_len,
            Tail::Unwritten(offset) => offset,
            Tail::Torn(offset) => {
                active.truncate(offset).map_err(io_error("truncate", &path))?;
                offset
            }
        };
        let active_allocated = if let Tail::Unwritten(_) = tail { file_len } else { active_len };
        let mut buf = Vec::new();
        if active_len == 0 {
            checkpoint(&mut buf, &replay.hard_state, checkpoint_marker)?;
        }
        buf.extend_from_slice(&repair);
        if !buf.is_empty() {
            active.write_at(active_len, &buf).map_err(io_error("write", &path))?;
            active_len += buf.len() as u64;
        }
        if !buf.is_empty() || matches!(tail, Tail::Torn(_)) {
            active.sync().map_err(io_error("fsync", &path))?;
        }
        if created {
            disk.sync_dir(&wal_dir).map_err(io_error("fsync directory", &wal_dir))?;
        }

        let mut storage = Storage {
            disk,
            dir,
            options,
            hard_state: replay.hard_state,
            shape: LogShape::new(meta, &entries),
            snapshot_seq: replay.marker.seq,
            next_seq: Arc::new(AtomicU64::new(replay.marker.seq + 1)),
            staged: None,
            segments,
            active,
            active_len,
            // (the repair and checkpoint records went over the zeros, or past the end)
            active_allocated: active_allocated.max(active_len),
            poisoned: false,
        };
        // Segments a crash brought back after their deletion (deletions are not fsync'd).
        storage.delete_covered_segments()?;
        let restored = Restored { hard_state: replay.hard_state, snapshot: snapshot.map(|(_, snapshot)| snapshot), entries };
        Ok((storage, restored))
    }
}

/// Replays the segments of `wal_dir` in order; also returns how the last one ends.
fn replay_segments<D: Disk>(disk: &D, wal_dir: &Path) -> Result<(Replay, Vec<Segment>, Tail), StorageError> {
    let names = disk.list(wal_dir).map_err(io_error("list", wal_dir))?;
    let mut seqs: Vec<u64> = names.iter().filter_map(|name| wal::parse_segment_name(name)).collect();
    seqs.sort_unstable();
    let mut replay = Replay::default();
    let mut segments = Vec::new();
    let mut tail = Tail::Clean;
    for (position, &seq) in seqs.iter().enumerate() {
        let path = wal_dir.join(wal::segment_name(seq));
        let mut file = disk.open(&path, false).map_err(io_error("open", &path))?;
        let bytes = file.read_all().map_err(io_error("read", &path))?;
        let (records, end) = wal::scan(&bytes, position + 1 == seqs.len());
        let mut segment = Segment { seq, entries: None };
        for ops in records {
            for op in ops {
                replay.apply(op, &mut segment);
            }
        }
        segments.push(segment);
        match end {
            End::Clean => tail = Tail::Clean,
            End::Unwritten { offset } => tail = Tail::Unwritten(offset),
            End::Torn { offset, .. } => tail = Tail::Torn(offset),
            End::Corrupt { offset, reason } => return Err(StorageError::Corrupt { file: path, offset, reason }),
        }
    }
    Ok((replay, segments, tail))
}

/// How the last segment ends.
#[derive(Clone, Copy)]
enum Tail {
    Clean,
    /// Zeros from this offset on: preallocated space, kept for the records to come.
    Unwritten(u64),
    /// A record torn by a crash starts here: cut off.
    Torn(u64),
}

fn inconsistent(dir: &Path, reason: String) -> StorageError {
    StorageError::Inconsistent { dir: dir.to_path_buf(), reason }
}
