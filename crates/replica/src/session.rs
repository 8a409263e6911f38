//! One client connection's side of the RESP protocol, without the socket: the bytes a client sent
//! go in; out come, in the client's order, replies the connection can give at once (PING, INFO,
//! protocol errors, ...) and requests for the node (reads and writes). The client port runs one per
//! connection; the simulator's clients go through the same type.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use raft::Status;

use crate::admin;
use crate::request::{command_name, to_request, Answer, CommandError, Request, WriteEncoder};
use crate::users::{Role, Users};

/// What a connection may tell its client about the node (INFO, HELLO): the Raft status, and
/// figures the shell keeps.
#[derive(Clone, Copy, Debug)]
pub struct NodeView {
    pub status: Status,
    /// Keys in the store, and how many of them have a time to live.
    pub keys: u64,
    pub expires: u64,
    /// Client connections open on this node.
    pub clients: u64,
    /// Resident memory of the process, in bytes (0: unknown).
    pub used_memory: u64,
    pub uptime_seconds: u64,
    /// The disk is full: writes are refused.
    pub disk_full: bool,
    /// Highest log index applied to the store.
    pub applied_index: u64,
    pub counters: crate::metrics::Counters,
    /// The configuration in effect: how many voters and learners, and whether this node is one
    /// of the voters.
    pub voters: u64,
    pub learners: u64,
    pub voter: bool,
    /// What the keys and values take (`kv::Store::data_bytes`), and their budget (0: none).
    pub data_bytes: u64,
    pub max_memory: u64,
    /// What the client connections' buffers hold, and their budget (0: none).
    pub client_buffer_bytes: u64,
    pub max_client_memory: u64,
}

impl NodeView {
    /// A view of `status` alone (the other figures 0).
    pub fn of(status: Status) -> NodeView {
        NodeView { status, keys: 0, expires: 0, clients: 0, used_memory: 0, uptime_seconds: 0, disk_full: false, applied_index: 0, counters: Default::default(), voters: 0, learners: 0, voter: false, data_bytes: 0, max_memory: 0, client_buffer_bytes: 0, max_client_memory: 0 }
    }
}

/// What one command of a client becomes, in its order among the connection's commands.
#[derive(Debug)]
pub enum Step {
    /// This reply, as it goes on the wire.
    Reply(Vec<u8>),
    /// The node answers this (its `Answer::to_resp` is the reply, in RESP3 if `resp3`: the
    /// protocol the connection had chosen when the command came).
    Request { request: Request, resp3: bool },
    /// WATCH: the node answers this read, and the answer goes to `Session::watch_answered`,
    /// which keeps what it read and gives the reply.
    Watch { request: Request, resp3: bool },
}

pub struct Session {
    /// Bytes received and not parsed yet (the start of an incomplete command).
    unparsed: Vec<u8>,
    args: resp::ArgBuf,
    /// How far the scan of an incomplete command got, so that its bytes are not scanned again.
    resume: resp::Resume,
    writes: WriteEncoder,
    limits: resp::Limits,
    /// After QUIT or a protocol error: nothing more is read, the connection closes once the
    /// replies so far are written.
    closing: bool,
    /// The protocol the client chose with HELLO: RESP3 (true) or RESP2 (false, the default).
    resp3: bool,
    /// The client's id, as HELLO and CLIENT ID report it.
    id: u64,
    /// The name given by HELLO ... SETNAME or CLIENT SETNAME.
    name: Option<Vec<u8>>,
    /// What CLIENT SETINFO said: library name and version.
    library: (Vec<u8>, Vec<u8>),
    /// Who may connect; `user` is who this connection authenticated as.
    users: Arc<Users>,
    user: Option<(String, Role)>,
    /// AUTH and HELLO AUTH attempts that failed, for the shell to log and count.
    auth_failures: u64,
    /// Between MULTI and EXEC: the commands queued, as operations.
    transaction: Option<Transaction>,
    /// The node's `--timeout`, for CONFIG GET.
    idle_timeout: Option<std::time::Duration>,
    /// WATCH: the keys of reads in flight, in order; the values they read; whether one failed
    /// (then EXEC runs nothing, as when a watched key changed).
    /// (None: EXEC, DISCARD or UNWATCH came before its answer, which then only gets its reply.)
    watches_in_flight: std::collections::VecDeque<Option<Vec<Vec<u8>>>>,
    /// Each watched key and the log index of the state WATCH read (`Request::ReadPoint`).
    watched: Vec<(Vec<u8>, u64)>,
    watch_failed: bool,
}

/// A transaction being queued. A command that could not be queued makes EXEC refuse the whole
/// transaction, as Redis does.
#[derive(Default)]
struct Transaction {
    ops: Vec<kv::Op>,
    /// The queued commands' arguments and a little per command: bounded like one command, so
    /// that EXEC's log entry fits in a peer frame.
    bytes: usize,
    refused: bool,
}

impl Session {
    /// `untagged`: the node's counter for untagged writes (see `WriteEncoder`).
    pub fn new(limits: resp::Limits, untagged: Arc<AtomicU64>) -> Session {
        let mut writes = WriteEncoder::new(untagged);
        writes.max_value_bytes = limits.max_bulk_bytes as u64;
        Session {
            unparsed: Vec::new(),
            args: resp::ArgBuf::new(),
            resume: resp::Resume::default(),
            writes,
            limits,
            closing: false,
            resp3: false,
            id: 0,
            name: None,
            library: (Vec::new(), Vec::new()),
            users: Arc::default(),
            user: None,
            auth_failures: 0,
            transaction: None,
            idle_timeout: None,
            watches_in_flight: std::collections::VecDeque::new(),
            watched: Vec::new(),
            watch_failed: false,
        }
    }

