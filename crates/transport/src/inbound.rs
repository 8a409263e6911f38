//! The inbound side: accept connections on the listen address and read frames from them.
//!
//! Every accepted connection gets its own reader task. Its first frame must be a Hello from a
//! peer (`wire::admission` says who is one); the Hello and then every frame are handed to the
//! `inbound` channel tagged with that peer.
//! Anything wrong (bad frame, wrong first frame, I/O error, a frame cut off by EOF) closes that one
//! connection with a warning naming the remote address and the reason; the node carries on, and
//! the peer's outbound task reconnects. Readers await the channel when it is full: that pushes
//! back on one peer's connection only, never on other peers or on the Raft loop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use raft::NodeId;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, warn};

use crate::FrameError;
use crate::frame::admission::{Admission, Admitted, Refusal};
use crate::frame::{self, Frame, Wire};
use crate::stats::{bump, Counters, PeerCounters};
use crate::tls::PeerStream;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// What a peer connection delivers. `from` is the id the connection's Hello named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A connection was admitted; its peer takes connections at `address` (empty: not said)
    /// and names `cluster` (0: none yet).
    Hello { from: NodeId, address: String, cluster: u64 },
    Frame { from: NodeId, frame: Frame },
}

/// A connection that has not identified itself by then is closed, so idle sockets can't pile up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A cluster has a handful of peers; more open connections than this is a misbehaving client.
const MAX_CONNECTIONS: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free space the buffer gets a fresh chunk before the next read. Whole frames
/// are split off the buffer and shared with the entries decoded from them, so the space they
/// used is not reused while they live; fresh chunks come from new allocations.
const MIN_READ_SPACE: usize = 8 * 1024;
/// A read buffer grown by a large frame is let go once the frame has been consumed.
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;

pub(crate) struct KnownPeer {
    pub counters: Arc<PeerCounters>,
    /// Bumped by each accepted Hello from this peer. The peer keeps one outbound connection, so a
    /// new one means the old is dead (perhaps half-open behind a proxy): its reader exits.
    pub generation: watch::Sender<u64>,
}

pub(crate) struct Shared {
    /// Mutual TLS with the peers (None: plaintext); replaced by `Transport::set_tls`.
    pub tls: crate::SharedTls,
    pub me: NodeId,
    /// This node's cluster id (0 while it is not known yet).
    pub cluster: Arc<std::sync::atomic::AtomicU64>,
    /// Whether this node waits to be added to a cluster.
    pub joining: Arc<std::sync::atomic::AtomicBool>,
    pub max_frame_bytes: usize,
    /// The members, changed at run time (`Transport::set_peers`).
    pub peers: Arc<std::sync::RwLock<BTreeMap<NodeId, KnownPeer>>>,
    pub counters: Arc<Counters>,
    pub inbound: mpsc::Sender<Inbound>,
}

pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            // A value or an error (the Transport was dropped): either way, stop.
            _ = shutdown.changed() => break,
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    bump(&shared.counters.inbound_accepted);
                    crate::keep_alive(&stream);
                    if readers.len() >= MAX_CONNECTIONS {
                        bump(&shared.counters.inbound_rejected);
                        warn!(peer = %addr, "refusing peer connection: {MAX_CONNECTIONS} already open");
                        continue;
                    }
                    readers.spawn(serve(stream, addr, shared.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors: pause rather than spin.
                    warn!("accepting a peer connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    readers.shutdown().await;
}

/// Why a connection was closed by us.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("no TLS handshake within {HELLO_TIMEOUT:?}")]
    HandshakeTimeout,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed in the middle of a frame ({0} bytes buffered)")]
    Truncated(usize),
    #[error("no Hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
}

impl Close {
    fn is_rejection(&self) -> bool {
        match self {
            Close::Refused(refusal) => refusal.is_rejection(),
            Close::HelloTimeout | Close::Handshake(_) | Close::HandshakeTimeout => true,
            Close::Frame(_) | Close::Io(_) | Close::Truncated(_) => false,
        }
    }
}

/// How a connection ended without fault on its side.
enum End {
    Eof,
    Superseded,
    ReceiverGone,
}

async fn serve(stream: TcpStream, addr: SocketAddr, shared: Arc<Shared>) {
    let mut connection = Connection { shared: &shared, admission: Admission::new(shared.me), counters: None, generation: None, certificate: None };
    let ended = match secure(stream, &shared).await {
        Ok((stream, certificate)) => {
            connection.certificate = certificate;
            connection.read_frames(stream).await
        }
        Err(reason) => Err(reason),
    };
    match ended {
        Ok(End::Eof) => debug!(peer = %addr, from = ?connection.admission.peer(), "peer closed its connection"),
        Ok(End::Superseded) => debug!(peer = %addr, from = ?connection.admission.peer(), "peer connection replaced by a newer one"),
        Ok(End::ReceiverGone) => debug!(peer = %addr, "inbound channel closed; dropping peer connection"),
        Err(reason) => {
            bump(if reason.is_rejection() { &shared.counters.inbound_rejected } else { &shared.counters.inbound_errors });
            warn!(peer = %addr, from = ?connection.admission.peer(), "closing peer connection: {reason}");
        }
    }
}

struct Connection<'a> {
    shared: &'a Shared,
    admission: Admission,
    /// The peer's counters, once its Hello named it.
    counters: Option<Arc<PeerCounters>>,
    /// With TLS: the peer's certificate (verified against the cluster CA), which must name the
    /// node its Hello claims.
    certificate: Option<CertificateDer<'static>>,
    /// This connection's generation, and a watch on the peer's latest one.
    generation: Option<(u64, watch::Receiver<u64>)>,
}

