//! # server: one raftkv node
//!
//! Wires the pure parts (the `raft` core, the `kv` store) to the world: durable `storage`, peer
//! `transport` over TCP, and a RESP client port. Three kinds of task:
//!
//! ```text
//!  clients ──RESP──> client port ──LoopInput──> Raft loop ──Frame──> peers
//!                        ^                        │  │ storage (fsync per batch)
//!                        │                        v  v
//!                        └──── answers ───── apply task (store, waiting callers, reads)
//! ```
//! - The Raft loop owns the node and the storage; nothing else touches them.
//! - The apply task owns the store; it runs off the Raft loop so a slow state machine never delays
//!   heartbeats.
//! - Reads use ReadIndex (no log write); writes go through the log and are acknowledged only once
//!   committed (fsync'd on a majority) and applied.
//! - Followers forward requests to the leader over the peer connection and relay the answer.

mod apply;
mod client_port;
mod metrics;
mod raft_loop;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft::{Config, Node, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::apply::Applier;
use crate::client_port::ClientPort;
use crate::raft_loop::RaftLoop;

/// Everything a node needs to start. See the README for what each flag means.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub id: u64,
    /// Every node's peer address as this node dials it, this node included.
    pub peers: BTreeMap<u64, String>,
    pub listen_peer: String,
    pub listen_client: String,
    /// Where to serve `/metrics` (Prometheus text) and `/health` over HTTP; None: not at all.
    pub listen_http: Option<String>,
    pub data_dir: PathBuf,
    pub tick: Duration,
    pub election_timeout_ticks: u32,
    pub heartbeat_ticks: u32,
    /// Snapshot the store every this many applied entries.
    pub snapshot_every: u64,
    /// The longest a client waits for an answer before it gets an error.
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub tuning: Tuning,
}

/// Performance techniques, each of which can be turned off to measure what it is worth (the README's
/// performance section lists before/after figures). The defaults are the production setting.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Client requests taken into one Raft step (one proposal batch, one fsync, one append per
    /// follower). 1 = no batching.
    pub max_batch: usize,
    /// AppendEntries in flight per follower while streaming. 1 = stop and wait.
    pub max_inflight: usize,
    /// The leader writes and fsyncs its own log before sending appends, instead of while the
    /// followers write theirs.
    pub serial_fsync: bool,
    /// The Raft loop waits for each batch of committed entries to be applied before going on,
    /// instead of handing them to the apply task.
    pub apply_in_raft_loop: bool,
    /// Every read gets its own ReadIndex heartbeat round instead of sharing one with the reads
    /// that arrived in the same step.
    pub read_round_per_read: bool,
    /// fsync a change of the commit index alone too (Raft does not need it durable).
    pub fsync_commit_index: bool,
    /// Serve reads under a leader lease, without a heartbeat round (see the README for the clock
    /// assumptions this makes). Off by default.
    pub lease_reads: bool,
    /// How far ahead of its records the log is extended with zeros (see
    /// `storage::Options::preallocate_bytes`); 0: appended as it goes.
    pub wal_preallocate_bytes: u64,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            max_batch: 1024,
            max_inflight: 64,
            serial_fsync: false,
            apply_in_raft_loop: false,
            read_round_per_read: false,
            fsync_commit_index: false,
            lease_reads: false,
            wal_preallocate_bytes: storage::Options::default().preallocate_bytes,
        }
    }
}

