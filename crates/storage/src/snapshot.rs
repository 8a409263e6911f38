//! `snapshot.bin`: the newest snapshot, replaced atomically.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RKVSNAP\0"
//!      8     4  version, u32 LE (1)
//!     12     8  sequence number, u64 LE   1 for the first snapshot saved, then 2, ...; the log's
//!                                         snapshot markers name it
//!     20     8  index, u64 LE          the last log index the snapshot covers
//!     28     8  term, u64 LE           the term of that entry
//!     36     8  data length, u64 LE
//!     44     4  crc32c of the data, u32 LE
//!     48     4  crc32c of bytes 0..48, u32 LE   (so a flipped index or length is caught too)
//!     52     -  data
//! ```
//!
//! Written to `snapshot.tmp`, fsync'd, renamed over `snapshot.bin`, and the directory fsync'd: at
//! every instant `snapshot.bin` is either the old snapshot or the new one, whole. A leftover
//! `snapshot.tmp` is a write that never finished; open removes it.
//!
//! A large snapshot can instead be *staged*: written whole and fsync'd to `snapshot.staged-<index>`
//! by another thread (`SnapshotStager`), so that the save that records it only renames it into
//! place. Open removes leftover staged files, like `snapshot.tmp`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft::{LogIndex, Snapshot, SnapshotMeta, Term};

use crate::disk::{Disk, DiskFile};
use crate::error::{io_error, StorageError};

pub(crate) const FILE: &str = "snapshot.bin";
pub(crate) const TMP: &str = "snapshot.tmp";
pub(crate) const STAGED_PREFIX: &str = "snapshot.staged-";

const MAGIC: [u8; 8] = *b"RKVSNAP\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 52;
const HEADER_CRC_AT: usize = 48;

fn header(seq: u64, meta: SnapshotMeta, data: &[u8]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&seq.to_le_bytes());
    header[20..28].copy_from_slice(&meta.index.0.to_le_bytes());
    header[28..36].copy_from_slice(&meta.term.0.to_le_bytes());
    header[36..44].copy_from_slice(&(data.len() as u64).to_le_bytes());
    header[44..48].copy_from_slice(&raft::crc32c::crc32c(data).to_le_bytes());
    let header_crc = raft::crc32c::crc32c(&header[..HEADER_CRC_AT]);
    header[HEADER_CRC_AT..].copy_from_slice(&header_crc.to_le_bytes());
    header
}

/// Makes `snapshot`, numbered `seq`, the durable `snapshot.bin` of `dir`.
pub(crate) fn write<D: Disk>(disk: &D, dir: &Path, seq: u64, snapshot: &Snapshot) -> Result<(), StorageError> {
    let tmp = dir.join(TMP);
    write_synced(disk, &tmp, seq, snapshot.meta, &snapshot.data, None)?;
    install(disk, dir, &tmp)
}

/// Writes the whole file at `path` and fsyncs it. The data must be on disk before a rename can make
/// it `snapshot.bin`: otherwise a crash could leave a durable name pointing at unwritten bytes.
/// With `chunk`, the data goes out `chunk` bytes at a time, each flushed before the next: the disk's
/// queue then never holds more than a chunk, so the log's own fsyncs, which every write waits for,
/// are not stuck behind a gigabyte of snapshot.
fn write_synced<D: Disk>(
    disk: &D,
    path: &Path,
    seq: u64,
    meta: SnapshotMeta,
    data: &[u8],
    chunk: Option<usize>,
) -> Result<(), StorageError> {
    let write = || -> Result<(), StorageError> {
        let mut file = disk.open(path, true).map_err(io_error("create", path))?;
        // A leftover from a failed attempt would otherwise prefix the new contents.
        file.truncate(0).map_err(io_error("truncate", path))?;
        file.append(&header(seq, meta, data)).map_err(io_error("write", path))?;
        for piece in data.chunks(chunk.unwrap_or(data.len()).max(1)) {
            file.append(piece).map_err(io_error("write", path))?;
            if chunk.is_some() {
                file.sync().map_err(io_error("fsync", path))?;
            }
        }
        file.sync().map_err(io_error("fsync", path))
    };
    let written = write();
    if written.as_ref().is_err_and(StorageError::is_no_space) {
        // The part written would only take more of the space that ran out.
        let _ = disk.remove(path);
    }
    written
}

/// How much of a staged snapshot is written between two flushes.
const STAGE_CHUNK_BYTES: usize = 4 << 20;

/// Renames a written and fsync'd snapshot file over `snapshot.bin`, durably.
fn install<D: Disk>(disk: &D, dir: &Path, from: &Path) -> Result<(), StorageError> {
    disk.rename(from, &dir.join(FILE)).map_err(io_error("rename", from))?;
    disk.sync_dir(dir).map_err(io_error("fsync directory", dir))
}

