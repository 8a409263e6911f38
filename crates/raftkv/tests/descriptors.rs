//! A node under a small open-files limit, with more idle clients than descriptors: it refuses the
//! clients it has no descriptors for and keeps its own work going (before, the client limit was
//! 10,000 whatever the descriptor limit: the next snapshot failed with "Too many open files" and
//! the node stopped).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, RAFTKV};

fn command(address: &str, words: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut wire = Vec::new();
    resp::encode_array_of_bulks(words, &mut wire);
    stream.write_all(&wire)?;
    let mut reply = [0u8; 256];
    let read = stream.read(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply[..read]).into_owned())
}

#[test]
fn clients_beyond_the_descriptors_are_refused_and_the_node_goes_on() {
    let data = support::target_dir().join("test-descriptors");
    let _ = std::fs::remove_dir_all(&data);
    let (client, peer) = (free_port(), free_port());
    let address = format!("127.0.0.1:{client}");
    // 320 descriptors: 64 for clients once 256 are kept for the node's own work.
    let script = format!(
        "ulimit -n 320 && exec {RAFTKV} server --id 1 --peers 1=127.0.0.1:{peer} --listen-client {address} --data-dir {} --snapshot-every 50",
        data.display()
    );
    let log = std::fs::File::create(support::target_dir().join("test-descriptors.log")).expect("a log file");
    let mut node = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("starting the node");
    let started = Instant::now();
    while command(&address, &["SET", "k", "v"]).map_or(true, |reply| reply != "+OK\r\n") {
        assert!(started.elapsed() < Duration::from_secs(20), "the node did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    // More idle clients than the process has descriptors.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..400 {
        let Ok(mut stream) = TcpStream::connect(&address) else { continue };
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let mut reply = [0u8; 64];
        match stream.read(&mut reply) {
            Ok(read) if read > 0 => {
                assert!(reply[..read].starts_with(b"-ERR max number of clients reached"), "{:?}", String::from_utf8_lossy(&reply[..read]));
                refused += 1;
            }
            _ => idle.push(stream),
        }
    }
    // One idle client leaves; in its place, writes that make the node take snapshots (every 50
    // entries) while the others hang on.
    idle.pop();
    std::thread::sleep(Duration::from_millis(500));
    let mut writer = TcpStream::connect(&address).expect("a connection in the freed place");
    writer.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    for i in 0..300 {
        let mut wire = Vec::new();
        resp::encode_array_of_bulks(&["SET", &format!("key{i}"), "value"], &mut wire);
        writer.write_all(&wire).expect("a write");
        let mut reply = [0u8; 64];
        let read = writer.read(&mut reply).expect("the node answers");
        assert_eq!(&reply[..read], b"+OK\r\n", "write {i}: {:?}", String::from_utf8_lossy(&reply[..read]));
    }
    assert!(node.try_wait().expect("the node's status").is_none(), "the node stopped");
    assert!(refused >= 400 - 64, "only {refused} of 400 idle clients were refused; {} were let in", idle.len());
    let _ = node.kill();
    let _ = node.wait();
}
