//! Deep pipelines through a follower, with the real binary: a follower forwards every request to
//! the leader, and must neither drop any (the link to the leader holds 1024 frames) nor make a
//! pipeline wait once per request.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Cluster;

/// Sends `commands` in one write and reads one RESP reply per command (simple, error, integer or
/// bulk string — what GET and SET answer). Returns the replies' first lines.
fn pipeline(address: &str, commands: &[Vec<&str>]) -> Vec<String> {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut wire = Vec::new();
    for command in commands {
        resp::encode_array_of_bulks(command, &mut wire);
    }
    stream.write_all(&wire).expect("write the pipeline");
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    for _ in commands {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        let line = line.trim_end().to_string();
        if let Some(length) = line.strip_prefix('$').and_then(|length| length.parse::<usize>().ok()) {
            let mut body = vec![0; length + 2];
            reader.read_exact(&mut body).expect("the bulk string");
        }
        replies.push(line);
    }
    replies
}

/// A node that is a follower of a known leader (after a first write went through).
fn follower(cluster: &Cluster) -> u64 {
    let mut client = cluster.client(Duration::from_secs(10));
    client.set(b"warm-up", b"1").expect("a first write");
    let role = |id: u64| {
        let info = client::Client::info(&cluster.client_addr(id), Duration::from_secs(5)).expect("INFO");
        info.lines().find_map(|line| line.trim_end().strip_prefix("role:").map(str::to_string)).unwrap_or_default()
    };
    cluster.ids().into_iter().find(|&id| role(id) == "follower").expect("a follower")
}

/// 3,000 pipelined GETs (then SETs) to a follower: every one answered with a value (or +OK), none
/// with an error. (Before the node ran the replica, the forwards beyond the link's 1,024 frames
/// were dropped: the pipeline stalled and ended in errors.)
#[test]
fn a_deep_pipeline_through_a_follower_is_answered_in_full() {
    let cluster = Cluster::start_without_proxies("pipelines", 3);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let id = follower(&cluster);
    let address = cluster.client_addr(id);
    let reads: Vec<Vec<&str>> = (0..3000).map(|_| vec!["GET", "warm-up"]).collect();
    let replies = pipeline(&address, &reads);
    let errors: Vec<&String> = replies.iter().filter(|reply| reply.starts_with('-')).collect();
    assert!(errors.is_empty(), "{} of 3000 pipelined GETs through follower {id} failed, e.g. {:?}", errors.len(), errors.first());
    let keys: Vec<String> = (0..3000).map(|i| format!("p{i}")).collect();
    let writes: Vec<Vec<&str>> = keys.iter().map(|key| vec!["SET", key.as_str(), "v"]).collect();
    let replies = pipeline(&address, &writes);
    let errors: Vec<&String> = replies.iter().filter(|reply| *reply != "+OK").collect();
    assert!(errors.is_empty(), "{} of 3000 pipelined SETs through follower {id} failed, e.g. {:?}", errors.len(), errors.first());
}
