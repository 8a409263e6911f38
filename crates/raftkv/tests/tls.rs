//! TLS on the client port, with the real binary: `--tls-cert`/`--tls-key` (and `--tls-client-ca`
//! for client certificates), certificates made by `raftkv certs`. redis-cli `--tls` and redis-py
//! `ssl=True` work; a plaintext client gets nothing; with a client CA, a client without a
//! certificate is refused. (Before, the client port spoke plaintext only.)

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_port, python, run_bounded, RAFTKV};

/// Certificates made by `raftkv certs`: a CA, node 1's certificate (for 127.0.0.1) and a client's.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: PathBuf) -> Pki {
        let _ = std::fs::remove_dir_all(&dir);
        let mut command = Command::new(RAFTKV);
        command.arg("certs").arg(&dir).args(["--nodes", "1", "--hosts", "127.0.0.1"]);
        let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
        assert!(success, "raftkv certs failed: {stdout} {stderr}");
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

/// A single node with `flags`, from the harness; its client port.
fn start(name: &str, flags: &[String]) -> (support::Cluster, u16) {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = support::Cluster::start_with_flags(name, 1, &flags);
    let port = node.client_port(1);
    (node, port)
}

fn redis_cli(port: u16, extra: &[&str], words: &[&str]) -> (bool, String) {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(extra).args(words);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(10)).unwrap_or_else(|error| panic!("{error}"));
    (success, format!("{}{}", stdout.trim(), stderr.trim()))
}

/// The project's own CLI (`raftkv <words> --endpoints 127.0.0.1:<port> <extra>`), bounded.
fn raftkv_cli(port: u16, words: &[&str], extra: &[&str]) -> (bool, String) {
    let mut command = Command::new(RAFTKV);
    command.args(words).args(["--endpoints", &format!("127.0.0.1:{port}")]).args(extra);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(60)).unwrap_or_else(|error| panic!("{error}"));
    (success, format!("{}{}", stdout.trim(), stderr.trim()))
}

/// Retries `PING` over TLS until the node answers PONG.
fn wait_for_pong(port: u16, extra: &[&str]) {
    let started = Instant::now();
    loop {
        if redis_cli(port, extra, &["PING"]).1 == "PONG" {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the node never answered over TLS");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_client_port_speaks_tls_to_redis_cli_and_redis_py() {
    let pki = Pki::new(support::target_dir().join("test-tls-pki"));
    let http = free_port();
    let flags = vec![
        "--tls-cert".into(),
        pki.path("node-1.pem"),
        "--tls-key".into(),
        pki.path("node-1-key.pem"),
        "--listen-http".into(),
        format!("127.0.0.1:{http}"),
        "--http-tls".into(),
    ];
    let (_node, port) = start("tls-server-only", &flags);
    let ca = pki.path("ca.pem");
    let tls = ["--tls", "--cacert", ca.as_str()];
    wait_for_pong(port, &tls);
    assert_eq!(redis_cli(port, &tls, &["SET", "k", "v"]).1, "OK");
    assert_eq!(redis_cli(port, &tls, &["GET", "k"]).1, "v");
    // raftkv's own CLI with --cacert: get, put, status and bench (before, it spoke plaintext only).
    let cacert = ["--cacert", ca.as_str()];
    assert_eq!(raftkv_cli(port, &["get", "k"], &cacert), (true, "v".to_string()));
    assert!(raftkv_cli(port, &["put", "cli", "tls"], &cacert).0);
    assert_eq!(redis_cli(port, &tls, &["GET", "cli"]).1, "tls");
    let (ok, status) = raftkv_cli(port, &["status"], &cacert);
    assert!(ok && status.contains("leader"), "raftkv status over TLS: {status}");
    let (ok, bench) = raftkv_cli(port, &["bench", "--clients", "2", "--duration", "1"], &cacert);
    assert!(ok && bench.contains("throughput") && bench.contains(" 0 errors"), "raftkv bench over TLS: {bench}");
    // A plaintext client gets no answer: its bytes are not a TLS handshake.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").expect("write");
    let mut reply = [0u8; 64];
    let read = plain.read(&mut reply).unwrap_or(0);
    assert!(!reply[..read].starts_with(b"+PONG"), "a plaintext PING was answered");
    let python = python();
    assert!(python.exists(), "{} is missing: run scripts/test.sh", python.display());
    let mut command = Command::new(&python);
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/redis_py_tls.py")).args([port.to_string(), ca.clone()]);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-py over TLS failed: {stdout} {stderr}");
    // /metrics over HTTPS, with the same certificate.
    let fetch = format!(
        "import ssl, urllib.request; context = ssl.create_default_context(cafile={ca:?}); print(urllib.request.urlopen('https://127.0.0.1:{http}/metrics', context=context, timeout=10).read().decode())"
    );
    let mut command = Command::new(&python);
    command.args(["-c", &fetch]);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success && stdout.contains("raftkv_term"), "/metrics over HTTPS failed: {stdout} {stderr}");
}

