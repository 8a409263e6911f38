//! # server: one raftkv node
//!
//! A thin shell around `replica::Replica`, which decides everything a node does: sockets, a timer
//! and a disk thread turn the world's events into the replica's inputs and carry out its outputs.
//!
//! ```text
//!  clients ──RESP──> client port ──requests──> node loop (Replica) ──frames──> peers
//!                        ^                        │   ^
//!                        └────── answers ─────────┘   └── saves done ── disk thread (fsync)
//! ```
//! - The node loop owns the replica; nothing else touches it. It never waits for the disk: saves
//!   go to the disk thread and come back as completions, snapshots are encoded on a blocking task.
//! - Client connections parse RESP, encode writes straight into their log entries, and wait for
//!   the answers the replica gives, in order.

mod client_port;
mod descriptors;
mod disk;
mod metrics;
mod node_loop;
mod secrets;
mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft::{Config, NodeId};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client_port::ClientPort;
use crate::node_loop::{LoopInput, NodeLoop};

pub use replica::users::Users;
pub use secrets::{SecretFiles, SecretsError};
pub use tls::{TlsError, TlsFiles};

/// Everything a node needs to start. See the README for what each flag means.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub id: u64,
    /// Every node's peer address as this node dials it, this node included.
    pub peers: BTreeMap<u64, String>,
    pub listen_peer: String,
    /// Join an existing cluster (`--join`): on an empty data directory, start with no voters and
    /// wait for the leader to add this node.
    pub join: bool,
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
    /// A client connection idle this long is closed (Redis's `timeout`); None: never.
    pub idle_timeout: Option<Duration>,
    /// The most bytes one client command's arguments (keys and values) may take, together and one
    /// by one; a larger command is refused before anything is proposed. At most
    /// `MAX_VALUE_BYTES_LIMIT`, so that every log entry fits in a peer frame.
    pub max_value_bytes: usize,
    /// The data's budget in bytes (keys and values): over it, writes that could grow the data
    /// get Redis's `-OOM` error. 0: none.
    pub max_memory: u64,
    /// The budget of all client connections' buffers together (Redis's `maxmemory-clients`): a
    /// connection whose buffers would take the total over it is closed. 0: none.
    pub max_client_memory: u64,
    /// Who may use the client port and its TLS certificate, from files (reloaded on SIGHUP).
    pub secrets: SecretFiles,
    /// Mutual TLS on peer links, from a directory as `raftkv certs` writes it; None: plaintext.
    pub peer_tls_dir: Option<PathBuf>,
    /// Serve `/metrics` and `/health` over HTTPS, with the client port's certificate.
    pub http_tls: bool,
    pub tuning: Tuning,
}

