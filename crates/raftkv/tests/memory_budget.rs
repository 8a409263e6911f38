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