#[test]
fn with_a_client_ca_only_clients_with_a_certificate_get_in() {
    let pki = Pki::new(support::target_dir().join("test-tls-pki-mutual"));
    let flags = vec!["--tls-cert".into(), pki.path("node-1.pem"), "--tls-key".into(), pki.path("node-1-key.pem"), "--tls-client-ca".into(), pki.path("ca.pem")];
    let (_node, port) = start("tls-mutual", &flags);
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client-key.pem"));
    let with_certificate = ["--tls", "--cacert", ca.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
    wait_for_pong(port, &with_certificate);
    assert_eq!(redis_cli(port, &with_certificate, &["SET", "m", "1"]).1, "OK");
    let identity = ["--cacert", ca.as_str(), "--cert", cert.as_str(), "--key", key.as_str()];
    assert_eq!(raftkv_cli(port, &["get", "m"], &identity), (true, "1".to_string()));
    let (ok, status) = raftkv_cli(port, &["status"], &["--cacert", ca.as_str()]);
    assert!(!ok && status.contains("CertificateRequired"), "raftkv status without a client certificate: {status}");
    let (_, without) = redis_cli(port, &["--tls", "--cacert", ca.as_str()], &["PING"]);
    assert_ne!(without, "PONG", "a client without a certificate was answered");
    let mut command = Command::new(python());
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/redis_py_tls.py")).args([port.to_string(), ca.clone(), cert.clone(), key.clone()]);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-py with a client certificate failed: {stdout} {stderr}");
}

/// A client certificate signed by the cluster's CA but expired is refused like none at all; one
/// signed the same way and still valid gets in.
#[test]
fn an_expired_client_certificate_is_refused() {
    let pki = Pki::new(support::target_dir().join("test-tls-pki-expired"));
    // The CA again from its key and name: what it signs chains to the CA `raftkv certs` wrote.
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.path("ca-key.pem")).expect("the CA key")).expect("a key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("parameters");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "raftkv cluster CA");
    let ca = ca_params.self_signed(&ca_key).expect("the CA");
    let sign = |name: &str, not_after: (i32, u8, u8)| {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).expect("parameters");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let certificate = params.signed_by(&key, &ca, &ca_key).expect("signed");
        std::fs::write(pki.path(&format!("{name}.pem")), certificate.pem()).expect("written");
        std::fs::write(pki.path(&format!("{name}-key.pem")), key.serialize_pem()).expect("written");
        (pki.path(&format!("{name}.pem")), pki.path(&format!("{name}-key.pem")))
    };
    let (expired, expired_key) = sign("expired", (2021, 1, 1));
    let (valid, valid_key) = sign("valid", (4000, 1, 1));
    let flags = vec!["--tls-cert".into(), pki.path("node-1.pem"), "--tls-key".into(), pki.path("node-1-key.pem"), "--tls-client-ca".into(), pki.path("ca.pem")];
    let (_node, port) = start("tls-expired", &flags);
    let ca_file = pki.path("ca.pem");
    let with = |cert: &str, key: &str| ["--tls".to_string(), "--cacert".into(), ca_file.clone(), "--cert".into(), cert.into(), "--key".into(), key.into()];
    let valid_flags = with(&valid, &valid_key);
    let valid_flags: Vec<&str> = valid_flags.iter().map(String::as_str).collect();
    wait_for_pong(port, &valid_flags);
    let expired_flags = with(&expired, &expired_key);
    let expired_flags: Vec<&str> = expired_flags.iter().map(String::as_str).collect();
    let (_, answer) = redis_cli(port, &expired_flags, &["PING"]);
    assert_ne!(answer, "PONG", "a client with an expired certificate was answered");
    assert_eq!(redis_cli(port, &valid_flags, &["PING"]).1, "PONG");
}

