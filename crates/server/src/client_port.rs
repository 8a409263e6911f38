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
use replica::request::{command_name, to_request, Answer, WriteEncoder};
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
        let mut buffer = Vec::with_capacity(READ_BYTES);
        let mut writes = WriteEncoder::new(self.untagged_seq.clone());
        let mut args = resp::ArgBuf::new();
        loop {
            // Straight into the unparsed bytes' buffer: no second copy, no per-connection scratch.
            buffer.reserve(READ_BYTES);
            if stream.read_buf(&mut buffer).await? == 0 {
                return Ok(());
            }
            let mut consumed = 0;
            let mut replies = Vec::new();
            let mut close = false;
            loop {
                match resp::parse_command_into(&buffer[consumed..], &self.limits, &mut args) {
                    Ok(Some(used)) => {
                        consumed += used;
                        if args.is_empty() {
                            continue;
                        }
                        let name = command_name(&args[0]);
                        if name == "QUIT" {
                            replies.push(Pending::Now(b"+OK\r\n".to_vec()));
                            close = true;
                            break;
                        }
                        replies.push(self.command(conn, &args, name, &mut writes));
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let mut out = Vec::new();
                        resp::encode_error(&format!("ERR Protocol error: {error}"), &mut out);
                        replies.push(Pending::Now(out));
                        close = true;
                        break;
                    }
                }
            }
            buffer.drain(..consumed);
            let started = std::time::Instant::now();
            let waited = replies.iter().any(|reply| matches!(reply, Pending::Later));
            let complete = self.settle(&mut replies, &mut answers).await;
            if waited {
                self.metrics.request_seconds.observe(started.elapsed());
            }
            if !complete {
                // An answer that did not come could still come later and be taken for the next one.
                close = true;
            }
            let mut out = Vec::new();
            for reply in replies {
                if let Pending::Now(bytes) = reply {
                    out.extend_from_slice(&bytes);
                }
            }
            stream.write_all(&out).await?;
            if close {
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

    /// `name`: `command_name` of the first argument.
    fn command(&self, conn: ConnId, args: &resp::ArgBuf, name: &str, writes: &mut WriteEncoder) -> Pending {
        let mut out = Vec::new();
        match name {
            "PING" => match args.len() {
                1 => resp::encode_simple("PONG", &mut out),
                2 => resp::encode_bulk(&args[1], &mut out),
                _ => resp::encode_error("ERR wrong number of arguments for 'ping' command", &mut out),
            },
            "INFO" => resp::encode_bulk(self.info().as_bytes(), &mut out),
            // redis-cli, redis-benchmark and client libraries probe these at start; a neutral answer
            // keeps them going (there is no configuration or command table to report).
            "COMMAND" | "CONFIG" => out.extend_from_slice(b"*0\r\n"),
            "CLIENT" => resp::encode_simple("OK", &mut out),
            "SELECT" if args.get(1) == Some(&b"0"[..]) => resp::encode_simple("OK", &mut out),
            _ => match to_request(args, writes) {
                Ok(request) => {
                    return match self.node.send(LoopInput::Request { conn, request }) {
                        Ok(()) => Pending::Later,
                        Err(_) => Pending::Now(b"-ERR the node is shutting down\r\n".to_vec()),
                    };
                }
                Err(error) => resp::encode_error(&error.message(), &mut out),
            },
        }
        Pending::Now(out)
    }

    fn info(&self) -> String {
        let status = *self.status.borrow();
        let role = match status.role {
            raft::Role::Leader => "leader",
            raft::Role::Follower => "follower",
            raft::Role::PreCandidate | raft::Role::Candidate => "candidate",
        };
        format!(
            "# Replication\r\nrole:{role}\r\nnode_id:{}\r\nleader_id:{}\r\nterm:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_log_index:{}\r\nsnapshot_index:{}\r\n",
            status.id.0,
            status.leader.map_or(0, |leader| leader.0),
            status.term.0,
            status.commit.0,
            self.metrics.applied_index.load(Ordering::Relaxed),
            status.last_index.0,
            status.snapshot_index.0,
        )
    }
}
