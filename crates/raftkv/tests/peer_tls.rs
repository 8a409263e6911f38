//! Mutual TLS on peer links with the real binary: a 3-node cluster with `--peer-tls-dir` (from
//! `raftkv certs`) elects, commits and serves through the TCP proxies of the harness; rogue peers
//! are refused before any frame is read — one speaking plaintext, one with a certificate of
//! another CA, and one with a valid certificate of node 3 claiming to be node 2 — each logged as a
//! refusal, and the cluster goes on. (Before, any process that reached a peer port was a member.)

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::NodeId;
use support::{run_bounded, Cluster, RAFTKV};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use wire::Wire;

fn certs(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let mut command = Command::new(RAFTKV);
    command.arg("certs").arg(dir).args(["--nodes", "3"]);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "raftkv certs: {stdout} {stderr}");
}

/// A TLS client presenting `identity` (a certificate and key in `dir`) and trusting `ca_dir`'s CA;
/// connects to `address`, says Hello as `claimed`, and reports whether the node kept the connection.
async fn rogue(address: &str, ca_dir: &Path, identity: (&Path, &str), claimed: u64) -> bool {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_dir.join("ca.pem")).expect("ca") {
        roots.add(certificate.expect("a certificate")).expect("added");
    }
    let (dir, name) = identity;
    let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem"))).expect("chain").map(|c| c.expect("cert")).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}-key.pem"))).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(tcp) = tokio::net::TcpStream::connect(address).await else { return false };
    let mut stream = match connector.connect(ServerName::try_from("node-1").expect("name"), tcp).await {
        Ok(stream) => stream,
        Err(_) => return false,
    };
    let mut hello = Vec::new();
    wire::encode(&Wire::hello(NodeId(claimed), 0, String::new()), wire::DEFAULT_MAX_FRAME_BYTES, &mut hello).expect("hello");
    if stream.write_all(&hello).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    // A kept connection stays silent; a refused one ends.
    !ends(&mut stream).await
}

/// Whether the other end closes the connection within 2 s (whatever it sends first: a TLS alert).
async fn ends(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let read_to_end = async {
        let mut buffer = [0u8; 256];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), read_to_end).await.is_ok()
}