/// A snapshot file written ahead of the save that records it.
#[derive(Debug)]
pub struct Staged {
    pub(crate) path: PathBuf,
    seq: u64,
    meta: SnapshotMeta,
}

/// Writes snapshot files on any thread, for a caller (the state machine's) that must not stall the
/// one that saves the log: writing a gigabyte takes seconds. See `Storage::adopt_staged`.
#[derive(Clone, Debug)]
pub struct SnapshotStager<D> {
    pub(crate) disk: D,
    pub(crate) dir: PathBuf,
    /// The number the next saved snapshot will get, kept current by the storage.
    pub(crate) next_seq: Arc<AtomicU64>,
}

impl<D> SnapshotStager<D> {
    /// The directory snapshot files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl<D: Disk> SnapshotStager<D> {
    /// Writes and fsyncs the snapshot `meta`, `data` to a staging file. If another snapshot is
    /// saved before this one is adopted, the staged file no longer fits (its number is taken) and
    /// the save writes the snapshot itself instead.
    pub fn stage(&self, meta: SnapshotMeta, data: &[u8]) -> Result<Staged, StorageError> {
        let seq = self.next_seq.load(Ordering::Acquire);
        let path = self.dir.join(format!("{STAGED_PREFIX}{}", meta.index.0));
        write_synced(&self.disk, &path, seq, meta, data, Some(STAGE_CHUNK_BYTES))?;
        Ok(Staged { path, seq, meta })
    }
}

/// Makes `snapshot`, numbered `seq`, the durable `snapshot.bin` of `dir`, by renaming `staged` if
/// it holds exactly that (same number, same index and term) and writing it otherwise.
pub(crate) fn write_or_install<D: Disk>(
    disk: &D,
    dir: &Path,
    seq: u64,
    snapshot: &Snapshot,
    staged: Option<Staged>,
) -> Result<(), StorageError> {
    match staged {
        Some(staged) if staged.seq == seq && staged.meta == snapshot.meta => install(disk, dir, &staged.path),
        other => {
            if let Some(stale) = other {
                disk.remove(&stale.path).map_err(io_error("remove", &stale.path))?;
            }
            write(disk, dir, seq, snapshot)
        }
    }
}

/// Removes what unfinished snapshot writes left in `dir`: `snapshot.tmp` and staged files.
pub(crate) fn remove_leftovers<D: Disk>(disk: &D, dir: &Path) -> Result<(), StorageError> {
    for name in disk.list(dir).map_err(io_error("list", dir))? {
        if name == TMP || name.starts_with(STAGED_PREFIX) {
            let path = dir.join(&name);
            disk.remove(&path).map_err(io_error("remove", &path))?;
        }
    }
    Ok(())
}

/// Reads and verifies `snapshot.bin`, if there is one: its sequence number and the snapshot.
pub(crate) fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<(u64, Snapshot)>, StorageError> {
    let path = dir.join(FILE);
    if !disk.exists(&path).map_err(io_error("stat", &path))? {
        return Ok(None);
    }
    let mut file = disk.open(&path, false).map_err(io_error("open", &path))?;
    let bytes = file.read_all().map_err(io_error("read", &path))?;
    decode(&bytes).map(Some).map_err(|(offset, reason)| StorageError::Corrupt { file: path.clone(), offset, reason })
}

fn decode(bytes: &[u8]) -> Result<(u64, Snapshot), (u64, String)> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if bytes.len() < HEADER_LEN {
        return Err((0, format!("header cut short ({} of {HEADER_LEN} bytes)", bytes.len())));
    }
    if bytes[0..8] != MAGIC {
        return Err((0, "bad magic: not a snapshot file".into()));
    }
    let (stored, computed) = (u32_at(HEADER_CRC_AT), raft::crc32c::crc32c(&bytes[..HEADER_CRC_AT]));
    if stored != computed {
        let reason = format!("header checksum mismatch (stored {stored:08x}, computed {computed:08x})");
        return Err((HEADER_CRC_AT as u64, reason));
    }
    if u32_at(8) != VERSION {
        return Err((8, format!("unsupported version {}", u32_at(8))));
    }
    let data = &bytes[HEADER_LEN..];
    if u64_at(36) != data.len() as u64 {
        return Err((36, format!("header says {} data bytes, the file holds {}", u64_at(36), data.len())));
    }
    let (stored, computed) = (u32_at(44), raft::crc32c::crc32c(data));
    if stored != computed {
        let reason = format!("data checksum mismatch (stored {stored:08x}, computed {computed:08x})");
        return Err((HEADER_LEN as u64, reason));
    }
    let meta = SnapshotMeta { index: LogIndex(u64_at(20)), term: Term(u64_at(28)) };
    Ok((u64_at(12), Snapshot { meta, data: data.into() }))
}
