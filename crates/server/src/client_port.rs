//! The RESP client port: any Redis client talks to any node. What a connection reads goes through
//! its `Session` (commands, pipelined ones too) and its `Pipeline` (rounds of requests for the
//! node's loop, replies in the commands' order), both pure and run by the simulator too; the
//! replica answers each request within its deadline, so the connection only reads, waits and
//! writes. A malformed frame gets `-ERR Protocol error` and the connection is closed; nothing a
//! client sends can harm the node.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use replica::metrics::Instruments;
use crate::node_loop::LoopInput;
use replica::request::Answer;
use replica::pipeline::{self, Pipeline};
use replica::session::{NodeView, Session};
use replica::ConnId;

pub struct ClientPort {
    pub node: mpsc::UnboundedSender<LoopInput>,
    pub view: watch::Receiver<NodeView>,
    /// The most client connections at once (what `connections` started with).
    pub max_clients: usize,
    pub instruments: Arc<Instruments>,
    pub limits: resp::Limits,
    /// All connections' buffers together at most (0: no limit); see `Share`.
    pub max_client_memory: u64,
    pub request_timeout: Duration,
    /// A connection that sends nothing for this long is closed (`--timeout`); None: never.
    pub idle_timeout: Option<Duration>,
    pub connections: Arc<Semaphore>,
    /// The node's counter for untagged writes (see `request::WriteEncoder`).
    pub untagged_seq: Arc<std::sync::atomic::AtomicU64>,
    pub next_conn: std::sync::atomic::AtomicU64,
    /// Who may connect, and TLS (every connection then starts with a handshake); each connection
    /// takes what is in force when it is accepted.
    pub secrets: Arc<crate::secrets::Secrets>,
}

/// A TLS handshake must be over within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Room made for each read from a client: a whole pipeline of small requests at once.
const READ_BYTES: usize = 16 * 1024;
/// A client that takes none of a write for this long is disconnected (it stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Buffers up to this are never the reason a connection is closed, whatever the clients' total:
/// the budget closes the connections that hold much, not a small one that happens to grow last.
const SMALL_BUFFERS: u64 = 64 * 1024;

/// One connection's part of the bytes all client connections' buffers hold
/// (`Instruments::client_buffer_bytes`), given back when the connection ends.
struct Share<'a> {
    port: &'a ClientPort,
    held: u64,
}

impl Share<'_> {
    /// The connection's buffers now hold `bytes`. False if they grew past `SMALL_BUFFERS` and the
    /// total is over `--max-client-memory`: the connection must close (as Redis evicts clients
    /// over `maxmemory-clients`), which gives its part back.
    fn hold(&mut self, bytes: u64) -> bool {
        let total = &self.port.instruments.client_buffer_bytes;
        let grew = bytes > self.held;
        if grew {
            total.fetch_add(bytes - self.held, Ordering::Relaxed);
        } else {
            total.fetch_sub(self.held - bytes, Ordering::Relaxed);
        }
        self.held = bytes;
        let limit = self.port.max_client_memory;
        if grew && bytes > SMALL_BUFFERS && limit > 0 && total.load(Ordering::Relaxed) > limit {
            self.port.instruments.clients_over_memory.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(bytes, limit, "a client connection's buffers would take the clients' total over --max-client-memory; closing it");
            return false;
        }
        true
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.port.instruments.client_buffer_bytes.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// Tells the node's loop that a connection ended, however its task ends.
struct Registered {
    conn: ConnId,
    node: mpsc::UnboundedSender<LoopInput>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = self.node.send(LoopInput::Disconnected(self.conn));
    }
}

