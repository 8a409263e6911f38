//! What clients ask of the store, and what it answers; with their compact binary encoding, which is
//! what travels in Raft log entries.

use bytes::BufMut;
use raft::codec::{put_varint, DecodeError, Reader};

use crate::expiry::Expiry;

/// One operation on the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Get { key: Vec<u8> },
    Put { key: Vec<u8>, value: Vec<u8> },
    Append { key: Vec<u8>, value: Vec<u8> },
    /// Removes every listed key at once (Redis's DEL is atomic over its keys).
    Delete { keys: Vec<Vec<u8>> },
    /// Names the cluster, once: the first leader proposes a random id, and the first one applied
    /// is the cluster's for ever (later ones change nothing).
    ClusterId { id: u64 },
    /// INCRBY and its kin: the value read as a 64-bit integer (0 if missing) plus `delta`.
    IncrBy { key: Vec<u8>, delta: i64 },
    /// SET with options, SETNX, GETSET, SETEX; see `SetFlags`. `expiry`: its time to live.
    Set { key: Vec<u8>, value: Vec<u8>, flags: u8, expiry: Expiry },
    /// GETDEL: the value, removed.
    GetDel { key: Vec<u8> },
    /// MSET (and MSETNX with `only_new`: nothing is set if any key exists), atomically.
    MSet { pairs: Vec<(Vec<u8>, Vec<u8>)>, only_new: bool },
    /// FLUSHDB, FLUSHALL: every key removed.
    Flush,
    /// RENAME (and RENAMENX with `only_new`: not if `to` exists).
    Rename { from: Vec<u8>, to: Vec<u8>, only_new: bool },
    /// MULTI ... EXEC: the operations applied one after the other at one log index, atomically,
    /// if no watched key changed since WATCH read it; otherwise none.
    Multi { ops: Vec<Op>, watched: Watched },
    /// Reads in a transaction (outside one they are not logged): MGET, EXISTS, STRLEN.
    MGet { keys: Vec<Vec<u8>> },
    Exists { keys: Vec<Vec<u8>> },
    Strlen { key: Vec<u8> },
    /// In a transaction, a command whose arguments were refused: EXEC answers this error in its
    /// place and applies the rest, as Redis does with errors found when a command runs.
    Refused { message: Vec<u8> },
    /// SETRANGE: `value` written at `offset`, zero bytes padding a shorter value; at most
    /// `max_len` bytes in all (the node's value limit, fixed when the command was taken).
    SetRange { key: Vec<u8>, offset: u64, value: Vec<u8>, max_len: u64 },
    /// INCRBYFLOAT: the value read as a float plus `delta` (its decimal text, checked when the
    /// command was taken), written back as Redis writes floats.
    IncrByFloat { key: Vec<u8>, delta: Vec<u8> },
    /// COPY (with `replace`: over an existing destination).
    Copy { from: Vec<u8>, to: Vec<u8>, replace: bool },
    /// The leader's wall-clock time, in milliseconds since the Unix epoch: the log time becomes
    /// the larger of it and what it was (see `expiry`).
    Clock { now_ms: u64 },
    /// EXPIRE and its kin (conditions: `ExpireIf` bits), and PERSIST (`Expiry::Clear`).
    Expire { key: Vec<u8>, expiry: Expiry, condition: u8 },
    /// GETEX: the value, and its time to live changed (`Expiry::Keep`: left as it is).
    GetEx { key: Vec<u8>, expiry: Expiry },
    /// VSET: writes the value only if the key is at `version` (0: only if it is missing), and
    /// answers the version it is at then.
    VersionedPut { key: Vec<u8>, value: Vec<u8>, version: u64 },
    /// VDEL: removes the key only if it is at `version`.
    VersionedDelete { key: Vec<u8>, version: u64 },
    /// DELEX IFEQ / IFNE: removes the key only if its value is (`equal`), or is not, `value`.
    DeleteIf { key: Vec<u8>, value: Vec<u8>, equal: bool },
}

/// SET's options as bits of `Op::Set`'s flags.
pub struct SetFlags;

impl SetFlags {
    /// Only if the key does not exist (NX).
    pub const ONLY_NEW: u8 = 1;
    /// Only if the key exists (XX).
    pub const ONLY_EXISTING: u8 = 2;
    /// Reply with the old value (GET).
    pub const GET: u8 = 4;
    /// Reply 1 or 0 for set or not (SETNX), instead of OK or nil.
    pub const INTEGER_REPLY: u8 = 8;
}

impl Op {
    pub fn is_write(&self) -> bool {
        self.as_ref().is_write()
    }
}

/// A command as it goes through the log: the operation, tagged with the client's session so that
/// a retried write is applied once. `client_id` 0 means "no session": applied every time it commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub client_id: u64,
    pub seq: u64,
    pub op: Op,
}

