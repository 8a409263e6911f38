//! A full disk, with the real binary on a small tmpfs: writes are refused with a clear error,
//! reads are served, and writes succeed again once space is freed, with nothing acknowledged lost.
//! Before, the first failed write stopped the node ("no space left on device"), and a restart on
//! the same full disk failed again.
//!
//! Mounting a tmpfs needs root (or CAP_SYS_ADMIN), which the CI machine has; without it the test
//! fails saying so rather than passing without having run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::Cluster;

/// A tmpfs of `megabytes` at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, megabytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a {megabytes} MiB tmpfs at {} failed: this test needs root (or CAP_SYS_ADMIN)", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(command: &mut Command) {
    let status = command.status().expect("running a command");
    assert!(status.success(), "{command:?} failed");
}

fn set(cluster: &Cluster, key: &str, value: &[u8]) -> Result<(), String> {
    let mut client = cluster.client(Duration::from_secs(8));
    client.set(key.as_bytes(), value).map_err(|error| error.to_string())
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers_when_space_returns() {
    let http = format!("127.0.0.1:{}", support::free_port());
    let mut cluster = Cluster::start_with_flags("full-disk", 1, &["--listen-http", &http]);
    cluster.wait_ready(Duration::from_secs(20)).expect("the node answers");
    assert!(set(&cluster, "before", b"1").is_ok());
    // The node's data moves onto a 40 MiB tmpfs, 30 MiB of which a filler file takes.
    cluster.kill(1);
    let data = cluster.node(1).data_dir.clone();
    let saved = data.with_extension("saved");
    std::fs::rename(&data, &saved).expect("moving the data aside");
    let tmpfs = Tmpfs::mount(&data, 40);
    run(Command::new("cp").arg("-a").arg(format!("{}/.", saved.display())).arg(&data));
    let filler = data.join("filler");
    std::fs::write(&filler, vec![0u8; 30 << 20]).expect("the filler file");
    cluster.restart(1);
    cluster.wait_ready(Duration::from_secs(20)).expect("the node answers on its tmpfs");

    // Writes of 512 KiB until the disk is full: every acknowledged one is remembered.
    let value = |n: usize| vec![b'a' + (n % 26) as u8; 512 << 10];
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..200 {
        let key = format!("key{n}");
        match set(&cluster, &key, &value(n)) {
            Ok(()) => acknowledged.push((key, n)),
            Err(error) if error.contains("disk full") => {
                refusal = Some(error);
                break;
            }
            // The write that met the full disk waits for room and times out: its outcome is unknown.
            Err(error) => {
                eprintln!("{key}: {error}");
                let crashed = cluster.crashed();
                assert!(crashed.is_empty(), "the node stopped when its disk filled: {crashed:?}\n{}", cluster.log_tails(5));
            }
        }
    }
    let refusal = refusal.expect("a write refused because the disk is full");
    assert!(refusal.contains("writes are refused until space is freed"), "{refusal}");
    assert!(acknowledged.len() >= 4, "some writes fit before the disk filled: {}", acknowledged.len());
    assert!(cluster.crashed().is_empty(), "the node stays up: {:?}", cluster.crashed());
    let info = cluster.info(1).expect("INFO");
    assert!(info.contains("disk_full:1"), "INFO says so: {info}");
    let metrics = support::http_get(&http, "/metrics").expect("/metrics");
    assert!(metrics.contains("\nraftkv_disk_full 1\n"), "/metrics says so: {metrics}");

    // Reads are served meanwhile.
    let mut client = cluster.client(Duration::from_secs(5));
    let (key, n) = acknowledged.last().expect("one").clone();
    assert_eq!(client.get(key.as_bytes()).expect("a read on the full node"), Some(value(n)));

    // Space returns: writes go through again, by themselves.
    std::fs::remove_file(&filler).expect("freeing space");
    let deadline = Instant::now() + Duration::from_secs(20);
    while set(&cluster, "after", b"room").is_err() {
        assert!(Instant::now() < deadline, "writes never resumed\n{}", cluster.log_tails(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cluster.info(1).expect("INFO").contains("disk_full:0"));

    // Nothing acknowledged was lost, before or after a crash.
    for restart in [false, true] {
        if restart {
            cluster.restart(1);
            cluster.wait_ready(Duration::from_secs(20)).expect("the node answers after a restart");
        }
        let mut client = cluster.client(Duration::from_secs(5));
        for (key, n) in &acknowledged {
            assert_eq!(client.get(key.as_bytes()).expect("GET"), Some(value(*n)), "{key} (restarted: {restart})");
        }
        assert_eq!(client.get(b"before").expect("GET"), Some(b"1".to_vec()));
        assert_eq!(client.get(b"after").expect("GET"), Some(b"room".to_vec()));
    }
    cluster.kill(1);
    drop(tmpfs);
}
