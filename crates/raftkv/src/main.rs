//! `raftkv`: the command line. Flags only; the work is in the `server` and `client` crates.

mod bench;
mod certs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "raftkv", version, about = "A replicated key/value store on Raft, spoken to with the Redis protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster in the foreground. With no flags: a ready single-node cluster
    /// (id 1, clients on 127.0.0.1:7379, data in ./raftkv-data).
    Server(ServerArgs),
    /// Run a local N-node cluster as child processes, for trying raftkv out; Ctrl-C stops them all.
    Cluster {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Client port of node 1; node i listens on this + i - 1.
        #[arg(long, default_value_t = 7379)]
        client_port: u16,
        /// Peer port of node 1; node i listens on this + i - 1.
        #[arg(long, default_value_t = 17379)]
        peer_port: u16,
        /// Where the nodes keep their data (one directory per node inside).
        #[arg(long, default_value = "raftkv-cluster")]
        data_dir: PathBuf,
        /// TLS on the client ports and the peer links, and a password: certificates (`certs/`)
        /// and a random password (`password`) are made in --data-dir on the first start, and
        /// how to connect is printed. Without it the cluster is plaintext and open to anyone
        /// who reaches its ports (fine on loopback, for trying it out).
        #[arg(long)]
        secure: bool,
    },
    /// Make a certificate authority and certificates for a cluster's nodes and a client (PEM
    /// files in DIR), for `--tls-cert`/`--tls-key`/`--tls-client-ca` and clients' `--cacert`.
    Certs {
        /// Where to write them.
        dir: PathBuf,
        /// Nodes 1..=N get a certificate each (`node-<id>.pem`).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Host names or IP addresses the node certificates are valid for (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
    },
    /// Read a key.
    Get {
        key: String,
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// Set a key (exactly once, even if retried).
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// Append to a key's value (exactly once, even if retried); prints the new length.
    Append {
        key: String,
        value: String,
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// Delete keys (exactly once, even if retried); prints how many existed.
    Del {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// Show every node's role, term, leader, commit and applied index, whether it votes, and how
    /// many voters its configuration has.
    Status {
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// The cluster's members: list them, add a learner, promote it, remove any member
    /// (RAFT.NODES and RAFT.NODE on the client port).
    Member {
        #[command(subcommand)]
        action: MemberAction,
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// Hand leadership to a caught-up voter (RAFT.TRANSFER-LEADER); returns once it leads.
    TransferLeader {
        id: u64,
        #[command(flatten)]
        endpoints: Endpoints,
    },
    /// Load any RESP endpoints (raftkv or Redis) and print throughput and latency percentiles.
    Bench {
        #[command(flatten)]
        endpoints: Endpoints,
        /// Concurrent clients, each with one connection and one request outstanding; client i uses
        /// endpoint i mod the number of endpoints.
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Seconds of measured load.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// set, get, append, or mixed:R (R = share of reads, e.g. mixed:0.9). Reads are preceded by
        /// a prefill that writes every key once.
        #[arg(long, default_value = "set")]
        workload: bench::Workload,
        /// Bytes per value.
        #[arg(long, default_value_t = 16)]
        value_size: usize,
        /// Distinct keys, chosen uniformly.
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
    },
}

#[derive(Subcommand)]
enum MemberAction {
    /// Every member: id, address, voter or learner, match index, lag, reachable.
    List,
    /// Add a learner that the others dial at ADDRESS (host:port of its peer port); start it with
    /// `raftkv server --join` on an empty data directory.
    Add { id: u64, address: String },
    /// Make a caught-up learner a voter.
    Promote { id: u64 },
    /// Remove a member, the leader included; its id is never used again.
    Remove { id: u64 },
}

#[derive(clap::Args)]
struct Endpoints {
    /// Client addresses of the nodes, comma-separated (any node will do; followers forward).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7379", global = true)]
    endpoints: Vec<String>,
    /// For nodes that require authentication: a file whose first line is the password.
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// The user to authenticate as (default: the default user).
    #[arg(long, requires = "password_file", global = true)]
    user: Option<String>,
    /// TLS, for nodes with --tls-cert: the CA that signed their certificates (`ca.pem` of `raftkv
    /// certs`), as redis-cli's --cacert. The nodes' certificates must name the hosts dialled.
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    /// This client's certificate (PEM), for nodes with --tls-client-ca. With --key and --cacert.
    #[arg(long = "cert", requires_all = ["client_key", "cacert"], global = true)]
    client_cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long = "key", requires = "client_cert", global = true)]
    client_key: Option<PathBuf>,
}

impl Endpoints {
    fn credentials(&self) -> Result<Option<client::Credentials>> {
        let Some(path) = &self.password_file else { return Ok(None) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let password = text.lines().next().unwrap_or("").to_string();
        Ok(Some(client::Credentials { user: self.user.clone(), password }))
    }

    /// TLS as asked (None: plain TCP).
    fn tls(&self) -> Result<Option<client::Tls>> {
        let Some(ca) = &self.cacert else { return Ok(None) };
        let identity = self.client_cert.as_deref().zip(self.client_key.as_deref());
        Ok(Some(client::Tls::from_files(ca, identity)?))
    }

    /// A client of these endpoints, over TLS and authenticating if asked.
    fn client(&self) -> Result<client::Client> {
        Ok(client::Client::new(self.endpoints.clone())?.with_credentials(self.credentials()?).with_tls(self.tls()?))
    }
}

#[derive(clap::Args)]
struct ServerArgs {
    /// This node's id, an integer >= 1.
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// The whole cluster, this node included: `1=HOST:PORT,2=HOST:PORT,...`, each node's peer
    /// address as this node dials it. Default: a single-node cluster, `1=127.0.0.1:17379`.
    #[arg(long)]
    peers: Option<String>,
    /// Where this node accepts peer traffic. Default: its own entry in --peers.
    #[arg(long)]
    listen_peer: Option<String>,
    /// Join an existing cluster instead of bootstrapping one: on an empty --data-dir, start as a
    /// non-voting node that waits until a member adds it (`raftkv member add`, RAFT.NODE ADD);
    /// --peers then lists the members to dial and need not name this node (give --listen-peer).
    /// Ignored once the data directory holds a node's state.
    #[arg(long)]
    join: bool,
    /// The RESP client port.
    #[arg(long, default_value = "127.0.0.1:7379")]
    listen_client: String,
    /// Durable state, created if missing; restart with the same directory to recover.
    #[arg(long, default_value = "raftkv-data")]
    data_dir: PathBuf,
    /// Serve Prometheus `/metrics` and `/health` over HTTP here (off unless given).
    #[arg(long)]
    listen_http: Option<String>,
    /// Snapshot the store (and drop the log it covers) every this many applied entries.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// The most bytes a client command's keys and values may take (together, and each); a larger
    /// one gets `-ERR` before anything is proposed. At most 32 MiB (half the peer frame limit).
    #[arg(long, default_value_t = server::DEFAULT_MAX_VALUE_BYTES, value_parser = parse_max_value_bytes)]
    max_value_bytes: usize,
    /// The data's budget (keys and values, Redis's maxmemory with the noeviction policy): over
    /// it, writes that could grow the data get `-OOM command not allowed when used memory >
    /// 'maxmemory'.`; reads, deletes and expiry go on. Bytes, or with a unit as Redis takes them
    /// (`100mb`, `4gb`, `500k`); `auto`: an eighth of the machine's memory; 0: no budget.
    #[arg(long, default_value = "auto", value_parser = parse_memory)]
    max_memory: MaxMemory,
    /// The budget of every client connection's input and output buffers together (Redis's
    /// maxmemory-clients): a connection whose buffers would take the total over it (a large
    /// command arriving, large replies it does not read) is closed. Units as --max-memory;
    /// `auto`: a sixteenth of the machine's memory; 0: no budget.
    #[arg(long, default_value = "auto", value_parser = parse_memory)]
    max_client_memory: MaxMemory,
    /// TLS on the client port: this node's certificate chain (PEM). With --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Clients must present a certificate signed by this CA (PEM). Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Serve --listen-http over HTTPS, with the client port's certificate (needs --tls-cert).
    #[arg(long, requires = "tls_cert")]
    http_tls: bool,
    /// Mutual TLS on peer links, from a directory as `raftkv certs` writes it: `ca.pem`, and
    /// `node-<id>.pem` and `node-<id>-key.pem` for this node. Every node of the cluster needs it.
    #[arg(long)]
    peer_tls_dir: Option<PathBuf>,
    /// A file whose first line is the default user's password: clients must then `AUTH password`
    /// (or `HELLO 3 AUTH default password`) first. Secrets come from files, never from flags.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// A file of named users, one per line: `<name> <readwrite|readonly> <password>`; clients
    /// authenticate with `AUTH name password`. With this or --password-file, unauthenticated
    /// clients get `-NOAUTH`.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Client connections at most (Redis's maxclients); fewer if the open-files limit, less 256
    /// kept for storage and peers, does not allow as many. More get `-ERR max number of clients reached`.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_clients: u64,
    /// Close a client connection that sends nothing for this many seconds (Redis's `timeout`);
    /// 0, the default, never does (TCP keepalive still closes connections whose other end vanished).
    #[arg(long, default_value_t = 0)]
    timeout: u64,
    #[command(flatten)]
    tuning: TuningArgs,
}

/// Performance techniques that can be switched off one at a time, to measure what each is worth.
/// Leave them at their defaults in production.
#[derive(clap::Args)]
#[command(next_help_heading = "Tuning (for measurements)")]
struct TuningArgs {
    /// Client requests batched into one Raft step (one fsync, one append per follower); 1 = none.
    #[arg(long, default_value_t = 1024)]
    max_batch: usize,
    /// AppendEntries in flight per follower; 1 = stop and wait.
    #[arg(long, default_value_t = 64)]
    max_inflight: usize,
    /// The leader fsyncs its log before sending appends (instead of in parallel with followers).
    #[arg(long)]
    serial_fsync: bool,
    /// Give every read its own ReadIndex round instead of batching concurrent reads into one.
    #[arg(long)]
    read_round_per_read: bool,
    /// fsync when only the commit index changed (Raft does not need it durable; costs a flush per batch).
    #[arg(long)]
    fsync_commit_index: bool,
    /// Serve reads under a leader lease (no heartbeat round). Assumes bounded clock drift between
    /// nodes; see the README. Off by default.
    #[arg(long)]
    lease_reads: bool,
    /// Extend the write-ahead log with zeros this many bytes ahead of its records, so that a
    /// record's fsync flushes data only (no file-size change); 0 = append as it goes.
    #[arg(long, default_value_t = 1 << 20)]
    wal_preallocate: u64,
}

#[derive(Clone, Copy, Debug)]
enum MaxMemory {
    Auto,
    Bytes(u64),
}

/// A size as Redis's configuration takes it: `k`/`m`/`g` are powers of 1000, `kb`/`mb`/`gb` of 1024.
fn parse_memory(text: &str) -> std::result::Result<MaxMemory, String> {
    let text = text.trim().to_ascii_lowercase();
    if text == "auto" {
        return Ok(MaxMemory::Auto);
    }
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &text[digits.len()..] {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} (use k, kb, m, mb, g or gb)")),
    };
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a size"))?;
    number.checked_mul(unit).map(MaxMemory::Bytes).ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_max_value_bytes(text: &str) -> std::result::Result<usize, String> {
    let bytes: usize = text.parse().map_err(|error| format!("{error}"))?;
    if (1..=server::MAX_VALUE_BYTES_LIMIT).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(format!("must be between 1 and {} (half the peer frame limit)", server::MAX_VALUE_BYTES_LIMIT))
    }
}

fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let (id, address) = item.split_once('=').with_context(|| format!("--peers entry {item:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().with_context(|| format!("--peers entry {item:?}: the id is not a number"))?;
        if id == 0 {
            bail!("--peers entry {item:?}: node ids start at 1");
        }
        if !address.contains(':') {
            bail!("--peers entry {item:?}: the address needs a port");
        }
        if peers.insert(id, address.trim().to_string()).is_some() {
            bail!("--peers lists node {id} twice");
        }
    }
    Ok(peers)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log redirected to a file stays greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Server(args) => serve(args),
        Command::Cluster { nodes, client_port, peer_port, data_dir, secure } => cluster(nodes, client_port, peer_port, data_dir, secure),
        Command::Certs { dir, nodes, hosts } => {
            certs::make(&dir, nodes, &hosts)?;
            println!("wrote a CA and certificates for nodes 1..={nodes} and a client in {}", dir.display());
            Ok(())
        }
        Command::Get { key, endpoints } => {
            match endpoints.client()?.get(key.as_bytes())? {
                Some(value) => println!("{}", String::from_utf8_lossy(&value)),
                None => println!("(nil)"),
            }
            Ok(())
        }
        Command::Put { key, value, endpoints } => {
            endpoints.client()?.set(key.as_bytes(), value.as_bytes())?;
            println!("OK");
            Ok(())
        }
        Command::Append { key, value, endpoints } => {
            println!("{}", endpoints.client()?.append(key.as_bytes(), value.as_bytes())?);
            Ok(())
        }
        Command::Del { keys, endpoints } => {
            let keys: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
            println!("{}", endpoints.client()?.del(&keys)?);
            Ok(())
        }
        Command::Status { endpoints } => {
            status(&endpoints.endpoints, endpoints.credentials()?.as_ref(), endpoints.tls()?.as_ref())?;
            // The members as the leader sees them (any node forwards RAFT.NODES to it).
            match endpoints.client().and_then(|mut client| Ok(client.command(&[b"RAFT.NODES"])?)) {
                Ok(client::Value::Array(Some(members))) => {
                    println!("members (as the leader sees them):");
                    for member in members {
                        if let client::Value::Bulk(Some(line)) = member {
                            println!("  {}", String::from_utf8_lossy(&line));
                        }
                    }
                }
                Ok(other) => println!("members: unexpected answer {other:?}"),
                Err(error) => println!("members: unknown ({error:#})"),
            }
            Ok(())
        }
        Command::Member { action, endpoints } => {
            let (id, address) = match &action {
                MemberAction::List => (String::new(), String::new()),
                MemberAction::Add { id, address } => (id.to_string(), address.clone()),
                MemberAction::Promote { id } | MemberAction::Remove { id } => (id.to_string(), String::new()),
            };
            let args: Vec<&[u8]> = match action {
                MemberAction::List => vec![b"RAFT.NODES"],
                MemberAction::Add { .. } => vec![b"RAFT.NODE", b"ADD", id.as_bytes(), address.as_bytes()],
                MemberAction::Promote { .. } => vec![b"RAFT.NODE", b"PROMOTE", id.as_bytes()],
                MemberAction::Remove { .. } => vec![b"RAFT.NODE", b"REMOVE", id.as_bytes()],
            };
            print_reply(endpoints.client()?.command(&args)?);
            Ok(())
        }
        Command::TransferLeader { id, endpoints } => {
            let id = id.to_string();
            print_reply(endpoints.client()?.command(&[b"RAFT.TRANSFER-LEADER", id.as_bytes()])?);
            Ok(())
        }
        Command::Bench { endpoints: given, clients, duration, workload, value_size, keys } => bench::run(bench::Options {
            tls: given.tls()?,
            credentials: given.credentials()?,
            endpoints: given.endpoints,
            clients,
            duration: Duration::from_secs(duration),
            workload,
            value_size,
            keys,
            timeout: Duration::from_secs(5),
        }),
    }
}

fn serve(args: ServerArgs) -> Result<()> {
    if args.id == 0 {
        bail!("--id must be >= 1");
    }
    let peers = match &args.peers {
        Some(text) => parse_peers(text)?,
        None => BTreeMap::from([(args.id, "127.0.0.1:17379".to_string())]),
    };
    if !args.join && !peers.contains_key(&args.id) {
        bail!("--peers must include this node's own id {} (or give --join to join an existing cluster)", args.id);
    }
    if !peers.contains_key(&args.id) && args.listen_peer.is_none() {
        bail!("--listen-peer is needed when --peers does not name this node");
    }
    let mut config = server::ServerConfig::new(args.id, peers, args.listen_client, args.data_dir);
    config.join = args.join;
    if let Some(listen_peer) = args.listen_peer {
        config.listen_peer = listen_peer;
    }
    config.listen_http = args.listen_http;
    config.snapshot_every = args.snapshot_every;
    config.max_value_bytes = args.max_value_bytes;
    config.max_memory = match args.max_memory {
        MaxMemory::Auto => server::default_max_memory(),
        MaxMemory::Bytes(bytes) => bytes,
    };
    config.max_client_memory = match args.max_client_memory {
        MaxMemory::Auto => server::default_max_client_memory(),
        MaxMemory::Bytes(bytes) => bytes,
    };
    config.peer_tls_dir = args.peer_tls_dir;
    config.http_tls = args.http_tls;
    config.secrets = server::SecretFiles {
        password_file: args.password_file,
        users_file: args.users_file,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| server::TlsFiles { cert, key, client_ca: args.tls_client_ca }),
    };
    config.max_connections = usize::try_from(args.max_clients).unwrap_or(usize::MAX);
    config.idle_timeout = (args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout));
    let tuning = args.tuning;
    config.tuning = server::Tuning {
        max_batch: tuning.max_batch,
        max_inflight: tuning.max_inflight,
        serial_fsync: tuning.serial_fsync,
        read_round_per_read: tuning.read_round_per_read,
        fsync_commit_index: tuning.fsync_commit_index,
        lease_reads: tuning.lease_reads,
        wal_preallocate_bytes: tuning.wal_preallocate,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = server::run(config) => result.context("the node stopped"),
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted; stopping");
                Ok(())
            }
        }
    })
}

