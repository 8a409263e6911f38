//! What a node reports over HTTP (`GET /metrics` in Prometheus's text format, `GET /health`),
//! decided without sockets: the shell reads a request head, hands it here with the node's view,
//! and writes back the bytes it gets. The simulator renders the same text for its nodes and checks
//! it against their state.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::session::NodeView;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Most bytes of a request head read; a longer one is answered 431.
pub const MAX_REQUEST_HEAD: usize = 8192;

/// What the node's loop counts; part of its `NodeView`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Data commands (reads and writes) this node's clients sent it.
    pub requests: u64,
    /// Times the known leader changed.
    pub leader_changes: u64,
    /// Well-formed peer messages refused (a snapshot that does not decode).
    pub peer_messages_refused: u64,
}

/// A fixed-bucket latency histogram, as Prometheus exposes them. Atomics: the disk thread and
/// the connections observe while the HTTP port reads.
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

/// What is measured outside the node's loop: latencies, authentication failures, and the
/// client connections' buffers.
#[derive(Default)]
pub struct Instruments {
    pub fsync_seconds: Histogram,
    pub request_seconds: Histogram,
    pub auth_failures: AtomicU64,
    /// Bytes held by every client connection's input and output buffers, now.
    pub client_buffer_bytes: AtomicU64,
    /// Client connections closed because their buffers would have taken that total over
    /// `--max-client-memory`.
    pub clients_over_memory: AtomicU64,
}

/// The peer links' counters (the transport's), as `/metrics` shows them.
#[derive(Clone, Debug, Default)]
pub struct Links {
    pub accepted: u64,
    pub refused: u64,
    pub failed: u64,
    /// Per peer id: frames not queued because the link was full.
    pub refused_full: Vec<(u64, u64)>,
    /// Per peer id: the frame version sent to it (the highest both ends speak).
    pub frame_versions: Vec<(u64, u8)>,
}

/// The `/metrics` text.
pub fn render(view: &NodeView, instruments: &Instruments, links: &Links) -> String {
    let mut out = String::new();
    let status = &view.status;
    let gauges = [
        ("raftkv_term", "Current Raft term.", status.term.0),
        ("raftkv_is_leader", "1 if this node is the leader.", u64::from(status.is_leader())),
        ("raftkv_leader_id", "The leader this node knows of (0: none).", status.leader.map_or(0, |leader| leader.0)),
        ("raftkv_commit_index", "Highest log index known committed.", status.commit.0),
        ("raftkv_applied_index", "Highest log index applied to the store.", view.applied_index),
        ("raftkv_last_log_index", "Last index in this node's log.", status.last_index.0),
        ("raftkv_disk_full", "1 while the data directory's disk is full and writes are refused.", u64::from(view.disk_full)),
        ("raftkv_voters", "Voters in the configuration in effect on this node.", view.voters),
        ("raftkv_learners", "Learners (non-voting members) in the configuration in effect on this node.", view.learners),
        ("raftkv_client_buffer_bytes", "Bytes held by the client connections' input and output buffers.", instruments.client_buffer_bytes.load(Ordering::Relaxed)),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    let counters = [
        ("raftkv_leader_changes_total", "Times the known leader changed.", view.counters.leader_changes),
        ("raftkv_requests_total", "Data commands (reads and writes) clients sent to this node.", view.counters.requests),
        ("raftkv_auth_failures_total", "Client AUTH and HELLO AUTH attempts with a wrong user or password.", instruments.auth_failures.load(Ordering::Relaxed)),
        ("raftkv_clients_over_memory_total", "Client connections closed because their buffers would have taken the total over --max-client-memory.", instruments.clients_over_memory.load(Ordering::Relaxed)),
        ("raftkv_peer_messages_refused_total", "Well-formed peer messages refused by the node (a snapshot that does not decode).", view.counters.peer_messages_refused),
        ("raftkv_peer_connections_accepted_total", "Peer TCP connections accepted.", links.accepted),
        ("raftkv_peer_connections_refused_total", "Peer connections refused before their first frame (no or bad hello, too many).", links.refused),
        ("raftkv_peer_connections_failed_total", "Peer connections closed on a malformed or out-of-range frame, or an I/O error.", links.failed),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    }
    let name = "raftkv_peer_frames_refused_full_total";
    let _ = writeln!(out, "# HELP {name} Frames not queued because the link to the peer was full.\n# TYPE {name} counter");
    for (peer, refused) in &links.refused_full {
        let _ = writeln!(out, "{name}{{peer=\"{peer}\"}} {refused}");
    }
    let name = "raftkv_peer_frame_version";
    let _ = writeln!(out, "# HELP {name} The peer-protocol version this node sends the peer in (the highest both speak).\n# TYPE {name} gauge");
    for (peer, version) in &links.frame_versions {
        let _ = writeln!(out, "{name}{{peer=\"{peer}\"}} {version}");
    }
    instruments.fsync_seconds.render("raftkv_fsync_seconds", "Time to make one Ready durable (write and fsync).", &mut out);
    instruments.request_seconds.render("raftkv_request_seconds", "Time from a data command's arrival to its answer, per batch of a connection.", &mut out);
    out
}

/// Whether `head` holds a whole request head (up to its blank line), however the client's writes
/// split it.
pub fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|window| window == b"\r\n\r\n")
}