impl ServerConfig {
    /// Production timers: 10 ms ticks, heartbeats every 100 ms, elections after 0.5–1 s of silence.
    pub fn new(id: u64, peers: BTreeMap<u64, String>, listen_client: String, data_dir: PathBuf) -> ServerConfig {
        let listen_peer = peers.get(&id).cloned().unwrap_or_else(|| "127.0.0.1:0".into());
        ServerConfig {
            id,
            peers,
            listen_peer,
            listen_client,
            listen_http: None,
            data_dir,
            tick: Duration::from_millis(10),
            election_timeout_ticks: 50,
            heartbeat_ticks: 10,
            snapshot_every: 50_000,
            request_timeout: Duration::from_secs(5),
            max_connections: 10_000,
            tuning: Tuning::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Init(#[from] raft::InitError),
    // The sources carry the details (file, offset, address); `{:#}` on the error chain prints them.
    #[error("storage")]
    Storage(#[from] storage::StorageError),
    #[error("the stored snapshot is unusable")]
    Snapshot(#[from] kv::SnapshotError),
    #[error("peer transport")]
    Transport(#[from] transport::TransportError),
    #[error("cannot listen for clients on {address}")]
    ClientListen { address: String, source: std::io::Error },
    #[error("cannot listen for HTTP on {address}")]
    HttpListen { address: String, source: std::io::Error },
}

/// Runs one node until its Raft loop stops (a fatal storage error) — it does not return otherwise.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    if !config.peers.contains_key(&config.id) {
        return Err(ServerError::Config(format!("--peers must include this node's own id {}", config.id)));
    }
    if config.tuning.max_batch == 0 || config.tuning.max_inflight == 0 {
        return Err(ServerError::Config("--max-batch and --max-inflight must be at least 1".into()));
    }
    let me = NodeId(config.id);
    let storage_options = storage::Options { preallocate_bytes: config.tuning.wal_preallocate_bytes, ..storage::Options::default() };
    let (storage, restored) = storage::Storage::open_with(storage::StdDisk, config.data_dir.join("raft"), storage_options)?;
    let store = match &restored.snapshot {
        Some(snapshot) => kv::Store::decode_snapshot(&snapshot.data)?,
        None => kv::Store::new(),
    };
    tracing::info!(
        id = config.id,
        snapshot = store.applied_index(),
        entries = restored.entries.len(),
        term = restored.hard_state.term.0,
        "recovered from {}",
        config.data_dir.display()
    );
    let mut raft_config = Config::new(me, config.peers.keys().map(|&id| NodeId(id)).collect());
    raft_config.election_timeout_ticks = config.election_timeout_ticks;
    raft_config.heartbeat_ticks = config.heartbeat_ticks;
    raft_config.inflight_appends_max = config.tuning.max_inflight;
    raft_config.lease_reads = config.tuning.lease_reads;
    raft_config.seed = random_seed();
    let saved_hard_state = restored.hard_state;
    let snapshot_term = restored.snapshot.as_ref().map_or(raft::Term(0), |snapshot| snapshot.meta.term);
    let snapshot_bytes = restored.snapshot.as_ref().map_or(0, |snapshot| snapshot.data.len() as u64);
    let node = Node::new(raft_config, restored)?;

    let (peer_sender, peer_receiver) = mpsc::channel(16 * 1024);
    let peers = config.peers.iter().filter(|(&id, _)| id != config.id).map(|(&id, address)| (NodeId(id), address.clone())).collect();
    let mut transport_config = transport::Config::new(me, config.listen_peer.clone(), peers);
    let forwards = raft_loop::Forwards::default();
    let relay = forwards.clone();
    transport_config.on_forward_reply = Some(transport::ForwardReplyHook(Arc::new(move |_from, request_id, payload: bytes::Bytes| {
        raft_loop::relay_forward_reply(&relay, request_id, &payload)
    })));
    let transport = transport::Transport::start(transport_config, peer_sender).await?;
    let listener = TcpListener::bind(&config.listen_client)
        .await
        .map_err(|source| ServerError::ClientListen { address: config.listen_client.clone(), source })?;
    tracing::info!(id = config.id, client = %config.listen_client, peer = %config.listen_peer, "raftkv node started");

    let status = node.status();
    let (status_sender, status_receiver) = watch::channel(status);
    let (apply_sender, apply_receiver) = mpsc::unbounded_channel();
    let (raft_sender, raft_receiver) = mpsc::channel(16 * 1024);
    let metrics = Arc::new(metrics::Metrics::default());
    metrics.applied_index.store(store.applied_index(), std::sync::atomic::Ordering::Relaxed);
    if let Some(address) = &config.listen_http {
        let http = TcpListener::bind(address).await.map_err(|source| ServerError::HttpListen { address: address.clone(), source })?;
        tokio::spawn(metrics::serve(http, metrics.clone()));
    }
    let applier = Applier {
        last_snapshot: store.applied_index(),
        store,
        pending: kv::Pending::new(),
        reads: BTreeMap::new(),
        transport: transport.clone(),
        metrics: metrics.clone(),
        raft: raft_sender.clone(),
        snapshot_every: config.snapshot_every,
        applied_term: snapshot_term,
        stager: storage.snapshot_stager(),
        snapshot_in_flight: Arc::default(),
        log_bytes: 0,
        snapshot_bytes: Arc::new(std::sync::atomic::AtomicU64::new(snapshot_bytes)),
    };
    tokio::spawn(applier.run(apply_receiver));
    let port = Arc::new(ClientPort {
        raft: raft_sender,
        status: status_receiver,
        metrics: metrics.clone(),
        limits: resp::Limits::default(),
        request_timeout: config.request_timeout,
        connections: Arc::new(Semaphore::new(config.max_connections)),
        // Numbers for untagged writes: unique per incarnation (random high bits), so that a caller
        // is never answered with another untagged write's result.
        untagged_seq: Arc::new(std::sync::atomic::AtomicU64::new(random_seed() << 32)),
    });
    tokio::spawn(port.serve(listener));
    let raft_loop = RaftLoop {
        me,
        tuning: config.tuning.clone(),
        node,
        storage,
        transport,
        apply: apply_sender,
        status: status_sender,
        tick: config.tick,
        reads: Default::default(),
        next_read: 0,
        forwards,
        next_forward: 0,
        waiting_for_leader: Default::default(),
        last_status: status,
        saved_hard_state,
        deferred_hard_state: None,
        metrics,
    };
    raft_loop.run(raft_receiver, peer_receiver).await
}

/// Election timeouts must differ between nodes and runs; the clock is a good enough source here
/// (the core itself never reads it: it only gets this number).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
