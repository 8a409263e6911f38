//! What a client asks a node, and what it gets back: the mapping between RESP commands and the
//! store's operations, and the compact encoding used when a follower forwards a request to the
//! leader over the peer connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kv::{CommandRef, ExpireIf, Expiry, OpRef, Reply, SetFlags};
use raft::codec::{put_varint, Reader};

/// A request as the Raft loop handles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A write, through the log, already encoded as its entry.
    Write(Write),
    /// A linearizable read (ReadIndex): the value of one key.
    Get { key: Vec<u8> },
    /// A linearizable read: how many of the keys exist.
    Exists { keys: Vec<Vec<u8>> },
    /// A linearizable read: each key's value (MGET).
    MGet { keys: Vec<Vec<u8>> },
    /// A linearizable read: the length of a key's value, 0 if missing (STRLEN).
    Strlen { key: Vec<u8> },
    /// A linearizable read: how many keys there are (DBSIZE).
    DbSize,
    /// A linearizable read: the keys matching a glob pattern (KEYS).
    Keys { pattern: Vec<u8> },
    /// A linearizable read: a key's type, `string` or `none` (TYPE).
    Type { key: Vec<u8> },
    /// A linearizable read: bytes `start..=end` of a value, negative positions counting from its
    /// end (GETRANGE, SUBSTR).
    GetRange { key: Vec<u8>, start: i64, end: i64 },
    /// A linearizable read: some key, or none if there are none (RANDOMKEY).
    RandomKey,
    /// A linearizable read: the key's value and version (VGET), `[nil, 0]` if it is missing.
    VGet { key: Vec<u8> },
    /// A linearizable read of nothing but its place in the log: the applied index of the state
    /// it reads (WATCH: EXEC then checks that its keys did not change after it).
    ReadPoint,
    /// A linearizable read: one page of SCAN (see `kv::Store::scan`), its keys filtered by
    /// `pattern` (MATCH) and, with `strings` false (TYPE other than string), emptied.
    Scan { cursor: u64, count: u64, pattern: Option<Vec<u8>>, strings: bool },
    /// A linearizable read: a key's time to live or deadline (TTL, PTTL, EXPIRETIME,
    /// PEXPIRETIME), by the log time.
    Ttl { key: Vec<u8>, unit: TtlUnit },
    /// A membership command, served by the leader (see `Admin`).
    Admin(Admin),
    /// RAFT.DIAL: from now on this node (only) dials member `id` at `address`.
    Dial { id: u64, address: String },
}

/// The membership commands (redisraft's names): served by the leader, answered once committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admin {
    /// RAFT.NODE ADD, PROMOTE, REMOVE.
    Change(raft::Change),
    /// RAFT.TRANSFER-LEADER: answered once the target leads.
    TransferLeader(raft::NodeId),
    /// RAFT.NODES: every member, as the leader sees it.
    Nodes,
}

impl From<raft::Change> for Admin {
    fn from(change: raft::Change) -> Admin {
        Admin::Change(change)
    }
}

impl Request {
    /// Whether it waits its turn like a write on its connection (writes and membership commands),
    /// rather than going in flight with the reads around it.
    pub fn orders_as_write(&self) -> bool {
        matches!(self, Request::Write(_) | Request::Admin(_) | Request::Dial { .. })
    }
}

/// How TTL and its kin answer: what is left, or the deadline, in seconds or milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlUnit {
    Seconds,
    Milliseconds,
    UnixSeconds,
    UnixMilliseconds,
}

impl TtlUnit {
    /// The answer for a key whose deadline is `deadline` (None: missing, Some(None): none),
    /// with Redis's -2 and -1, at log time `now`.
    pub fn answer(self, deadline: Option<Option<u64>>, now: u64) -> i64 {
        let Some(deadline) = deadline else { return -2 };
        let Some(at) = deadline else { return -1 };
        let millis = match self {
            TtlUnit::Seconds | TtlUnit::Milliseconds => at.saturating_sub(now),
            TtlUnit::UnixSeconds | TtlUnit::UnixMilliseconds => at,
        };
        let value = match self {
            TtlUnit::Seconds | TtlUnit::UnixSeconds => millis.saturating_add(500) / 1000,
            TtlUnit::Milliseconds | TtlUnit::UnixMilliseconds => millis,
        };
        i64::try_from(value).unwrap_or(i64::MAX)
    }

    fn code(self) -> u8 {
        match self {
            TtlUnit::Seconds => 0,
            TtlUnit::Milliseconds => 1,
            TtlUnit::UnixSeconds => 2,
            TtlUnit::UnixMilliseconds => 3,
        }
    }

    fn from_code(code: u8) -> Option<TtlUnit> {
        [TtlUnit::Seconds, TtlUnit::Milliseconds, TtlUnit::UnixSeconds, TtlUnit::UnixMilliseconds].get(usize::from(code)).copied()
    }
}

/// The outcome of a request.
#[derive(Clone, Debug)]
pub enum Answer {
    Reply(Reply),
    /// A GET's value, shared with the store (None: missing): `Reply::Value` without the copy, so
    /// that the answers a client does not read cost a reference each. Equal to that `Reply::Value`,
    /// and encoded as one.
    Value(Option<kv::SharedValue>),
    Count(u64),
    /// Nothing is known about a write's outcome; the message says why.
    Error(String),
}

impl Answer {
    /// The answer with a shared value copied out (`Value` as the `Reply::Value` it stands for).
    pub fn owned(self) -> Answer {
        match self {
            Answer::Value(value) => Answer::Reply(Reply::Value(value.map(|value| value.as_ref().to_vec()))),
            other => other,
        }
    }
}

impl PartialEq for Answer {
    fn eq(&self, other: &Answer) -> bool {
        match (self, other) {
            (Answer::Value(value), other) | (other, Answer::Value(value)) => match other {
                Answer::Value(theirs) => value.as_ref().map(AsRef::as_ref) == theirs.as_ref().map(AsRef::as_ref),
                Answer::Reply(Reply::Value(theirs)) => value.as_ref().map(AsRef::as_ref) == theirs.as_deref(),
                _ => false,
            },
            (Answer::Reply(mine), Answer::Reply(theirs)) => mine == theirs,
            (Answer::Count(mine), Answer::Count(theirs)) => mine == theirs,
            (Answer::Error(mine), Answer::Error(theirs)) => mine == theirs,
            _ => false,
        }
    }
}

impl Eq for Answer {}

/// A write as it goes into the log: the encoded command (`kv::CommandRef`), which is the entry's
/// data as is, and its tag (client id, sequence number). Client id 0 is untagged (a plain Redis
/// client): applied every time it commits, and numbered by the node that took it only so that its
/// caller is answered with its own result. Tagged writes (the project's own client) are applied
/// exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub tag: (u64, u64),
    pub data: Bytes,
    /// It sets a time to live relative to the log time: the leader brings the log time up to
    /// date (a clock entry) before it proposes this.
    pub timed: bool,
}

