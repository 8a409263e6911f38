//! `--max-memory` with the real binary: a cluster whose data reaches its budget refuses the
//! writes that would grow it with Redis's `-OOM` error, on every node, keeps serving reads and
//! deletes, reports the budget in INFO and CONFIG GET, and takes writes again once deletes made
//! room. (Before, a node took writes until the process ran out of memory.)

mod support;

use std::time::Duration;

use support::Cluster;

#[test]
fn writes_over_the_budget_get_oom_and_deletes_make_room() {
    let cluster = Cluster::start_with_flags("memory-budget", 3, &["--max-memory", "100kb"]);
    cluster.wait_ready(Duration::from_secs(20)).expect("the cluster answers");
    let value = vec![b'v'; 1000];
    let mut client = cluster.client(Duration::from_secs(8));
    let mut written = 0;
    let refusal = loop {
        match client.set(format!("k{written}").as_bytes(), &value) {
            Ok(()) => written += 1,
            Err(error) => break error.to_string(),
        }
        assert!(written < 1000, "no write was refused with a budget of 100 KiB");
    };
    assert!(refusal.contains("OOM command not allowed when used memory > 'maxmemory'"), "{refusal}");
    // 1,000-byte values, a few bytes of key and 64 of bookkeeping each: about 95 fit in 100 KiB.
    assert!((90..=100).contains(&written), "{written} writes of 1,000 bytes were taken");
    for id in cluster.ids() {
        let info = cluster.info(id).expect("INFO");
        assert!(info.contains("\r\nmaxmemory:102400\r\n") && info.contains("maxmemory_policy:noeviction"), "node {id}: {info}");
        // Every node refuses, the followers through their leader; and serves reads.
        let mut node = client::Client::new(vec![cluster.client_addr(id)]).expect("a client of one node");
        let error = node.set(b"more", b"x").expect_err("over the budget");
        assert!(error.to_string().contains("OOM"), "node {id}: {error}");
        assert_eq!(node.get(b"k0").expect("a read"), Some(value.clone()), "node {id}");
    }
    // Deletes make room, and writes are taken again.
    for n in 0..10 {
        client.del(&[format!("k{n}").as_bytes()]).expect("a delete over the budget");
    }
    client.set(b"after", b"room").expect("a write once deletes made room");
    assert_eq!(client.get(b"after").expect("GET"), Some(b"room".to_vec()));
}

/// `--max-client-memory`: the buffers of all client connections together are bounded. A client
/// whose half-sent command would take the total over the budget is disconnected; the one that
/// was within it finishes its command; INFO and CONFIG GET report the total and the budget.
/// (Before, each connection was bounded alone: 1,000 of them could each hold 16 MiB.)
#[test]
fn client_buffers_over_their_budget_close_the_connection_that_grows() {
    use std::io::{Read, Write};
    let cluster = Cluster::start_with_flags("client-memory", 1, &["--max-client-memory", "6mb"]);
    cluster.wait_ready(Duration::from_secs(20)).expect("the node answers");
    let connect = || {
        let stream = std::net::TcpStream::connect(cluster.client_addr(1)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream
    };
    // 2.5 MiB of a 3 MiB value, the rest held back.
    let value = vec![b'v'; 3 << 20];
    let header = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len());
    let held_back = 512 << 10;
    let mut first = connect();
    first.write_all(header.as_bytes()).expect("header");
    first.write_all(&value[..value.len() - held_back]).expect("most of the value");
    let buffered = |info: &str| -> u64 {
        let line = info.lines().find_map(|line| line.strip_prefix("mem_clients_normal:")).expect("mem_clients_normal in INFO");
        line.trim().parse().expect("a number")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while buffered(&cluster.info(1).expect("INFO")) < 2 << 20 {
        assert!(std::time::Instant::now() < deadline, "the first client's bytes never showed in INFO");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The second client's half-sent command would take the total over 6 MiB: it is closed (small
    // connections, as INFO's here, are not).
    let mut second = connect();
    let _ = second.write_all(header.as_bytes());
    let _ = second.write_all(&value[..value.len() - held_back]);
    let mut reply = Vec::new();
    match second.read_to_end(&mut reply) {
        Ok(_) => assert!(reply.is_empty(), "the second client got {:?}", String::from_utf8_lossy(&reply)),
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
    }
    // The first one, within the budget, completes its command.
    first.write_all(&value[value.len() - held_back..]).expect("the rest of the value");
    first.write_all(b"\r\n").expect("the end of the command");
    let mut ok = [0; 5];
    first.read_exact(&mut ok).expect("the reply");
    assert_eq!(&ok, b"+OK\r\n");
    let info = cluster.info(1).expect("INFO");
    assert!(info.contains("\r\nmaxmemory_clients:6291456\r\n"), "{info}");
    let mut config = connect();
    config.write_all(b"CONFIG GET maxmemory-clients\r\n").expect("CONFIG GET");
    let mut answer = [0; 41];
    config.read_exact(&mut answer).expect("its answer");
    assert_eq!(&answer[..], b"*2\r\n$17\r\nmaxmemory-clients\r\n$7\r\n6291456\r\n");
}