/// A 3-node cluster with TLS on every client port (the proxied peer links stay as they are):
/// redis-cli `--tls` and redis-py `ssl=True` against a follower, whose requests are forwarded to
/// the leader.
#[test]
fn a_follower_answers_over_tls() {
    let pki = Pki::new(support::target_dir().join("test-tls-pki-cluster"));
    let (cert, key, ca) = (pki.path("node-1.pem"), pki.path("node-1-key.pem"), pki.path("ca.pem"));
    let cluster = support::Cluster::start_with_flags("tls-cluster", 3, &["--tls-cert", &cert, "--tls-key", &key]);
    let tls = ["--tls", "--cacert", ca.as_str()];
    let role = |id: u64| {
        let (_, info) = redis_cli(cluster.client_port(id), &tls, &["INFO", "replication"]);
        info.lines().find_map(|line| line.trim().strip_prefix("role:").map(str::to_string)).unwrap_or_default()
    };
    let started = Instant::now();
    let follower = loop {
        let roles: Vec<(u64, String)> = cluster.ids().into_iter().map(|id| (id, role(id))).collect();
        if roles.iter().any(|(_, role)| role == "leader") {
            if let Some((id, _)) = roles.iter().find(|(_, role)| role == "follower") {
                break *id;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no leader and follower over TLS: {roles:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let port = cluster.client_port(follower);
    assert_eq!(redis_cli(port, &tls, &["SET", "via-follower", "1"]).1, "OK");
    assert_eq!(redis_cli(port, &tls, &["GET", "via-follower"]).1, "1");
    let mut command = Command::new(python());
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/redis_py_tls.py")).args([port.to_string(), ca.clone()]);
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-py over TLS against a follower failed: {stdout} {stderr}");
}

/// `raftkv cluster --secure`: three nodes with TLS on the client ports and the peer links and a
/// password, made on the first start; what it prints works (redis-cli with `--tls --cacert` and
/// the password, the project's CLI with `--cacert --password-file`), and a plaintext client or
/// one without the password gets nothing.
#[test]
fn raftkv_cluster_secure_runs_a_cluster_with_tls_and_a_password() {
    let dir = support::target_dir().join("test-cluster-secure");
    let _ = std::fs::remove_dir_all(&dir);
    let (client_port, peer_port) = (support::free_ports(3), support::free_ports(3));
    let ports: Vec<u16> = (0..3).map(|i| client_port + i).collect();
    let mut child = Command::new(RAFTKV)
        .args(["cluster", "--nodes", "3", "--secure", "--client-port", &client_port.to_string(), "--peer-port", &peer_port.to_string(), "--data-dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("raftkv cluster");
    let stop = scopeguard(move || {
        let _ = child.kill();
        let _ = child.wait();
    });
    let (ca, password_file) = (dir.join("certs/ca.pem").to_string_lossy().into_owned(), dir.join("password").to_string_lossy().into_owned());
    let started = Instant::now();
    while !std::path::Path::new(&password_file).exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "no password file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let password = std::fs::read_to_string(&password_file).expect("the password").trim().to_string();
    let endpoints = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect::<Vec<_>>().join(",");
    let cli = |words: &[&str]| {
        let mut command = Command::new(RAFTKV);
        command.args(words).args(["--endpoints", &endpoints, "--cacert", &ca, "--password-file", &password_file]);
        run_bounded(&mut command, Duration::from_secs(60)).unwrap_or_else(|error| panic!("{error}"))
    };
    let (ok, stdout, stderr) = cli(&["put", "secure", "yes"]);
    assert!(ok, "raftkv put to the secure cluster: {stdout} {stderr}");
    let tls = ["--tls", "--cacert", ca.as_str()];
    let mut with_password = Command::new("redis-cli");
    with_password.env("REDISCLI_AUTH", &password).args(["-h", "127.0.0.1", "-p", &ports[2].to_string()]).args(tls).args(["GET", "secure"]);
    let (_, answer, _) = run_bounded(&mut with_password, Duration::from_secs(10)).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(answer.trim(), "yes");
    let (_, without_password) = redis_cli(ports[1], &tls, &["GET", "secure"]);
    assert!(without_password.contains("NOAUTH"), "{without_password}");
    let (_, plaintext) = redis_cli(ports[0], &[], &["GET", "secure"]);
    assert!(!plaintext.contains("yes"), "a plaintext client read the key: {plaintext}");
    // redis-benchmark over TLS with the password, against a follower (every node but the leader).
    let (ok, status, _) = cli(&["status"]);
    assert!(ok, "{status}");
    let leader_port = status
        .lines()
        .find(|line| line.starts_with("127.0.0.1:") && line.split_whitespace().nth(2) == Some("leader"))
        .and_then(|line| line.split(':').nth(1)?.split_whitespace().next()?.parse::<u16>().ok());
    assert!(leader_port.is_some(), "no leader in raftkv status: {status}");
    let follower = *ports.iter().find(|&&port| Some(port) != leader_port).expect("a follower");
    let mut benchmark = Command::new("redis-benchmark");
    benchmark.args(["-h", "127.0.0.1", "-p", &follower.to_string(), "--tls", "--cacert", &ca, "-a", &password, "-t", "set,get", "-n", "2000", "-c", "8", "-q"]);
    let (ok, stdout, stderr) = run_bounded(&mut benchmark, Duration::from_secs(120)).unwrap_or_else(|error| panic!("{error}"));
    assert!(ok && stdout.contains("SET: ") && stdout.contains("GET: ") && !stdout.contains("ERR"), "redis-benchmark over TLS: {stdout} {stderr}");
    drop(stop);
}

/// Runs `f` when dropped (so a failed assertion still stops the cluster).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
