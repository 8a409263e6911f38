//! # transport: raftkv's TCP transport between nodes
//!
//! Carries Raft messages and forwarded client commands between the nodes of a cluster, over
//! plain TCP, as length-prefixed frames (layout in [`frame`]).
//!
//! ## Connection model
//!
//! Each node keeps **one outbound connection per peer** and only ever *writes* to it; it only
//! ever *reads* from the **inbound** connections peers opened to its listen address. So a pair
//! of nodes is joined by two connections, one per direction, and a message from X always
//! arrives on X's outbound connection to us:
//!
//! ```text
//!            node 1's outbound (dials 2's --peers address)
//!   node 1 ───────────────────────────────────────────────▶ node 2 (--listen-peer)
//!   node 1 ◀─────────────────────────────────────────────── node 2
//!   (--listen-peer)  node 2's outbound (dials 1's --peers address)
//! ```
//!
//! Why one per direction: `--peers` gives each address *as this node dials it*, possibly through
//! a proxy that fault tests use to cut links, so a node may only reach a peer by dialing; with
//! one connection per direction there is no "who dials whom" tie-break, no duplicate connections
//! to reconcile, and cutting one proxied link cuts exactly one direction of traffic. Every
//! connection opens with a Hello naming the dialer, so the receiver knows which peer it is.
//!
//! Sending never blocks: [`Transport::send`] puts the frame in the peer's bounded queue or, if
//! it is full, gives it back ([`Full`], counted in [`Stats`]) so that the caller can fail or
//! retry what it carried. Frames go in the highest version both ends speak, as the peer's Hello
//! said (`wire::agreed_version`). A task per peer
//! connects, writes, and on any failure reconnects with exponential backoff (50 ms doubling to
//! 1 s, reset once connected). Nothing a peer sends can panic a node or stall it: a bad frame
//! closes that one connection, with a `tracing` warning naming the remote address and the reason.
//!
//! Dropping the last [`Transport`] handle, or calling [`Transport::shutdown`], stops every task
//! and closes the listener and all connections.

pub mod error;
mod inbound;
mod outbound;
mod stats;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::NodeId;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::trace;

pub use error::TransportError;
/// The frames (pure encoding and decoding) live in their own crate, shared with the simulator.
pub use wire as frame;
pub use wire::FrameError;
pub use frame::{Frame, DEFAULT_MAX_FRAME_BYTES};
pub use inbound::Inbound;
pub use stats::{PeerStats, Stats};
pub use tls::{certificates, private_key, roots, PeerTls, TlsError};

use stats::{bump, Counters, PeerCounters};

/// A lock whose holder panicked is still usable here: the maps it guards stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The peer links' TLS, shared by the accept loop and every outbound task, replaced at run time
/// (`Transport::set_tls`): connections made afterwards use the new certificates.
pub(crate) type SharedTls = Arc<std::sync::RwLock<Option<PeerTls>>>;

/// The TLS new connections use now (None: plaintext).
pub(crate) fn current_tls(tls: &SharedTls) -> Option<PeerTls> {
    tls.read().map_or_else(|poisoned| poisoned.into_inner().clone(), |tls| tls.clone())
}

/// A frame `Transport::send` could not queue: the peer's queue is full.
#[derive(Debug)]
pub struct Full(pub Frame);

/// Turns on TCP keepalive (probes after a minute of silence, every 10 s, 6 of them), so that a
/// connection whose other end vanished (a machine powered off, a cable pulled) is found dead and
/// closed instead of holding its descriptor for ever. Best effort: an error leaves it as it was.
pub fn keep_alive(stream: &tokio::net::TcpStream) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10))
        .with_retries(6);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&probes) {
        tracing::debug!(%error, "could not turn on TCP keepalive");
    }
}

/// The default bound on each peer's send queue, in frames.
pub const DEFAULT_QUEUE_FRAMES: usize = 1024;

#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id; it goes in the Hello of every connection it opens.
    pub me: NodeId,
    /// Where to accept peer connections (`--listen-peer`), as `host:port`.
    pub listen: String,
    /// Every peer's address as this node dials it (`--peers`). An entry for `me` is allowed (the
    /// flag lists the whole cluster) and ignored.
    pub peers: BTreeMap<NodeId, String>,
    /// The bound of each peer's send queue, in frames.
    pub queue_frames: usize,
    /// The largest frame accepted or sent: the value of the length prefix, i.e. all bytes after it.
    pub max_frame_bytes: usize,
    /// How long one connection attempt (TCP connect and Hello) may take.
    pub connect_timeout: Duration,
    /// How long one batch write may stall before the connection is given up as dead.
    pub write_timeout: Duration,
    /// Mutual TLS with the peers (None: plaintext).
    pub tls: Option<PeerTls>,
    /// Where this node takes peer connections, as peers should dial it (in every Hello; empty:
    /// not said). `set_peers` changes it.
    pub advertise: String,
}

