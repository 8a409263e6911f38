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
    let python = std::env::var_os("RAFTKV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python"));
    assert!(python.exists(), "{} is missing: run scripts/test.sh, or set RAFTKV_PYTHON to a Python with redis-py", python.display());
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