fn cluster(nodes: u64, client_port: u16, peer_port: u16, data_dir: PathBuf, secure: bool) -> Result<()> {
    if nodes == 0 || nodes > 99 {
        bail!("--nodes must be between 1 and 99");
    }
    let (certs, password) = (data_dir.join("certs"), data_dir.join("password"));
    if secure {
        if !certs.join("ca.pem").exists() {
            certs::make(&certs, nodes, &["localhost".to_string(), "127.0.0.1".to_string()])?;
        }
        certs::password_file(&password)?;
    }
    let port = |base: u16, id: u64| -> Result<u16> {
        base.checked_add(id as u16 - 1).context("port number out of range")
    };
    let mut peers = Vec::new();
    for id in 1..=nodes {
        peers.push(format!("{id}=127.0.0.1:{}", port(peer_port, id)?));
    }
    let peers = peers.join(",");
    let program = std::env::current_exe().context("finding the raftkv executable")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async {
        let mut children = Vec::new();
        let mut endpoints = Vec::new();
        for id in 1..=nodes {
            let client = format!("127.0.0.1:{}", port(client_port, id)?);
            let dir = data_dir.join(format!("node-{id}"));
            let mut command = tokio::process::Command::new(&program);
            command.args(["server", "--id", &id.to_string(), "--peers", &peers, "--listen-client", &client]).arg("--data-dir").arg(&dir);
            if secure {
                command.arg("--tls-cert").arg(certs.join(format!("node-{id}.pem"))).arg("--tls-key").arg(certs.join(format!("node-{id}-key.pem")));
                command.arg("--peer-tls-dir").arg(&certs).arg("--password-file").arg(&password);
            }
            die_with_parent(&mut command);
            let child = command.kill_on_drop(true).spawn().with_context(|| format!("starting node {id}"))?;
            children.push(child);
            endpoints.push(client);
        }
        println!("raftkv cluster of {nodes} nodes; data in {}", data_dir.display());
        println!("client endpoints: {}", endpoints.join(","));
        if secure {
            let (ca, password) = (certs.join("ca.pem"), password.display());
            println!("TLS and a password (in {password}); try:");
            println!("  REDISCLI_AUTH=\"$(cat {password})\" redis-cli --tls --cacert {} -p {client_port} SET a b", ca.display());
            println!("  raftkv get a --endpoints {} --cacert {} --password-file {password}", endpoints.join(","), ca.display());
        } else {
            println!("try: redis-cli -p {client_port} SET a b   then   redis-cli -p {} GET a", port(client_port, nodes)?);
            println!("plaintext and without a password, for trying it out on this machine; `raftkv cluster --secure` adds TLS and a password");
        }
        println!("Ctrl-C stops all nodes.");
        let mut exits = Vec::new();
        for child in &mut children {
            exits.push(Box::pin(child.wait()));
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("watching for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => println!("stopping the cluster"),
            _ = terminate.recv() => println!("SIGTERM: stopping the cluster"),
            (result, index, _) = futures_select_all(exits) => {
                eprintln!("node {} exited ({result:?}); stopping the cluster", index + 1);
            }
        }
        // Each node is told to stop as SIGTERM tells it (a leader hands over first); one that has
        // not stopped within the contract's 10 s is killed when `children` is dropped.
        for child in &children {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) with a pid of a child this process started and has not reaped.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
        }
        let all_exited = async {
            for child in &mut children {
                let _ = child.wait().await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), all_exited).await;
        drop(children);
        Ok(())
    })
}