impl Config {
    /// A config with default limits: 1024-frame queues, 64 MiB frames, 1 s connects, 5 s writes.
    pub fn new(me: NodeId, listen: impl Into<String>, peers: BTreeMap<NodeId, String>) -> Config {
        Config {
            me,
            listen: listen.into(),
            peers,
            queue_frames: DEFAULT_QUEUE_FRAMES,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(5),
            tls: None,
            advertise: String::new(),
        }
    }

    fn validate(&self) -> Result<(), TransportError> {
        let invalid = |reason: String| Err(TransportError::Config(reason));
        if self.me.0 == 0 {
            return invalid("node ids start at 1".into());
        }
        if let Some(peer) = self.peers.keys().find(|peer| peer.0 == 0) {
            return invalid(format!("peer id {} is not >= 1", peer.0));
        }
        if self.queue_frames == 0 {
            return invalid("queue_frames must be at least 1".into());
        }
        // Room for a Hello and a small message; the length prefix is a u32.
        if !(64..=u32::MAX as usize).contains(&self.max_frame_bytes) {
            return invalid(format!("max_frame_bytes {} is not in 64..={}", self.max_frame_bytes, u32::MAX));
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            return invalid("timeouts must be positive".into());
        }
        Ok(())
    }
}

/// A handle on a running transport; cheap to clone. The tasks stop when the last handle is dropped.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    me: NodeId,
    local_addr: SocketAddr,
    /// The members this node sends to; changed at run time by `set_peers`.
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    /// The same ids as the inbound side admits them.
    known: Arc<std::sync::RwLock<BTreeMap<NodeId, inbound::KnownPeer>>>,
    settings: outbound::Settings,
    queue_frames: usize,
    counters: Arc<Counters>,
    /// Every task watches this; `shutdown` sends on it, and dropping it (with the last handle)
    /// wakes them all the same way. The tasks hold no reference to `Inner`, so that drop happens.
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// This node's cluster id, in every Hello; a Hello naming another one is refused.
    cluster: Arc<std::sync::atomic::AtomicU64>,
    /// Whether this node waits to be added to a cluster (shared with the inbound side).
    joining: Arc<std::sync::atomic::AtomicBool>,
}

struct Peer {
    address: String,
    queue: mpsc::Sender<Frame>,
    counters: Arc<PeerCounters>,
    /// None once `shutdown` took it to wait for it.
    task: Option<JoinHandle<()>>,
}

