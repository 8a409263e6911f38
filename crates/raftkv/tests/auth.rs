//! Client authentication with the real binary, through redis-py: with `--password-file` and
//! `--users-file`, an unauthenticated client gets `-NOAUTH`, a wrong password `-WRONGPASS`, the
//! default user reads and writes, a read-only user reads and gets `-NOPERM` for a write — on every
//! node, followers included, in RESP3 (HELLO 3 AUTH) and RESP2 (AUTH). Failures are logged.
//! (Before, any client that reached the port could read and write every key, and AUTH was an
//! unknown command.)

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{run_bounded, Cluster};

#[test]
fn clients_authenticate_and_roles_hold_on_every_node() {
    let python = support::python();
    let secrets = support::target_dir().join("test-auth-secrets");
    std::fs::create_dir_all(&secrets).expect("a directory for the secrets");
    let (password_file, users_file) = (secrets.join("password"), secrets.join("users"));
    std::fs::write(&password_file, "p4ss-default\n").expect("the password file");
    std::fs::write(&users_file, "# who may read\nreader readonly r3ad-only\n").expect("the users file");
    let flags = ["--password-file", password_file.to_str().expect("utf-8"), "--users-file", users_file.to_str().expect("utf-8")];
    let cluster = Cluster::start_with_flags("auth", 3, &flags);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/redis_py_auth.py");
    let mut command = Command::new(python);
    command.arg(script).args(["p4ss-default", "r3ad-only"]).args(cluster.ids().into_iter().map(|id| cluster.client_port(id).to_string()));
    let (success, stdout, stderr) = run_bounded(&mut command, Duration::from_secs(90)).unwrap_or_else(|error| panic!("{error}"));
    assert!(success, "redis-py with authentication failed:\nstdout: {stdout}\nstderr: {stderr}");
    let logs: String = cluster.ids().into_iter().map(|id| std::fs::read_to_string(&cluster.node(id).log_path).unwrap_or_default()).collect();
    assert!(logs.contains("client authentication failed"), "failed authentications are logged");
}

/// One command on a fresh connection, its reply's first line.
fn ask(address: &str, words: &[&[&str]]) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut wire = Vec::new();
    for command in words {
        resp::encode_array_of_bulks(command, &mut wire);
    }
    stream.write_all(&wire).expect("write");
    let mut reader = BufReader::new(stream);
    words
        .iter()
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply");
            line.trim_end().to_string()
        })
        .collect()
}

/// A new password takes effect on SIGHUP, without a restart; a broken file keeps the old one.
#[test]
fn the_password_file_is_reloaded_on_sighup() {
    let dir = support::target_dir().join("test-auth-reload");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let password = dir.join("password");
    std::fs::write(&password, "first\n").expect("the password file");
    let password_flag = password.to_string_lossy().into_owned();
    let node = Cluster::start_with_flags("auth-reload", 1, &["--password-file", &password_flag]);
    let address = node.client_addr(1);
    let pid = node.node(1).child.as_ref().expect("running").id();
    let hangup = |pid: u32| {
        let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill");
        assert!(status.success());
    };
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(&address, &[&["AUTH", "first"], &["PING"]]), ["+OK", "+PONG"]);
    std::fs::write(&password, "second\n").expect("the new password");
    hangup(pid);
    let started = std::time::Instant::now();
    while ask(&address, &[&["AUTH", "second"]]) != ["+OK"] {
        assert!(started.elapsed() < Duration::from_secs(10), "the new password never took effect");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ask(&address, &[&["AUTH", "first"]])[0].starts_with("-WRONGPASS"), "the old password still works");
    // An empty file is refused: the password in force stays.
    std::fs::write(&password, "\n").expect("a broken file");
    hangup(pid);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ask(&address, &[&["AUTH", "second"]]), ["+OK"], "a broken file replaced the password");
}

/// The project's own CLI authenticates with `--password-file` (and `--user`): put, get and status
/// work; without it the node's NOAUTH comes back as the error.
#[test]
fn the_cli_authenticates() {
    let dir = support::target_dir().join("test-auth-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let (password, users) = (dir.join("password"), dir.join("users"));
    std::fs::write(&password, "cli-secret\n").expect("the password file");
    std::fs::write(&users, "reader readonly reader-secret\n").expect("the users file");
    std::fs::write(dir.join("reader-password"), "reader-secret\n").expect("the reader's password");
    let (password, users) = (password.to_string_lossy().into_owned(), users.to_string_lossy().into_owned());
    let node = Cluster::start_with_flags("auth-cli", 1, &["--password-file", &password, "--users-file", &users]);
    let address = node.client_addr(1);
    let cli = |args: &[&str]| {
        let mut command = Command::new(support::RAFTKV);
        command.args(args).args(["--endpoints", &address]);
        run_bounded(&mut command, Duration::from_secs(60)).unwrap_or_else(|error| panic!("{error}"))
    };
    let started = std::time::Instant::now();
    while !cli(&["put", "k", "v", "--password-file", &password]).0 {
        assert!(started.elapsed() < Duration::from_secs(30), "raftkv put with the password never succeeded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (success, stdout, _) = cli(&["get", "k", "--password-file", &password]);
    assert!(success && stdout.trim() == "v", "get: {stdout}");
    let (success, stdout, _) = cli(&["status", "--password-file", &password]);
    assert!(success && stdout.contains("leader"), "status: {stdout}");
    assert!(stdout.contains("members (as the leader sees them):") && stdout.contains("id=1 addr=") && stdout.contains("role=voter"), "status lists the members: {stdout}");
    let (success, _, stderr) = cli(&["get", "k"]);
    assert!(!success && stderr.contains("NOAUTH"), "without a password: {stderr}");
    let reader = dir.join("reader-password").to_string_lossy().into_owned();
    let (success, stdout, _) = cli(&["get", "k", "--user", "reader", "--password-file", &reader]);
    assert!(success && stdout.trim() == "v", "the reader's get: {stdout}");
    let (success, _, stderr) = cli(&["put", "k", "w", "--user", "reader", "--password-file", &reader]);
    assert!(!success && stderr.contains("NOPERM"), "the reader's put: {stderr}");
}