/// Room taken for encoded writes at a time: the entries of one connection share allocations of
/// this size instead of taking one each. Small enough that an idle connection's unused room, and
/// a chunk kept alive by one entry still in the log, cost little.
const ARENA_BYTES: usize = 16 * 1024;

/// Encodes a connection's writes into entries. Each entry is split off a shared buffer, so the
/// path from a client's request to the log (and on to the followers) allocates nothing per entry:
/// a new buffer once every `ARENA_BYTES`. An entry keeps its buffer alive until the log drops it.
pub struct WriteEncoder {
    arena: BytesMut,
    /// The node's value limit (`--max-value-bytes`): how long SETRANGE may make a value.
    pub max_value_bytes: u64,
    /// The node's counter for untagged writes (random high bits: unique per incarnation).
    untagged: Arc<AtomicU64>,
}

impl WriteEncoder {
    pub fn new(untagged: Arc<AtomicU64>) -> WriteEncoder {
        WriteEncoder { arena: BytesMut::new(), untagged, max_value_bytes: resp::Limits::default().max_bulk_bytes as u64 }
    }

    /// MULTI ... EXEC: the queued operations as one write, applied atomically at one index if
    /// no watched key changed after the log index WATCH read it at.
    pub fn transaction(&mut self, ops: &[kv::Op], watched: &[(Vec<u8>, u64)]) -> Request {
        let watched = kv::WatchedRef::Since(watched.iter().map(|(key, since)| (&key[..], *since)).collect());
        Request::Write(self.encode(0, 0, OpRef::Multi { ops: ops.iter().map(kv::Op::as_ref).collect(), watched }))
    }

    fn encode(&mut self, client_id: u64, seq: u64, op: OpRef<'_>) -> Write {
        let seq = if client_id == 0 { self.untagged.fetch_add(1, Ordering::Relaxed) + 1 } else { seq };
        let timed = op.needs_clock();
        let command = CommandRef { client_id, seq, op };
        let bound = command.encoded_len_bound();
        if self.arena.capacity() < bound {
            self.arena.reserve(bound.max(ARENA_BYTES));
        }
        command.encode_into(&mut self.arena);
        Write { tag: (client_id, seq), data: self.arena.split().freeze(), timed }
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Write(write) => {
                out.push(0);
                out.extend_from_slice(&write.data);
            }
            Request::Get { key } => {
                out.push(1);
                put_varint(&mut out, key.len() as u64);
                out.extend_from_slice(key);
            }
            Request::Exists { keys } | Request::MGet { keys } => {
                out.push(if matches!(self, Request::Exists { .. }) { 2 } else { 3 });
                put_varint(&mut out, keys.len() as u64);
                for key in keys {
                    put_varint(&mut out, key.len() as u64);
                    out.extend_from_slice(key);
                }
            }
            Request::Strlen { key } | Request::Keys { pattern: key } | Request::Type { key } | Request::VGet { key } => {
                out.push(match self {
                    Request::Strlen { .. } => 4,
                    Request::Keys { .. } => 6,
                    Request::VGet { .. } => 15,
                    _ => 7,
                });
                put_varint(&mut out, key.len() as u64);
                out.extend_from_slice(key);
            }
            Request::DbSize => out.push(5),
            Request::Admin(admin) => {
                out.push(12);
                let (code, id, address) = match admin {
                    Admin::Change(raft::Change::AddLearner { id, address }) => (0, id.0, address.as_str()),
                    Admin::Change(raft::Change::Promote { id }) => (1, id.0, ""),
                    Admin::Change(raft::Change::Remove { id }) => (2, id.0, ""),
                    Admin::TransferLeader(id) => (3, id.0, ""),
                    Admin::Nodes => (4, 0, ""),
                };
                out.push(code);
                put_varint(&mut out, id);
                put_varint(&mut out, address.len() as u64);
                out.extend_from_slice(address.as_bytes());
            }
            Request::Dial { id, address } => {
                out.push(13);
                put_varint(&mut out, *id);
                put_varint(&mut out, address.len() as u64);
                out.extend_from_slice(address.as_bytes());
            }
            Request::Ttl { key, unit } => {
                out.push(11);
                out.push(unit.code());
                put_varint(&mut out, key.len() as u64);
                out.extend_from_slice(key);
            }
            Request::RandomKey => out.push(9),
            Request::ReadPoint => out.push(14),
            Request::GetRange { key, start, end } => {
                out.push(10);
                put_varint(&mut out, key.len() as u64);
                out.extend_from_slice(key);
                out.extend_from_slice(&start.to_le_bytes());
                out.extend_from_slice(&end.to_le_bytes());
            }
            Request::Scan { cursor, count, pattern, strings } => {
                out.push(8);
                put_varint(&mut out, *cursor);
                put_varint(&mut out, *count);
                out.push(u8::from(*strings));
                out.push(u8::from(pattern.is_some()));
                if let Some(pattern) = pattern {
                    put_varint(&mut out, pattern.len() as u64);
                    out.extend_from_slice(pattern);
                }
            }
        }
        out
    }

    /// A forwarded request; a write's entry is a slice of `bytes`, not a copy.
    pub fn decode(bytes: &Bytes) -> Option<Request> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            0 => {
                let command = CommandRef::decode(rest).ok().filter(|command| command.op.is_write())?;
                Some(Request::Write(Write { tag: (command.client_id, command.seq), data: bytes.slice(1..), timed: command.op.needs_clock() }))
            }
            1 | 4 | 6 | 7 | 15 => {
                let mut reader = Reader::new(rest);
                let key = reader.bytes().ok()?.to_vec();
                reader.finish().ok()?;
                Some(match tag {
                    1 => Request::Get { key },
                    4 => Request::Strlen { key },
                    6 => Request::Keys { pattern: key },
                    15 => Request::VGet { key },
                    _ => Request::Type { key },
                })
            }
            2 | 3 => {
                let mut reader = Reader::new(rest);
                let count = reader.varint().ok()?;
                let mut keys = Vec::new();
                for _ in 0..count {
                    keys.push(reader.bytes().ok()?.to_vec());
                }
                reader.finish().ok()?;
                Some(if tag == 2 { Request::Exists { keys } } else { Request::MGet { keys } })
            }
            5 if rest.is_empty() => Some(Request::DbSize),
            12 | 13 => {
                let mut reader = Reader::new(rest);
                let code = if tag == 12 { reader.byte().ok()? } else { 5 };
                let id = raft::NodeId(reader.varint().ok()?);
                let address = String::from_utf8(reader.bytes().ok()?.to_vec()).ok()?;
                reader.finish().ok()?;
                Some(match code {
                    0 => Request::Admin(Admin::Change(raft::Change::AddLearner { id, address })),
                    1 => Request::Admin(Admin::Change(raft::Change::Promote { id })),
                    2 => Request::Admin(Admin::Change(raft::Change::Remove { id })),
                    3 => Request::Admin(Admin::TransferLeader(id)),
                    4 => Request::Admin(Admin::Nodes),
                    5 => Request::Dial { id: id.0, address },
                    _ => return None,
                })
            }
            11 => {
                let mut reader = Reader::new(rest);
                let unit = TtlUnit::from_code(reader.byte().ok()?)?;
                let key = reader.bytes().ok()?.to_vec();
                reader.finish().ok()?;
                Some(Request::Ttl { key, unit })
            }
            9 if rest.is_empty() => Some(Request::RandomKey),
            14 if rest.is_empty() => Some(Request::ReadPoint),
            10 => {
                let mut reader = Reader::new(rest);
                let key = reader.bytes().ok()?.to_vec();
                let mut number = || -> Option<i64> {
                    let mut bytes = [0u8; 8];
                    for byte in &mut bytes {
                        *byte = reader.byte().ok()?;
                    }
                    Some(i64::from_le_bytes(bytes))
                };
                let (start, end) = (number()?, number()?);
                reader.finish().ok()?;
                Some(Request::GetRange { key, start, end })
            }
            8 => {
                let mut reader = Reader::new(rest);
                let (cursor, count) = (reader.varint().ok()?, reader.varint().ok()?);
                let strings = reader.bool().ok()?;
                let pattern = if reader.bool().ok()? { Some(reader.bytes().ok()?.to_vec()) } else { None };
                reader.finish().ok()?;
                Some(Request::Scan { cursor, count, pattern, strings })
            }
            _ => None,
        }
    }
}