impl Transport {
    /// Binds `config.listen` (an error if it cannot), then starts as [`Transport::start_with_listener`].
    pub async fn start(config: Config, inbound: mpsc::Sender<Inbound>) -> Result<Transport, TransportError> {
        config.validate()?;
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| TransportError::Bind { addr: config.listen.clone(), source })?;
        Transport::start_with_listener(config, listener, inbound).await
    }

    /// Starts on a listener bound by the caller (`config.listen` is then ignored): spawns the
    /// accept task and one outbound task per peer. Every frame received goes to `inbound`.
    /// Must be called within a tokio runtime.
    pub async fn start_with_listener(
        config: Config,
        listener: TcpListener,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        config.validate()?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind { addr: config.listen.clone(), source })?;
        let (shutdown, _) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let cluster = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tls: SharedTls = Arc::new(std::sync::RwLock::new(config.tls.clone()));
        let settings = outbound::Settings {
            tls: tls.clone(),
            me: config.me,
            cluster: cluster.clone(),
            advertise: Arc::new(std::sync::RwLock::new(config.advertise.clone())),
            max_frame_bytes: config.max_frame_bytes,
            connect_timeout: config.connect_timeout,
            write_timeout: config.write_timeout,
        };
        let known = Arc::new(std::sync::RwLock::new(BTreeMap::new()));
        let joining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shared = inbound::Shared {
            joining: joining.clone(),
            tls,
            me: config.me,
            cluster: cluster.clone(),
            max_frame_bytes: config.max_frame_bytes,
            peers: known.clone(),
            counters: counters.clone(),
            inbound,
        };
        let tasks = vec![tokio::spawn(inbound::accept_loop(listener, Arc::new(shared), shutdown.subscribe()))];
        let inner = Inner {
            me: config.me,
            local_addr,
            peers: Mutex::new(BTreeMap::new()),
            known,
            settings,
            queue_frames: config.queue_frames,
            counters,
            shutdown,
            tasks: Mutex::new(tasks),
            cluster,
            joining,
        };
        let transport = Transport { inner: Arc::new(inner) };
        transport.set_peers(config.peers, &config.advertise, false);
        tracing::info!(me = %config.me, listen = %local_addr, peers = transport.peers().count(), "peer transport started");
        Ok(transport)
    }

    /// Makes `peers` the nodes this transport sends to and accepts connections from (an entry for
    /// this node is ignored): new ones are dialled, gone ones are no longer (their queued frames
    /// dropped, their inbound connections closed), and one whose address changed is dialled
    /// again there. Connections opened from now on say this node takes connections at
    /// `advertise`.
    ///
    /// `joining`: this node waits to be added to a cluster; until then it takes connections from
    /// any node of a named cluster (see `wire::admission`).
    pub fn set_peers(&self, peers: BTreeMap<NodeId, String>, advertise: &str, joining: bool) {
        let inner = &self.inner;
        inner.joining.store(joining, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut current) = inner.settings.advertise.write() {
            current.clear();
            current.push_str(advertise);
        }
        let mut current = lock(&inner.peers);
        let mut known = inner.known.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let wanted: BTreeMap<NodeId, String> = peers.into_iter().filter(|(id, _)| *id != inner.me).collect();
        current.retain(|id, peer| {
            let keep = wanted.get(id) == Some(&peer.address);
            if !keep {
                if let Some(task) = &peer.task {
                    task.abort();
                }
            }
            keep
        });
        known.retain(|id, _| wanted.contains_key(id));
        for (id, address) in wanted {
            if current.contains_key(&id) {
                continue;
            }
            let counters = known.get(&id).map_or_else(|| Arc::new(PeerCounters::default()), |peer| peer.counters.clone());
            let (queue, task) =
                outbound::spawn(id, address.clone(), inner.queue_frames, inner.settings.clone(), counters.clone(), inner.shutdown.subscribe());
            known.entry(id).or_insert_with(|| inbound::KnownPeer { counters: counters.clone(), generation: watch::channel(0).0 });
            current.insert(id, Peer { address, queue, counters, task: Some(task) });
        }
    }

    /// Queues `frame` for peer `to` and returns at once: it never blocks and never waits on the
    /// network. A full queue gives the frame back (`Full`), so that the caller can answer what it
    /// carried; a frame for a node that is not a peer, or sent after shutdown, is dropped (and
    /// counted).
    pub fn send(&self, to: NodeId, frame: Frame) -> Result<(), Full> {
        let peers = lock(&self.inner.peers);
        let Some(peer) = peers.get(&to) else {
            bump(&self.inner.counters.unknown_destination);
            trace!(to = %to, "dropping a frame for a node that is not a peer");
            return Ok(());
        };
        match peer.queue.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(frame)) => {
                bump(&peer.counters.dropped_full);
                trace!(to = %to, "send queue full");
                Err(Full(frame))
            }
            Err(TrySendError::Closed(_)) => {
                bump(&peer.counters.dropped_unsent);
                Ok(())
            }
        }
    }

    pub fn stats(&self) -> Stats {
        let counter = |value: &std::sync::atomic::AtomicU64| value.load(std::sync::atomic::Ordering::Relaxed);
        let counters = &self.inner.counters;
        Stats {
            peers: (lock(&self.inner.peers).iter())
                .map(|(&id, peer)| {
                    let queued = peer.queue.max_capacity() - peer.queue.capacity();
                    (id, peer.counters.snapshot(queued))
                })
                .collect(),
            unknown_destination: counter(&counters.unknown_destination),
            inbound_accepted: counter(&counters.inbound_accepted),
            inbound_rejected: counter(&counters.inbound_rejected),
            inbound_errors: counter(&counters.inbound_errors),
        }
    }

    /// Sets the cluster id this node sends in its Hellos and expects in its peers' (0: not known
    /// yet; then any is accepted). Connections made from now on carry it. Returns the one it
    /// replaces.
    pub fn set_cluster_id(&self, id: u64) -> u64 {
        self.inner.cluster.swap(id, std::sync::atomic::Ordering::Relaxed)
    }

    /// New peer certificates (SIGHUP): connections made from now on use them; those open keep
    /// theirs. Refused (false) on a transport started without TLS: a plaintext node does not
    /// turn to TLS at run time.
    pub fn set_tls(&self, tls: PeerTls) -> bool {
        let mut current = self.inner.settings.tls.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_none() {
            return false;
        }
        *current = Some(tls);
        true
    }

    /// The address the listener is bound to (useful when it was given port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn me(&self) -> NodeId {
        self.inner.me
    }

    /// The peers this transport sends to (every member but itself).
    pub fn peers(&self) -> impl Iterator<Item = NodeId> {
        lock(&self.inner.peers).keys().copied().collect::<Vec<_>>().into_iter()
    }

    /// Stops every task, for all handles, and returns once they have finished: the listener is
    /// closed and every connection dropped. Later `send`s are dropped. Dropping the last handle
    /// stops the tasks too, but without waiting.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        tasks.extend(lock(&self.inner.peers).values_mut().filter_map(|peer| peer.task.take()));
        for task in tasks {
            // A task that panicked has stopped all the same.
            let _ = task.await;
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("me", &self.inner.me)
            .field("local_addr", &self.inner.local_addr)
            .field("peers", &self.peers().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keep_alive_turns_on_probes_after_a_minute() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let stream = tokio::net::TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let socket = socket2::SockRef::from(&stream);
        assert!(!socket.keepalive().expect("readable"));
        keep_alive(&stream);
        assert!(socket.keepalive().expect("readable"));
        assert_eq!(socket.tcp_keepalive_time().expect("readable"), Duration::from_secs(60));
    }
}
