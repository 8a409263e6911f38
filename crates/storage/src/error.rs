//! What can go wrong. Every variant that concerns a file names it, so that an operator reading the
//! message knows which file to look at and, for damage, at which byte.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The disk refused an operation.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bytes on disk are damaged in a way recovery must not paper over (anything but a torn tail).
    #[error("{} is corrupt at byte {offset}: {reason}", file.display())]
    Corrupt { file: PathBuf, offset: u64, reason: String },
    /// The files are individually sound but disagree with each other.
    #[error("storage in {} is inconsistent: {reason}", dir.display())]
    Inconsistent { dir: PathBuf, reason: String },
    /// The disk is full (or a quota reached) while writing. Nothing of the save took effect: the
    /// storage is as it was before, and the same save may be tried again once there is room.
    #[error("no space left on the disk: {op} {}: {source}", path.display())]
    NoSpace {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The caller handed `save` something that breaks the log's shape; nothing was written.
    #[error("invalid persist: {0}")]
    Invalid(String),
    /// An earlier write or fsync failed. What reached the disk is unknown (a failed fsync may have
    /// dropped dirty pages), so the only safe way on is to reopen and recover from the files.
    #[error("storage failed earlier and must be reopened")]
    Poisoned,
}

/// Wraps an io error with the operation and the path it concerned. A full disk met by a write is
/// `NoSpace`; met by an fsync it is not (the kernel may have dropped the pages it could not write).
pub(crate) fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| {
        let full = matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded);
        if full && !op.starts_with("fsync") {
            StorageError::NoSpace { op, path: path.to_path_buf(), source }
        } else {
            StorageError::Io { op, path: path.to_path_buf(), source }
        }
    }
}

impl StorageError {
    /// Whether the disk was full: then nothing changed, and the operation may be tried again.
    pub fn is_no_space(&self) -> bool {
        matches!(self, StorageError::NoSpace { .. })
    }
}
