//! The outbound side: one task per peer owns the one connection this node sends to that peer on.
//!
//! ```text
//!   send() ──try_send──▶ [ bounded queue ] ──▶ task: connect, Hello, write batches ──▶ peer
//!            (full: drop)                       (error: drop connection, back off, reconnect)
//! ```
//!
//! `send` only ever does a `try_send`, so the Raft loop never waits on a slow or dead peer; the
//! queue bound caps the memory a dead peer can pin. Raft retransmits whatever is lost.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::{debug, info, warn};

use crate::frame::{self, Frame, Wire};
use crate::stats::{add, bump, PeerCounters};
use crate::tls::PeerStream;

/// The first pause after a failure; it doubles on each failure in a row up to `BACKOFF_MAX`, and
/// starts over once a connection is established.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A connection that lasted this long counts as healthy and resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(1);
/// Frames queued together are written with one `write_all` up to about this many bytes: fewer
/// syscalls under load, and a heartbeat never waits behind more than this.
const BATCH_BYTES: usize = 256 * 1024;
/// A batch buffer grown by a large frame (a snapshot) is released afterwards rather than kept.
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;

/// What an outbound task needs to know besides its peer.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Mutual TLS with the peers (None: plaintext); replaced by `Transport::set_tls`.
    pub tls: crate::SharedTls,
    pub me: NodeId,
    /// This node's cluster id, sent in every Hello (0 while it is not known yet).
    pub cluster: Arc<AtomicU64>,
    /// Where this node takes peer connections, sent in every Hello (empty: not known).
    pub advertise: Arc<std::sync::RwLock<String>>,
    pub max_frame_bytes: usize,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
}

/// Spawns the task for one peer and returns the sending end of its queue.
pub(crate) fn spawn(
    peer: NodeId,
    addr: String,
    queue_frames: usize,
    settings: Settings,
    counters: Arc<PeerCounters>,
    mut shutdown: watch::Receiver<bool>,
) -> (mpsc::Sender<Frame>, JoinHandle<()>) {
    let (sender, queue) = mpsc::channel(queue_frames);
    let task = Task { peer, addr, settings, counters: counters.clone(), queue };
    let handle = tokio::spawn(async move {
        // Shutdown cancels the task wherever it waits; dropping its future closes the socket.
        // `changed` also returns (an error) when the Transport, holding the sender, is dropped.
        tokio::select! {
            () = task.run() => {}
            _ = shutdown.changed() => {}
        }
        counters.connected.store(false, Relaxed);
    });
    (sender, handle)
}