impl Request {
    /// The operation a queued command becomes in a transaction, if it can be one: every write, and
    /// the reads that have an operation in the log (GET, MGET, EXISTS, STRLEN).
    pub fn to_transaction_op(&self) -> Option<kv::Op> {
        Some(match self {
            Request::Write(write) => CommandRef::decode(&write.data).ok()?.op.to_owned(),
            Request::Get { key } => kv::Op::Get { key: key.clone() },
            Request::MGet { keys } => kv::Op::MGet { keys: keys.clone() },
            Request::Exists { keys } => kv::Op::Exists { keys: keys.clone() },
            Request::Strlen { key } => kv::Op::Strlen { key: key.clone() },
            Request::DbSize
            | Request::Keys { .. }
            | Request::Type { .. }
            | Request::Scan { .. }
            | Request::GetRange { .. }
            | Request::RandomKey
            | Request::ReadPoint
            | Request::VGet { .. }
            | Request::Ttl { .. }
            | Request::Admin(_)
            | Request::Dial { .. } => return None,
        })
    }
}

impl Answer {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Answer::Reply(reply) => {
                out.push(0);
                reply.encode(&mut out);
            }
            Answer::Value(value) => {
                out.push(0);
                Reply::Value(value.as_ref().map(|value| value.as_ref().to_vec())).encode(&mut out);
            }
            Answer::Count(count) => {
                out.push(1);
                put_varint(&mut out, *count);
            }
            Answer::Error(message) => {
                out.push(2);
                out.extend_from_slice(message.as_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        let (&tag, rest) = bytes.split_first()?;
        let mut reader = Reader::new(rest);
        let answer = match tag {
            0 => Answer::Reply(Reply::decode(&mut reader).ok()?),
            1 => Answer::Count(reader.varint().ok()?),
            2 => return Some(Answer::Error(String::from_utf8_lossy(rest).into_owned())),
            _ => return None,
        };
        reader.finish().ok()?;
        Some(answer)
    }

    /// The RESP reply a Redis client expects for this answer; `resp3`: on a connection that said
    /// `HELLO 3` (nil is written `_`).
    pub fn to_resp(&self, out: &mut Vec<u8>, resp3: bool) {
        match self {
            Answer::Reply(reply) => reply_to_resp(reply, out, resp3),
            Answer::Value(Some(value)) => resp::encode_bulk(value.as_ref(), out),
            Answer::Value(None) if resp3 => resp::encode_null(out),
            Answer::Value(None) => resp::encode_nil(out),
            Answer::Count(count) => resp::encode_integer(i64::try_from(*count).unwrap_or(i64::MAX), out),
            Answer::Error(message) => resp::encode_error(&format!("ERR {message}"), out),
        }
    }
}

/// A store's reply as Redis writes it; `resp3`: on a connection that said `HELLO 3` (nil is `_`).
fn reply_to_resp(reply: &Reply, out: &mut Vec<u8>, resp3: bool) {
    let nil = |out: &mut Vec<u8>| if resp3 { resp::encode_null(out) } else { resp::encode_nil(out) };
    match reply {
        Reply::Value(Some(value)) => resp::encode_bulk(value, out),
        Reply::Value(None) => nil(out),
        Reply::Done => resp::encode_simple("OK", out),
        Reply::Length(length) | Reply::Removed(length) => resp::encode_integer(i64::try_from(*length).unwrap_or(i64::MAX), out),
        Reply::Integer(value) => resp::encode_integer(*value, out),
        Reply::Values(values) => {
            resp::encode_array_len(values.len(), out);
            for value in values {
                match value {
                    Some(value) => resp::encode_bulk(value, out),
                    None => nil(out),
                }
            }
        }
        Reply::Error(message) => resp::encode_error(message, out),
        Reply::Status(status) => resp::encode_simple(status, out),
        Reply::Scan { cursor, keys } => {
            resp::encode_array_len(2, out);
            resp::encode_bulk(cursor.to_string().as_bytes(), out);
            resp::encode_array_len(keys.len(), out);
            for key in keys {
                resp::encode_bulk(key, out);
            }
        }
        Reply::Multi(replies) => {
            resp::encode_array_len(replies.len(), out);
            for reply in replies {
                reply_to_resp(reply, out, resp3);
            }
        }
        // EXEC's "nothing ran": the null array of RESP2, the null of RESP3.
        Reply::Aborted if resp3 => resp::encode_null(out),
        Reply::Aborted => out.extend_from_slice(b"*-1\r\n"),
    }
}

/// SET's options (NX, XX, GET, KEEPTTL, EX, PX, EXAT, PXAT) as its flags and time to live.
fn set_options(options: &[&[u8]]) -> Result<(u8, Expiry), CommandError> {
    let (mut flags, mut expiry) = (0, None);
    let mut at = 0;
    while at < options.len() {
        let option = options[at].to_ascii_uppercase();
        match &option[..] {
            b"NX" => flags |= SetFlags::ONLY_NEW,
            b"XX" => flags |= SetFlags::ONLY_EXISTING,
            b"GET" => flags |= SetFlags::GET,
            b"KEEPTTL" if expiry.is_none() => expiry = Some(Expiry::Keep),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if expiry.is_none() && at + 1 < options.len() => {
                at += 1;
                expiry = Some(time_to_live(&option, options[at], "set")?);
            }
            _ => return Err(CommandError::Syntax),
        }
        at += 1;
    }
    if flags & SetFlags::ONLY_NEW != 0 && flags & SetFlags::ONLY_EXISTING != 0 {
        return Err(CommandError::Syntax);
    }
    Ok((flags, expiry.unwrap_or(Expiry::Clear)))
}

/// A time to live given as `unit` (EX, PX, EXAT, PXAT) and `number`, as Redis checks it for
/// `command`: a positive integer that stays within 64 bits in milliseconds.
fn time_to_live(unit: &[u8], number: &[u8], command: &str) -> Result<Expiry, CommandError> {
    let number = kv::parse_integer(number).ok_or(CommandError::NotAnInteger)?;
    let invalid = || CommandError::InvalidExpireTime(command.to_string());
    let positive = u64::try_from(number).ok().filter(|&number| number > 0).ok_or_else(invalid)?;
    let millis = |number: u64, seconds: bool| if seconds { number.checked_mul(1000).ok_or_else(invalid) } else { Ok(number) };
    Ok(match unit {
        b"EX" | b"PX" => Expiry::After(millis(positive, unit == b"EX")?),
        _ => Expiry::At(millis(positive, unit == b"EXAT")?),
    })
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: the time (any integer; one in the past removes the key)
/// and the NX, XX, GT, LT conditions.
fn expire_op<'a>(name: &str, key: &'a [u8], time: &[u8], options: &[&[u8]]) -> Result<OpRef<'a>, CommandError> {
    let number = kv::parse_integer(time).ok_or(CommandError::NotAnInteger)?;
    let command = name.to_lowercase();
    let seconds = name == "EXPIRE" || name == "EXPIREAT";
    let millis = if seconds { number.checked_mul(1000) } else { Some(number) }.ok_or_else(|| CommandError::InvalidExpireTime(command.clone()))?;
    let expiry = match (name.ends_with("AT"), u64::try_from(millis)) {
        (true, Ok(at)) => Expiry::At(at),
        (false, Ok(after)) => Expiry::After(after),
        // Already past: the key is removed (a deadline of 0 is always past).
        (_, Err(_)) => Expiry::At(0),
    };
    let mut condition = 0;
    for option in options {
        condition |= match &option.to_ascii_uppercase()[..] {
            b"NX" => ExpireIf::NONE_SET,
            b"XX" => ExpireIf::SET,
            b"GT" => ExpireIf::LATER,
            b"LT" => ExpireIf::EARLIER,
            _ => return Err(CommandError::Message(format!("ERR Unsupported option {}", String::from_utf8_lossy(option)))),
        };
    }
    if condition & ExpireIf::NONE_SET != 0 && condition != ExpireIf::NONE_SET {
        return Err(CommandError::Message("ERR NX and XX, GT or LT options at the same time are not compatible".into()));
    }
    if condition & ExpireIf::LATER != 0 && condition & ExpireIf::EARLIER != 0 {
        return Err(CommandError::Message("ERR GT and LT options at the same time are not compatible".into()));
    }
    Ok(OpRef::Expire { key, expiry, condition })
}

