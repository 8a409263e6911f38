//! The disk thread: owns the storage and makes each save durable (write and fsync) off the node's
//! loop, which meanwhile goes on taking messages and requests. Work is done in the order it was
//! sent: a staged snapshot file is adopted before the save that records that snapshot.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use replica::SaveId;
use storage::{StdDisk, Storage, StorageError};
use tokio::sync::mpsc::UnboundedSender;

use replica::metrics::Instruments;
use crate::node_loop::LoopInput;

pub enum DiskWork {
    Save { id: SaveId, persist: raft::Persist },
    /// A snapshot's file, written by a background task: the next save of that snapshot renames it.
    Adopt(storage::Staged),
}

/// Starts the thread. Completions (and the first failure, after which it stops) go to `done`. A
/// save that found the disk full wrote nothing and is not a failure: the replica is told, and hands
/// the same save again later.
pub fn spawn(
    mut storage: Storage<StdDisk>,
    done: UnboundedSender<LoopInput>,
    instruments: Arc<Instruments>,
) -> std::io::Result<mpsc::Sender<DiskWork>> {
    let (sender, work) = mpsc::channel::<DiskWork>();
    std::thread::Builder::new()
        .name("raftkv-disk".into())
        .spawn(move || {
            for item in work {
                let result = match item {
                    DiskWork::Save { id, persist } => {
                        let started = Instant::now();
                        let saved = storage.save(&persist);
                        instruments.fsync_seconds.observe(started.elapsed());
                        if let (Ok(()), Some(snapshot)) = (&saved, &persist.snapshot) {
                            let ms = started.elapsed().as_millis() as u64;
                            tracing::info!(index = snapshot.meta.index.0, bytes = snapshot.data.len(), write_ms = ms, "snapshot written");
                        }
                        saved.map(|()| Some(id)).map_err(|error| (Some(id), error))
                    }
                    DiskWork::Adopt(staged) => storage.adopt_staged(staged).map(|()| None).or_else(|error| {
                        // Only a leftover staged file could not be removed: harmless, go on.
                        tracing::warn!(%error, "could not remove an unused staged snapshot");
                        Ok::<_, (Option<SaveId>, StorageError)>(None)
                    }),
                };
                let failed = result.as_ref().is_err_and(|(_, error)| !error.is_no_space());
                let report = match result {
                    Ok(Some(id)) => LoopInput::Saved(id),
                    Ok(None) => continue,
                    Err((Some(id), error)) if error.is_no_space() => LoopInput::SaveNoSpace(id, error),
                    Err((_, error)) => LoopInput::SaveFailed(error),
                };
                if done.send(report).is_err() || failed {
                    // The loop is gone, or what reached the disk is unknown: no further save.
                    return;
                }
            }
        })?;
    Ok(sender)
}

/// Bytes available to this process on the file system holding `dir` (None if unknown).
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` a buffer of the right type, which
    // statvfs fills when it returns 0.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some(u64::from(stats.f_bavail).saturating_mul(stats.f_frsize))
}