#[test]
fn peers_prove_who_they_are_and_rogues_are_refused() {
    let dir = support::target_dir().join("test-peer-tls");
    let (ours, theirs) = (dir.join("cluster"), dir.join("other"));
    certs(&ours);
    certs(&theirs);
    let flag = ours.to_string_lossy().into_owned();
    let mut cluster = Cluster::start_with_flags("peer-tls", 3, &["--peer-tls-dir", &flag]);
    // Node 1, the one attacked, shows its counters on an HTTP port.
    let http = format!("127.0.0.1:{}", support::free_port());
    cluster.node_mut(1).extra_flags.extend(["--listen-http".to_string(), http.clone()]);
    cluster.restart(1);
    cluster.wait_ready(Duration::from_secs(30)).expect("a cluster over TLS elects and answers");
    let refused_total = || {
        let metrics = support::http_get(&http, "/metrics").expect("node 1's /metrics");
        metrics.lines().find_map(|line| line.strip_prefix("raftkv_peer_connections_refused_total ")?.parse::<u64>().ok()).expect("the refusal counter")
    };
    let term_and_leader = |id: u64| {
        let info = cluster.info(id).unwrap_or_default();
        let field = |name: &str| info.lines().find_map(|line| line.trim().strip_prefix(&format!("{name}:"))?.parse::<u64>().ok()).unwrap_or(0);
        (field("term"), field("leader_id"))
    };
    let mut client = cluster.client(Duration::from_secs(10));
    client.set(b"over-tls", b"1").expect("a write over TLS links");
    // Both peers' Hellos said they speak this build's versions: node 1 sends them its highest.
    let metrics = support::http_get(&http, "/metrics").expect("node 1's /metrics");
    for peer in [2, 3] {
        let line = format!("raftkv_peer_frame_version{{peer=\"{peer}\"}} {}", wire::VERSION);
        assert!(metrics.lines().any(|shown| shown == line), "no `{line}` in /metrics:\n{metrics}");
    }

    let address = cluster.node(1).peer_addr.clone();
    let (refused_at_start, before_attacks) = (refused_total(), term_and_leader(1));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let log = || std::fs::read_to_string(&cluster.node(1).log_path).unwrap_or_default();
    let refusals = || log().matches("closing peer connection").count();
    // Each rogue is refused — its connection ends and a refusal is logged — and the control, node
    // 2's own certificate, is not (its connection may later be replaced by the real node 2
    // reconnecting, which is logged as no refusal).
    let logged_since = |before: usize| {
        let started = Instant::now();
        while refusals() <= before {
            if started.elapsed() > Duration::from_secs(5) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };
    let refused = |what: &str, kept: bool, before: usize| {
        assert!(!kept, "{what}: the connection was kept");
        assert!(logged_since(before), "{what}: no refusal was logged");
    };
    let before = refusals();
    let plain_kept = runtime.block_on(async {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(&address).await else { return false };
        let mut hello = Vec::new();
        wire::encode(&Wire::hello(NodeId(2), 0, String::new()), wire::DEFAULT_MAX_FRAME_BYTES, &mut hello).expect("hello");
        let _ = tcp.write_all(&hello).await;
        !ends(&mut tcp).await
    });
    refused("a plaintext peer", plain_kept, before);
    let before = refusals();
    // (It trusts this cluster's CA, so it is the node that refuses its certificate.)
    refused("a certificate of another CA", runtime.block_on(rogue(&address, &ours, (&theirs, "node-2"), 2)), before);
    let before = refusals();
    runtime.block_on(rogue(&address, &ours, (&ours, "node-3"), 2));
    assert!(logged_since(before), "node 3's certificate was taken for node 2");
    assert!(refused_total() >= refused_at_start + 3, "the three rogues are counted in /metrics: {} then {}", refused_at_start, refused_total());
    assert_eq!(term_and_leader(1), before_attacks, "no rogue changed the term or the leader");
    let before = refusals();
    runtime.block_on(rogue(&address, &ours, (&ours, "node-2"), 2));
    assert!(!logged_since(before), "node 2's own certificate was refused");
    assert!(log().contains("TLS handshake failed"), "the failed handshakes are logged as such");
    assert!(log().contains("whose certificate does not name it"), "the impostor is logged as such");
    // The real node 2 reconnects (the last rogue displaced it) and the cluster goes on.
    let started = Instant::now();
    let mut written = 0;
    while written < 10 {
        assert!(started.elapsed() < Duration::from_secs(30), "the cluster took no write after the rogues");
        if client.set(format!("after-{written}").as_bytes(), b"1").is_ok() {
            written += 1;
        }
    }
}

/// Peer certificates rotate without a restart: every node's files are replaced by ones of a new
/// CA, nodes 1 and 2 get SIGHUP, node 3 is restarted (it reads the new files at start); then node
/// 1 is killed, so that a write needs nodes 2 and 3 — whose link can only be made with the new
/// certificates on both ends. (Before, the peer certificates were read once at start: node 2
/// refused node 3's new certificate and no write was taken.)
#[test]
fn peer_certificates_are_reloaded_on_sighup() {
    let dir = support::target_dir().join("test-peer-tls-rotation");
    let (ours, rotated) = (dir.join("cluster"), dir.join("rotated"));
    certs(&ours);
    certs(&rotated);
    let flag = ours.to_string_lossy().into_owned();
    let mut cluster = Cluster::start_with_flags("peer-tls-rotation", 3, &["--peer-tls-dir", &flag]);
    cluster.wait_ready(Duration::from_secs(30)).expect("a cluster over TLS elects and answers");
    let mut client = cluster.client(Duration::from_secs(10));
    client.set(b"before", b"1").expect("a write over the first certificates");
    for entry in std::fs::read_dir(&rotated).expect("the new certificates") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, ours.join(path.file_name().expect("a file"))).expect("a certificate replaced");
    }
    for id in [1, 2] {
        let pid = cluster.node(id).child.as_ref().expect("running").id();
        let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill");
        assert!(status.success());
    }
    let reloaded = |id: u64| std::fs::read_to_string(&cluster.node(id).log_path).unwrap_or_default().contains("reloaded the peer certificates");
    let started = Instant::now();
    while !(reloaded(1) && reloaded(2)) {
        assert!(started.elapsed() < Duration::from_secs(10), "nodes 1 and 2 did not log the reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.kill(3);
    cluster.restart(3);
    cluster.kill(1);
    let started = Instant::now();
    let mut client = cluster.client(Duration::from_secs(5));
    while client.set(b"after", b"1").is_err() {
        assert!(started.elapsed() < Duration::from_secs(40), "nodes 2 and 3 took no write: their link needs the new certificates\n{}", cluster.log_tails(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(client.get(b"before").expect("a read"), Some(b"1".to_vec()), "nothing acknowledged was lost");
}