/// A node id argument: an integer from 1.
fn node_id(arg: &[u8]) -> Result<raft::NodeId, CommandError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|&id| id >= 1)
        .map(raft::NodeId)
        .ok_or_else(|| CommandError::Message(format!("ERR invalid node id '{}': ids are integers from 1", String::from_utf8_lossy(arg))))
}

/// A peer address argument, `host:port`.
fn address(arg: &[u8]) -> Result<String, CommandError> {
    let text = std::str::from_utf8(arg).ok().filter(|text| text.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()));
    text.map(str::to_string).ok_or_else(|| CommandError::Message(format!("ERR invalid address '{}': expected host:port", String::from_utf8_lossy(arg))))
}

/// The prefix by which the project's own client tags a write for exactly-once application:
/// `TAGGED <client-id> <seq> SET key value` (also APPEND and DEL).
pub const TAG_COMMAND: &[u8] = b"TAGGED";

/// The commands a node knows, by their upper-case names.
const KNOWN: [&str; 69] = [
    "GET", "SET", "APPEND", "DEL", "EXISTS", "TAGGED", "PING", "INFO", "COMMAND", "CONFIG", "CLIENT", "SELECT", "QUIT", "HELLO", "ECHO", "AUTH", "INCR", "DECR",
    "INCRBY", "DECRBY", "SETNX", "GETSET", "GETDEL", "MGET", "MSET", "MSETNX", "STRLEN", "DBSIZE", "UNLINK", "KEYS", "TYPE", "TOUCH", "FLUSHDB", "FLUSHALL",
    "RENAME", "RENAMENX", "SCAN", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "GETRANGE", "SUBSTR", "SETRANGE", "INCRBYFLOAT", "COPY", "RANDOMKEY",
    "SETEX", "PSETEX", "GETEX", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME",
    "RAFT.NODE", "RAFT.NODES", "RAFT.TRANSFER-LEADER", "RAFT.DIAL", "VGET", "VSET", "VDEL", "DELEX", "DELIFEQ",
];

/// A command's name as one of the known ones (Redis names are case-insensitive), without
/// allocating an upper-case copy per request; "" when it is not known.
pub fn command_name(arg: &[u8]) -> &'static str {
    KNOWN.iter().find(|name| arg.eq_ignore_ascii_case(name.as_bytes())).copied().unwrap_or("")
}

/// Why a RESP command cannot become a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    WrongArity(String),
    /// The command's name, and its first arguments as Redis quotes them in the error.
    Unknown { name: String, args: String },
    BadTag,
    NotAnInteger,
    DecrementOverflow,
    SameObject,
    NotAFloat,
    OffsetOutOfRange,
    Syntax,
    InvalidCursor,
    /// An option raftkv does not have yet, named.
    Unsupported(String),
    /// A time to live out of range, for this command.
    InvalidExpireTime(String),
    /// Redis's own text.
    Message(String),
}

