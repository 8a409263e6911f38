//! The RESP client port: any Redis client talks to any node. Each connection parses commands as
//! they arrive (pipelined ones too), sends data commands to the Raft loop, and writes the answers in
//! order. Every wait is bounded; a malformed frame gets `-ERR Protocol error` and the connection is
//! closed; nothing a client sends can harm the node.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raft::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::apply::ReplyTo;
use crate::metrics::Metrics;
use crate::raft_loop::LoopInput;
use replica::request::{command_name, to_request, Answer, WriteEncoder};

pub struct ClientPort {
    pub raft: mpsc::Sender<LoopInput>,
    pub status: watch::Receiver<Status>,
    pub metrics: Arc<Metrics>,
    pub limits: resp::Limits,
    pub request_timeout: Duration,
    pub connections: Arc<Semaphore>,
    /// The node's counter for untagged writes (see `request::WriteEncoder`).
    pub untagged_seq: Arc<std::sync::atomic::AtomicU64>,
}

/// Room made for each read from a client: a whole pipeline of small requests at once.
const READ_BYTES: usize = 16 * 1024;

/// One reply slot in a pipeline: ready bytes, or an answer still on its way (from a write or not).
enum Pending {
    Now(Vec<u8>),
    Later { answer: oneshot::Receiver<Answer>, write: bool },
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
                        // Commands of one connection take effect in order, as in Redis: before a
                        // read goes in, the writes ahead of it must be answered, and vice versa.
                        // Runs of the same kind still travel together (one batch, one fsync).
                        let write = is_write(name);
                        if replies.iter().any(|reply| matches!(reply, Pending::Later { write: other, .. } if *other != write)) {
                            self.settle(&mut replies).await;
                        }
                        replies.push(self.command(&args, name, write, &mut writes).await);
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
            self.settle(&mut replies).await;
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

    /// Waits (bounded) for every answer still on its way, in order.
    async fn settle(&self, replies: &mut [Pending]) {
        for reply in replies.iter_mut() {
            let Pending::Later { answer, .. } = reply else { continue };
            let mut out = Vec::new();
            match tokio::time::timeout(self.request_timeout, answer).await {
                Ok(Ok(answer)) => answer.to_resp(&mut out),
                Ok(Err(_)) => resp::encode_error("ERR the node is shutting down", &mut out),
                Err(_) => resp::encode_error("ERR timeout: no answer within the time limit; a write's outcome is unknown", &mut out),
            }
            *reply = Pending::Now(out);
        }
    }

    /// `name`: `command_name` of the first argument.
    async fn command(&self, args: &resp::ArgBuf, name: &str, write: bool, writes: &mut WriteEncoder) -> Pending {
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
                    let (sender, receiver) = oneshot::channel();
                    let input = LoopInput::Client { request, reply: ReplyTo::Local(sender) };
                    // A full queue means the node is overloaded: wait (bounded), do not drop silently.
                    return match tokio::time::timeout(self.request_timeout, self.raft.send(input)).await {
                        Ok(Ok(())) => Pending::Later { answer: receiver, write },
                        Ok(Err(_)) => Pending::Now(b"-ERR the node is shutting down\r\n".to_vec()),
                        Err(_) => Pending::Now(b"-ERR timeout: the node is overloaded\r\n".to_vec()),
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

/// Whether a command changes data (and so goes through the log). TAGGED wraps only writes.
fn is_write(name: &str) -> bool {
    matches!(name, "SET" | "APPEND" | "DEL" | "TAGGED")
}