    /// The node's idle-client timeout, which CONFIG GET timeout reports (the shell enforces it).
    pub fn set_idle_timeout(&mut self, idle_timeout: Option<std::time::Duration>) {
        self.idle_timeout = idle_timeout;
    }

    /// The node's users: with any, a connection must authenticate before anything else.
    pub fn set_users(&mut self, users: Arc<Users>) {
        self.users = users;
    }

    /// Failed authentications since the last call (the shell logs and counts them).
    pub fn take_auth_failures(&mut self) -> u64 {
        std::mem::take(&mut self.auth_failures)
    }

    /// The role of this connection: its user's, or read-write when no user is configured.
    fn role(&self) -> Option<Role> {
        match &self.user {
            Some((_, role)) => Some(*role),
            None if !self.users.required() => Some(Role::ReadWrite),
            None => None,
        }
    }

    /// Checks a user's password; on success the connection is that user. Without any users, the
    /// default user takes any password (Redis's default user without a password: `nopass`).
    fn authenticate(&mut self, name: &str, password: &[u8]) -> bool {
        let open = (!self.users.required() && name == "default").then_some(Role::ReadWrite);
        match open.or_else(|| self.users.check(name, password)) {
            Some(role) => {
                self.user = Some((name.to_string(), role));
                true
            }
            None => {
                self.auth_failures += 1;
                false
            }
        }
    }

    fn auth(&mut self, out: &mut Vec<u8>) {
        let (name, password) = match self.args.len() {
            2 if !self.users.default_has_password() => {
                return resp::encode_error(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                    out,
                );
            }
            2 => ("default".to_string(), self.args[1].to_vec()),
            3 => (String::from_utf8_lossy(&self.args[1]).into_owned(), self.args[2].to_vec()),
            _ => return resp::encode_error("ERR wrong number of arguments for 'auth' command", out),
        };
        if self.authenticate(&name, &password) {
            resp::encode_simple("OK", out);
        } else {
            resp::encode_error(WRONGPASS, out);
        }
    }

    /// The id HELLO reports for this connection.
    pub fn set_id(&mut self, id: u64) {
        self.id = id;
    }

    /// Where the connection puts the bytes it reads (at the end), so that they are copied once.
    pub fn read_space(&mut self) -> &mut Vec<u8> {
        &mut self.unparsed
    }

    /// Whether the connection must close once the replies so far are written.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Bytes the parser has examined so far (for tests: about twice what arrived, however it was
    /// split).
    pub fn scanned_bytes(&self) -> u64 {
        self.resume.scanned()
    }

    /// Every whole command received so far, as steps in order. `node` is for INFO and HELLO.
    pub fn parse(&mut self, node: &NodeView) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut consumed = 0;
        while !self.closing {
            match resp::parse_command_resumable(&self.unparsed[consumed..], &self.limits, &mut self.args, &mut self.resume) {
                Ok(Some(used)) => {
                    consumed += used;
                    if !self.args.is_empty() {
                        steps.push(self.command(node));
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let mut out = Vec::new();
                    resp::encode_error(&format!("ERR Protocol error: {error}"), &mut out);
                    steps.push(Step::Reply(out));
                    self.closing = true;
                }
            }
        }
        self.unparsed.drain(..consumed);
        steps
    }

