//! A harness for process-level tests: a cluster of real `raftkv server` processes on 127.0.0.1,
//! with (optionally) a TCP proxy on every directed peer link so that links can be cut and healed.
//!
//! ```text
//!   node i ──dials──▶ proxy(i→j) ──▶ node j's --listen-peer
//! ```
//! Node i's `--peers` lists every other node j at the address of proxy(i→j), and i's own entry at
//! its real peer port (which is also its `--listen-peer`). Cutting proxy(i→j) therefore cuts
//! exactly the traffic i sends to j (the transport uses one connection per direction).
//!
//! Every wait is bounded. Children are killed (SIGKILL, after a SIGCONT for paused ones) when the
//! [`Cluster`] is dropped; if the thread is panicking at that point, the tail of every node's log
//! is printed and the logs are kept on disk, otherwise the cluster's directory is removed.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The `raftkv` binary built for these tests.
pub const RAFTKV: &str = env!("CARGO_BIN_EXE_raftkv");

/// The workspace's target directory (the parent of cargo's per-test temporary directory).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(Path::to_path_buf).unwrap_or_else(|| tmp.to_path_buf())
}

/// Reserves a free port on 127.0.0.1 and returns it bound (drop the listener to release it).
///
/// Ports come from *below* the kernel's ephemeral range: a port from that range, once released
/// (a node killed, a proxy cut), could be taken as the local port of any outgoing connection and a
/// restarted node could then not listen on it again. Ports handed out by this process are never
/// handed out twice.
pub fn reserve_port() -> StdListener {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let low: u16 = 10_000;
    let high: u16 = ephemeral_low.saturating_sub(1).max(low + 1000);
    let span = u64::from(high - low);
    let mut rng = Rng::new(
        u64::from(std::process::id()) << 20
            ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    );
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..10_000 {
        let port = low + rng.below(span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = StdListener::bind(("127.0.0.1", port)) {
            handed_out.insert(port);
            return listener;
        }
    }
    panic!("no free port found in 127.0.0.1:{low}..{high}");
}

/// A port that was free a moment ago (see [`reserve_port`]); it is released at once.
pub fn free_port() -> u16 {
    reserve_port().local_addr().expect("local address").port()
}

/// The first of `count` consecutive ports that were free a moment ago (`raftkv cluster` takes
/// consecutive ports from each base).
pub fn free_ports(count: u16) -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX - count && (1..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

/// A TCP proxy for one directed peer link. `cut` closes every connection it carries and closes
/// its listening socket, so that new connections are refused (as by a firewall that rejects);
/// `heal` listens again on the same port and lets connections through.
pub struct Proxy {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    fn start(runtime: &tokio::runtime::Runtime, target: SocketAddr) -> Proxy {
        let listener = reserve_port();
        listener.set_nonblocking(true).expect("a non-blocking proxy socket");
        let listener = {
            let _guard = runtime.enter();
            TcpListener::from_std(listener).expect("a proxy listener")
        };
        let listen = listener.local_addr().expect("proxy address");
        let (cut, cut_watch) = watch::channel(false);
        runtime.spawn(serve_proxy(listener, target, cut_watch));
        Proxy { listen, target, cut }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

async fn serve_proxy(listener: TcpListener, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let address = listener.local_addr().expect("proxy address");
    let mut listener = Some(listener);
    loop {
        // Healed: listen (again) on the same port.
        let current = match listener.take() {
            Some(listener) => listener,
            None => loop {
                // tokio sets SO_REUSEADDR, so the port is free again at once unless someone took it.
                match TcpListener::bind(address).await {
                    Ok(listener) => break listener,
                    Err(error) => {
                        eprintln!("proxy {address}→{target}: cannot listen again ({error}); retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
        };
        let mut watch_cut = cut.clone();
        loop {
            let accepted = tokio::select! {
                accepted = current.accept() => Some(accepted),
                _ = watch_cut.wait_for(|cut| *cut) => None,
            };
            match accepted {
                None => break,
                Some(Ok((inbound, _))) => {
                    tokio::spawn(forward(inbound, target, cut.clone()));
                }
                Some(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        // Cut: close the listening socket (new connections are refused) until healed.
        drop(current);
        if cut.wait_for(|cut| !*cut).await.is_err() {
            return;
        }
    }
}

/// Carries one connection both ways until either side closes it or the link is cut.
async fn forward(mut inbound: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    if *cut.borrow() {
        return;
    }
    let carry = async {
        let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await;
        let Ok(Ok(mut outbound)) = connect else { return };
        let _ = outbound.set_nodelay(true);
        let _ = inbound.set_nodelay(true);
        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
    };
    tokio::select! {
        () = carry => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
    // Dropping both streams closes both sides.
}

/// One node: its addresses, flags, data directory, log and process.
pub struct Node {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    pub peers_flag: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub child: Option<Child>,
    pub paused: bool,
    pub starts: u32,
    /// Server flags beyond the addresses, e.g. `--lease-reads`.
    pub extra_flags: Vec<String>,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("opening a node log");
        let _ = writeln!(log, "===== harness: start #{} of node {} =====", self.starts, self.id);
        let child = Command::new(RAFTKV)
            .arg("server")
            .args(["--id", &self.id.to_string()])
            .args(["--peers", &self.peers_flag])
            .args(["--listen-peer", &self.peer_addr])
            .args(["--listen-client", &self.client_addr])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_flags)
            .env("RUST_LOG", std::env::var("RAFTKV_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("cloning a log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("starting node {} ({RAFTKV}): {error}", self.id));
        self.child = Some(child);
        self.paused = false;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL works on a stopped process too
            let _ = child.wait();
        }
        self.paused = false;
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap_or_else(|error| panic!("running kill {signal}: {error}"));
            assert!(status.success(), "kill {signal} {} failed: {status}", child.id());
        }
    }

    /// The process exited on its own (a crash): Some(status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }
}

static CLUSTER_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct Cluster {
    pub name: String,
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    /// (from, to) → the proxy node `from` dials to reach `to`. Empty without proxies.
    pub proxies: BTreeMap<(u64, u64), Proxy>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Keep the directory (logs) even on success.
    pub keep: bool,
    /// How clients reach the nodes (TLS, a password), for `start_secure`'s clusters.
    pub security: Security,
}

/// What a client needs for a cluster's client ports: TLS, credentials (none: plaintext, open).
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<client::Tls>,
    pub credentials: Option<client::Credentials>,
}

impl Security {
    /// A client of `endpoints` that speaks TLS and authenticates as this says.
    pub fn client(&self, endpoints: Vec<String>) -> client::Client {
        client::Client::new(endpoints).expect("endpoints").with_tls(self.tls.clone()).with_credentials(self.credentials.clone())
    }
}

impl Cluster {
    /// Like `start_with_flags`, secured as a real deployment is: mutual TLS on the peer links
    /// (certificates from `raftkv certs`), TLS on the client ports and a password; the harness's
    /// clients (`client`, `info`, `wait_ready`, `security`) use them.
    pub fn start_secure(name: &str, n: u64, flags: &[&str]) -> Cluster {
        let pki = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("raftkv-pki-{name}-{}-{}", std::process::id(), CLUSTER_COUNTER.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&pki);
        let mut certs = Command::new(RAFTKV);
        certs.arg("certs").arg(&pki).args(["--nodes", &n.to_string(), "--hosts", "127.0.0.1"]);
        let (made, stdout, stderr) = run_bounded(&mut certs, Duration::from_secs(30)).unwrap_or_else(|error| panic!("{error}"));
        assert!(made, "raftkv certs failed: {stdout} {stderr}");
        let password = "a harness password";
        std::fs::write(pki.join("password"), format!("{password}\n")).expect("the password file");
        let path = |name: &str| pki.join(name).to_string_lossy().into_owned();
        let secure = [
            "--peer-tls-dir".to_string(),
            path(""),
            "--password-file".into(),
            path("password"),
            "--tls-cert".into(),
            path("node-1.pem"),
            "--tls-key".into(),
            path("node-1-key.pem"),
        ];
        let all: Vec<&str> = flags.iter().copied().chain(secure.iter().map(String::as_str)).collect();
        let mut cluster = Cluster::build(name, n, true, &all);
        let tls = client::Tls::from_files(&pki.join("ca.pem"), None).expect("the CA");
        cluster.security = Security { tls: Some(tls), credentials: Some(client::Credentials { user: None, password: password.into() }) };
        cluster
    }

    /// Starts `n` nodes, each dialing every other through a proxy.
    pub fn start(name: &str, n: u64) -> Cluster {
        Cluster::build(name, n, true, &[])
    }

    /// Like `start`, with extra server flags on every node.
    pub fn start_with_flags(name: &str, n: u64, flags: &[&str]) -> Cluster {
        Cluster::build(name, n, true, flags)
    }

    /// Starts `n` nodes that dial each other directly (no faults on links possible).
    pub fn start_without_proxies(name: &str, n: u64) -> Cluster {
        Cluster::build(name, n, false, &[])
    }

    fn build(name: &str, n: u64, with_proxies: bool, flags: &[&str]) -> Cluster {
        assert!(n >= 1);
        let unique = format!(
            "{name}-{}-{}-{}",
            std::process::id(),
            CLUSTER_COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("raftkv-clusters").join(unique);
        std::fs::create_dir_all(&dir).expect("creating the cluster directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("proxy")
            .enable_all()
            .build()
            .expect("starting the proxy runtime");

        let ids: Vec<u64> = (1..=n).collect();
        // Held until the nodes start, so that nothing else (a proxy) can be given these ports.
        let mut held = Vec::new();
        let port_of = |held: &mut Vec<StdListener>| {
            let listener = reserve_port();
            let port = listener.local_addr().expect("local address").port();
            held.push(listener);
            port
        };
        let peer_ports: BTreeMap<u64, u16> = ids.iter().map(|&id| (id, port_of(&mut held))).collect();
        let client_ports: BTreeMap<u64, u16> = ids.iter().map(|&id| (id, port_of(&mut held))).collect();
        let peer_addr = |id: u64| -> SocketAddr { format!("127.0.0.1:{}", peer_ports[&id]).parse().unwrap() };

        let mut proxies = BTreeMap::new();
        if with_proxies {
            for &from in &ids {
                for &to in &ids {
                    if from != to {
                        proxies.insert((from, to), Proxy::start(&runtime, peer_addr(to)));
                    }
                }
            }
        }
        let mut nodes = Vec::new();
        for &id in &ids {
            let peers_flag = ids
                .iter()
                .map(|&other| {
                    let address = match proxies.get(&(id, other)) {
                        Some(proxy) => proxy.listen,
                        None => peer_addr(other),
                    };
                    format!("{other}={address}")
                })
                .collect::<Vec<_>>()
                .join(",");
            let node_dir = dir.join(format!("node-{id}"));
            nodes.push(Node {
                id,
                client_addr: format!("127.0.0.1:{}", client_ports[&id]),
                peer_addr: peer_addr(id).to_string(),
                peers_flag,
                data_dir: node_dir.join("data"),
                log_path: dir.join(format!("node-{id}.log")),
                child: None,
                paused: false,
                starts: 0,
                extra_flags: flags.iter().map(|flag| flag.to_string()).collect(),
            });
        }
        let mut cluster = Cluster { name: name.into(), dir, nodes, proxies, runtime: Some(runtime), keep: false, security: Security::default() };
        drop(held);
        for node in &mut cluster.nodes {
            node.spawn();
        }
        cluster
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Every node's client address, in id order.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.client_addr.clone()).collect()
    }

    pub fn client_addr(&self, id: u64) -> String {
        self.node(id).client_addr.clone()
    }

    pub fn client_port(&self, id: u64) -> u16 {
        self.node(id).client_addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    // ----- processes -----

    /// kill -9 (no effect if it is not running).
    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// Starts a killed node again with the same flags and data directory.
    pub fn restart(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.kill();
        node.spawn();
    }

    /// Starts a new node, the next id, with `--join` on an empty data directory: it dials the
    /// others directly (no proxies). Returns its id and the peer address to add it with.
    pub fn start_joiner(&mut self) -> (u64, String) {
        let id = self.nodes.len() as u64 + 1;
        let (peer, client) = (free_port(), free_port());
        let peers_flag = self.nodes.iter().map(|node| format!("{}={}", node.id, node.peer_addr)).collect::<Vec<_>>().join(",");
        let node_dir = self.dir.join(format!("node-{id}"));
        let extra_flags = self.nodes.first().map(|node| node.extra_flags.clone()).unwrap_or_default();
        let mut node = Node {
            id,
            client_addr: format!("127.0.0.1:{client}"),
            peer_addr: format!("127.0.0.1:{peer}"),
            peers_flag,
            data_dir: node_dir.join("data"),
            log_path: self.dir.join(format!("node-{id}.log")),
            child: None,
            paused: false,
            starts: 0,
            extra_flags: extra_flags.into_iter().chain(["--join".to_string()]).collect(),
        };
        node.spawn();
        let address = node.peer_addr.clone();
        self.nodes.push(node);
        (id, address)
    }

    /// SIGTERM, then waits up to `bound` for the process to exit; its exit status (None: still
    /// running at the bound, and then killed).
    pub fn terminate(&mut self, id: u64, bound: Duration) -> Option<std::process::ExitStatus> {
        let node = self.node_mut(id);
        node.signal("-TERM");
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = node.exited() {
                node.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        node.kill();
        None
    }

    /// Starts every node that is not running.
    pub fn restart_dead(&mut self) -> Vec<u64> {
        let mut started = Vec::new();
        for node in &mut self.nodes {
            if !node.is_running() {
                node.spawn();
                started.push(node.id);
            } else if let Some(status) = node.exited() {
                eprintln!("harness: node {} had exited on its own ({status}); starting it again", node.id);
                node.child = None;
                node.spawn();
                started.push(node.id);
            }
        }
        started
    }

    /// kill -9 every node, then start them all again.
    pub fn crash_all_and_restart(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        for node in &mut self.nodes {
            node.spawn();
        }
    }

    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// SIGSTOP.
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        if node.is_running() && !node.paused {
            node.signal("-STOP");
            node.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        if node.is_running() && node.paused {
            node.signal("-CONT");
            node.paused = false;
        }
    }

    pub fn resume_all(&mut self) {
        for id in self.ids() {
            self.resume(id);
        }
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.iter().filter(|node| node.is_running()).map(|node| node.id).collect()
    }

    pub fn dead(&self) -> Vec<u64> {
        self.nodes.iter().filter(|node| !node.is_running()).map(|node| node.id).collect()
    }

    pub fn paused(&self) -> Vec<u64> {
        self.nodes.iter().filter(|node| node.paused).map(|node| node.id).collect()
    }

    /// Nodes whose process exited without the harness killing it (a crash): (id, status and the
    /// last line of its log). Each exit is reported once; the node then counts as dead.
    pub fn crashed(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Some(status) = node.exited() {
                let log = std::fs::read_to_string(&node.log_path).unwrap_or_default();
                let last = log.lines().rev().find(|line| !line.trim().is_empty()).map(strip_ansi).unwrap_or_default();
                out.push((node.id, format!("{status}; its log ends with: {last}")));
                node.child = None; // reaped: reported once, and now counts as dead
                node.paused = false;
            }
        }
        out
    }

    // ----- links -----

    fn proxy(&self, from: u64, to: u64) -> &Proxy {
        self.proxies.get(&(from, to)).unwrap_or_else(|| panic!("no proxy for link {from}→{to} (cluster started without proxies?)"))
    }

    /// Cuts the directed link from → to (what `from` sends to `to`).
    pub fn cut(&self, from: u64, to: u64) {
        self.proxy(from, to).cut();
    }

    pub fn heal(&self, from: u64, to: u64) {
        self.proxy(from, to).heal();
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&self, id: u64) {
        for other in self.ids() {
            if other != id {
                self.cut(id, other);
                self.cut(other, id);
            }
        }
    }

    /// Heals every link, then cuts every link between the two groups (both directions).
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        self.heal_links();
        for &x in a {
            for &y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }

    pub fn heal_links(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    pub fn cut_links(&self) -> Vec<(u64, u64)> {
        self.proxies.iter().filter(|(_, proxy)| proxy.is_cut()).map(|(&link, _)| link).collect()
    }

    /// Heals every link, resumes paused nodes and restarts dead ones.
    pub fn heal_all(&mut self) {
        self.heal_links();
        self.resume_all();
        self.restart_dead();
    }

    // ----- clients -----

    /// A client over every endpoint with the given per-call deadline.
    pub fn client(&self, deadline: Duration) -> client::Client {
        let mut client = self.security.client(self.endpoints());
        client.deadline = deadline;
        client.attempt_timeout = Duration::from_secs(1).min(deadline);
        client
    }

    /// Waits until a linearizable GET through the client succeeds, for at most `bound`.
    /// Returns how long it took.
    pub fn wait_ready(&self, bound: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let mut last = String::from("no attempt");
        while started.elapsed() < bound {
            let left = bound.saturating_sub(started.elapsed());
            let mut client = self.client(left.min(Duration::from_secs(2)).max(Duration::from_millis(100)));
            match client.get(b"__harness_probe__") {
                Ok(_) => return Ok(started.elapsed()),
                Err(error) => last = error.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50).min(bound.saturating_sub(started.elapsed())));
        }
        Err(format!("the cluster did not answer a GET within {bound:?}; last error: {last}"))
    }

    /// Writes `after-0` .. `after-{count - 1}` through `client`, each retried until taken, all within
    /// 30 s: after an attack, the cluster must take new writes again.
    pub fn takes_new_writes(client: &mut client::Client, count: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut written = 0;
        while written < count {
            if Instant::now() >= deadline {
                return Err(format!("the cluster took {written} of {count} new writes within 30 s"));
            }
            if client.set(format!("after-{written}").as_bytes(), b"1").is_ok() {
                written += 1;
            }
        }
        Ok(())
    }

    /// The node that says it leads in the highest term, among running, unpaused nodes (INFO, 1 s
    /// bound per node).
    pub fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for node in self.nodes.iter().filter(|node| node.is_running() && !node.paused) {
            let Ok(info) = self.info(node.id) else { continue };
            let field = |name: &str| info.lines().find_map(|line| line.strip_prefix(&format!("{name}:"))).map(|v| v.trim().to_string());
            if field("role").as_deref() != Some("leader") {
                continue;
            }
            let term: u64 = field("term").and_then(|term| term.parse().ok()).unwrap_or(0);
            if best.is_none_or(|(best_term, _)| term > best_term) {
                best = Some((term, node.id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// INFO of one node (no retries).
    pub fn info(&self, id: u64) -> Result<String, String> {
        let security = &self.security;
        client::Client::info_as(&self.client_addr(id), Duration::from_secs(1), security.credentials.as_ref(), security.tls.as_ref()).map_err(|error| error.to_string())
    }

    // ----- logs -----

    /// The last `lines` lines of every node's log, as one text.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log_path).unwrap_or_else(|error| format!("(cannot read: {error})"));
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!("----- node {} log ({}), last {} of {} lines -----\n", node.id, node.log_path.display(), all.len() - from, all.len()));
            for line in &all[from..] {
                out.push_str(&strip_ansi(line));
                out.push('\n');
            }
        }
        out
    }

    pub fn print_log_tails(&self, lines: usize) {
        eprintln!("{}", self.log_tails(lines));
    }

    /// Greps every node's log for lines containing any of `needles` (for spotting panics).
    pub fn grep_logs(&self, needles: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for node in &self.nodes {
            if let Ok(text) = std::fs::read_to_string(&node.log_path) {
                for line in text.lines() {
                    if needles.iter().any(|needle| line.contains(needle)) {
                        out.push(format!("node {}: {}", node.id, strip_ansi(line)));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let failed = std::thread::panicking();
        if failed {
            eprintln!("\n===== {}: node logs (tails) =====", self.name);
            self.print_log_tails(60);
        }
        // Data directories always go; logs stay when the test failed (or `keep` is set).
        for node in &self.nodes {
            let _ = std::fs::remove_dir_all(node.data_dir.parent().unwrap_or(&node.data_dir));
        }
        if failed || self.keep {
            eprintln!("{}: node logs kept in {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The resident memory of a process, from /proc (0 if it cannot be read).
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|line| line.strip_prefix("VmRSS:")).unwrap_or("0 kB");
    kib.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) * 1024
}

/// Removes terminal colour codes (ESC [ ... m) from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a command with a time bound: (exit success, stdout, stderr). Kills it on expiry.
pub fn run_bounded(command: &mut Command, bound: Duration) -> Result<(bool, String, String), String> {
    let stdout_path = std::env::temp_dir().join(format!("raftkv-cmd-{}-{}.out", std::process::id(), CLUSTER_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let stderr_path = stdout_path.with_extension("err");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(File::create(&stdout_path).map_err(|e| e.to_string())?))
        .stderr(Stdio::from(File::create(&stderr_path).map_err(|e| e.to_string())?))
        .spawn()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > bound => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => return Err(error.to_string()),
        }
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stdout_path);
    let _ = std::fs::remove_file(&stderr_path);
    match status {
        Some(status) => Ok((status.success(), stdout, stderr)),
        None => Err(format!("{command:?} did not finish within {bound:?}; stdout so far: {stdout:?}; stderr: {stderr:?}")),
    }
}

/// A small deterministic generator (splitmix64), so a seed replays the same choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn range(&mut self, low: u64, high_inclusive: u64) -> u64 {
        low + self.below(high_inclusive - low + 1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Splits ids into two non-empty groups at random.
pub fn random_split(rng: &mut Rng, ids: &[u64]) -> (Vec<u64>, Vec<u64>) {
    let mut ids = ids.to_vec();
    rng.shuffle(&mut ids);
    let at = rng.range(1, ids.len() as u64 - 1) as usize;
    let (a, b) = ids.split_at(at);
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    (a, b)
}

pub fn set_of(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

/// The body of `GET path` on a node's plain HTTP port.
pub fn http_get(address: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).map_err(|error| format!("connect {address}: {error}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").map_err(|error| error.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|error| error.to_string())?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!("GET {path}: {response}")),
    }
}

/// The Python with redis-py the tests run: `RAFTKV_PYTHON`, else `target/pyenv/bin/python`, which
/// `scripts/test.sh` makes. A test that needs it fails, never skips, without it.
pub fn python() -> PathBuf {
    let python = std::env::var_os("RAFTKV_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh (it makes a virtualenv with redis-py), or set RAFTKV_PYTHON to a Python with redis-py",
        python.display()
    );
    python
}
