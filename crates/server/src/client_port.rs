//! The RESP client port: any Redis client talks to any node. Each connection parses commands as
//! they arrive (pipelined ones too), hands data commands to the node's loop, and writes the answers
//! in order — the replica gives them in the order the requests came, each within its deadline, so
//! the connection only waits for them. A malformed frame gets `-ERR Protocol error` and the
//! connection is closed; nothing a client sends can harm the node.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raft::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::metrics::Metrics;
use crate::node_loop::LoopInput;
use replica::request::Answer;
use replica::session::{Session, Step};
use replica::ConnId;

pub struct ClientPort {
    pub node: mpsc::UnboundedSender<LoopInput>,
    pub status: watch::Receiver<Status>,
    pub metrics: Arc<Metrics>,
    pub limits: resp::Limits,
    pub request_timeout: Duration,
    pub connections: Arc<Semaphore>,
    /// The node's counter for untagged writes (see `request::WriteEncoder`).
    pub untagged_seq: Arc<std::sync::atomic::AtomicU64>,
    pub next_conn: std::sync::atomic::AtomicU64,
}

/// Room made for each read from a client: a whole pipeline of small requests at once.
const READ_BYTES: usize = 16 * 1024;

/// One reply slot in a pipeline: ready bytes, or the next answer from the node.
enum Pending {
    Now(Vec<u8>),
    Later,
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
                if let Err(error) = port.connection(stream).await {
                    tracing::debug!(%peer, %error, "client connection ended");
                }
                drop(permit);
            });
        }
    }

    async fn connection(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (sender, mut answers) = mpsc::unbounded_channel();
        if self.node.send(LoopInput::Connected { conn, answers: sender }).is_err() {
            stream.write_all(b"-ERR the node is shutting down\r\n").await?;
            return Ok(());
        }
        let _registered = Registered { conn, node: self.node.clone() };
        let mut session = Session::new(self.limits.clone(), self.untagged_seq.clone());
        loop {
            // Straight into the unparsed bytes' buffer: no second copy, no per-connection scratch.
            let space = session.read_space();
            space.reserve(READ_BYTES);
            if stream.read_buf(space).await? == 0 {
                return Ok(());
            }
            let status = *self.status.borrow();
            let mut replies: Vec<Pending> = Vec::new();
            for step in session.parse(&status) {
                replies.push(match step {
                    Step::Reply(bytes) => Pending::Now(bytes),
                    Step::Request(request) => match self.node.send(LoopInput::Request { conn, request }) {
                        Ok(()) => Pending::Later,
                        Err(_) => Pending::Now(b"-ERR the node is shutting down\r\n".to_vec()),
                    },
                });
            }
            let started = std::time::Instant::now();
            let waited = replies.iter().any(|reply| matches!(reply, Pending::Later));
            let complete = self.settle(&mut replies, &mut answers).await;
            if waited {
                self.metrics.request_seconds.observe(started.elapsed());
            }
            let mut out = Vec::new();
            for reply in replies {
                if let Pending::Now(bytes) = reply {
                    out.extend_from_slice(&bytes);
                }
            }
            stream.write_all(&out).await?;
            // An answer that did not come could still come later and be taken for the next one.
            if session.closing() || !complete {
                return Ok(());
            }
        }
    }

    /// Waits for every answer still on its way, in order. The replica answers each request within
    /// its deadline; the wait here is bounded too, in case the node's loop has stopped. Returns
    /// false if an answer did not come.
    async fn settle(&self, replies: &mut [Pending], answers: &mut mpsc::UnboundedReceiver<Answer>) -> bool {
        let bound = self.request_timeout + Duration::from_secs(1);
        let mut complete = true;
        for reply in replies.iter_mut() {
            if !matches!(reply, Pending::Later) {
                continue;
            }
            let mut out = Vec::new();
            match tokio::time::timeout(bound, answers.recv()).await {
                Ok(Some(answer)) => answer.to_resp(&mut out),
                Ok(None) => {
                    complete = false;
                    resp::encode_error("ERR the node is shutting down", &mut out)
                }
                Err(_) => {
                    complete = false;
                    resp::encode_error("ERR timeout: the node did not answer; a write's outcome is unknown", &mut out)
                }
            }
            *reply = Pending::Now(out);
        }
        complete
    }
}