    fn command(&mut self, node: &NodeView) -> Step {
        let args = &self.args;
        let mut out = Vec::new();
        // The limit on one argument bounds what the parser buffers; this one bounds what a command
        // proposes, so that every log entry fits in a peer frame with room to spare.
        let bytes: usize = args.iter().map(<[u8]>::len).sum();
        if bytes > self.limits.max_bulk_bytes {
            let limit = self.limits.max_bulk_bytes;
            resp::encode_error(&format!("ERR command too large: its arguments take {bytes} bytes, the limit is {limit} (--max-value-bytes)"), &mut out);
            return Step::Reply(out);
        }
        let name = command_name(&args[0]);
        if self.role().is_none() && !matches!(name, "AUTH" | "HELLO" | "QUIT") {
            resp::encode_error("NOAUTH Authentication required.", &mut out);
            return Step::Reply(out);
        }
        match name {
            "MULTI" if self.transaction.is_some() => resp::encode_error("ERR MULTI calls can not be nested", &mut out),
            "MULTI" => {
                self.transaction = Some(Transaction::default());
                resp::encode_simple("OK", &mut out);
            }
            "EXEC" => match self.transaction.take() {
                None => resp::encode_error("ERR EXEC without MULTI", &mut out),
                Some(transaction) => {
                    // A WATCH pipelined before this EXEC and not answered yet: its keys count as
                    // read at the index this node had applied — no later than the point its read
                    // will have, so the check can only be stricter (before, EXEC ran without them).
                    let pipelined: Vec<(Vec<u8>, u64)> =
                        self.watches_in_flight.iter_mut().filter_map(Option::take).flatten().map(|key| (key, node.applied_index)).collect();
                    self.watched.extend(pipelined);
                    let (watched, failed) = (std::mem::take(&mut self.watched), std::mem::take(&mut self.watch_failed));
                    if transaction.refused {
                        resp::encode_error("EXECABORT Transaction discarded because of previous errors.", &mut out);
                    } else if failed {
                        Answer::Reply(kv::Reply::Aborted).to_resp(&mut out, self.resp3);
                    } else {
                        return Step::Request { request: self.writes.transaction(&transaction.ops, &watched), resp3: self.resp3 };
                    }
                }
            },
            "DISCARD" => match self.transaction.take() {
                None => resp::encode_error("ERR DISCARD without MULTI", &mut out),
                Some(_) => {
                    self.unwatch();
                    resp::encode_simple("OK", &mut out);
                }
            },
            "WATCH" if self.transaction.is_some() => self.refuse_in_transaction("ERR WATCH inside MULTI is not allowed", &mut out),
            "WATCH" if args.len() < 2 => resp::encode_error("ERR wrong number of arguments for 'watch' command", &mut out),
            "WATCH" => {
                // The watched keys travel in EXEC's entry: bounded as a transaction's commands are
                // (before, every WATCH added its keys to the connection's memory without end).
                let watching = self.watched.iter().map(|(key, _)| key.len()).sum::<usize>()
                    + self.watches_in_flight.iter().flatten().flatten().map(Vec::len).sum::<usize>();
                let adding = args.iter().skip(1).map(<[u8]>::len).sum::<usize>();
                if watching + adding > self.limits.max_bulk_bytes {
                    let limit = self.limits.max_bulk_bytes;
                    resp::encode_error(&format!("ERR too many watched keys: their names would take over {limit} bytes (--max-value-bytes); UNWATCH or EXEC first"), &mut out);
                    return Step::Reply(out);
                }
                // A linearizable read of where the log is; `watch_answered` keeps it with the keys.
                let keys: Vec<Vec<u8>> = args.iter().skip(1).map(<[u8]>::to_vec).collect();
                self.watches_in_flight.push_back(Some(keys));
                return Step::Watch { request: Request::ReadPoint, resp3: self.resp3 };
            }
            "UNWATCH" => {
                self.unwatch();
                resp::encode_simple("OK", &mut out);
            }
            "QUIT" => {
                self.closing = true;
                resp::encode_simple("OK", &mut out);
            }
            _ if self.transaction.is_some() => self.queue(name, &mut out),
            "AUTH" => self.auth(&mut out),
            "PING" => match args.len() {
                1 => resp::encode_simple("PONG", &mut out),
                2 => resp::encode_bulk(&args[1], &mut out),
                _ => resp::encode_error("ERR wrong number of arguments for 'ping' command", &mut out),
            },
            "INFO" => text_reply(info(node, args).as_bytes(), self.resp3, &mut out),
            "HELLO" => self.hello(&node.status, &mut out),
            "ECHO" => admin::echo(args, &mut out),
            "SELECT" => admin::select(args, &mut out),
            "COMMAND" => admin::command(args, self.resp3, &mut out),
            "CONFIG" => {
                let idle_seconds = self.idle_timeout.map_or(0, |idle| idle.as_secs());
                admin::config(args, &admin::Settings { limits: &self.limits, idle_seconds, max_memory: node.max_memory, max_client_memory: node.max_client_memory }, self.resp3, &mut out)
            }
            "CLIENT" => {
                let me = admin::Client { id: self.id, resp3: self.resp3, name: &mut self.name, library: &mut self.library };
                admin::client(args, me, &mut out);
            }
            _ => match to_request(args, &mut self.writes) {
                Ok(request) if request.orders_as_write() && self.role() == Some(Role::ReadOnly) => {
                    let user = self.user.as_ref().map_or("default", |(user, _)| user.as_str());
                    let command = String::from_utf8_lossy(&args[0]).to_lowercase();
                    resp::encode_error(&format!("NOPERM User {user} has no permissions to run the '{command}' command"), &mut out);
                }
                Ok(request) => return Step::Request { request, resp3: self.resp3 },
                Err(error) => resp::encode_error(&error.message(), &mut out),
            },
        }
        Step::Reply(out)
    }
}

impl Session {
    /// A command between MULTI and EXEC: queued (`+QUEUED`) if it is a data command that can be
    /// part of a transaction, refused otherwise (and then EXEC refuses the transaction).
    fn queue(&mut self, name: &str, out: &mut Vec<u8>) {
        let bytes = self.args.iter().map(|arg| arg.len() + 2).sum::<usize>() + 8;
        let total = self.transaction.as_ref().map_or(0, |transaction| transaction.bytes) + bytes;
        if total > self.limits.max_bulk_bytes {
            let limit = self.limits.max_bulk_bytes;
            return self.refuse_in_transaction(&format!("ERR transaction too large: its commands take over {limit} bytes (--max-value-bytes)"), out);
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.bytes = total;
        }
        if is_data_command(name) {
            match to_request(&self.args, &mut self.writes) {
                Ok(Request::Write(_)) if self.role() == Some(Role::ReadOnly) => {
                    let user = self.user.as_ref().map_or("default", |(user, _)| user.as_str());
                    let command = String::from_utf8_lossy(&self.args[0]).to_lowercase();
                    self.refuse_in_transaction(&format!("NOPERM User {user} has no permissions to run the '{command}' command"), out);
                }
                Ok(request) => match (request.to_transaction_op(), &mut self.transaction) {
                    (Some(op), Some(transaction)) => {
                        transaction.ops.push(op);
                        resp::encode_simple("QUEUED", out);
                    }
                    _ => self.refuse_in_transaction(&format!("ERR {name} inside MULTI is not supported by raftkv yet"), out),
                },
                // Unknown commands and wrong arity abort the transaction; bad arguments are errors
                // in EXEC's reply in their place, the rest applied (Redis finds those as they run).
                Err(error @ (CommandError::Unknown { .. } | CommandError::WrongArity(_) | CommandError::BadTag)) => {
                    self.refuse_in_transaction(&error.message(), out)
                }
                Err(error) => {
                    if let Some(transaction) = &mut self.transaction {
                        transaction.ops.push(kv::Op::Refused { message: error.message().into_bytes() });
                    }
                    resp::encode_simple("QUEUED", out);
                }
            }
        } else {
            self.refuse_in_transaction(&format!("ERR {name} inside MULTI is not supported by raftkv"), out);
        }
    }