/// The default of `ServerConfig::max_value_bytes`: 16 MiB, well under the 64 MiB peer frame.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 << 20;
/// The largest `max_value_bytes` allowed: half the peer frame limit, leaving room for the rest of
/// an append.
pub const MAX_VALUE_BYTES_LIMIT: usize = transport::DEFAULT_MAX_FRAME_BYTES / 2;

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
            join: false,
            listen_client,
            listen_http: None,
            data_dir,
            tick: Duration::from_millis(10),
            election_timeout_ticks: 50,
            heartbeat_ticks: 10,
            snapshot_every: 50_000,
            request_timeout: Duration::from_secs(5),
            max_connections: 10_000,
            idle_timeout: None,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_memory: 0,
            max_client_memory: 0,
            secrets: SecretFiles::default(),
            peer_tls_dir: None,
            http_tls: false,
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
    #[error("the client port's secrets")]
    Secrets(#[from] SecretsError),
    #[error("peer TLS")]
    PeerTls(#[source] TlsError),
    #[error("cannot listen for clients on {address}")]
    ClientListen { address: String, source: std::io::Error },
    #[error("cannot listen for HTTP on {address}")]
    HttpListen { address: String, source: std::io::Error },
    #[error("cannot start the disk thread")]
    DiskThread(#[source] std::io::Error),
    #[error("the disk thread stopped")]
    DiskThreadGone,
    #[error("{0}")]
    Fatal(String),
}

/// Runs one node until its Raft loop stops (a fatal storage error) — it does not return otherwise.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    if !config.join && !config.peers.contains_key(&config.id) {
        return Err(ServerError::Config(format!("--peers must include this node's own id {} (or give --join)", config.id)));
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
    if config.join && !replica::fresh(&restored) {
        tracing::info!("--join ignored: the data directory holds a node's state, which it recovers");
    }
    let voters = replica::bootstrap_voters(me, config.peers.keys().map(|&id| NodeId(id)), config.join, &restored);
    let mut raft_config = Config::new(me, voters);
    raft_config.election_timeout_ticks = config.election_timeout_ticks;
    raft_config.heartbeat_ticks = config.heartbeat_ticks;
    raft_config.inflight_appends_max = config.tuning.max_inflight;
    raft_config.lease_reads = config.tuning.lease_reads;
    raft_config.seed = random_seed();
    let options = replica::Options {
        request_timeout_ticks: ticks(config.request_timeout, config.tick),
        snapshot_every: config.snapshot_every,
        forward_id_base: random_seed(),
        cluster_id_proposal: random_seed().max(1),
        serial_fsync: config.tuning.serial_fsync,
        read_round_per_read: config.tuning.read_round_per_read,
        fsync_commit_index: config.tuning.fsync_commit_index,
        hand_over_ticks: ticks(Duration::from_secs(2), config.tick),
        peer_addresses: config.peers.iter().map(|(&id, address)| (NodeId(id), address.clone())).collect(),
        max_memory: config.max_memory,
        ..replica::Options::default()
    };
    let replica = replica::Replica::new(raft_config, restored, store, options)?;

    let (peer_sender, peer_receiver) = mpsc::channel(16 * 1024);
    let peers = config.peers.iter().filter(|(&id, _)| id != config.id).map(|(&id, address)| (NodeId(id), address.clone())).collect();
    let mut transport_config = transport::Config::new(me, config.listen_peer.clone(), peers);
    match &config.peer_tls_dir {
        Some(dir) => transport_config.tls = Some(transport::PeerTls::from_dir(dir, me).map_err(ServerError::PeerTls)?),
        None => tracing::warn!("no --peer-tls-dir: peer links are plaintext and unauthenticated; keep the peer port on a private network"),
    }
    let transport = transport::Transport::start(transport_config, peer_sender).await?;
    let listener = TcpListener::bind(&config.listen_client)
        .await
        .map_err(|source| ServerError::ClientListen { address: config.listen_client.clone(), source })?;
    tracing::info!(id = config.id, client = %config.listen_client, peer = %config.listen_peer, "raftkv node started");

    let (view_sender, view_receiver) = watch::channel(replica.view());
    let (loop_sender, loop_receiver) = mpsc::unbounded_channel();
    let loop_sender_for_signals = loop_sender.clone();
    let instruments = Arc::new(replica::metrics::Instruments::default());
    let secrets = Arc::new(secrets::Secrets::load(config.secrets.clone())?);
    let current = secrets.current();
    if current.tls.is_none() {
        tracing::warn!("no --tls-cert: the client port speaks plaintext");
    }
    if !current.users.required() {
        tracing::warn!("no --password-file or --users-file: any client that reaches the client port can read and write every key");
    }
    let peer_tls = config.peer_tls_dir.clone().map(|dir| (dir, me, transport.clone()));
    tokio::spawn(reload_on_hangup(secrets.clone(), peer_tls));
    if let Some(address) = &config.listen_http {
        let http = TcpListener::bind(address).await.map_err(|source| ServerError::HttpListen { address: address.clone(), source })?;
        let http_tls = config.http_tls.then(|| secrets.clone());
        let sources = metrics::Sources { view: view_receiver.clone(), instruments: instruments.clone(), transport: transport.clone() };
        tokio::spawn(metrics::serve(http, sources, http_tls));
    }
    let stager = storage.snapshot_stager();
    let disk = disk::spawn(storage, loop_sender.clone(), instruments.clone()).map_err(ServerError::DiskThread)?;
    let open_files = descriptors::open_files_limit();
    let max_clients = descriptors::client_limit(config.max_connections, open_files);
    if max_clients < config.max_connections {
        tracing::warn!(
            open_files = ?open_files,
            reserved = descriptors::RESERVED,
            "client connections limited to {max_clients} (of {} asked) by the open-files limit; raise it (ulimit -n) for more",
            config.max_connections
        );
    }
    let port = Arc::new(ClientPort {
        node: loop_sender.clone(),
        view: view_receiver,
        max_clients,
        instruments,
        limits: resp::Limits { max_bulk_bytes: config.max_value_bytes, ..resp::Limits::default() },
        max_client_memory: config.max_client_memory,
        request_timeout: config.request_timeout,
        idle_timeout: config.idle_timeout,
        connections: Arc::new(Semaphore::new(max_clients)),
        // Numbers for untagged writes: unique per incarnation (random high bits), so that a caller
        // is never answered with another untagged write's result.
        untagged_seq: Arc::new(std::sync::atomic::AtomicU64::new(random_seed() << 32)),
        next_conn: std::sync::atomic::AtomicU64::new(1),
        secrets,
    });
    tokio::spawn(port.serve(listener));
    let node_loop = NodeLoop {
        replica,
        transport,
        disk,
        stager,
        inputs: loop_sender,
        view: view_sender,
        memory: (0, None),
        started: std::time::Instant::now(),
        tick: config.tick,
        max_batch: config.tuning.max_batch,
        connections: Default::default(),
    };
    tokio::spawn(hand_over_on_terminate(loop_sender_for_signals));
    // A task on the runtime's workers, not the caller's thread: the connections and peer links
    // that feed and take from the loop run there too, so a request's way through the node is
    // mostly wake-ups within a worker rather than between threads (one client's write p50 on
    // three nodes: 620 -> 453 µs, README "Performance").
    let node_loop = tokio::spawn(node_loop.run(loop_receiver, peer_receiver));
    node_loop.await.map_err(|error| ServerError::Fatal(format!("the node loop panicked: {error}")))?
}

/// SIGTERM: the node loop hands leadership over, then stops (and `run` returns).
async fn hand_over_on_terminate(loop_sender: mpsc::UnboundedSender<LoopInput>) {
    let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        tracing::warn!("cannot watch for SIGTERM: a leader will stop without handing over");
        return;
    };
    if terminate.recv().await.is_some() {
        let _ = loop_sender.send(LoopInput::Shutdown);
    }
}