/// Redis's unknown-command error: the name (128 bytes at most) and the first arguments, each
/// quoted and followed by a space, while the text of them is under 128 bytes.
fn unknown_command(args: &resp::ArgBuf, first: usize) -> CommandError {
    let text = |bytes: &[u8], at_most: usize| String::from_utf8_lossy(&bytes[..bytes.len().min(at_most)]).into_owned();
    let name = text(args.get(first).unwrap_or_default(), 128);
    let mut quoted = String::new();
    for arg in args.iter().skip(first + 1) {
        if quoted.len() >= 128 {
            break;
        }
        quoted.push_str(&format!("'{}' ", text(arg, 128 - quoted.len())));
    }
    CommandError::Unknown { name, args: quoted }
}

impl CommandError {
    pub fn message(&self) -> String {
        match self {
            CommandError::WrongArity(name) => format!("ERR wrong number of arguments for '{name}' command"),
            CommandError::Unknown { name, args } => format!("ERR unknown command '{name}', with args beginning with: {args}"),
            CommandError::BadTag => "ERR TAGGED needs a client id >= 1 and a sequence number, then a write".into(),
            CommandError::NotAnInteger => kv::NOT_AN_INTEGER.into(),
            CommandError::Syntax => "ERR syntax error".into(),
            CommandError::InvalidCursor => "ERR invalid cursor".into(),
            CommandError::NotAFloat => "ERR value is not a valid float".into(),
            CommandError::DecrementOverflow => "ERR decrement would overflow".into(),
            CommandError::SameObject => "ERR source and destination objects are the same".into(),
            CommandError::OffsetOutOfRange => "ERR offset is out of range".into(),
            CommandError::Unsupported(what) => format!("ERR {what} is not supported by raftkv yet"),
            CommandError::InvalidExpireTime(command) => format!("ERR invalid expire time in '{command}' command"),
            CommandError::Message(message) => message.clone(),
        }
    }
}