/// The store's answer to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Get: the value, or None for a missing key.
    Value(Option<Vec<u8>>),
    /// Put.
    Done,
    /// Append: the value's length after the append.
    Length(u64),
    /// Delete: how many of the keys existed and were removed.
    Removed(u64),
    /// INCRBY and kin: the new value; SETNX, MSETNX: 1 or 0.
    Integer(i64),
    /// MGET: each key's value or None.
    Values(Vec<Option<Vec<u8>>>),
    /// A refusal with Redis's text, such as `ERR value is not an integer or out of range`.
    Error(String),
    /// A status line, such as TYPE's `string`.
    Status(String),
    /// A SCAN page: the next cursor (0: done) and the keys.
    Scan { cursor: u64, keys: Vec<Vec<u8>> },
    /// EXEC: each operation's reply, in order.
    Multi(Vec<Reply>),
    /// EXEC of a transaction a watched key changed under: nothing was applied.
    Aborted,
}

/// An operation borrowed from wherever its bytes are (a client's request, a log entry): what
/// encoding and applying need, without copying keys or values into an owned `Op` first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpRef<'a> {
    Get { key: &'a [u8] },
    Put { key: &'a [u8], value: &'a [u8] },
    Append { key: &'a [u8], value: &'a [u8] },
    Delete { keys: Vec<&'a [u8]> },
    ClusterId { id: u64 },
    IncrBy { key: &'a [u8], delta: i64 },
    Set { key: &'a [u8], value: &'a [u8], flags: u8, expiry: Expiry },
    GetDel { key: &'a [u8] },
    MSet { pairs: Vec<(&'a [u8], &'a [u8])>, only_new: bool },
    Flush,
    Rename { from: &'a [u8], to: &'a [u8], only_new: bool },
    Multi { ops: Vec<OpRef<'a>>, watched: WatchedRef<'a> },
    MGet { keys: Vec<&'a [u8]> },
    Exists { keys: Vec<&'a [u8]> },
    Strlen { key: &'a [u8] },
    Refused { message: &'a [u8] },
    SetRange { key: &'a [u8], offset: u64, value: &'a [u8], max_len: u64 },
    IncrByFloat { key: &'a [u8], delta: &'a [u8] },
    Copy { from: &'a [u8], to: &'a [u8], replace: bool },
    Clock { now_ms: u64 },
    Expire { key: &'a [u8], expiry: Expiry, condition: u8 },
    GetEx { key: &'a [u8], expiry: Expiry },
    VersionedPut { key: &'a [u8], value: &'a [u8], version: u64 },
    VersionedDelete { key: &'a [u8], version: u64 },
    DeleteIf { key: &'a [u8], value: &'a [u8], equal: bool },
}

impl OpRef<'_> {
    /// Whether it changes the store. (A transaction goes through the log whatever it holds.)
    pub fn is_write(&self) -> bool {
        !matches!(self, OpRef::Get { .. } | OpRef::MGet { .. } | OpRef::Exists { .. } | OpRef::Strlen { .. } | OpRef::Refused { .. })
    }

    /// Whether it may make the data larger: what a node over its memory budget refuses (Redis's
    /// `denyoom` commands). Deleting, expiring and reading never are.
    pub fn may_grow(&self) -> bool {
        match self {
            OpRef::Put { .. }
            | OpRef::Append { .. }
            | OpRef::IncrBy { .. }
            | OpRef::Set { .. }
            | OpRef::MSet { .. }
            | OpRef::SetRange { .. }
            | OpRef::IncrByFloat { .. }
            | OpRef::Copy { .. }
            | OpRef::VersionedPut { .. } => true,
            OpRef::Multi { ops, .. } => ops.iter().any(OpRef::may_grow),
            _ => false,
        }
    }

    /// Whether applying it needs a current log time (a relative time to live): the leader
    /// proposes a clock entry before it.
    pub fn needs_clock(&self) -> bool {
        match self {
            OpRef::Set { expiry, .. } | OpRef::Expire { expiry, .. } | OpRef::GetEx { expiry, .. } => expiry.is_relative(),
            OpRef::Multi { ops, .. } => ops.iter().any(OpRef::needs_clock),
            _ => false,
        }
    }

    /// The keys it reads or writes (a transaction's watched keys: its operations name their own).
    pub(crate) fn keys(&self) -> Vec<&[u8]> {
        match self {
            OpRef::Get { key }
            | OpRef::Put { key, .. }
            | OpRef::Append { key, .. }
            | OpRef::IncrBy { key, .. }
            | OpRef::Set { key, .. }
            | OpRef::GetDel { key }
            | OpRef::Strlen { key }
            | OpRef::SetRange { key, .. }
            | OpRef::IncrByFloat { key, .. }
            | OpRef::Expire { key, .. }
            | OpRef::GetEx { key, .. }
            | OpRef::VersionedPut { key, .. }
            | OpRef::VersionedDelete { key, .. }
            | OpRef::DeleteIf { key, .. } => vec![key],
            OpRef::Delete { keys } | OpRef::MGet { keys } | OpRef::Exists { keys } => keys.clone(),
            OpRef::MSet { pairs, .. } => pairs.iter().map(|(key, _)| *key).collect(),
            OpRef::Rename { from, to, .. } | OpRef::Copy { from, to, .. } => vec![from, to],
            OpRef::Multi { watched, .. } => watched.keys(),
            OpRef::ClusterId { .. } | OpRef::Flush | OpRef::Refused { .. } | OpRef::Clock { .. } => Vec::new(),
        }
    }

    pub fn to_owned(&self) -> Op {
        match self {
            OpRef::Get { key } => Op::Get { key: key.to_vec() },
            OpRef::Put { key, value } => Op::Put { key: key.to_vec(), value: value.to_vec() },
            OpRef::Append { key, value } => Op::Append { key: key.to_vec(), value: value.to_vec() },
            OpRef::Delete { keys } => Op::Delete { keys: keys.iter().map(|key| key.to_vec()).collect() },
            OpRef::ClusterId { id } => Op::ClusterId { id: *id },
            OpRef::IncrBy { key, delta } => Op::IncrBy { key: key.to_vec(), delta: *delta },
            OpRef::Set { key, value, flags, expiry } => Op::Set { key: key.to_vec(), value: value.to_vec(), flags: *flags, expiry: *expiry },
            OpRef::GetDel { key } => Op::GetDel { key: key.to_vec() },
            OpRef::MSet { pairs, only_new } => {
                Op::MSet { pairs: pairs.iter().map(|(key, value)| (key.to_vec(), value.to_vec())).collect(), only_new: *only_new }
            }
            OpRef::Flush => Op::Flush,
            OpRef::Rename { from, to, only_new } => Op::Rename { from: from.to_vec(), to: to.to_vec(), only_new: *only_new },
            OpRef::Multi { ops, watched } => Op::Multi { ops: ops.iter().map(OpRef::to_owned).collect(), watched: watched.to_owned() },
            OpRef::MGet { keys } => Op::MGet { keys: keys.iter().map(|key| key.to_vec()).collect() },
            OpRef::Exists { keys } => Op::Exists { keys: keys.iter().map(|key| key.to_vec()).collect() },
            OpRef::Strlen { key } => Op::Strlen { key: key.to_vec() },
            OpRef::Refused { message } => Op::Refused { message: message.to_vec() },
            OpRef::SetRange { key, offset, value, max_len } => Op::SetRange { key: key.to_vec(), offset: *offset, value: value.to_vec(), max_len: *max_len },
            OpRef::IncrByFloat { key, delta } => Op::IncrByFloat { key: key.to_vec(), delta: delta.to_vec() },
            OpRef::Copy { from, to, replace } => Op::Copy { from: from.to_vec(), to: to.to_vec(), replace: *replace },
            OpRef::Clock { now_ms } => Op::Clock { now_ms: *now_ms },
            OpRef::Expire { key, expiry, condition } => Op::Expire { key: key.to_vec(), expiry: *expiry, condition: *condition },
            OpRef::GetEx { key, expiry } => Op::GetEx { key: key.to_vec(), expiry: *expiry },
            OpRef::VersionedPut { key, value, version } => Op::VersionedPut { key: key.to_vec(), value: value.to_vec(), version: *version },
            OpRef::VersionedDelete { key, version } => Op::VersionedDelete { key: key.to_vec(), version: *version },
            OpRef::DeleteIf { key, value, equal } => Op::DeleteIf { key: key.to_vec(), value: value.to_vec(), equal: *equal },
        }
    }
}

/// A command borrowed from its bytes; see `OpRef`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRef<'a> {
    pub client_id: u64,
    pub seq: u64,
    pub op: OpRef<'a>,
}

fn put_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

impl<'a> CommandRef<'a> {
    /// Appends the encoding to `out`: a `Vec`, or the `BytesMut` a log entry is split off.
    pub fn encode_into(&self, out: &mut impl BufMut) {
        put_varint(out, self.client_id);
        put_varint(out, self.seq);
        self.op.encode_into(out);
    }
}

impl OpRef<'_> {
    /// The operation's tag and fields (a command's encoding without its tag).
    pub fn encode_into(&self, out: &mut impl BufMut) {
        match self {
            OpRef::Get { key } => {
                out.put_u8(0);
                put_bytes(out, key);
            }
            OpRef::Put { key, value } => {
                out.put_u8(1);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            OpRef::Append { key, value } => {
                out.put_u8(2);
                put_bytes(out, key);
                put_bytes(out, value);
            }
            OpRef::Delete { keys } => {
                out.put_u8(3);
                put_varint(out, keys.len() as u64);
                for key in keys {
                    put_bytes(out, key);
                }
            }
            OpRef::ClusterId { id } => {
                out.put_u8(4);
                put_varint(out, *id);
            }
            OpRef::IncrBy { key, delta } => {
                out.put_u8(5);
                put_bytes(out, key);
                // Zigzag, so that small negative deltas stay short.
                put_varint(out, ((delta << 1) ^ (delta >> 63)) as u64);
            }
            // A plain one keeps the layout it had before keys could expire.
            OpRef::Set { key, value, flags, expiry: Expiry::Clear } => {
                out.put_u8(6);
                put_bytes(out, key);
                put_bytes(out, value);
                out.put_u8(*flags);
            }
            OpRef::Set { key, value, flags, expiry } => {
                out.put_u8(19);
                put_bytes(out, key);
                put_bytes(out, value);
                out.put_u8(*flags);
                expiry.encode_into(out);
            }
            OpRef::GetDel { key } => {
                out.put_u8(7);
                put_bytes(out, key);
            }
            OpRef::MSet { pairs, only_new } => {
                out.put_u8(8);
                out.put_u8(u8::from(*only_new));
                put_varint(out, pairs.len() as u64);
                for (key, value) in pairs {
                    put_bytes(out, key);
                    put_bytes(out, value);
                }
            }
            OpRef::Flush => out.put_u8(9),
            OpRef::Rename { from, to, only_new } => {
                out.put_u8(10);
                put_bytes(out, from);
                put_bytes(out, to);
                out.put_u8(u8::from(*only_new));
            }
            OpRef::Multi { ops, watched } => {
                out.put_u8(if matches!(watched, WatchedRef::Since(_)) { 23 } else { 11 });
                put_varint(out, ops.len() as u64);
                for op in ops {
                    op.encode_into(out);
                }
                match watched {
                    WatchedRef::Since(keys) => {
                        put_varint(out, keys.len() as u64);
                        for (key, since) in keys {
                            put_bytes(out, key);
                            put_varint(out, *since);
                        }
                    }
                    WatchedRef::Values(values) => {
                        put_varint(out, values.len() as u64);
                        for (key, value) in values {
                            put_bytes(out, key);
                            match value {
                                None => out.put_u8(0),
                                Some(value) => {
                                    out.put_u8(1);
                                    put_bytes(out, value);
                                }
                            }
                        }
                    }
                }
            }
            OpRef::MGet { keys } | OpRef::Exists { keys } => {
                out.put_u8(if matches!(self, OpRef::MGet { .. }) { 12 } else { 13 });
                put_varint(out, keys.len() as u64);
                for key in keys {
                    put_bytes(out, key);
                }
            }
            OpRef::Strlen { key } => {
                out.put_u8(14);
                put_bytes(out, key);
            }
            OpRef::Refused { message } => {
                out.put_u8(15);
                put_bytes(out, message);
            }
            OpRef::SetRange { key, offset, value, max_len } => {
                out.put_u8(16);
                put_bytes(out, key);
                put_varint(out, *offset);
                put_bytes(out, value);
                put_varint(out, *max_len);
            }
            OpRef::IncrByFloat { key, delta } => {
                out.put_u8(17);
                put_bytes(out, key);
                put_bytes(out, delta);
            }
            OpRef::Copy { from, to, replace } => {
                out.put_u8(18);
                put_bytes(out, from);
                put_bytes(out, to);
                out.put_u8(u8::from(*replace));
            }
            OpRef::Clock { now_ms } => {
                out.put_u8(20);
                put_varint(out, *now_ms);
            }
            OpRef::Expire { key, expiry, condition } => {
                out.put_u8(21);
                put_bytes(out, key);
                expiry.encode_into(out);
                out.put_u8(*condition);
            }
            OpRef::GetEx { key, expiry } => {
                out.put_u8(22);
                put_bytes(out, key);
                expiry.encode_into(out);
            }
            OpRef::VersionedPut { key, value, version } => {
                out.put_u8(24);
                put_bytes(out, key);
                put_bytes(out, value);
                put_varint(out, *version);
            }
            OpRef::VersionedDelete { key, version } => {
                out.put_u8(25);
                put_bytes(out, key);
                put_varint(out, *version);
            }
            OpRef::DeleteIf { key, value, equal } => {
                out.put_u8(26);
                put_bytes(out, key);
                put_bytes(out, value);
                out.put_u8(u8::from(*equal));
            }
        }
    }

    fn encoded_len_bound(&self) -> usize {
        match self {
            OpRef::Get { key } | OpRef::GetDel { key } => key.len() + 10,
            OpRef::Put { key, value } | OpRef::Append { key, value } | OpRef::VersionedPut { key, value, .. } => key.len() + value.len() + 30,
            OpRef::VersionedDelete { key, .. } => key.len() + 21,
            OpRef::DeleteIf { key, value, .. } => key.len() + value.len() + 21,
            OpRef::Set { key, value, .. } => key.len() + value.len() + 32,
            OpRef::Clock { .. } => 11,
            OpRef::Expire { key, .. } | OpRef::GetEx { key, .. } => key.len() + 22,
            OpRef::IncrBy { key, .. } => key.len() + 20,
            OpRef::Delete { keys } => keys.iter().map(|key| key.len() + 10).sum::<usize>() + 10,
            OpRef::MSet { pairs, .. } => pairs.iter().map(|(key, value)| key.len() + value.len() + 20).sum::<usize>() + 11,
            OpRef::ClusterId { .. } | OpRef::Flush => 10,
            OpRef::Rename { from, to, .. } => from.len() + to.len() + 21,
            OpRef::Multi { ops, watched } => {
                ops.iter().map(OpRef::encoded_len_bound).sum::<usize>()
                    + match watched {
                        WatchedRef::Since(keys) => keys.iter().map(|(key, _)| key.len() + 20).sum::<usize>(),
                        WatchedRef::Values(values) => values.iter().map(|(key, value)| key.len() + value.map_or(0, <[u8]>::len) + 21).sum::<usize>(),
                    }
                    + 21
            }
            OpRef::MGet { keys } | OpRef::Exists { keys } => keys.iter().map(|key| key.len() + 10).sum::<usize>() + 11,
            OpRef::Strlen { key } | OpRef::Refused { message: key } => key.len() + 11,
            OpRef::SetRange { key, value, .. } => key.len() + value.len() + 31,
            OpRef::IncrByFloat { key, delta } => key.len() + delta.len() + 20,
            OpRef::Copy { from, to, .. } => from.len() + to.len() + 21,
        }
    }
}

impl<'a> CommandRef<'a> {
    /// An upper bound of the encoding's size (for reserving room before `encode_into`).
    pub fn encoded_len_bound(&self) -> usize {
        self.op.encoded_len_bound() + 21
    }

    /// Reads a command, borrowing its keys and values from `input`.
    pub fn decode(input: &'a [u8]) -> Result<CommandRef<'a>, DecodeError> {
        let mut reader = Reader::new(input);
        let client_id = reader.varint()?;
        let seq = reader.varint()?;
        let op = OpRef::decode(&mut reader, input.len(), true)?;
        reader.finish()?;
        Ok(CommandRef { client_id, seq, op })
    }
}

/// What EXEC checks before it applies a transaction's operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watched {
    /// No key changed after the log index WATCH read it at (`Store::changed_since`).
    Since(Vec<(Vec<u8>, u64)>),
    /// Each key still holds the value WATCH read (None: missing): how a transaction logged by a
    /// build before per-key change indexes is applied, still (its entry may be in a log).
    Values(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchedRef<'a> {
    Since(Vec<(&'a [u8], u64)>),
    Values(Vec<(&'a [u8], Option<&'a [u8]>)>),
}

impl Watched {
    pub fn as_ref(&self) -> WatchedRef<'_> {
        match self {
            Watched::Since(keys) => WatchedRef::Since(keys.iter().map(|(key, since)| (&key[..], *since)).collect()),
            Watched::Values(values) => WatchedRef::Values(values.iter().map(|(key, value)| (&key[..], value.as_deref())).collect()),
        }
    }
}

impl WatchedRef<'_> {
    fn keys(&self) -> Vec<&[u8]> {
        match self {
            WatchedRef::Since(keys) => keys.iter().map(|(key, _)| *key).collect(),
            WatchedRef::Values(values) => values.iter().map(|(key, _)| *key).collect(),
        }
    }

    fn to_owned(&self) -> Watched {
        match self {
            WatchedRef::Since(keys) => Watched::Since(keys.iter().map(|(key, since)| (key.to_vec(), *since)).collect()),
            WatchedRef::Values(values) => Watched::Values(values.iter().map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec))).collect()),
        }
    }
}

impl<'a> OpRef<'a> {
    /// One operation; `outer`: it may be a transaction (whose operations may not be).
    fn decode(reader: &mut Reader<'a>, input_len: usize, outer: bool) -> Result<OpRef<'a>, DecodeError> {
        let input = input_len;
        let keys = |reader: &mut Reader<'a>| -> Result<Vec<&'a [u8]>, DecodeError> {
            let count = reader.varint()?;
            // Each key takes at least one byte, so the count cannot exceed the input's length.
            let mut keys = Vec::with_capacity(count.min(input as u64) as usize);
            for _ in 0..count {
                keys.push(reader.bytes()?);
            }
            Ok(keys)
        };
        let tag = reader.byte()?;
        Ok(match tag {
            0 => OpRef::Get { key: reader.bytes()? },
            1 => OpRef::Put { key: reader.bytes()?, value: reader.bytes()? },
            2 => OpRef::Append { key: reader.bytes()?, value: reader.bytes()? },
            3 => OpRef::Delete { keys: keys(reader)? },
            4 => OpRef::ClusterId { id: reader.varint()? },
            5 => {
                let key = reader.bytes()?;
                let zigzag = reader.varint()?;
                OpRef::IncrBy { key, delta: ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64) }
            }
            6 => OpRef::Set { key: reader.bytes()?, value: reader.bytes()?, flags: reader.byte()?, expiry: Expiry::Clear },
            19 => OpRef::Set { key: reader.bytes()?, value: reader.bytes()?, flags: reader.byte()?, expiry: Expiry::decode(reader)? },
            20 => OpRef::Clock { now_ms: reader.varint()? },
            21 => OpRef::Expire { key: reader.bytes()?, expiry: Expiry::decode(reader)?, condition: reader.byte()? },
            22 => OpRef::GetEx { key: reader.bytes()?, expiry: Expiry::decode(reader)? },
            24 => OpRef::VersionedPut { key: reader.bytes()?, value: reader.bytes()?, version: reader.varint()? },
            25 => OpRef::VersionedDelete { key: reader.bytes()?, version: reader.varint()? },
            26 => OpRef::DeleteIf { key: reader.bytes()?, value: reader.bytes()?, equal: reader.bool()? },
            7 => OpRef::GetDel { key: reader.bytes()? },
            8 => {
                let only_new = reader.bool()?;
                let count = reader.varint()?;
                // Each pair takes at least two bytes, so the count cannot exceed the input's length.
                let mut pairs = Vec::with_capacity(count.min(input as u64) as usize);
                for _ in 0..count {
                    pairs.push((reader.bytes()?, reader.bytes()?));
                }
                OpRef::MSet { pairs, only_new }
            }
            9 => OpRef::Flush,
            10 => OpRef::Rename { from: reader.bytes()?, to: reader.bytes()?, only_new: reader.bool()? },
            11 | 23 if outer => {
                let count = reader.varint()?;
                let mut ops = Vec::with_capacity(count.min(input as u64) as usize);
                for _ in 0..count {
                    ops.push(OpRef::decode(reader, input, false)?);
                }
                let count = reader.varint()?;
                let capacity = count.min(input as u64) as usize;
                let watched = if tag == 23 {
                    let mut keys = Vec::with_capacity(capacity);
                    for _ in 0..count {
                        keys.push((reader.bytes()?, reader.varint()?));
                    }
                    WatchedRef::Since(keys)
                } else {
                    let mut values = Vec::with_capacity(capacity);
                    for _ in 0..count {
                        let key = reader.bytes()?;
                        values.push((key, if reader.bool()? { Some(reader.bytes()?) } else { None }));
                    }
                    WatchedRef::Values(values)
                };
                OpRef::Multi { ops, watched }
            }
            12 => OpRef::MGet { keys: keys(reader)? },
            13 => OpRef::Exists { keys: keys(reader)? },
            14 => OpRef::Strlen { key: reader.bytes()? },
            15 if !outer => OpRef::Refused { message: reader.bytes()? },
            16 => OpRef::SetRange { key: reader.bytes()?, offset: reader.varint()?, value: reader.bytes()?, max_len: reader.varint()? },
            17 => OpRef::IncrByFloat { key: reader.bytes()?, delta: reader.bytes()? },
            18 => OpRef::Copy { from: reader.bytes()?, to: reader.bytes()?, replace: reader.bool()? },
            tag => return Err(DecodeError::BadTag { tag, at: 0 }),
        })
    }
}

impl CommandRef<'_> {
    pub fn to_owned(&self) -> Command {
        Command { client_id: self.client_id, seq: self.seq, op: self.op.to_owned() }
    }
}

impl Op {
    pub fn as_ref(&self) -> OpRef<'_> {
        match self {
            Op::Get { key } => OpRef::Get { key },
            Op::Put { key, value } => OpRef::Put { key, value },
            Op::Append { key, value } => OpRef::Append { key, value },
            Op::Delete { keys } => OpRef::Delete { keys: keys.iter().map(Vec::as_slice).collect() },
            Op::ClusterId { id } => OpRef::ClusterId { id: *id },
            Op::IncrBy { key, delta } => OpRef::IncrBy { key, delta: *delta },
            Op::Set { key, value, flags, expiry } => OpRef::Set { key, value, flags: *flags, expiry: *expiry },
            Op::GetDel { key } => OpRef::GetDel { key },
            Op::MSet { pairs, only_new } => OpRef::MSet { pairs: pairs.iter().map(|(key, value)| (&key[..], &value[..])).collect(), only_new: *only_new },
            Op::Flush => OpRef::Flush,
            Op::Rename { from, to, only_new } => OpRef::Rename { from, to, only_new: *only_new },
            Op::Multi { ops, watched } => OpRef::Multi { ops: ops.iter().map(Op::as_ref).collect(), watched: watched.as_ref() },
            Op::MGet { keys } => OpRef::MGet { keys: keys.iter().map(Vec::as_slice).collect() },
            Op::Exists { keys } => OpRef::Exists { keys: keys.iter().map(Vec::as_slice).collect() },
            Op::Strlen { key } => OpRef::Strlen { key },
            Op::Refused { message } => OpRef::Refused { message },
            Op::SetRange { key, offset, value, max_len } => OpRef::SetRange { key, offset: *offset, value, max_len: *max_len },
            Op::IncrByFloat { key, delta } => OpRef::IncrByFloat { key, delta },
            Op::Copy { from, to, replace } => OpRef::Copy { from, to, replace: *replace },
            Op::Clock { now_ms } => OpRef::Clock { now_ms: *now_ms },
            Op::Expire { key, expiry, condition } => OpRef::Expire { key, expiry: *expiry, condition: *condition },
            Op::GetEx { key, expiry } => OpRef::GetEx { key, expiry: *expiry },
            Op::VersionedPut { key, value, version } => OpRef::VersionedPut { key, value, version: *version },
            Op::VersionedDelete { key, version } => OpRef::VersionedDelete { key, version: *version },
            Op::DeleteIf { key, value, equal } => OpRef::DeleteIf { key, value, equal: *equal },
        }
    }
}

impl Command {
    pub fn as_ref(&self) -> CommandRef<'_> {
        CommandRef { client_id: self.client_id, seq: self.seq, op: self.op.as_ref() }
    }

    pub fn encode(&self) -> Vec<u8> {
        let command = self.as_ref();
        let mut out = Vec::with_capacity(command.encoded_len_bound());
        command.encode_into(&mut out);
        out
    }

    pub fn decode(input: &[u8]) -> Result<Command, DecodeError> {
        CommandRef::decode(input).map(|command| command.to_owned())
    }
}

impl Reply {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Value(None) => out.push(0),
            Reply::Value(Some(value)) => {
                out.push(1);
                put_bytes(out, value);
            }
            Reply::Done => out.push(2),
            Reply::Length(length) => {
                out.push(3);
                put_varint(out, *length);
            }
            Reply::Removed(count) => {
                out.push(4);
                put_varint(out, *count);
            }
            Reply::Integer(value) => {
                out.push(5);
                put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
            }
            Reply::Values(values) => {
                out.push(6);
                put_varint(out, values.len() as u64);
                for value in values {
                    match value {
                        None => out.push(0),
                        Some(value) => {
                            out.push(1);
                            put_bytes(out, value);
                        }
                    }
                }
            }
            Reply::Error(message) => {
                out.push(7);
                put_bytes(out, message.as_bytes());
            }
            Reply::Status(status) => {
                out.push(8);
                put_bytes(out, status.as_bytes());
            }
            Reply::Scan { cursor, keys } => {
                out.push(9);
                put_varint(out, *cursor);
                put_varint(out, keys.len() as u64);
                for key in keys {
                    put_bytes(out, key);
                }
            }
            Reply::Multi(replies) => {
                out.push(10);
                put_varint(out, replies.len() as u64);
                for reply in replies {
                    reply.encode(out);
                }
            }
            Reply::Aborted => out.push(11),
        }
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Reply, DecodeError> {
        Ok(match reader.byte()? {
            0 => Reply::Value(None),
            1 => Reply::Value(Some(reader.bytes()?.to_vec())),
            2 => Reply::Done,
            3 => Reply::Length(reader.varint()?),
            4 => Reply::Removed(reader.varint()?),
            5 => {
                let zigzag = reader.varint()?;
                Reply::Integer(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
            }
            6 => {
                let count = reader.varint()?;
                let mut values = Vec::new();
                for _ in 0..count {
                    values.push(if reader.bool()? { Some(reader.bytes()?.to_vec()) } else { None });
                }
                Reply::Values(values)
            }
            7 => Reply::Error(String::from_utf8_lossy(reader.bytes()?).into_owned()),
            8 => Reply::Status(String::from_utf8_lossy(reader.bytes()?).into_owned()),
            9 => {
                let cursor = reader.varint()?;
                let count = reader.varint()?;
                let mut keys = Vec::new();
                for _ in 0..count {
                    keys.push(reader.bytes()?.to_vec());
                }
                Reply::Scan { cursor, keys }
            }
            10 => {
                let count = reader.varint()?;
                let mut replies = Vec::new();
                for _ in 0..count {
                    // One level only: a transaction's replies hold no transaction.
                    let reply = Reply::decode(reader)?;
                    if matches!(reply, Reply::Multi(_)) {
                        return Err(DecodeError::BadTag { tag: 10, at: 0 });
                    }
                    replies.push(reply);
                }
                Reply::Multi(replies)
            }
            11 => Reply::Aborted,
            tag => return Err(DecodeError::BadTag { tag, at: 0 }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_truncations_fail() {
        let ops = [
            Op::Get { key: b"k".to_vec() },
            Op::Put { key: b"k".to_vec(), value: b"v".to_vec() },
            Op::Append { key: b"".to_vec(), value: vec![0; 300] },
            Op::Delete { keys: vec![b"gone".to_vec(), b"".to_vec()] },
            Op::IncrBy { key: b"n".to_vec(), delta: i64::MIN },
            Op::IncrBy { key: b"n".to_vec(), delta: -1 },
            Op::Set { key: b"k".to_vec(), value: b"v".to_vec(), flags: SetFlags::ONLY_NEW | SetFlags::GET, expiry: Expiry::Clear },
            Op::Set { key: b"k".to_vec(), value: b"v".to_vec(), flags: 0, expiry: Expiry::After(1_000) },
            Op::Set { key: b"k".to_vec(), value: b"v".to_vec(), flags: SetFlags::ONLY_EXISTING, expiry: Expiry::Keep },
            Op::Clock { now_ms: 1_700_000_000_000 },
            Op::Expire { key: b"k".to_vec(), expiry: Expiry::At(u64::MAX), condition: crate::ExpireIf::LATER },
            Op::GetEx { key: b"k".to_vec(), expiry: Expiry::Clear },
            Op::VersionedPut { key: b"k".to_vec(), value: b"v".to_vec(), version: u64::MAX },
            Op::VersionedDelete { key: b"k".to_vec(), version: 0 },
            Op::DeleteIf { key: b"k".to_vec(), value: b"token".to_vec(), equal: false },
            Op::GetDel { key: b"k".to_vec() },
            Op::MSet { pairs: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), Vec::new())], only_new: true },
            Op::Flush,
            Op::Rename { from: b"a".to_vec(), to: b"b".to_vec(), only_new: true },
            Op::Multi {
                ops: vec![Op::Get { key: b"k".to_vec() }, Op::IncrBy { key: b"n".to_vec(), delta: 1 }, Op::MGet { keys: vec![b"a".to_vec()] }, Op::Refused { message: b"ERR x".to_vec() }],
                watched: crate::Watched::Values(vec![(b"k".to_vec(), None), (b"n".to_vec(), Some(b"3".to_vec()))]),
            },
            Op::Multi { ops: vec![Op::Get { key: b"k".to_vec() }], watched: crate::Watched::Since(vec![(b"k".to_vec(), 7), (b"m".to_vec(), u64::MAX)]) },
            Op::Exists { keys: vec![b"a".to_vec()] },
            Op::SetRange { key: b"k".to_vec(), offset: 1 << 40, value: b"v".to_vec(), max_len: 16 << 20 },
            Op::IncrByFloat { key: b"f".to_vec(), delta: b"-0.1".to_vec() },
            Op::Copy { from: b"a".to_vec(), to: b"b".to_vec(), replace: true },
            Op::Strlen { key: b"a".to_vec() },
        ];
        for op in ops {
            let command = Command { client_id: u64::MAX, seq: 7, op };
            let bytes = command.encode();
            assert_eq!(Command::decode(&bytes), Ok(command));
            for cut in 0..bytes.len() {
                assert!(Command::decode(&bytes[..cut]).is_err());
            }
        }
        let replies = [Reply::Integer(i64::MIN), Reply::Integer(7), Reply::Values(vec![None, Some(b"v".to_vec())]), Reply::Error("ERR x".into()), Reply::Status("string".into()), Reply::Scan { cursor: u64::MAX, keys: vec![b"a".to_vec(), Vec::new()] }, Reply::Multi(vec![Reply::Done, Reply::Integer(-1)]), Reply::Aborted];
        for reply in replies {
            let mut bytes = Vec::new();
            reply.encode(&mut bytes);
            assert_eq!(Reply::decode(&mut Reader::new(&bytes)), Ok(reply));
        }
        // A transaction inside a transaction is not a command.
        let nested = Command { client_id: 0, seq: 1, op: Op::Multi { ops: vec![Op::Multi { ops: Vec::new(), watched: crate::Watched::Since(Vec::new()) }], watched: crate::Watched::Since(Vec::new()) } };
        assert!(Command::decode(&nested.encode()).is_err());
    }
}