impl ClientPort {
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection limit reached; refusing a client");
                let mut stream = stream;
                let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
                continue;
            };
            let port = self.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                transport::keep_alive(&stream);
                let secrets = port.secrets.current();
                let ended = match &secrets.tls {
                    None => port.connection(stream, peer, secrets.users).await,
                    Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => port.connection(stream, peer, secrets.users.clone()).await,
                        Ok(Err(error)) => {
                            tracing::warn!(%peer, %error, "TLS handshake with a client failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "TLS handshake with a client timed out");
                            Ok(())
                        }
                    },
                };
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "client connection ended");
                }
                drop(permit);
            });
        }
    }

    async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        peer: std::net::SocketAddr,
        users: Arc<replica::users::Users>,
    ) -> std::io::Result<()> {
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (sender, mut answers) = mpsc::unbounded_channel();
        if self.node.send(LoopInput::Connected { conn, answers: sender }).is_err() {
            stream.write_all(b"-ERR the node is shutting down\r\n").await?;
            return Ok(());
        }
        let _registered = Registered { conn, node: self.node.clone() };
        let mut share = Share { port: self, held: 0 };
        let mut session = Session::new(self.limits.clone(), self.untagged_seq.clone());
        let mut pipeline = Pipeline::new(pipeline::WINDOW);
        session.set_id(conn.0);
        session.set_users(users);
        session.set_idle_timeout(self.idle_timeout);
        loop {
            // Straight into the unparsed bytes' buffer: no second copy, no per-connection scratch.
            let space = session.read_space();
            space.reserve(READ_BYTES);
            let read = match self.idle_timeout {
                None => stream.read_buf(space).await?,
                Some(idle) => match tokio::time::timeout(idle, stream.read_buf(space)).await {
                    Ok(read) => read?,
                    Err(_) => {
                        tracing::debug!(%peer, "closing an idle client connection");
                        return Ok(());
                    }
                },
            };
            if read == 0 {
                return Ok(());
            }
            let input = session.read_space().capacity() as u64;
            if !share.hold(input) {
                return Ok(());
            }
            let view = NodeView {
                clients: (self.max_clients - self.connections.available_permits()) as u64,
                client_buffer_bytes: self.instruments.client_buffer_bytes.load(Ordering::Relaxed),
                max_client_memory: self.max_client_memory,
                ..*self.view.borrow()
            };
            let steps = session.parse(&view);
            let failures = session.take_auth_failures();
            if failures > 0 {
                tracing::warn!(%peer, failures, "client authentication failed");
                self.instruments.auth_failures.fetch_add(failures, Ordering::Relaxed);
            }
            pipeline.push(steps);
            // The replica answers each request within its deadline; the wait here is bounded too,
            // in case the node's loop has stopped.
            let mut started = std::time::Instant::now();
            while !pipeline.done() {
                for request in pipeline.next_round() {
                    started = std::time::Instant::now();
                    if self.node.send(LoopInput::Request { conn, request }).is_err() {
                        return write_within(&mut stream, b"-ERR the node is shutting down\r\n").await;
                    }
                }
                // An answer that did not come could still come later and be taken for the next
                // one: the connection closes once the replies so far are written.
                let mut failed = None;
                if pipeline.awaiting() {
                    match tokio::time::timeout(self.request_timeout + Duration::from_secs(1), answers.recv()).await {
                        Ok(Some(answer)) => _ = pipeline.answered(answer, &mut session),
                        Ok(None) => failed = Some("the node is shutting down"),
                        Err(_) => failed = Some("timeout: the node did not answer; a write's outcome is unknown"),
                    }
                    while let Some(reason) = failed.filter(|_| pipeline.awaiting()) {
                        pipeline.answered(Answer::Error(reason.into()), &mut session);
                    }
                    if !pipeline.awaiting() {
                        self.instruments.request_seconds.observe(started.elapsed());
                    }
                }
                if pipeline.flush_due() {
                    // Replies that would take the clients' buffers over their budget close the connection.
                    if !share.hold(input + pipeline.buffer_bytes()) {
                        return Ok(());
                    }
                    write_within(&mut stream, pipeline.output()).await?;
                    pipeline.written();
                }
                if failed.is_some() {
                    return Ok(());
                }
            }
            share.hold(input);
            if session.closing() {
                return Ok(());
            }
        }
    }
}

/// Writes all of `bytes`, or fails if the client does not take them within `WRITE_TIMEOUT`.
async fn write_within<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    // Flushed too: a TLS stream may hold the last records back until then.
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading its replies")),
    }
}
