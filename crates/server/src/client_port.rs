//! The RESP client port: any Redis client talks to any node. Each connection parses commands as
//! they arrive (pipelined ones too), hands data commands to the node's loop, and writes the answers
//! in order — the replica gives them in the order the requests came, each within its deadline, so
//! the connection only waits for them. A malformed frame gets `-ERR Protocol error` and the
//! connection is closed; nothing a client sends can harm the node.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use replica::metrics::Instruments;
use crate::node_loop::LoopInput;
use replica::request::Answer;
use replica::session::{NodeView, Session, Step};
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
/// Requests of one connection with the node at a time; the rest of its pipeline waits until their
/// replies are written. Bounds the replies built for a client that does not read them.
const MAX_IN_FLIGHT: usize = 64;
/// Replies are written once this many bytes of them are ready, without waiting for the round.
const FLUSH_BYTES: usize = 256 * 1024;
/// A client that takes none of a write for this long is disconnected (it stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Buffers up to this are never the reason a connection is closed, whatever the clients' total:
/// the budget closes the connections that hold much, not a small one that happens to grow last.
const SMALL_BUFFERS: u64 = 64 * 1024;

/// One reply slot in a pipeline: ready bytes, or the next answer from the node.
enum Pending {
    Now(Vec<u8>),
    /// The node's answer, to be written in RESP3 if true.
    Later(bool),
    /// The node's answer to a WATCH, for the session to keep (it gives the reply).
    Watch,
}

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
            let mut steps = session.parse(&view).into_iter().peekable();
            let failures = session.take_auth_failures();
            if failures > 0 {
                tracing::warn!(%peer, failures, "client authentication failed");
                self.instruments.auth_failures.fetch_add(failures, Ordering::Relaxed);
            }
            // A round at a time: at most MAX_IN_FLIGHT requests with the node, their replies
            // written before the next round goes, so a client that does not read stops the
            // connection (its writes block) with a bounded amount of replies built.
            while steps.peek().is_some() {
                let mut round = Vec::new();
                let mut in_flight = 0;
                while in_flight < MAX_IN_FLIGHT {
                    let Some(step) = steps.next() else { break };
                    let (request, pending) = match step {
                        Step::Reply(bytes) => {
                            round.push(Pending::Now(bytes));
                            continue;
                        }
                        Step::Request { request, resp3 } => (request, Pending::Later(resp3)),
                        Step::Watch { request, .. } => (request, Pending::Watch),
                    };
                    round.push(match self.node.send(LoopInput::Request { conn, request }) {
                        Ok(()) => {
                            in_flight += 1;
                            pending
                        }
                        Err(_) => Pending::Now(b"-ERR the node is shutting down\r\n".to_vec()),
                    });
                }
                let started = std::time::Instant::now();
                let complete = self.answer_round(round, &mut answers, &mut session, &mut stream, &mut share, input).await?;
                if in_flight > 0 {
                    self.instruments.request_seconds.observe(started.elapsed());
                }
                // An answer that did not come could still come later and be taken for the next one;
                // or the replies would have taken the clients' buffers over their budget.
                if !complete {
                    return Ok(());
                }
            }
            if session.closing() {
                return Ok(());
            }
        }
    }

    /// Writes a round's replies in order, each node answer as it comes (the replica answers each
    /// request within its deadline; the wait here is bounded too, in case the node's loop has
    /// stopped). Output is written whenever it passes `FLUSH_BYTES`, and a write that the client
    /// does not take within `WRITE_TIMEOUT` ends the connection. Returns false if an answer did
    /// not come, or the replies built would have taken the clients' buffers over their budget
    /// (`input`: what the connection's input buffer holds meanwhile).
    async fn answer_round<S: AsyncWrite + Unpin>(
        &self,
        round: Vec<Pending>,
        answers: &mut mpsc::UnboundedReceiver<Answer>,
        session: &mut Session,
        stream: &mut S,
        share: &mut Share<'_>,
        input: u64,
    ) -> std::io::Result<bool> {
        let bound = self.request_timeout + Duration::from_secs(1);
        let mut complete = true;
        let mut out = Vec::new();
        for reply in round {
            if let Pending::Now(bytes) = &reply {
                out.extend_from_slice(bytes);
            } else {
                let answer = match tokio::time::timeout(bound, answers.recv()).await {
                    Ok(Some(answer)) => answer,
                    Ok(None) => {
                        complete = false;
                        Answer::Error("the node is shutting down".into())
                    }
                    Err(_) => {
                        complete = false;
                        Answer::Error("timeout: the node did not answer; a write's outcome is unknown".into())
                    }
                };
                match reply {
                    Pending::Watch => session.watch_answered(answer, &mut out),
                    Pending::Later(resp3) => answer.to_resp(&mut out, resp3),
                    Pending::Now(_) => {}
                }
            }
            if out.len() >= FLUSH_BYTES {
                if !share.hold(input + out.capacity() as u64) {
                    return Ok(false);
                }
                write_within(stream, &out).await?;
                out.clear();
            }
        }
        if !share.hold(input + out.capacity() as u64) {
            return Ok(false);
        }
        write_within(stream, &out).await?;
        share.hold(input);
        Ok(complete)
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