/// Reads the client port's secrets, and the peer certificates under `--peer-tls-dir`, again on
/// every SIGHUP (certificate rotation, new passwords); a reload that fails keeps the previous
/// ones. New connections use what was reloaded; open ones keep what they started with.
async fn reload_on_hangup(secrets: Arc<secrets::Secrets>, peer_tls: Option<(PathBuf, NodeId, transport::Transport)>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot watch for SIGHUP: the secrets will not be reloaded");
        return;
    };
    while hangups.recv().await.is_some() {
        match secrets.reload() {
            Ok(()) => tracing::info!("SIGHUP: reloaded the users and the TLS certificate"),
            Err(error) => tracing::warn!("SIGHUP: kept the previous users and certificate: {error}"),
        }
        if let Some((dir, me, transport)) = &peer_tls {
            match transport::PeerTls::from_dir(dir, *me).map(|tls| transport.set_tls(tls)) {
                Ok(true) => tracing::info!(dir = %dir.display(), "SIGHUP: reloaded the peer certificates"),
                Ok(false) => tracing::warn!("SIGHUP: the peer links are plaintext; certificates are not taken at run time"),
                Err(error) => tracing::warn!(dir = %dir.display(), "SIGHUP: kept the previous peer certificates: {error}"),
            }
        }
    }
}

/// The default `--max-memory`: an eighth of the machine's memory (a node's resident memory can
/// peak at about four times its data: the log's copy, the store, a snapshot being written), or
/// none where /proc/meminfo cannot be read.
pub fn default_max_memory() -> u64 {
    machine_memory() / 8
}

/// The default `--max-client-memory`: a sixteenth of the machine's memory (none where it is not
/// known).
pub fn default_max_client_memory() -> u64 {
    machine_memory() / 16
}

/// The machine's memory in bytes, from /proc/meminfo (0 where it cannot be read).
fn machine_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo.lines().find_map(|line| line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok());
    kib.map_or(0, |kib| kib * 1024)
}

/// A duration in whole ticks, at least one.
fn ticks(duration: Duration, tick: Duration) -> u64 {
    (duration.as_nanos() / tick.as_nanos().max(1)).max(1) as u64
}

/// Election timeouts must differ between nodes and runs; the clock is a good enough source here
/// (the core itself never reads it: it only gets this number).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