    /// The node's answer to a WATCH (`Step::Watch`), in the connection's order: what it read is
    /// kept for EXEC, and the reply to write is appended to `out`.
    pub fn watch_answered(&mut self, answer: Answer, out: &mut Vec<u8>) {
        let keys = self.watches_in_flight.pop_front();
        match (answer, keys) {
            (Answer::Count(index), Some(keys)) => {
                self.watched.extend(keys.into_iter().flatten().map(|key| (key, index)));
                resp::encode_simple("OK", out);
            }
            (answer, keys) => {
                // Not known what the keys held: the transaction will not run (unless an EXEC
                // already took this WATCH's keys, as read earlier).
                if matches!(keys, Some(Some(_))) {
                    self.watch_failed = true;
                }
                match answer {
                    Answer::Error(message) => resp::encode_error(&format!("ERR {message}"), out),
                    _ => resp::encode_error("ERR WATCH could not read its keys", out),
                }
            }
        }
    }

    fn unwatch(&mut self) {
        self.watched.clear();
        self.watch_failed = false;
        for keys in self.watches_in_flight.iter_mut() {
            keys.take();
        }
    }

    fn refuse_in_transaction(&mut self, error: &str, out: &mut Vec<u8>) {
        if let Some(transaction) = &mut self.transaction {
            transaction.refused = true;
        }
        resp::encode_error(error, out);
    }

    /// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, as Redis answers it: the
    /// protocol switches to the version asked (2 or 3), and the reply describes the server, as a
    /// map in RESP3 and as a flat array in RESP2. No authentication is configured, so AUTH is
    /// accepted as Redis accepts it for its default user without a password.
    fn hello(&mut self, status: &Status, out: &mut Vec<u8>) {
        let args = &self.args;
        let mut resp3 = self.resp3;
        let mut name = None;
        let mut credentials = None;
        if let Some(version) = args.get(1) {
            match version {
                b"2" => resp3 = false,
                b"3" => resp3 = true,
                _ if std::str::from_utf8(version).ok().and_then(|text| text.parse::<i64>().ok()).is_some() => {
                    return resp::encode_error("NOPROTO unsupported protocol version", out);
                }
                _ => return resp::encode_error("ERR Protocol version is not an integer or out of range", out),
            }
            let mut at = 2;
            while let Some(option) = args.get(at) {
                let left = args.len() - at - 1;
                if option.eq_ignore_ascii_case(b"AUTH") && left >= 2 {
                    credentials = Some((String::from_utf8_lossy(&args[at + 1]).into_owned(), args[at + 2].to_vec()));
                    at += 3;
                } else if option.eq_ignore_ascii_case(b"SETNAME") && left >= 1 {
                    name = Some(args[at + 1].to_vec());
                    at += 2;
                } else {
                    let option = String::from_utf8_lossy(option).into_owned();
                    return resp::encode_error(&format!("ERR Syntax error in HELLO option '{option}'"), out);
                }
            }
        }
        match credentials {
            Some((user, password)) if !self.authenticate(&user, &password) => return resp::encode_error(WRONGPASS, out),
            Some(_) => {}
            None if self.role().is_none() => {
                return resp::encode_error(
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                    out,
                );
            }
            None => {}
        }
        self.resp3 = resp3;
        if name.is_some() {
            self.name = name;
        }
        let role = if status.role == raft::Role::Leader { "master" } else { "replica" };
        let version = env!("CARGO_PKG_VERSION");
        let fields: [(&str, Field); 7] = [
            ("server", Field::Text("raftkv")),
            ("version", Field::Text(version)),
            ("proto", Field::Number(if resp3 { 3 } else { 2 })),
            ("id", Field::Number(self.id)),
            ("mode", Field::Text("standalone")),
            ("role", Field::Text(role)),
            ("modules", Field::Empty),
        ];
        if resp3 {
            resp::encode_map_len(fields.len(), out);
        } else {
            resp::encode_array_len(2 * fields.len(), out);
        }
        for (key, value) in fields {
            resp::encode_bulk(key.as_bytes(), out);
            match value {
                Field::Text(text) => resp::encode_bulk(text.as_bytes(), out),
                Field::Number(number) => resp::encode_integer(i64::try_from(number).unwrap_or(i64::MAX), out),
                Field::Empty => resp::encode_array_len(0, out),
            }
        }
    }
}

