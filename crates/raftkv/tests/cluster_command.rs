//! `raftkv cluster`: the local cluster stops with the process that runs it, however that process
//! is stopped — Ctrl-C, SIGTERM (`kill`, a service manager), or SIGKILL — and leaves no node
//! running behind it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_ports, RAFTKV};

const NODES: u16 = 2;

/// Starts `raftkv cluster` and waits until every node answers PING.
fn start(dir: &Path) -> (Child, Vec<u16>) {
    let _ = std::fs::remove_dir_all(dir);
    let (client_port, peer_port) = (free_ports(NODES), free_ports(NODES));
    let child = Command::new(RAFTKV)
        .args(["cluster", "--nodes", &NODES.to_string(), "--client-port", &client_port.to_string(), "--peer-port", &peer_port.to_string(), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("raftkv cluster");
    let ports: Vec<u16> = (0..NODES).map(|i| client_port + i).collect();
    let started = Instant::now();
    while !ports.iter().all(|&port| pong(port)) {
        assert!(started.elapsed() < Duration::from_secs(20), "the cluster's nodes did not answer PING");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, ports)
}

/// Whether a node listens on `port` and answers PING.
fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

/// Waits until no node listens on any of `ports` any more.
fn all_stopped(ports: &[u16], within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if ports.iter().all(|&port| TcpStream::connect(("127.0.0.1", port)).is_err()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// SIGKILL to `raftkv cluster` (nothing else), and waits for it.
fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_to_raftkv_cluster_stops_every_node() {
    let dir = support::target_dir().join("test-cluster-sigterm");
    let (mut child, ports) = start(&dir);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let stopped = all_stopped(&ports, Duration::from_secs(15));
    reap(&mut child);
    assert!(stopped, "nodes still answer on {ports:?} after SIGTERM to `raftkv cluster`");
}

#[test]
fn a_killed_raftkv_cluster_leaves_no_node_behind() {
    let dir = support::target_dir().join("test-cluster-sigkill");
    let (mut child, ports) = start(&dir);
    reap(&mut child);
    assert!(all_stopped(&ports, Duration::from_secs(15)), "nodes still answer on {ports:?} after SIGKILL to `raftkv cluster`");
}
