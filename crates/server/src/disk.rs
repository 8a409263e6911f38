//! The disk thread: owns the storage and makes each save durable (write and fsync) off the node's
//! loop, which meanwhile goes on taking messages and requests. Work is done in the order it was
//! sent: a staged snapshot file is adopted before the save that records that snapshot.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use replica::SaveId;
use storage::{StdDisk, Storage, StorageError};
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::Metrics;
use crate::node_loop::LoopInput;

pub enum DiskWork {
    Save { id: SaveId, persist: raft::Persist },
    /// A snapshot's file, written by a background task: the next save of that snapshot renames it.
    Adopt(storage::Staged),
}

/// Starts the thread. Completions (and the first failure, after which it stops) go to `done`.
pub fn spawn(
    mut storage: Storage<StdDisk>,
    done: UnboundedSender<LoopInput>,
    metrics: Arc<Metrics>,
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
                        metrics.fsync_seconds.observe(started.elapsed());
                        if let (Ok(()), Some(snapshot)) = (&saved, &persist.snapshot) {
                            let ms = started.elapsed().as_millis() as u64;
                            tracing::info!(index = snapshot.meta.index.0, bytes = snapshot.data.len(), write_ms = ms, "snapshot written");
                        }
                        saved.map(|()| Some(id))
                    }
                    DiskWork::Adopt(staged) => storage.adopt_staged(staged).map(|()| None).or_else(|error| {
                        // Only a leftover staged file could not be removed: harmless, go on.
                        tracing::warn!(%error, "could not remove an unused staged snapshot");
                        Ok::<_, StorageError>(None)
                    }),
                };
                let failed = result.is_err();
                let report = match result {
                    Ok(Some(id)) => LoopInput::Saved(id),
                    Ok(None) => continue,
                    Err(error) => LoopInput::SaveFailed(error),
                };
                if done.send(report).is_err() || failed {
                    // The loop is gone, or what reached the disk is unknown: no further save.
                    return;
                }
            }
        })?;
    Ok(sender)
}
