//! Values near and over the limit, with the real binary. Before `--max-value-bytes`, the client
//! port took bulks up to 512 MiB while peer frames stop at 64 MiB: a 60 MiB SET committed but cost
//! elections and told its client the outcome was unknown, and a 100 MiB one was never applied.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Cluster;

/// Sends one command and reads its reply: the first line, and a bulk string's body.
fn call(address: &str, args: &[&[u8]]) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        wire.extend_from_slice(arg);
        wire.extend_from_slice(b"\r\n");
    }
    // A refusing node may close before it has read everything: what it answered is still there.
    let _ = stream.write_all(&wire);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("a reply");
    let line = line.trim_end().to_string();
    let mut body = Vec::new();
    if let Some(length) = line.strip_prefix('$').and_then(|length| length.parse::<usize>().ok()) {
        body = vec![0; length + 2];
        reader.read_exact(&mut body).expect("the bulk string");
        body.truncate(length);
    }
    (line, body)
}

#[test]
fn values_over_the_limit_are_refused_before_anything_is_proposed() {
    let cluster = Cluster::start_without_proxies("large-values", 3);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let address = cluster.client_addr(1);

    // Under the default 16 MiB: stored and read back whole.
    let value = vec![b'v'; 8 << 20];
    assert_eq!(call(&address, &[b"SET", b"big", &value]).0, "+OK");
    let (line, body) = call(&address, &[b"GET", b"big"]);
    assert_eq!((line.as_str(), body.len()), ("$8388608", value.len()));

    // Over it: a clear error at once, and nothing written.
    let (line, _) = call(&address, &[b"SET", b"huge", &vec![b'h'; 60 << 20]]);
    assert!(line.starts_with("-ERR Protocol error: bulk too large (62914560 > 16777216)"), "{line}");
    let (line, _) = call(&address, &[b"SET", &vec![b'k'; 9 << 20], &vec![b'v'; 9 << 20]]);
    assert!(line.starts_with("-ERR command too large"), "{line}");
    assert_eq!(call(&address, &[b"GET", b"huge"]).0, "$-1", "the refused SET was not applied");
    assert_eq!(call(&address, &[b"SET", b"after", b"1"]).0, "+OK");
}

fn info_number(cluster: &Cluster, id: u64, field: &str) -> Option<u64> {
    let info = cluster.info(id).ok()?;
    info.lines().find_map(|line| line.trim_end().strip_prefix(&format!("{field}:"))?.parse().ok())
}

/// A 3-node cluster snapshotting every `snapshot_every` entries, one follower of which is down
/// (not the leader: the writes that follow need no election first). Returns it, the leader and
/// the follower.
fn a_follower_down(name: &str, snapshot_every: &str) -> (Cluster, u64, u64) {
    let mut cluster = Cluster::start_with_flags(name, 3, &["--snapshot-every", snapshot_every]);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let leader = cluster.leader().expect("a leader");
    let behind = [1, 2, 3].into_iter().find(|&id| id != leader).expect("a follower");
    cluster.kill(behind);
    (cluster, leader, behind)
}

/// Restarts `behind` and waits, up to `bound`, until it has applied what the leader had when it
/// restarted: that index and whether it got there.
fn restarted_catches_up(cluster: &mut Cluster, leader: u64, behind: u64, bound: Duration) -> (u64, bool) {
    let target = info_number(cluster, leader, "applied_index").expect("the leader's applied index");
    cluster.restart(behind);
    let deadline = std::time::Instant::now() + bound;
    while info_number(cluster, behind, "applied_index").unwrap_or(0) < target {
        if std::time::Instant::now() > deadline {
            return (target, false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    (target, true)
}

/// A snapshot larger than a peer frame (64 MiB) reaches a follower that fell behind it. Before
/// snapshots travelled in chunks, it was dropped as over the frame limit, re-encoded every few
/// heartbeats, and the follower stayed behind for ever.
#[test]
fn a_follower_behind_a_snapshot_larger_than_a_frame_catches_up() {
    let (mut cluster, _, behind) = a_follower_down("large-snapshot", "4");
    let mut client = cluster.client(Duration::from_secs(60));
    let value = |key: usize| vec![b'a' + key as u8; 15 << 20];
    for key in 0..6 {
        client.set(format!("big{key}").as_bytes(), &value(key)).unwrap_or_else(|error| panic!("SET big{key}: {error}"));
    }
    for key in 0..4 {
        client.set(format!("small{key}").as_bytes(), b"x").expect("SET small");
    }
    let leader = cluster.leader().expect("a leader");
    let (target, caught_up) = restarted_catches_up(&mut cluster, leader, behind, Duration::from_secs(120));
    let applied = info_number(&cluster, behind, "applied_index").unwrap_or(0);
    assert!(caught_up, "node {behind} stayed at {applied} of {target}\n{}", cluster.log_tails(30));
    // Its applied index shows it installed the snapshot (the entries were compacted away). With
    // the other follower gone, it now takes part in every quorum, and answers through the leader.
    let other = [1, 2, 3].into_iter().find(|&id| id != leader && id != behind).expect("another node");
    cluster.kill(other);
    let (line, body) = call(&cluster.client_addr(behind), &[b"GET", b"big5"]);
    assert_eq!(line, format!("${}", 15 << 20));
    assert!(body == value(5), "the value read back whole");
    assert!(cluster.crashed().is_empty(), "{:?}", cluster.crashed());
}

/// A snapshot transfer finishes while writes go on. The leader snapshots every 20 entries here,
/// and a newer snapshot restarts a transfer from its start: the follower, behind 32 MiB (more with
/// `SNAPSHOT_UNDER_LOAD_MIB`; 300 passed in 17 s), must still catch up while a client keeps writing.
#[test]
fn a_follower_catches_up_by_snapshot_while_writes_go_on() {
    let (mut cluster, leader, behind) = a_follower_down("snapshot-under-load", "20");
    let mut client = cluster.client(Duration::from_secs(60));
    let mebibytes: usize = std::env::var("SNAPSHOT_UNDER_LOAD_MIB").ok().and_then(|mib| mib.parse().ok()).unwrap_or(32);
    for key in 0..mebibytes {
        client.set(format!("big{key}").as_bytes(), &vec![b'a' + (key % 26) as u8; 1 << 20]).expect("SET");
    }
    // A writer that never pauses, through the leader, for the rest of the test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, endpoint) = (stop.clone(), cluster.client_addr(leader));
        std::thread::spawn(move || {
            let mut client = client::Client::new(vec![endpoint]).expect("a client");
            let mut written = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if client.set(format!("small{}", written % 100).as_bytes(), b"x").is_ok() {
                    written += 1;
                }
            }
            written
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (target, caught_up) = restarted_catches_up(&mut cluster, leader, behind, Duration::from_secs(60));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().expect("the writer");
    assert!(caught_up, "node {behind} never reached index {target} while {written} writes went on\n{}", cluster.log_tails(10));
    assert!(written > 100, "the writer kept writing: {written}");
}
