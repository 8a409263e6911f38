//! # storage: raftkv's durable Raft storage
//!
//! `Storage<D: Disk>` makes each `raft::Persist` durable (`save`, one log fsync per call: group
//! commit) and rebuilds a `raft::Restored` at startup (`open`). It touches the file system only
//! through the `Disk` trait, implemented by `StdDisk` (std::fs) and `MemDisk` (in memory, modelling
//! lost and torn unsynced writes and flipped bytes, for tests and the simulator).
//!
//! ## Directory layout
//!
//! ```text
//! <dir>/
//!   snapshot.bin              newest snapshot (absent until the first one)
//!   snapshot.tmp              a snapshot being written; removed by open
//!   wal/
//!     0000000000000001.log    log segments, numbered in write order; a new one is started when
//!     0000000000000002.log    the current one reaches Options::segment_bytes (64 MiB)
//! ```
//!
//! ## Log segment
//!
//! ```text
//! +---------+---------+---------------------+---------+---------+-------------- - -
//! | len u32 | crc u32 | payload (len bytes) | len u32 | crc u32 | payload ...
//! +---------+---------+---------------------+---------+---------+-------------- - -
//!   little-endian; crc = CRC-32C of the payload; len >= 1
//!
//! payload := count:varint op{count}           one record per save: all or nothing on recovery
//! op      := 1 first:varint n:varint (term:varint kind:u8 size:varint data[size]){n}  entries
//!          | 2 term:varint vote:varint commit:varint         hard state (vote 0 = none)
//!          | 3 from:varint                                   truncate: drop entries >= from
//!          | 4 seq:varint index:varint term:varint           snapshot marker: snapshot number `seq`
//!                                                            now holds the entries <= index
//! ```
//!
//! A save writes one record with, in order: the snapshot marker (preceded by a truncate when the
//! snapshot does not extend the stored log, so the rule's outcome is recorded, not recomputed),
//! the entries (which drop any stored entry at or after the first one's index when replayed), and
//! the hard state. Every segment begins with a checkpoint record (hard state + snapshot marker), so
//! the segments before it can be deleted once the snapshot covers every entry they wrote.
//!
//! ## Snapshot file
//!
//! ```text
//! 0 magic "RKVSNAP\0" | 8 version u32 | 12 seq u64 | 20 index u64 | 28 term u64 | 36 data len u64
//!   | 44 crc32c(data) u32 | 48 crc32c(bytes 0..48) u32 | 52 data          (integers little-endian)
//! ```
//!
//! Snapshots are numbered 1, 2, ... in the order they are saved; the number is in the file and in
//! the log's markers, so recovery knows exactly which snapshot the log last recorded (two snapshots
//! can share an index and term).
//!
//! Written to `snapshot.tmp`, fsync'd, renamed to `snapshot.bin`, directory fsync'd — all before
//! the log record with its marker, so a marker never names a snapshot that is not on disk.
//!
//! ## Recovery rules
//!
//! - Segments are replayed in order. In the last segment, a bad record (header or payload cut
//!   short, zero length, checksum mismatch) with no valid record anywhere after it is a torn write
//!   of a save that never returned: the file is truncated there and recovery goes on.
//! - A bad record in any other segment, a bad record followed by a valid one, or a record whose
//!   checksum matches but that does not decode is `StorageError::Corrupt { file, offset, reason }`:
//!   committed data is never dropped silently. (A synced last record that rots is, unavoidably,
//!   indistinguishable from a torn one.)
//! - `snapshot.bin` must verify (magic, version, both checksums, length) or open fails naming it.
//!   Entries at or below its index are not returned. If the log's last marker names the snapshot
//!   before it, a crash interrupted a save right after the snapshot was renamed into place: the
//!   `Persist` snapshot rule is applied to the replayed log and the marker logged. Any other
//!   disagreement between the two (file missing, numbers or index and term differ) is
//!   `Inconsistent`.
//! - The returned entries must run contiguously from the snapshot; otherwise `Inconsistent`.

mod disk;
mod error;
mod mem_disk;
mod recovery;
mod snapshot;
mod storage;
mod wal;

pub use disk::{Disk, DiskFile, StdDisk, StdFile};
pub use error::StorageError;
pub use mem_disk::{MemDisk, MemFile};
pub use snapshot::{SnapshotStager, Staged};
pub use storage::{Options, Storage};