/// The node gets SIGTERM when `raftkv cluster` dies, however it dies (SIGKILL included), so that
/// no node outlives the cluster that started it. (Linux: the signal comes when the thread that
/// started the node ends; these are started from the main thread, which lives as long as the
/// process.)
fn die_with_parent(command: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl(2) and
    // getppid(2), which are async-signal-safe, allocating nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl took effect: it will not send the signal.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("raftkv cluster exited while starting the node"));
            }
            Ok(())
        });
    }
}

/// Waits for the first of several futures (a tiny stand-in for `futures::select_all`).
async fn futures_select_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> (F::Output, usize, ()) {
    std::future::poll_fn(|context| {
        for (index, future) in futures.iter_mut().enumerate() {
            if let std::task::Poll::Ready(output) = std::pin::Pin::new(future).poll(context) {
                return std::task::Poll::Ready((output, index, ()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// A reply as a person reads it: OK, or each line of an array.
fn print_reply(value: client::Value) {
    match value {
        client::Value::Array(Some(items)) => {
            for item in items {
                print_reply(item);
            }
        }
        client::Value::Bulk(Some(bytes)) => println!("{}", String::from_utf8_lossy(&bytes)),
        client::Value::Simple(text) => println!("{text}"),
        other => println!("{other:?}"),
    }
}

fn status(endpoints: &[String], credentials: Option<&client::Credentials>, tls: Option<&client::Tls>) -> Result<()> {
    println!("{:<22} {:>4} {:<10} {:>6} {:>7} {:>10} {:>10} {:>6} {:>7}", "endpoint", "id", "role", "term", "leader", "commit", "applied", "voter", "voters");
    let mut reachable = 0;
    for endpoint in endpoints {
        match client::Client::info_as(endpoint, Duration::from_secs(2), credentials, tls) {
            Ok(info) => {
                reachable += 1;
                let field = |name: &str| {
                    info.lines().find_map(|line| line.strip_prefix(&format!("{name}:"))).unwrap_or("?").trim().to_string()
                };
                println!(
                    "{:<22} {:>4} {:<10} {:>6} {:>7} {:>10} {:>10} {:>6} {:>7}",
                    endpoint,
                    field("node_id"),
                    field("role"),
                    field("term"),
                    field("leader_id"),
                    field("commit_index"),
                    field("applied_index"),
                    field("voter"),
                    field("voters")
                );
            }
            Err(error) => println!("{endpoint:<22} unreachable: {error}"),
        }
    }
    if reachable == 0 {
        bail!("no endpoint answered");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_as_redis_does() {
        let bytes = |text: &str| match parse_memory(text) {
            Ok(MaxMemory::Bytes(bytes)) => Some(bytes),
            _ => None,
        };
        assert_eq!(bytes("0"), Some(0));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("5k"), Some(5_000));
        assert_eq!(bytes("5kb"), Some(5 << 10));
        assert_eq!(bytes("100MB"), Some(100 << 20));
        assert_eq!(bytes("4g"), Some(4_000_000_000));
        assert_eq!(bytes("4gb"), Some(4 << 30));
        assert!(matches!(parse_memory("auto"), Ok(MaxMemory::Auto)));
        for bad in ["", "mb", "1tb", "-1", "99999999999999999999gb"] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
    }
}