/// The whole HTTP response to a request head (`None`: it grew past `MAX_REQUEST_HEAD`, or
/// the connection ended first with what is given). `/health` is 200 while a leader is known.
pub fn respond(head: Option<&[u8]>, view: &NodeView, instruments: &Instruments, links: &Links) -> Vec<u8> {
    let (status, body) = match head.map(request_path) {
        None => ("431 Request Header Fields Too Large", "request head too large\n".to_string()),
        Some("/metrics") => ("200 OK", render(view, instruments, links)),
        Some("/health") if view.status.leader.is_some() => ("200 OK", "ok: a leader is known\n".to_string()),
        Some("/health") => ("503 Service Unavailable", "no leader known\n".to_string()),
        Some(_) => ("404 Not Found", "try /metrics or /health\n".to_string()),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The path of a request line (`GET /metrics HTTP/1.1`), without a query string.
fn request_path(head: &[u8]) -> &str {
    let line = head.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let target = std::str::from_utf8(line).unwrap_or("").split_whitespace().nth(1).unwrap_or("");
    target.split('?').next().unwrap_or("")
}

/// The value of an unlabelled sample `name` in a `/metrics` text (for checks and tests).
pub fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
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

    #[test]
    fn paths_come_from_the_request_line() {
        assert_eq!(request_path(b"GET /health HTTP/1.1\r\n\r\n"), "/health");
        assert_eq!(request_path(b"GET /metrics?name=x HTTP/1.0\r\n\r\n"), "/metrics");
        assert_eq!(request_path(b"\xff\xfe\r\n\r\n"), "");
        assert_eq!(request_path(b""), "");
    }

    #[test]
    fn a_head_is_whole_at_its_blank_line() {
        assert!(!head_complete(b"GET /met"));
        assert!(!head_complete(b"GET /metrics HTTP/1.1\r\nHost: a\r\n"));
        assert!(head_complete(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    #[test]
    fn answers_follow_the_path_and_the_leader() {
        let mut view = NodeView::of(raft::Status::default());
        let (instruments, links) = (Instruments::default(), Links::default());
        let answer = |head: Option<&[u8]>, view: &NodeView| String::from_utf8(respond(head, view, &instruments, &links)).expect("text");
        assert!(answer(Some(b"GET /health HTTP/1.1\r\n\r\n"), &view).starts_with("HTTP/1.1 503"));
        assert!(answer(Some(b"GET /nope HTTP/1.1\r\n\r\n"), &view).starts_with("HTTP/1.1 404"));
        assert!(answer(None, &view).starts_with("HTTP/1.1 431"));
        view.status.leader = Some(raft::NodeId(2));
        view.status.term = raft::Term(7);
        view.counters.requests = 5;
        assert!(answer(Some(b"GET /health HTTP/1.1\r\n\r\n"), &view).starts_with("HTTP/1.1 200"));
        let metrics = answer(Some(b"GET /metrics HTTP/1.1\r\n\r\n"), &view);
        assert_eq!(sample(&metrics, "raftkv_term"), Some(7));
        assert_eq!(sample(&metrics, "raftkv_leader_id"), Some(2));
        assert_eq!(sample(&metrics, "raftkv_requests_total"), Some(5));
    }
}