struct Task {
    peer: NodeId,
    addr: String,
    settings: Settings,
    counters: Arc<PeerCounters>,
    queue: mpsc::Receiver<Frame>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut failures_in_a_row = 0u64;
        let mut first_attempt = true;
        loop {
            if !first_attempt {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            first_attempt = false;

            let stream = match timeout(self.settings.connect_timeout, self.connect()).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    self.connect_failed(&mut failures_in_a_row, &error.to_string());
                    continue;
                }
                Err(_) => {
                    self.connect_failed(&mut failures_in_a_row, "connect timed out");
                    continue;
                }
            };
            info!(peer = %self.peer, addr = %self.addr, failed_attempts = failures_in_a_row, "connected to peer");
            failures_in_a_row = 0;
            bump(&self.counters.connects);
            self.counters.connected.store(true, Relaxed);
            let connected_at = std::time::Instant::now();
            let outcome = self.pump(stream).await;
            self.counters.connected.store(false, Relaxed);
            // Only a connection that held up resets the backoff: something that accepts and closes
            // at once (a proxy in front of a dead node) must not be redialled twenty times a second.
            if connected_at.elapsed() >= STABLE_CONNECTION {
                backoff = BACKOFF_MIN;
            }
            match outcome {
                // The Transport is gone; nothing will ever be queued again.
                None => return,
                Some(reason) => {
                    bump(&self.counters.disconnects);
                    warn!(peer = %self.peer, addr = %self.addr, "peer connection lost: {reason}; reconnecting");
                    self.discard_queued();
                }
            }
        }
    }

    fn connect_failed(&mut self, failures_in_a_row: &mut u64, reason: &str) {
        *failures_in_a_row += 1;
        bump(&self.counters.connect_failures);
        // A peer that is down fails every attempt: keep the log quiet about it.
        debug!(peer = %self.peer, addr = %self.addr, attempt = *failures_in_a_row, "cannot connect to peer: {reason}");
        self.discard_queued();
    }

    /// Frames that waited through a failure are stale by the time a connection comes up; Raft
    /// will resend what still matters, so free them (and the memory they hold) now.
    fn discard_queued(&mut self) {
        let mut discarded = 0;
        while self.queue.try_recv().is_ok() {
            discarded += 1;
        }
        add(&self.counters.dropped_unsent, discarded);
    }

    async fn connect(&self) -> std::io::Result<PeerStream> {
        let stream = TcpStream::connect(&self.addr).await?;
        // Raft messages are small and latency-bound; batching happens in `pump`, not in Nagle.
        stream.set_nodelay(true)?;
        crate::keep_alive(&stream);
        let tls = crate::current_tls(&self.settings.tls).map(|tls| tls.connector);
        let mut stream: PeerStream = match tls {
            // The peer must prove it is node `peer` of the cluster's CA.
            Some(connector) => Box::new(connector.connect(crate::tls::node_name(self.peer), stream).await?),
            None => Box::new(stream),
        };
        let mut hello = Vec::new();
        let cluster = self.settings.cluster.load(Ordering::Relaxed);
        let address = self.settings.advertise.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |address| address.clone());
        frame::encode(&Wire::hello(self.settings.me, cluster, address), self.settings.max_frame_bytes, &mut hello)
            .map_err(std::io::Error::other)?;
        stream.write_all(&hello).await?;
        stream.flush().await?;
        Ok(stream)
    }

    /// Writes queued frames until the connection breaks (`Some(reason)`) or the queue closes (`None`).
    async fn pump(&mut self, stream: PeerStream) -> Option<String> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                frame = self.queue.recv() => frame?,
                reason = closed(&mut reader) => return Some(reason),
            };
            batch.clear();
            let mut frames = self.append(first, &mut batch);
            while batch.len() < BATCH_BYTES {
                match self.queue.try_recv() {
                    Ok(frame) => frames += self.append(frame, &mut batch),
                    Err(_) => break,
                }
            }
            if frames == 0 {
                continue;
            }
            if let Err(reason) = self.write(&mut writer, &batch).await {
                add(&self.counters.dropped_unsent, frames);
                return Some(reason);
            }
            add(&self.counters.frames_sent, frames);
            add(&self.counters.bytes_sent, batch.len() as u64);
            if batch.capacity() > KEEP_BUFFER_BYTES {
                batch = Vec::new();
            }
        }
    }

    /// Encodes one frame onto the batch, in the version the peer was last heard to speak;
    /// returns 1 if it is there, 0 if it was too large.
    fn append(&self, frame: Frame, batch: &mut Vec<u8>) -> u64 {
        let version = self.counters.frame_version();
        match frame::encode_as(version, &Wire::Frame(frame), self.settings.max_frame_bytes, batch) {
            Ok(_) => 1,
            Err(error) => {
                bump(&self.counters.dropped_oversize);
                warn!(peer = %self.peer, "dropping a frame that cannot be sent: {error}");
                0
            }
        }
    }

    /// A peer that stops reading (or a link that silently drops packets) eventually stalls
    /// `write_all`; the timeout turns that into a reconnect instead of a task stuck forever.
    async fn write(&self, writer: &mut WriteHalf<PeerStream>, bytes: &[u8]) -> Result<(), String> {
        // Flushed too: a TLS stream may hold the last records back until then.
        let write = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        match timeout(self.settings.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("write stalled for {:?}", self.settings.write_timeout)),
        }
    }
}

/// Peers never write on a connection they accepted, so any read result means it is over. Watching
/// for it notices a restarted peer at once, instead of losing the next frame to a dead socket.
async fn closed(reader: &mut ReadHalf<PeerStream>) -> String {
    let mut byte = [0u8; 1];
    match reader.read(&mut byte).await {
        Ok(0) => "peer closed the connection".to_string(),
        Ok(_) => "peer wrote on a send-only connection".to_string(),
        Err(error) => error.to_string(),
    }
}
