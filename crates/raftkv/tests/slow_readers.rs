//! A client that sends many GETs of a large value and never reads the replies must not grow a
//! node's memory without bound. Before the client port bounded the requests a connection has in
//! flight, every reply of a read's worth of pipeline was built before any was written: 11 KB of
//! GETs for a 1 MiB value grew the leader by about 0.7 GiB and a follower by 1.1 GiB. Since
//! answers share the stored value and followers serve their reads themselves (a read point from
//! the leader, no value on the link), unread answers cost a reference each on every node: 2,000
//! of them grew each node by about 1 MiB; the followers grew by 66–97 MiB while their reads were
//! answered by the leader and arrived as copies.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::{resident_bytes, Cluster};

#[test]
fn a_client_that_never_reads_costs_a_bounded_amount_of_memory() {
    let cluster = Cluster::start_without_proxies("slow-readers", 3);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let mut client = cluster.client(Duration::from_secs(10));
    client.set(b"big", &vec![b'v'; 1 << 20]).expect("a 1 MiB value");
    let mut growth = Vec::new();
    for id in cluster.ids() {
        let pid = cluster.node(id).child.as_ref().expect("running").id();
        let before = resident_bytes(pid);
        let mut stream = TcpStream::connect(cluster.client_addr(id)).expect("connect");
        let mut pipeline = Vec::new();
        for _ in 0..2000 {
            resp::encode_array_of_bulks(&["GET", "big"], &mut pipeline);
        }
        stream.write_all(&pipeline).expect("the GETs");
        // Give the node time to do all it would do; the replies are never read.
        std::thread::sleep(Duration::from_secs(3));
        let after = resident_bytes(pid);
        growth.push((id, after.saturating_sub(before)));
        drop(stream);
    }
    println!("resident memory growth per node (id, bytes): {growth:?}");
    for (id, bytes) in growth {
        assert!(bytes < 32 << 20, "node {id} grew by {} MiB for a client that never reads", bytes >> 20);
    }
}

/// `--timeout 1`: a client that sends nothing for a second is disconnected (Redis's `timeout`),
/// one that keeps talking is not, and CONFIG GET says so. Without the flag, nothing is closed.
#[test]
fn idle_clients_are_closed_after_the_timeout() {
    use std::io::{Read, Write};
    let cluster = Cluster::start_with_flags("idle-timeout", 1, &["--timeout", "1"]);
    cluster.wait_ready(Duration::from_secs(20)).expect("the node answers");
    let connect = || {
        let stream = std::net::TcpStream::connect(cluster.client_addr(1)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream
    };
    let ask = |stream: &mut std::net::TcpStream, command: &[u8]| -> Vec<u8> {
        stream.write_all(command).expect("write");
        let mut reply = vec![0; 256];
        let read = stream.read(&mut reply).expect("read");
        reply.truncate(read);
        reply
    };
    let mut idle = connect();
    let mut busy = connect();
    assert_eq!(ask(&mut idle, b"PING\r\n"), b"+PONG\r\n");
    assert!(String::from_utf8_lossy(&ask(&mut idle, b"CONFIG GET timeout\r\n")).contains("$7\r\ntimeout\r\n$1\r\n1\r\n"));
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(ask(&mut busy, b"PING\r\n"), b"+PONG\r\n", "a client that keeps talking stays");
    }
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).expect("the server closed it"), 0, "the idle client was disconnected");
}