/// Turns a data command (GET, SET, APPEND, DEL, EXISTS, optionally TAGGED) into a request; a
/// write is encoded by `writes`. PING and INFO are answered by the connection itself and never
/// reach here.
pub fn to_request(args: &resp::ArgBuf, writes: &mut WriteEncoder) -> Result<Request, CommandError> {
    // `TAGGED <client-id> <seq>` in front of a write: the command proper starts after it.
    let (tag, first) = match args.get(0) {
        Some(name) if name.eq_ignore_ascii_case(TAG_COMMAND) => {
            let number = |arg: Option<&[u8]>| arg.and_then(|arg| std::str::from_utf8(arg).ok()?.parse::<u64>().ok());
            let (Some(client_id), Some(seq)) = (number(args.get(1)), number(args.get(2))) else {
                return Err(CommandError::BadTag);
            };
            if client_id == 0 || args.len() < 4 {
                return Err(CommandError::BadTag);
            }
            (Some((client_id, seq)), 3)
        }
        _ => (None, 0),
    };
    let count = args.len() - first;
    let arg = |index: usize| &args[first + index];
    let name = args.get(first).map_or("", command_name);
    let arity = |ok: bool| if ok { Ok(()) } else { Err(CommandError::WrongArity(name.to_lowercase())) };
    let keys = || args.iter().skip(first + 1).map(<[u8]>::to_vec).collect::<Vec<_>>();
    let integer = |arg: &[u8]| kv::parse_integer(arg).ok_or(CommandError::NotAnInteger);
    let version = |arg: &[u8]| kv::parse_integer(arg).and_then(|version| u64::try_from(version).ok()).ok_or(CommandError::NotAnInteger);
    let op = match name {
        "GET" | "EXISTS" | "MGET" | "STRLEN" | "DBSIZE" | "KEYS" | "TYPE" | "TOUCH" | "SCAN" | "GETRANGE" | "SUBSTR" | "RANDOMKEY" | "TTL" | "PTTL" | "EXPIRETIME"
        | "PEXPIRETIME" | "VGET"
            if tag.is_some() => {
            return Err(CommandError::BadTag)
        }
        "GETRANGE" | "SUBSTR" => {
            arity(count == 4)?;
            return Ok(Request::GetRange { key: arg(1).to_vec(), start: integer(arg(2))?, end: integer(arg(3))? });
        }
        "RANDOMKEY" => {
            arity(count == 1)?;
            return Ok(Request::RandomKey);
        }
        "VGET" => {
            arity(count == 2)?;
            return Ok(Request::VGet { key: arg(1).to_vec() });
        }
        "VSET" => {
            arity(count == 4)?;
            OpRef::VersionedPut { key: arg(1), value: arg(2), version: version(arg(3))? }
        }
        "VDEL" => {
            arity(count == 3)?;
            OpRef::VersionedDelete { key: arg(1), version: version(arg(2))? }
        }
        // Redis 8.4's conditional delete (and Valkey's DELIFEQ): the safe release of a lock.
        "DELEX" | "DELIFEQ" => {
            arity(if name == "DELEX" { count == 2 || count == 4 } else { count == 3 })?;
            match (name, count) {
                ("DELIFEQ", _) => OpRef::DeleteIf { key: arg(1), value: arg(2), equal: true },
                (_, 2) => OpRef::Delete { keys: vec![arg(1)] },
                _ => match &arg(2).to_ascii_uppercase()[..] {
                    b"IFEQ" => OpRef::DeleteIf { key: arg(1), value: arg(3), equal: true },
                    b"IFNE" => OpRef::DeleteIf { key: arg(1), value: arg(3), equal: false },
                    b"IFDEQ" | b"IFDNE" => return Err(CommandError::Unsupported("DELEX with a digest (IFDEQ, IFDNE)".into())),
                    _ => return Err(CommandError::Syntax),
                },
            }
        }
        "SETRANGE" => {
            arity(count == 4)?;
            let offset = u64::try_from(integer(arg(2))?).map_err(|_| CommandError::OffsetOutOfRange)?;
            OpRef::SetRange { key: arg(1), offset, value: arg(3), max_len: writes.max_value_bytes }
        }
        "INCRBYFLOAT" => {
            arity(count == 3)?;
            kv::parse_float(arg(2)).ok_or(CommandError::NotAFloat)?;
            OpRef::IncrByFloat { key: arg(1), delta: arg(2) }
        }
        "COPY" => {
            arity(count >= 3)?;
            let mut replace = false;
            let mut at = 3;
            while at < count {
                match &arg(at).to_ascii_uppercase()[..] {
                    b"REPLACE" => replace = true,
                    b"DB" if at + 1 < count && arg(at + 1) == b"0" => at += 1,
                    b"DB" if at + 1 < count => return Err(CommandError::Unsupported("COPY to a database other than 0".into())),
                    _ => return Err(CommandError::Syntax),
                }
                at += 1;
            }
            if arg(1) == arg(2) {
                return Err(CommandError::SameObject);
            }
            OpRef::Copy { from: arg(1), to: arg(2), replace }
        }
        "SCAN" => {
            arity(count >= 2 && count.is_multiple_of(2))?;
            let cursor = std::str::from_utf8(arg(1)).ok().and_then(|cursor| cursor.parse().ok()).ok_or(CommandError::InvalidCursor)?;
            let (mut scan_count, mut pattern, mut strings) = (10, None, true);
            for at in (2..count).step_by(2) {
                let value = arg(at + 1);
                match &arg(at).to_ascii_uppercase()[..] {
                    b"COUNT" => scan_count = u64::try_from(integer(value)?).ok().filter(|&n| n >= 1).ok_or(CommandError::Syntax)?,
                    b"MATCH" => pattern = Some(value.to_vec()),
                    b"TYPE" => strings = value.eq_ignore_ascii_case(b"string"),
                    _ => return Err(CommandError::Syntax),
                }
            }
            return Ok(Request::Scan { cursor, count: scan_count, pattern, strings });
        }
        "KEYS" => {
            arity(count == 2)?;
            return Ok(Request::Keys { pattern: arg(1).to_vec() });
        }
        "TYPE" => {
            arity(count == 2)?;
            return Ok(Request::Type { key: arg(1).to_vec() });
        }
        "TOUCH" => {
            arity(count >= 2)?;
            return Ok(Request::Exists { keys: keys() });
        }
        "FLUSHDB" | "FLUSHALL" => {
            arity(count <= 2)?;
            if count == 2 && !(arg(1).eq_ignore_ascii_case(b"ASYNC") || arg(1).eq_ignore_ascii_case(b"SYNC")) {
                return Err(CommandError::Syntax);
            }
            OpRef::Flush
        }
        "RENAME" | "RENAMENX" => {
            arity(count == 3)?;
            OpRef::Rename { from: arg(1), to: arg(2), only_new: name == "RENAMENX" }
        }
        "MGET" => {
            arity(count >= 2)?;
            return Ok(Request::MGet { keys: keys() });
        }
        "STRLEN" => {
            arity(count == 2)?;
            return Ok(Request::Strlen { key: arg(1).to_vec() });
        }
        "DBSIZE" => {
            arity(count == 1)?;
            return Ok(Request::DbSize);
        }
        "INCR" | "DECR" => {
            arity(count == 2)?;
            OpRef::IncrBy { key: arg(1), delta: if name == "INCR" { 1 } else { -1 } }
        }
        "INCRBY" => {
            arity(count == 3)?;
            OpRef::IncrBy { key: arg(1), delta: integer(arg(2))? }
        }
        "DECRBY" => {
            arity(count == 3)?;
            // -i64::MIN does not exist: Redis refuses it the same way.
            OpRef::IncrBy { key: arg(1), delta: integer(arg(2))?.checked_neg().ok_or(CommandError::DecrementOverflow)? }
        }
        "SETNX" => {
            arity(count == 3)?;
            OpRef::Set { key: arg(1), value: arg(2), flags: SetFlags::ONLY_NEW | SetFlags::INTEGER_REPLY, expiry: Expiry::Clear }
        }
        "GETSET" => {
            arity(count == 3)?;
            OpRef::Set { key: arg(1), value: arg(2), flags: SetFlags::GET, expiry: Expiry::Clear }
        }
        "GETDEL" => {
            arity(count == 2)?;
            OpRef::GetDel { key: arg(1) }
        }
        "MSET" | "MSETNX" => {
            arity(count >= 3 && count % 2 == 1)?;
            let pairs = (1..count).step_by(2).map(|at| (arg(at), arg(at + 1))).collect();
            OpRef::MSet { pairs, only_new: name == "MSETNX" }
        }
        "SET" if count > 3 => {
            let (flags, expiry) = set_options(&(3..count).map(arg).collect::<Vec<_>>())?;
            OpRef::Set { key: arg(1), value: arg(2), flags, expiry }
        }
        "SETEX" | "PSETEX" => {
            arity(count == 4)?;
            let expiry = time_to_live(if name == "SETEX" { b"EX" } else { b"PX" }, arg(2), &name.to_lowercase())?;
            OpRef::Set { key: arg(1), value: arg(3), flags: 0, expiry }
        }
        "GETEX" => {
            arity(count >= 2)?;
            let expiry = match count {
                2 => Expiry::Keep,
                3 if arg(2).eq_ignore_ascii_case(b"PERSIST") => Expiry::Clear,
                4 => match &arg(2).to_ascii_uppercase()[..] {
                    unit @ (b"EX" | b"PX" | b"EXAT" | b"PXAT") => time_to_live(unit, arg(3), "getex")?,
                    _ => return Err(CommandError::Syntax),
                },
                _ => return Err(CommandError::Syntax),
            };
            OpRef::GetEx { key: arg(1), expiry }
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
            arity(count >= 3)?;
            expire_op(name, arg(1), arg(2), &(3..count).map(arg).collect::<Vec<_>>())?
        }
        "PERSIST" => {
            arity(count == 2)?;
            OpRef::Expire { key: arg(1), expiry: Expiry::Clear, condition: 0 }
        }
        "RAFT.NODE" | "RAFT.NODES" | "RAFT.TRANSFER-LEADER" | "RAFT.DIAL" if tag.is_some() => return Err(CommandError::BadTag),
        "RAFT.NODE" => {
            arity(count >= 3)?;
            let id = node_id(arg(2))?;
            let change = match (&arg(1).to_ascii_uppercase()[..], count) {
                (b"ADD", 4) => raft::Change::AddLearner { id, address: address(arg(3))? },
                (b"PROMOTE", 3) => raft::Change::Promote { id },
                (b"REMOVE", 3) => raft::Change::Remove { id },
                (b"ADD" | b"PROMOTE" | b"REMOVE", _) => return Err(CommandError::WrongArity("raft.node".into())),
                _ => return Err(CommandError::Message(format!("ERR unknown RAFT.NODE subcommand '{}'", String::from_utf8_lossy(arg(1))))),
            };
            return Ok(Request::Admin(Admin::Change(change)));
        }
        "RAFT.NODES" => {
            arity(count == 1)?;
            return Ok(Request::Admin(Admin::Nodes));
        }
        "RAFT.TRANSFER-LEADER" => {
            arity(count == 2)?;
            return Ok(Request::Admin(Admin::TransferLeader(node_id(arg(1))?)));
        }
        "RAFT.DIAL" => {
            arity(count == 3)?;
            return Ok(Request::Dial { id: node_id(arg(1))?.0, address: address(arg(2))? });
        }
        "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" => {
            arity(count == 2)?;
            let unit = match name {
                "TTL" => TtlUnit::Seconds,
                "PTTL" => TtlUnit::Milliseconds,
                "EXPIRETIME" => TtlUnit::UnixSeconds,
                _ => TtlUnit::UnixMilliseconds,
            };
            return Ok(Request::Ttl { key: arg(1).to_vec(), unit });
        }
        "GET" => {
            arity(count == 2)?;
            return Ok(Request::Get { key: arg(1).to_vec() });
        }
        "EXISTS" => {
            arity(count >= 2)?;
            return Ok(Request::Exists { keys: args.iter().skip(first + 1).map(<[u8]>::to_vec).collect() });
        }
        "SET" => {
            arity(count == 3)?;
            OpRef::Put { key: arg(1), value: arg(2) }
        }
        "APPEND" => {
            arity(count == 3)?;
            OpRef::Append { key: arg(1), value: arg(2) }
        }
        "DEL" | "UNLINK" => {
            arity(count >= 2)?;
            OpRef::Delete { keys: args.iter().skip(first + 1).collect() }
        }
        _ if tag.is_some() => return Err(CommandError::BadTag),
        _ => return Err(unknown_command(args, first)),
    };
    let (client_id, seq) = tag.unwrap_or((0, 0));
    Ok(Request::Write(writes.encode(client_id, seq, op)))
}

