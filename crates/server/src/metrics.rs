//! Prometheus metrics and a health check over a minimal HTTP/1.1 endpoint (`GET /metrics`,
//! `GET /health`). Counters are atomics written by the Raft loop and the apply task; the endpoint
//! only reads them, so scraping never slows the node.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A fixed-bucket latency histogram, as Prometheus exposes them.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[index].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[derive(Default)]
pub struct Metrics {
    pub term: AtomicU64,
    pub is_leader: AtomicU64,
    pub leader_id: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub last_log_index: AtomicU64,
    pub disk_full: AtomicU64,
    pub leader_changes: AtomicU64,
    pub requests: AtomicU64,
    pub peer_messages_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub fsync_seconds: Histogram,
    pub request_seconds: Histogram,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauges = [
            ("raftkv_term", "Current Raft term.", &self.term),
            ("raftkv_is_leader", "1 if this node is the leader.", &self.is_leader),
            ("raftkv_leader_id", "The leader this node knows of (0: none).", &self.leader_id),
            ("raftkv_commit_index", "Highest log index known committed.", &self.commit_index),
            ("raftkv_applied_index", "Highest log index applied to the store.", &self.applied_index),
            ("raftkv_last_log_index", "Last index in this node's log.", &self.last_log_index),
            ("raftkv_disk_full", "1 while the data directory's disk is full and writes are refused.", &self.disk_full),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", value.load(Ordering::Relaxed));
        }
        let counters = [
            ("raftkv_leader_changes_total", "Times the known leader changed.", &self.leader_changes),
            ("raftkv_requests_total", "Data commands (reads and writes) clients sent to this node.", &self.requests),
            ("raftkv_auth_failures_total", "Client AUTH and HELLO AUTH attempts with a wrong user or password.", &self.auth_failures),
            ("raftkv_peer_messages_refused_total", "Well-formed peer messages refused by the node (a snapshot that does not decode).", &self.peer_messages_refused),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        self.fsync_seconds.render("raftkv_fsync_seconds", "Time to make one Ready durable (write and fsync).", &mut out);
        self.request_seconds.render("raftkv_request_seconds", "Time from a data command's arrival to its answer, per batch of a connection.", &mut out);
        out
    }
}

/// Most bytes of a request head read; a longer one is answered 431 and closed.
const MAX_REQUEST_HEAD: usize = 8192;
/// A request head must arrive within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` and `/health` until the process ends. `/health` is 200 when a leader is
/// known, 503 otherwise. `transport` adds the peer links' counters to `/metrics`. With `tls`, over
/// HTTPS only.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, transport: transport::Transport, tls: Option<Arc<crate::secrets::Secrets>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, say: wait instead of spinning on the error.
                tracing::warn!(%error, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, transport, tls) = (metrics.clone(), transport.clone(), tls.as_ref().and_then(|secrets| secrets.current().tls));
        tokio::spawn(async move {
            match tls {
                None => answer(stream, &metrics, &transport).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
                        answer(stream, &metrics, &transport).await;
                    }
                }
            }
        });
    }
}

/// Reads one request and answers it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, metrics: &Metrics, transport: &transport::Transport) {
    let Ok(head) = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else { return };
    let (status, body) = match head.as_deref().map(request_path) {
        None => ("431 Request Header Fields Too Large", "request head too large\n".to_string()),
        Some("/metrics") => ("200 OK", metrics.render() + &render_transport(&transport.stats())),
        Some("/health") if metrics.leader_id.load(Ordering::Relaxed) != 0 => ("200 OK", "ok: a leader is known\n".to_string()),
        Some("/health") => ("503 Service Unavailable", "no leader known\n".to_string()),
        Some(_) => ("404 Not Found", "try /metrics or /health\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads until the blank line that ends a request head, however the client's writes split it;
/// None if it is longer than `MAX_REQUEST_HEAD` (or the connection ends first: what came is used).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    loop {
        if head.windows(4).any(|window| window == b"\r\n\r\n") {
            return Some(head);
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return None;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Some(head),
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
}

/// The path of a request line (`GET /metrics HTTP/1.1`), without a query string.
fn request_path(head: &[u8]) -> &str {
    let line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let target = std::str::from_utf8(line).unwrap_or("").split_whitespace().nth(1).unwrap_or("");
    target.split('?').next().unwrap_or("")
}

/// The peer links' counters: what a hostile or broken peer costs shows here.
fn render_transport(stats: &transport::Stats) -> String {
    let mut out = String::new();
    let counters = [
        ("raftkv_peer_connections_accepted_total", "Peer TCP connections accepted.", stats.inbound_accepted),
        ("raftkv_peer_connections_refused_total", "Peer connections refused before their first frame (no or bad hello, too many).", stats.inbound_rejected),
        ("raftkv_peer_connections_failed_total", "Peer connections closed on a malformed or out-of-range frame, or an I/O error.", stats.inbound_errors),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    let name = "raftkv_peer_frames_refused_full_total";
    let _ = writeln!(out, "# HELP {name} Frames not queued because the link to the peer was full.\n# TYPE {name} counter");
    for (peer, peer_stats) in &stats.peers {
        let _ = writeln!(out, "{name}{{peer=\"{}\"}} {}", peer.0, peer_stats.dropped_full);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(10));
        let mut out = String::new();
        histogram.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.0001\"} 1"));
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3"));
        assert!(out.contains("x_count 3"));
    }

    /// The defect: the head was taken from the first read alone, so a request split across two
    /// TCP segments got 404.
    #[tokio::test]
    async fn a_request_split_across_writes_is_read_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
            stream.write_all(b"GET /met").await.expect("write");
            stream.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream.write_all(b"rics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").await.expect("write");
        });
        let (mut stream, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut stream).await.expect("a head within the limit");
        client.await.expect("client");
        assert_eq!(request_path(&head), "/metrics");
    }

    #[test]
    fn paths_come_from_the_request_line() {
        assert_eq!(request_path(b"GET /health HTTP/1.1\r\n\r\n"), "/health");
        assert_eq!(request_path(b"GET /metrics?name=x HTTP/1.0\r\n\r\n"), "/metrics");
        assert_eq!(request_path(b"\xff\xfe\r\n\r\n"), "");
        assert_eq!(request_path(b""), "");
    }
}