impl Connection<'_> {
    async fn read_frames(&mut self, mut stream: PeerStream) -> Result<End, Close> {
        let hello_deadline = Instant::now() + HELLO_TIMEOUT;
        let mut buffer = BytesMut::with_capacity(READ_CHUNK);
        loop {
            // Deliver every whole frame buffered, then keep the partial one for the next read.
            loop {
                // Until the Hello, a frame can only be a Hello: a longer one is refused as soon as
                // its length is read.
                let limit = self.admission.frame_limit(self.shared.max_frame_bytes);
                let Some(wire) = frame::take(&mut buffer, limit)? else { break };
                if let Some(end) = self.handle(wire).await? {
                    return Ok(end);
                }
            }
            make_read_space(&mut buffer);

            let read = match &mut self.generation {
                None if self.admission.peer().is_none() => match timeout_at(hello_deadline, stream.read_buf(&mut buffer)).await {
                    Ok(read) => read,
                    Err(_) => return Err(Close::HelloTimeout),
                },
                // A node admitted before this one's configuration names it.
                None => stream.read_buf(&mut buffer).await,
                Some((mine, latest)) => {
                    let mine = *mine;
                    tokio::select! {
                        read = stream.read_buf(&mut buffer) => read,
                        _ = latest.wait_for(|&latest| latest != mine) => return Ok(End::Superseded),
                    }
                }
            };
            if read? == 0 {
                return if buffer.is_empty() { Ok(End::Eof) } else { Err(Close::Truncated(buffer.len())) };
            }
        }
    }

    /// Acts on one frame; `Some` ends the connection quietly.
    async fn handle(&mut self, wire: Wire) -> Result<Option<End>, Close> {
        let shared = self.shared;
        let cluster = shared.cluster.load(std::sync::atomic::Ordering::Relaxed);
        let certificate = &self.certificate;
        let plaintext = crate::current_tls(&shared.tls).is_none();
        let certified = |from| plaintext || certificate.as_ref().is_some_and(|certificate| crate::tls::names_node(certificate, from));
        let is_peer = |id| shared.peers.read().is_ok_and(|peers| peers.contains_key(&id));
        let joining = shared.joining.load(std::sync::atomic::Ordering::Relaxed);
        match self.admission.admit(wire, cluster, joining, is_peer, certified)? {
            Admitted::Hello { from, address, cluster, speaks } => {
                self.hello(from, speaks);
                match shared.inbound.send(Inbound::Hello { from, address, cluster }).await {
                    Ok(()) => Ok(None),
                    Err(_) => Ok(Some(End::ReceiverGone)),
                }
            }
            Admitted::Frame(from, frame) => {
                if let Some(counters) = &self.counters {
                    bump(&counters.frames_received);
                }
                match shared.inbound.send(Inbound::Frame { from, frame }).await {
                    Ok(()) => Ok(None),
                    Err(_) => Ok(Some(End::ReceiverGone)),
                }
            }
        }
    }

    /// A newer connection from `from` supersedes its older ones; so does its removal. What its
    /// Hello says it speaks sets the frame version this node sends it from now on.
    fn hello(&mut self, from: NodeId, speaks: u8) {
        let peers = self.shared.peers.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(peer) = peers.get(&from) else { return };
        peer.counters.speaks.store(speaks, std::sync::atomic::Ordering::Relaxed);
        self.counters = Some(peer.counters.clone());
        let mut mine = 0;
        peer.generation.send_modify(|generation| {
            *generation += 1;
            mine = *generation;
        });
        self.generation = Some((mine, peer.generation.subscribe()));
        bump(&peer.counters.inbound_connections);
        debug!(from = %from, "accepted peer connection");
    }
}

/// The connection as this node reads it: with TLS, after the handshake (in which the peer proved
/// it holds a certificate of the cluster's CA), with that certificate.
async fn secure(stream: TcpStream, shared: &Shared) -> Result<(PeerStream, Option<CertificateDer<'static>>), Close> {
    let Some(acceptor) = crate::current_tls(&shared.tls).map(|tls| tls.acceptor) else { return Ok((Box::new(stream), None)) };
    let stream = match timeout_at(Instant::now() + HELLO_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(Close::Handshake(error)),
        Err(_) => return Err(Close::HandshakeTimeout),
    };
    let certificate = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|certificate| certificate.clone().into_owned());
    Ok((Box::new(stream), certificate))
}

/// Readies `buffer` (holding at most a partial frame) for the next read. It grows in chunks as
/// bytes arrive, never by what a length prefix claims.
fn make_read_space(buffer: &mut BytesMut) {
    if buffer.capacity() > KEEP_BUFFER_BYTES && buffer.len() < READ_CHUNK {
        // Left over from a large frame: copy the small remainder out rather than keep the large
        // allocation alive for it (the frame itself frees its part once its entries are gone).
        let mut fresh = BytesMut::with_capacity(READ_CHUNK);
        fresh.extend_from_slice(buffer);
        *buffer = fresh;
    }
    if buffer.capacity() - buffer.len() < MIN_READ_SPACE {
        buffer.reserve(READ_CHUNK);
    }
}