/// Whether a command is for `to_request` (a data command, or an unknown one it refuses) rather
/// than one the connection answers itself.
fn is_data_command(name: &str) -> bool {
    !matches!(name, "PING" | "INFO" | "HELLO" | "ECHO" | "SELECT" | "COMMAND" | "CONFIG" | "CLIENT" | "AUTH" | "QUIT" | "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH")
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// A value in HELLO's reply.
enum Field {
    Text(&'static str),
    Number(u64),
    Empty,
}

/// A text reply as Redis gives it: a bulk string, or in RESP3 a verbatim string (`=…txt:`).
pub(crate) fn text_reply(text: &[u8], resp3: bool, out: &mut Vec<u8>) {
    if resp3 {
        resp::encode_verbatim_text(text, out);
    } else {
        resp::encode_bulk(text, out);
    }
}

/// The Redis version whose protocol and commands raftkv follows, as INFO's `redis_version` (what
/// compatible servers report; `raftkv_version` is raftkv's own).
const REDIS_VERSION: &str = "7.2.0";

/// INFO's text: Redis's sections (`# Server`, `# Clients`, `# Memory`, `# Persistence` — the log's
/// last write, `disk_full:1` while writes are refused for want of space —, `# Replication` — with the
/// node's Raft state: `role:leader|follower|candidate`, ids, term and indexes — and `# Keyspace`),
/// all of them or those named (`INFO server keyspace`; `default`, `all` and `everything` mean all).
fn info(node: &NodeView, args: &resp::ArgBuf) -> String {
    let status = &node.status;
    let role = match status.role {
        raft::Role::Leader => "leader",
        raft::Role::Follower => "follower",
        raft::Role::PreCandidate | raft::Role::Candidate => "candidate",
    };
    let write_status = if node.disk_full { "err" } else { "ok" };
    let sections: [(&str, String); 6] = [
        (
            "server",
            format!(
                "redis_version:{REDIS_VERSION}\r\nraftkv_version:{}\r\nredis_mode:standalone\r\narch_bits:64\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                node.uptime_seconds,
                node.uptime_seconds / 86_400
            ),
        ),
        ("clients", format!("connected_clients:{}\r\n", node.clients)),
        (
            "memory",
            format!(
                "used_memory:{}\r\nused_memory_human:{:.2}M\r\nused_memory_dataset:{}\r\nmaxmemory:{}\r\nmaxmemory_policy:noeviction\r\nmem_clients_normal:{}\r\nmaxmemory_clients:{}\r\n",
                node.used_memory,
                node.used_memory as f64 / (1 << 20) as f64,
                node.data_bytes,
                node.max_memory,
                node.client_buffer_bytes,
                node.max_client_memory
            ),
        ),
        (
            "persistence",
            format!("loading:0\r\naof_enabled:1\r\naof_last_write_status:{write_status}\r\ndisk_full:{}\r\n", u8::from(node.disk_full)),
        ),
        (
            "replication",
            format!(
                "role:{role}\r\nnode_id:{}\r\nleader_id:{}\r\nterm:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_log_index:{}\r\nsnapshot_index:{}\r\nvoters:{}\r\nlearners:{}\r\nvoter:{}\r\n",
                status.id.0,
                status.leader.map_or(0, |leader| leader.0),
                status.term.0,
                status.commit.0,
                status.applied.0,
                status.last_index.0,
                status.snapshot_index.0,
                node.voters,
                node.learners,
                if node.voter { "yes" } else { "no" },
            ),
        ),
        // Redis lists only databases that hold keys.
        ("keyspace", if node.keys > 0 { format!("db0:keys={},expires={},avg_ttl=0\r\n", node.keys, node.expires) } else { String::new() }),
    ];
    let everything = args.len() == 1 || args.iter().skip(1).any(|name| [&b"default"[..], b"all", b"everything"].iter().any(|all| name.eq_ignore_ascii_case(all)));
    let mut text = String::new();
    for (name, body) in sections {
        if everything || args.iter().skip(1).any(|asked| asked.eq_ignore_ascii_case(name.as_bytes())) {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            let mut title = name.to_string();
            title[..1].make_ascii_uppercase();
            text.push_str(&format!("# {title}\r\n{body}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Users;
    use raft::NodeId;

    fn session() -> Session {
        Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(0)))
    }

    fn status() -> Status {
        let config = raft::Config::new(NodeId(1), vec![NodeId(1)]);
        raft::Node::new(config, raft::Restored::default()).expect("a valid node").status()
    }

    fn feed(session: &mut Session, bytes: &[u8]) -> Vec<Step> {
        session.read_space().extend_from_slice(bytes);
        session.parse(&NodeView::of(status()))
    }

    /// The reply to one command, which the session answers itself.
    fn first_reply(session: &mut Session, words: &[&str]) -> String {
        let mut wire = Vec::new();
        resp::encode_array_of_bulks(words, &mut wire);
        String::from_utf8_lossy(reply(&feed(session, &wire)[0])).into_owned()
    }

    fn reply(step: &Step) -> &[u8] {
        match step {
            Step::Reply(bytes) => bytes,
            Step::Request { request, .. } | Step::Watch { request, .. } => panic!("expected a reply, got {request:?}"),
        }
    }

    fn command(session: &mut Session, words: &[&str]) -> Step {
        let mut wire = Vec::new();
        resp::encode_array_of_bulks(words, &mut wire);
        let mut steps = feed(session, &wire);
        assert_eq!(steps.len(), 1);
        steps.remove(0)
    }

    #[test]
    fn multi_queues_commands_and_exec_makes_them_one_write() {
        let mut session = session();
        assert_eq!(reply(&command(&mut session, &["EXEC"])), b"-ERR EXEC without MULTI\r\n");
        assert_eq!(reply(&command(&mut session, &["MULTI"])), b"+OK\r\n");
        assert_eq!(reply(&command(&mut session, &["MULTI"])), b"-ERR MULTI calls can not be nested\r\n");
        for words in [&["SET", "k", "1"][..], &["INCR", "n"], &["GET", "k"], &["MGET", "k", "n"]] {
            assert_eq!(reply(&command(&mut session, words)), b"+QUEUED\r\n", "{words:?}");
        }
        let Step::Request { request: Request::Write(write), .. } = command(&mut session, &["EXEC"]) else { panic!("EXEC is one write") };
        let entry = kv::CommandRef::decode(&write.data).expect("an entry");
        let kv::OpRef::Multi { ops, .. } = entry.op else { panic!("a transaction: {entry:?}") };
        assert_eq!(ops.len(), 4);
        assert_eq!(reply(&command(&mut session, &["DISCARD"])), b"-ERR DISCARD without MULTI\r\n");
    }

    #[test]
    fn watch_reads_where_the_log_is_and_exec_runs_only_if_its_keys_did_not_change_after() {
        let mut session = session();
        assert!(matches!(command(&mut session, &["WATCH", "k", "m"]), Step::Watch { request: Request::ReadPoint, .. }));
        let mut out = Vec::new();
        session.watch_answered(Answer::Count(41), &mut out);
        assert_eq!(out, b"+OK\r\n");
        command(&mut session, &["WATCH", "n"]);
        session.watch_answered(Answer::Count(57), &mut out);
        command(&mut session, &["MULTI"]);
        command(&mut session, &["INCR", "k"]);
        let Step::Request { request: Request::Write(write), .. } = command(&mut session, &["EXEC"]) else { panic!("EXEC is one write") };
        let entry = kv::CommandRef::decode(&write.data).expect("an entry");
        let kv::OpRef::Multi { watched, .. } = entry.op else { panic!("a transaction") };
        assert_eq!(watched, kv::WatchedRef::Since(vec![(&b"k"[..], 41), (&b"m"[..], 41), (&b"n"[..], 57)]));
        // EXEC forgets the watches; a WATCH that could not read makes the next EXEC run nothing.
        command(&mut session, &["WATCH", "k"]);
        let mut out = Vec::new();
        session.watch_answered(Answer::Error("timeout".into()), &mut out);
        assert_eq!(out, b"-ERR timeout\r\n");
        command(&mut session, &["MULTI"]);
        command(&mut session, &["INCR", "k"]);
        assert_eq!(reply(&command(&mut session, &["EXEC"])), b"*-1\r\n");
        command(&mut session, &["MULTI"]);
        assert!(matches!(command(&mut session, &["EXEC"]), Step::Request { .. }), "the failed watch was forgotten by EXEC");
    }

    #[test]
    fn a_command_that_cannot_be_queued_aborts_the_transaction() {
        let mut session = session();
        command(&mut session, &["MULTI"]);
        assert_eq!(reply(&command(&mut session, &["SET", "k", "1"])), b"+QUEUED\r\n");
        assert_eq!(reply(&command(&mut session, &["INCRBY", "n", "x"])), b"+QUEUED\r\n", "bad arguments are EXEC's errors, as in Redis");
        assert!(reply(&command(&mut session, &["INCRBY", "n"])).starts_with(b"-ERR wrong number of arguments"));
        assert!(reply(&command(&mut session, &["KEYS", "*"])).starts_with(b"-ERR KEYS inside MULTI is not supported"));
        assert_eq!(reply(&command(&mut session, &["EXEC"])), b"-EXECABORT Transaction discarded because of previous errors.\r\n");
        // DISCARD forgets the queue; WATCH says plainly that it is missing.
        command(&mut session, &["MULTI"]);
        command(&mut session, &["SET", "k", "1"]);
        assert_eq!(reply(&command(&mut session, &["DISCARD"])), b"+OK\r\n");
        assert!(matches!(command(&mut session, &["WATCH", "k"]), Step::Watch { request: Request::ReadPoint, .. }));
        assert!(matches!(command(&mut session, &["GET", "k"]), Step::Request { request: Request::Get { .. }, .. }), "out of the transaction");
        // A transaction is bounded as one command is: its entry must fit in a peer frame.
        let mut session = Session::new(resp::Limits { max_bulk_bytes: 100, ..resp::Limits::default() }, Arc::new(AtomicU64::new(0)));
        command(&mut session, &["MULTI"]);
        let value = "v".repeat(40);
        assert_eq!(reply(&command(&mut session, &["SET", "a", &value])), b"+QUEUED\r\n");
        assert!(reply(&command(&mut session, &["SET", "b", &value])).starts_with(b"-ERR transaction too large"));
        assert!(reply(&command(&mut session, &["EXEC"])).starts_with(b"-EXECABORT"));
        // So are the keys WATCH keeps for EXEC, across WATCH commands.
        let key = "k".repeat(40);
        assert!(matches!(command(&mut session, &["WATCH", &key]), Step::Watch { .. }));
        session.watch_answered(Answer::Count(1), &mut Vec::new());
        assert!(matches!(command(&mut session, &["WATCH", &key]), Step::Watch { .. }), "a second, in flight");
        assert!(reply(&command(&mut session, &["WATCH", &key])).starts_with(b"-ERR too many watched keys"));
        assert_eq!(reply(&command(&mut session, &["UNWATCH"])), b"+OK\r\n");
    }

    /// WATCH, MULTI, a write and EXEC pipelined in one read: EXEC is parsed before the WATCH is
    /// answered, and still carries its keys, as read no later than the index the node had applied
    /// (before, it ran without them: a change between WATCH and EXEC did not abort it). The WATCH's
    /// late answer then adds nothing to the next transaction.
    #[test]
    fn a_pipelined_watch_counts_for_the_exec_behind_it() {
        let mut session = session();
        let mut wire = Vec::new();
        for words in [&["WATCH", "k"][..], &["MULTI"], &["SET", "k", "v"], &["EXEC"]] {
            resp::encode_array_of_bulks(words, &mut wire);
        }
        session.read_space().extend_from_slice(&wire);
        let view = NodeView { applied_index: 33, ..NodeView::of(status()) };
        let steps = session.parse(&view);
        assert!(matches!(&steps[0], Step::Watch { .. }), "{steps:?}");
        let Some(Step::Request { request: Request::Write(write), .. }) = steps.last() else { panic!("EXEC is one write: {steps:?}") };
        let entry = kv::CommandRef::decode(&write.data).expect("an entry");
        let kv::OpRef::Multi { watched, .. } = entry.op else { panic!("a transaction") };
        assert_eq!(watched, kv::WatchedRef::Since(vec![(&b"k"[..], 33)]));
        let mut out = Vec::new();
        session.watch_answered(Answer::Count(40), &mut out);
        assert_eq!(out, b"+OK\r\n");
        command(&mut session, &["MULTI"]);
        let Step::Request { request: Request::Write(write), .. } = command(&mut session, &["EXEC"]) else { panic!("EXEC is one write") };
        let entry = kv::CommandRef::decode(&write.data).expect("an entry");
        assert!(matches!(entry.op, kv::OpRef::Multi { watched: kv::WatchedRef::Since(ref keys), .. } if keys.is_empty()), "nothing left over: {:?}", entry.op);
    }

    #[test]
    fn commands_split_anywhere_come_out_whole_and_in_order() {
        let input = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n";
        for split in 0..=input.len() {
            let mut s = session();
            let mut steps = feed(&mut s, &input[..split]);
            steps.extend(feed(&mut s, &input[split..]));
            assert_eq!(steps.len(), 3, "split at {split}");
            assert_eq!(reply(&steps[0]), b"+PONG\r\n");
            assert!(matches!(&steps[1], Step::Request { request: Request::Get { key }, resp3: false } if key == b"k"));
            assert_eq!(reply(&steps[2]), b"$1\r\nx\r\n");
            assert!(!s.closing());
        }
    }

    #[test]
    fn a_protocol_error_answers_then_closes_and_ignores_the_rest() {
        let mut s = session();
        let steps = feed(&mut s, b"*1\r\n$4\r\nPING\r\n*x\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(steps.len(), 2);
        assert!(reply(&steps[1]).starts_with(b"-ERR Protocol error"));
        assert!(s.closing());
        assert!(feed(&mut s, b"*1\r\n$4\r\nPING\r\n").is_empty());
    }

    /// A large command arriving in small reads is not scanned again from its start on each one.
    #[test]
    fn a_trickled_command_is_scanned_about_once() {
        let keys: Vec<String> = (0..20_000).map(|k| format!("key{k}")).collect();
        let mut words = vec!["DEL"];
        words.extend(keys.iter().map(String::as_str));
        let mut input = Vec::new();
        resp::encode_array_of_bulks(&words, &mut input);
        let mut s = session();
        let mut steps = Vec::new();
        for piece in input.chunks(5) {
            steps.extend(feed(&mut s, piece));
        }
        assert!(matches!(&steps[..], [Step::Request { request: Request::Write(_), .. }]), "{steps:?}");
        assert!(s.scanned_bytes() <= 3 * input.len() as u64, "{} scanned for {} bytes", s.scanned_bytes(), input.len());
    }

    #[test]
    fn quit_answers_ok_and_closes() {
        let mut s = session();
        let steps = feed(&mut s, b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(steps.len(), 1);
        assert_eq!(reply(&steps[0]), b"+OK\r\n");
        assert!(s.closing());
    }

    #[test]
    fn commands_over_the_value_limit_are_refused_before_they_become_requests() {
        let limits = resp::Limits { max_bulk_bytes: 100, ..resp::Limits::default() };
        let mut s = Session::new(limits, Arc::new(AtomicU64::new(0)));
        let command = |key: usize, value: usize| {
            let mut wire = Vec::new();
            resp::encode_array_of_bulks(&["SET", &"k".repeat(key), &"v".repeat(value)], &mut wire);
            wire
        };
        let steps = feed(&mut s, &command(1, 90));
        assert!(matches!(&steps[..], [Step::Request { request: Request::Write(_), .. }]), "{steps:?}");
        // Key and value within the limit one by one, not together.
        let steps = feed(&mut s, &command(50, 60));
        let text = String::from_utf8_lossy(reply(&steps[0])).into_owned();
        assert!(text.starts_with("-ERR command too large: its arguments take 113 bytes, the limit is 100"), "{text}");
        assert!(!s.closing());
        // One argument over it: the parser refuses it as soon as its length is read.
        let steps = feed(&mut s, &command(1, 101)[..30]);
        assert!(reply(&steps[0]).starts_with(b"-ERR Protocol error: bulk too large (101 > 100)"));
        assert!(s.closing());
    }

    #[test]
    fn hello_switches_the_protocol_and_describes_the_server() {
        let mut s = session();
        let command = |words: &[&str]| {
            let mut wire = Vec::new();
            resp::encode_array_of_bulks(words, &mut wire);
            wire
        };
        // HELLO 3 as redis-py sends it, then a GET on the same pipeline: answered in RESP3.
        let mut input = command(&["HELLO", "3"]);
        input.extend(command(&["GET", "k"]));
        let steps = feed(&mut s, &input);
        let text = String::from_utf8_lossy(reply(&steps[0])).into_owned();
        assert!(text.starts_with("%7\r\n$6\r\nserver\r\n$6\r\nraftkv\r\n$7\r\nversion\r\n"), "{text}");
        assert!(text.contains("$5\r\nproto\r\n:3\r\n") && text.ends_with("$7\r\nmodules\r\n*0\r\n"), "{text}");
        assert!(matches!(&steps[1], Step::Request { resp3: true, .. }));
        // Back to RESP2, with AUTH and SETNAME: a flat array.
        let steps = feed(&mut s, &command(&["HELLO", "2", "AUTH", "default", "secret", "SETNAME", "me"]));
        assert!(reply(&steps[0]).starts_with(b"*14\r\n$6\r\nserver\r\n"));
        assert_eq!(s.name.as_deref(), Some(&b"me"[..]));
        let steps = feed(&mut s, &command(&["GET", "k"]));
        assert!(matches!(&steps[0], Step::Request { resp3: false, .. }));
        // Versions it does not speak, and bad options, as Redis answers them.
        assert!(reply(&feed(&mut s, &command(&["HELLO", "4"]))[0]).starts_with(b"-NOPROTO"));
        assert!(reply(&feed(&mut s, &command(&["HELLO", "x"]))[0]).starts_with(b"-ERR Protocol version is not an integer"));
        assert!(reply(&feed(&mut s, &command(&["HELLO", "3", "AUTH", "u"]))[0]).starts_with(b"-ERR Syntax error in HELLO option 'AUTH'"));
        assert!(matches!(&feed(&mut s, &command(&["GET", "k"]))[0], Step::Request { resp3: false, .. }), "a refused HELLO changes nothing");
        // HELLO alone keeps the protocol and describes the server.
        assert!(reply(&feed(&mut s, &command(&["HELLO"]))[0]).starts_with(b"*14\r\n"));
    }

    #[test]
    fn with_users_a_connection_authenticates_first_and_roles_hold() {
        let users = Users::parse(Some("pw\n"), Some("reader readonly rpw\n")).expect("valid");
        let mut s = session();
        s.set_users(Arc::new(users));
        let command = |words: &[&str]| {
            let mut wire = Vec::new();
            resp::encode_array_of_bulks(words, &mut wire);
            wire
        };
        let first = |s: &mut Session, words: &[&str]| {
            let steps = feed(s, &command(words));
            match &steps[0] {
                Step::Reply(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Step::Request { .. } | Step::Watch { .. } => "request".to_string(),
            }
        };
        assert_eq!(first(&mut s, &["GET", "k"]), "-NOAUTH Authentication required.\r\n");
        assert_eq!(first(&mut s, &["PING"]), "-NOAUTH Authentication required.\r\n");
        assert!(first(&mut s, &["HELLO", "3"]).starts_with("-NOAUTH HELLO must be called"));
        assert!(first(&mut s, &["AUTH", "wrong"]).starts_with("-WRONGPASS"));
        assert!(first(&mut s, &["HELLO", "3", "AUTH", "default", "wrong"]).starts_with("-WRONGPASS"));
        assert_eq!(s.take_auth_failures(), 2);
        assert_eq!(s.take_auth_failures(), 0);
        // The reader: reads go, writes are refused by name.
        assert!(first(&mut s, &["HELLO", "3", "AUTH", "reader", "rpw"]).starts_with("%7"));
        assert_eq!(first(&mut s, &["GET", "k"]), "request");
        assert_eq!(first(&mut s, &["SET", "k", "v"]), "-NOPERM User reader has no permissions to run the 'set' command\r\n");
        // The default user, by AUTH with the password alone: writes go.
        assert_eq!(first(&mut s, &["AUTH", "pw"]), "+OK\r\n");
        assert_eq!(first(&mut s, &["SET", "k", "v"]), "request");
        // Without users, AUTH is a configuration error, as in Redis.
        let mut open = session();
        assert!(first(&mut open, &["AUTH", "x"]).starts_with("-ERR AUTH <password> called without any password configured"));
        assert_eq!(first(&mut open, &["SET", "k", "v"]), "request");
    }

    #[test]
    fn info_has_redis_sections_and_the_raft_state() {
        let mut s = session();
        let steps = feed(&mut s, b"*1\r\n$4\r\nINFO\r\n");
        let text = String::from_utf8_lossy(reply(&steps[0])).into_owned();
        assert!(text.contains("# Replication\r\nrole:follower\r\nnode_id:1\r\n"), "{text}");
        assert!(text.contains("applied_index:0\r\n"), "{text}");
        assert!(text.contains("# Server\r\nredis_version:7.2.0\r\nraftkv_version:"), "{text}");
        assert!(text.contains("# Clients\r\nconnected_clients:0\r\n") && text.contains("# Memory\r\nused_memory:0\r\n"), "{text}");
        assert!(text.ends_with("# Keyspace\r\n\r\n"), "no keys, no db0 line (then the bulk's own CRLF): {text}");
        let view = NodeView { keys: 3, clients: 2, used_memory: 1 << 20, uptime_seconds: 90_000, ..NodeView::of(status()) };
        s.read_space().extend_from_slice(b"*3\r\n$4\r\nINFO\r\n$8\r\nKEYSPACE\r\n$6\r\nserver\r\n");
        let steps = s.parse(&view);
        let text = String::from_utf8_lossy(reply(&steps[0])).into_owned();
        assert!(text.contains("uptime_in_days:1\r\n") && text.contains("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"), "{text}");
        assert!(!text.contains("# Replication"), "only the sections asked for: {text}");
    }

    /// After HELLO 3, text comes as Redis 7 sends it: INFO and CLIENT INFO as verbatim strings,
    /// COMMAND INFO's flags as a set.
    #[test]
    fn resp3_text_is_verbatim_and_flags_are_sets() {
        let mut s = session();
        first_reply(&mut s, &["HELLO", "3"]);
        let info = first_reply(&mut s, &["INFO", "server"]);
        let body = info.split_once("\r\n").map(|(_, body)| body).unwrap_or_default();
        assert!(info.starts_with(&format!("={}\r\ntxt:# Server\r\n", body.len() - 2)), "{info}");
        assert!(first_reply(&mut s, &["CLIENT", "INFO"]).starts_with("=") && first_reply(&mut s, &["CLIENT", "INFO"]).contains("txt:id="));
        assert!(first_reply(&mut s, &["COMMAND", "INFO", "get"]).starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n~2\r\n+readonly\r\n"));
        first_reply(&mut s, &["HELLO", "2"]);
        assert!(first_reply(&mut s, &["INFO", "server"]).starts_with("$"));
        assert!(first_reply(&mut s, &["COMMAND", "INFO", "get"]).starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n"));
    }
}