/// A command's arguments as the parser gives them, for tests.
#[cfg(test)]
pub(crate) fn args(words: &[&str]) -> resp::ArgBuf {
    let mut wire = Vec::new();
    resp::encode_array_of_bulks(words, &mut wire);
    let mut args = resp::ArgBuf::new();
    resp::parse_command_into(&wire, &resp::Limits::default(), &mut args).expect("valid").expect("whole");
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_request(args: &resp::ArgBuf) -> Result<Request, CommandError> {
        super::to_request(args, &mut WriteEncoder::new(Arc::new(AtomicU64::new(100))))
    }

    #[test]
    fn commands_map_to_requests_and_round_trip() {
        let cases = [
            args(&["get", "k"]),
            args(&["SET", "k", "v"]),
            args(&["append", "k", "v"]),
            args(&["DEL", "a", "b"]),
            args(&["exists", "a", "b", "a"]),
            args(&["TAGGED", "7", "3", "SET", "k", "v"]),
            args(&["incrby", "n", "-9"]),
            args(&["DECR", "n"]),
            args(&["SET", "k", "v", "nx", "GET", "KEEPTTL"]),
            args(&["SET", "k", "v", "px", "100", "XX"]),
            args(&["SETEX", "k", "10", "v"]),
            args(&["GETEX", "k", "PERSIST"]),
            args(&["PEXPIREAT", "k", "1700000000000", "GT"]),
            args(&["EXPIRE", "k", "-5"]),
            args(&["PERSIST", "k"]),
            args(&["PTTL", "k"]),
            args(&["EXPIRETIME", "k"]),
            args(&["RAFT.NODE", "ADD", "4", "10.0.0.4:7000"]),
            args(&["raft.node", "promote", "4"]),
            args(&["RAFT.NODE", "REMOVE", "1"]),
            args(&["RAFT.NODES"]),
            args(&["RAFT.TRANSFER-LEADER", "2"]),
            args(&["RAFT.DIAL", "5", "127.0.0.1:9"]),
            args(&["SETNX", "k", "v"]),
            args(&["GETDEL", "k"]),
            args(&["MSETNX", "a", "1", "b", "2"]),
            args(&["MGET", "a", "b"]),
            args(&["STRLEN", "a"]),
            args(&["DBSIZE"]),
            args(&["KEYS", "user:*"]),
            args(&["TYPE", "k"]),
            args(&["FLUSHALL", "ASYNC"]),
            args(&["RENAMENX", "a", "b"]),
            args(&["SCAN", "0"]),
            args(&["GETRANGE", "k", "-3", "9223372036854775807"]),
            args(&["RANDOMKEY"]),
            args(&["SETRANGE", "k", "5", "v"]),
            args(&["INCRBYFLOAT", "f", "-1.5e2"]),
            args(&["COPY", "a", "b", "DB", "0", "REPLACE"]),
            args(&["scan", "18446744073709551615", "match", "u*", "count", "100", "type", "hash"]),
            args(&["VGET", "k"]),
            args(&["vset", "k", "v", "0"]),
            args(&["TAGGED", "7", "4", "VSET", "k", "v", "9223372036854775807"]),
            args(&["VDEL", "k", "3"]),
            args(&["DELEX", "k", "ifeq", "token"]),
            args(&["DELEX", "k", "IFNE", "token"]),
            args(&["DELEX", "k"]),
            args(&["DELIFEQ", "k", "token"]),
        ];
        for case in cases {
            let request = to_request(&case).expect("valid");
            assert_eq!(Request::decode(&request.encode().into()), Some(request));
        }
        let Ok(Request::Write(tagged)) = to_request(&args(&["TAGGED", "7", "3", "APPEND", "k", "v"])) else { panic!("a write") };
        assert_eq!(tagged.tag, (7, 3));
        let command = CommandRef::decode(&tagged.data).expect("the entry decodes");
        assert_eq!(command, CommandRef { client_id: 7, seq: 3, op: OpRef::Append { key: b"k", value: b"v" } });
    }

    #[test]
    fn untagged_writes_are_numbered_and_share_their_buffer() {
        let mut writes = WriteEncoder::new(Arc::new(AtomicU64::new(5 << 32)));
        let mut entries = Vec::new();
        for i in 0..100u64 {
            let Ok(Request::Write(write)) = super::to_request(&args(&["SET", "k", &i.to_string()]), &mut writes) else { panic!("a write") };
            assert_eq!(write.tag, (0, (5 << 32) + i + 1), "numbered in order, from the node's counter");
            let command = CommandRef::decode(&write.data).expect("the entry decodes");
            assert_eq!(command.op, OpRef::Put { key: b"k", value: i.to_string().as_bytes() });
            entries.push(write.data);
        }
        // One allocation for all of them: each entry starts where the one before it ends.
        for pair in entries.windows(2) {
            assert_eq!(pair[0].as_ptr().wrapping_add(pair[0].len()), pair[1].as_ptr());
        }
    }

    #[test]
    fn a_forwarded_write_is_a_slice_of_its_frame() {
        let Ok(Request::Write(write)) = to_request(&args(&["SET", "k", "v"])) else { panic!("a write") };
        let frame: Bytes = Request::Write(write.clone()).encode().into();
        let Some(Request::Write(forwarded)) = Request::decode(&frame) else { panic!("a write") };
        assert_eq!(forwarded, write);
        assert_eq!(forwarded.data.as_ptr(), frame[1..].as_ptr(), "not copied");
    }

    #[test]
    fn bad_commands_are_named_errors() {
        assert_eq!(to_request(&args(&["GET"])), Err(CommandError::WrongArity("get".into())));
        assert_eq!(to_request(&args(&["SET", "k"])), Err(CommandError::WrongArity("set".into())));
        assert_eq!(to_request(&args(&["LPUSH", "l", "x"])), Err(CommandError::Unknown { name: "LPUSH".into(), args: "'l' 'x' ".into() }));
        let long = "y".repeat(200);
        let Err(error) = to_request(&args(&["Nope", &long, "z"])) else { panic!("an unknown command") };
        assert_eq!(error.message(), format!("ERR unknown command 'Nope', with args beginning with: '{}' ", &long[..128]), "as Redis: 128 bytes of arguments at most");
        assert_eq!(to_request(&args(&["SETRANGE", "k", "-1", "v"])), Err(CommandError::OffsetOutOfRange));
        assert_eq!(to_request(&args(&["INCRBYFLOAT", "f", "nan"])), Err(CommandError::NotAFloat));
        assert!(matches!(to_request(&args(&["COPY", "a", "b", "DB", "1"])), Err(CommandError::Unsupported(_))));
        assert_eq!(to_request(&args(&["SCAN", "x"])), Err(CommandError::InvalidCursor));
        assert_eq!(to_request(&args(&["VSET", "k", "v", "-1"])), Err(CommandError::NotAnInteger), "a version is never negative");
        assert_eq!(to_request(&args(&["VSET", "k", "v"])), Err(CommandError::WrongArity("vset".into())));
        assert_eq!(to_request(&args(&["TAGGED", "7", "4", "VGET", "k"])), Err(CommandError::BadTag), "a read is not tagged");
        assert_eq!(to_request(&args(&["DELEX", "k", "IFEQ"])), Err(CommandError::WrongArity("delex".into())));
        assert_eq!(to_request(&args(&["DELEX", "k", "IF", "v"])), Err(CommandError::Syntax));
        assert!(matches!(to_request(&args(&["DELEX", "k", "IFDEQ", "abc"])), Err(CommandError::Unsupported(_))));
        assert_eq!(to_request(&args(&["SCAN", "0", "COUNT", "0"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["FLUSHALL", "NOW"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["INCRBY", "n", "1.5"])), Err(CommandError::NotAnInteger));
        assert_eq!(to_request(&args(&["DECRBY", "n", &i64::MIN.to_string()])), Err(CommandError::DecrementOverflow));
        assert_eq!(to_request(&args(&["COPY", "a", "a"])), Err(CommandError::SameObject));
        assert_eq!(to_request(&args(&["SET", "k", "v", "NX", "XX"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["SET", "k", "v", "FOO"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["SET", "k", "v", "EX", "0"])), Err(CommandError::InvalidExpireTime("set".into())));
        assert_eq!(to_request(&args(&["SET", "k", "v", "EX", "10", "PX", "5"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["SET", "k", "v", "KEEPTTL", "EX", "5"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["SET", "k", "v", "EX"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["SET", "k", "v", "EX", "x"])), Err(CommandError::NotAnInteger));
        assert_eq!(to_request(&args(&["SET", "k", "v", "EX", "99999999999999999999"])), Err(CommandError::NotAnInteger));
        assert_eq!(to_request(&args(&["SET", "k", "v", "EX", &(i64::MAX / 10).to_string()])), Err(CommandError::InvalidExpireTime("set".into())));
        assert_eq!(to_request(&args(&["SETEX", "k", "-1", "v"])), Err(CommandError::InvalidExpireTime("setex".into())));
        assert_eq!(to_request(&args(&["EXPIRE", "k", &i64::MAX.to_string()])), Err(CommandError::InvalidExpireTime("expire".into())));
        assert!(matches!(to_request(&args(&["EXPIRE", "k", "5", "NX", "GT"])), Err(CommandError::Message(_))));
        assert!(matches!(to_request(&args(&["EXPIRE", "k", "5", "GT", "LT"])), Err(CommandError::Message(_))));
        assert!(matches!(to_request(&args(&["EXPIRE", "k", "5", "FOO"])), Err(CommandError::Message(_))));
        assert_eq!(to_request(&args(&["GETEX", "k", "EX"])), Err(CommandError::Syntax));
        assert_eq!(to_request(&args(&["GETEX", "k", "PX", "0"])), Err(CommandError::InvalidExpireTime("getex".into())));
        assert_eq!(to_request(&args(&["MSET", "a", "1", "b"])), Err(CommandError::WrongArity("mset".into())));
        assert_eq!(to_request(&args(&["DBSIZE", "x"])), Err(CommandError::WrongArity("dbsize".into())));
        assert_eq!(to_request(&args(&["TAGGED", "0", "1", "SET", "k", "v"])), Err(CommandError::BadTag));
        assert_eq!(to_request(&args(&["TAGGED", "1", "1", "GET", "k"])), Err(CommandError::BadTag));
        assert_eq!(Request::decode(&Bytes::from_static(&[9, 9])), None);
        assert_eq!(Request::decode(&Bytes::new()), None);
    }

    #[test]
    fn answers_round_trip_and_render_as_redis_replies() {
        for answer in [Answer::Reply(Reply::Value(None)), Answer::Reply(Reply::Length(5)), Answer::Count(2), Answer::Error("no leader".into())] {
            assert_eq!(Answer::decode(&answer.encode()), Some(answer));
        }
        let mut out = Vec::new();
        Answer::Reply(Reply::Done).to_resp(&mut out, false);
        Answer::Reply(Reply::Value(Some(b"v".to_vec()))).to_resp(&mut out, false);
        Answer::Error("timeout".into()).to_resp(&mut out, false);
        assert_eq!(out, b"+OK\r\n$1\r\nv\r\n-ERR timeout\r\n");
    }

    /// A GET's shared value is the `Reply::Value` it stands for: equal, encoded and written alike.
    #[test]
    fn a_shared_value_answers_as_a_copied_one() {
        let mut store = kv::Store::new();
        store.apply(1, &kv::Command { client_id: 0, seq: 0, op: kv::Op::Put { key: b"k".to_vec(), value: b"value".to_vec() } }.as_ref());
        for (shared, copied) in [(store.get_shared(b"k"), Some(b"value".to_vec())), (store.get_shared(b"missing"), None)] {
            let (shared, copied) = (Answer::Value(shared), Answer::Reply(Reply::Value(copied)));
            assert_eq!(shared, copied);
            assert_eq!(Answer::decode(&shared.encode()), Some(copied.clone()));
            assert_eq!(shared.clone().owned(), copied);
            for resp3 in [false, true] {
                let (mut mine, mut theirs) = (Vec::new(), Vec::new());
                shared.to_resp(&mut mine, resp3);
                copied.to_resp(&mut theirs, resp3);
                assert_eq!(mine, theirs);
            }
        }
        assert_ne!(Answer::Value(None), Answer::Count(0));
    }
}

