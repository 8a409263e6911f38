//! A client that sends many GETs of a large value and never reads the replies must not grow a
//! node's memory without bound. Before the client port bounded the requests a connection has in
//! flight, every reply of a read's worth of pipeline was built before any was written: 11 KB of
//! GETs for a 1 MiB value grew the leader by about 0.7 GiB and a follower by 1.1 GiB.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::Cluster;

/// Resident memory of a process, from /proc.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the node's /proc status");
    let kib = status.lines().find_map(|line| line.strip_prefix("VmRSS:")).expect("a VmRSS line");
    kib.trim().trim_end_matches("kB").trim().parse::<u64>().expect("a number of kB") * 1024
}

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
        assert!(bytes < 200 << 20, "node {id} grew by {} MiB for a client that never reads", bytes >> 20);
    }
}
