//! The state machine: keys and values, plus one session per client that remembers the client's
//! last write and its reply, so that a write retried after a timeout or a leader change is applied
//! exactly once. Applying is deterministic: every replica that applies the same log ends with
//! byte-identical state (ordered maps only), which the snapshot encoding relies on.
//!
//! Sessions are bounded: past `MAX_SESSIONS`, the one whose last write is oldest in the log is
//! forgotten. The log decides it, so every replica forgets the same one. A client forgotten that
//! way and then retrying its last write would have it applied again; it would have had to stay
//! silent while `MAX_SESSIONS` other clients wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::command::{CommandRef, OpRef, Reply, SetFlags, WatchedRef};
use crate::expiry::{Deadlines, ExpireIf, Expiry, PURGE_PER_CLOCK};

/// The last write of one client. Clients have one operation outstanding at a time and number them
/// in order, so the last one is all that must be remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub seq: u64,
    pub reply: Reply,
    /// The log index of that write: what decides which session is forgotten first.
    pub last_index: u64,
}

/// Sessions remembered at most (a session takes tens of bytes). The same on every replica: a
/// constant, never a setting.
pub const MAX_SESSIONS: usize = 100_000;

/// A key's value, and the log index of the last change to the key (its value or its time to
/// live), which WATCH compares: a transaction runs only if none of its watched keys changed after
/// the index WATCH read them at (a value changed and changed back counts, as in Redis).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    bytes: Bytes,
    pub(crate) changed: u64,
    /// How many times the key changed since it was created (1: created): what VSET compares, as
    /// the 2025 lab's versioned Put does.
    pub(crate) version: u64,
}

/// The bytes, shared so that a snapshot's copy of the store costs no copy of the values. A SET
/// stores them in one allocation; the first APPEND moves them into a growable buffer, which later
/// appends extend in place while nothing else holds it (`Arc::make_mut`): repeated appends cost
/// amortized linear time instead of a copy of the whole value each.
#[derive(Clone, Debug)]
enum Bytes {
    Fixed(Arc<[u8]>),
    Growing(Arc<Vec<u8>>),
}

/// Equal by their bytes, however they are held.
impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

/// A value as the store holds it, shared rather than copied: what a GET answers with, so that
/// the answers a client has not read yet cost a reference each, not a copy of each value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedValue(Bytes);

impl AsRef<[u8]> for SharedValue {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Fixed(bytes) => bytes,
            Bytes::Growing(bytes) => bytes,
        }
    }
}

impl Value {
    pub(crate) fn new(bytes: &[u8], changed: u64, version: u64) -> Value {
        Value { bytes: Bytes::Fixed(Arc::from(bytes)), changed, version }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// One more change, at log index `index`.
    fn changed_at(&mut self, index: u64) {
        self.changed = index;
        self.version = self.version.saturating_add(1);
    }

    /// Appends `more`, copying only if a snapshot's copy of the store holds this value too.
    fn append(&mut self, more: &[u8]) -> u64 {
        if let Bytes::Fixed(bytes) = &self.bytes {
            let mut grown = Vec::with_capacity((bytes.len() + more.len()).next_power_of_two());
            grown.extend_from_slice(bytes);
            self.bytes = Bytes::Growing(Arc::new(grown));
        }
        let Bytes::Growing(bytes) = &mut self.bytes else { unreachable!("made growable just above") };
        let grown = Arc::make_mut(bytes);
        grown.extend_from_slice(more);
        grown.len() as u64
    }
}

/// Removals remembered for WATCH (a key missing when watched, created and removed since, has
/// changed): past this many, the oldest is forgotten, and a missing key watched before it counts
/// as changed. The same on every replica: a constant.
pub const REMOVALS_KEPT: usize = 65_536;

/// The keys removed lately, by the log index of their removal (see `REMOVALS_KEPT`). A key is
/// remembered by its fingerprint (`fingerprint`), never its bytes: a removal costs the same
/// whatever the key's length. Two keys with one fingerprint share their removals: a missing key
/// may then count as changed when it did not (EXEC aborts where Redis would run it), never the
/// reverse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Removals {
    /// (index, fingerprint) in the order of removal, a key again each time it is removed.
    pub(crate) order: std::collections::VecDeque<(u64, u64)>,
    latest: BTreeMap<u64, u64>,
    /// Any key missing now may have been removed at or before this index.
    pub(crate) horizon: u64,
}

/// A key's 64-bit FNV-1a hash: the same on every replica and in every build (a removal's
/// fingerprint travels in snapshots).
pub(crate) fn fingerprint(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

impl Removals {
    pub(crate) fn record(&mut self, index: u64, key: &[u8]) {
        let print = fingerprint(key);
        self.latest.insert(print, index);
        self.order.push_back((index, print));
        while self.order.len() > REMOVALS_KEPT {
            let Some((oldest, print)) = self.order.pop_front() else { break };
            self.horizon = self.horizon.max(oldest);
            if self.latest.get(&print) == Some(&oldest) {
                self.latest.remove(&print);
            }
        }
    }

    /// Every key may have been removed at `index` (FLUSHDB).
    fn all(&mut self, index: u64) {
        self.order.clear();
        self.latest.clear();
        self.horizon = index;
    }

    /// Whether a key missing now may have been removed after `since`.
    fn since(&self, key: &[u8], since: u64) -> bool {
        since < self.horizon || self.latest.get(&fingerprint(key)).is_some_and(|&at| at > since)
    }

    /// From a snapshot: the removals in order, and the horizon.
    pub(crate) fn restore(order: std::collections::VecDeque<(u64, u64)>, horizon: u64) -> Removals {
        let latest = order.iter().map(|&(index, print)| (print, index)).collect();
        Removals { order, latest, horizon }
    }
}

/// Cloning is cheap next to the data it holds: values are shared (`Arc`), so a clone costs a copy
/// of the keys and the map's nodes. That is how a snapshot is taken of a large store without
/// stopping the applies: clone, then encode the clone on another thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub(crate) data: BTreeMap<Vec<u8>, Value>,
    pub(crate) sessions: BTreeMap<u64, Session>,
    /// (last index, client id) of every session, oldest first.
    pub(crate) session_order: BTreeSet<(u64, u64)>,
    /// `MAX_SESSIONS`, or less in tests.
    pub(crate) session_limit: usize,
    /// The cluster's id: 0 until the first `Op::ClusterId` is applied, then that one's for ever.
    pub(crate) cluster_id: u64,
    /// The log index of the last command applied (or of the snapshot restored).
    pub(crate) applied_index: u64,
    /// The log time: the latest `Op::Clock` applied, in ms since the Unix epoch (see `expiry`).
    pub(crate) log_time: u64,
    pub(crate) deadlines: Deadlines,
    /// The cluster's configuration as of the applied index (the encoded `raft::Membership` of the
    /// last configuration entry applied; empty: none yet), so that snapshots carry it.
    pub(crate) membership: Vec<u8>,
    pub(crate) removals: Removals,
    /// What the keys and values take, by `entry_bytes`: kept up to date by every change, so that
    /// a node can hold its data to a budget (`--max-memory`).
    pub(crate) data_bytes: u64,
}

/// What one key costs besides its bytes and its value's: the map's node share, the value's
/// record and its allocation's header, roughly.
pub const KEY_OVERHEAD_BYTES: u64 = 64;

/// What a key and its value take in memory, by `KEY_OVERHEAD_BYTES`.
pub(crate) fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64 + KEY_OVERHEAD_BYTES
}

impl Default for Store {
    fn default() -> Store {
        Store {
            data: BTreeMap::new(),
            sessions: BTreeMap::new(),
            session_order: BTreeSet::new(),
            session_limit: MAX_SESSIONS,
            cluster_id: 0,
            applied_index: 0,
            log_time: 0,
            deadlines: Deadlines::default(),
            membership: Vec::new(),
            removals: Removals::default(),
            data_bytes: 0,
        }
    }
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// A store that remembers at most `limit` sessions (tests of the eviction; production uses
    /// `MAX_SESSIONS` everywhere).
    pub fn with_session_limit(limit: usize) -> Store {
        Store { session_limit: limit.max(1), ..Store::default() }
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The cluster's id (0: not named yet).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Whether `key` changed after log index `since` (WATCH read it there): its value or time to
    /// live set, or it was removed (or may have been: see `REMOVALS_KEPT`).
    pub fn changed_since(&self, key: &[u8], since: u64) -> bool {
        match self.data.get(key) {
            Some(value) => value.changed > since,
            None => self.removals.since(key, since),
        }
    }

    /// A key's value; None if it is missing or has expired.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.data.get(key).filter(|_| !self.expired(key)).map(Value::as_slice)
    }

    /// `get`, shared with the store instead of borrowed (see `SharedValue`).
    pub fn get_shared(&self, key: &[u8]) -> Option<SharedValue> {
        self.data.get(key).filter(|_| !self.expired(key)).map(|value| SharedValue(value.bytes.clone()))
    }

    /// A key's value and version (VGET); None if it is missing or has expired.
    pub fn get_versioned(&self, key: &[u8]) -> Option<(&[u8], u64)> {
        self.data.get(key).filter(|_| !self.expired(key)).map(|value| (value.as_slice(), value.version))
    }

    /// Whether `key` has a deadline at or before the log time (it may still be in memory, until a
    /// clock entry or a write removes it).
    fn expired(&self, key: &[u8]) -> bool {
        !self.deadlines.is_empty() && self.deadlines.get(key).is_some_and(|at| at <= self.log_time)
    }

    /// The log time, in ms since the Unix epoch (0: no clock entry applied yet).
    pub fn log_time(&self) -> u64 {
        self.log_time
    }

    /// A key's deadline: None if it is missing, Some(None) if it has no time to live.
    pub fn deadline(&self, key: &[u8]) -> Option<Option<u64>> {
        self.get(key)?;
        Some(self.deadlines.get(key))
    }

    /// The earliest deadline of any key, expired or not (what tells the leader a clock entry is due).
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.next()
    }

    /// Keys with a time to live.
    pub fn volatile_keys(&self) -> usize {
        self.deadlines.len()
    }

    /// SCAN's page from `cursor`: keys in byte order from the first whose leading 8 bytes (read as a
    /// big-endian number, zero-padded) are at least `cursor - 1`, about `count` of them but always
    /// every key sharing the last one's leading 8 bytes, and the cursor of the next page (0: none).
    /// The cursor depends on the keys alone, so it stays valid on every replica and across leader
    /// changes, and a key present for the whole scan is returned at least once.
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<&[u8]>) {
        // The smallest key with that prefix: its bytes without the padding zeros.
        let start = cursor.saturating_sub(1).to_be_bytes();
        let start = &start[..start.iter().rposition(|&byte| byte != 0).map_or(0, |last| last + 1)];
        let mut page: Vec<&[u8]> = Vec::new();
        for key in self.data.range(start.to_vec()..).map(|(key, _)| key.as_slice()).filter(|key| !self.expired(key)) {
            // (Keys whose prefix is all ones have no cursor after the shift: they end the scan.)
            if page.len() >= count.max(1) && prefix(key) != prefix(page[page.len() - 1]) && prefix(key) != u64::MAX {
                // The next page starts at this key's prefix; 0 is "done", so cursors are shifted by one.
                return (prefix(key).saturating_add(1), page);
            }
            page.push(key);
        }
        (0, page)
    }

    /// Each key's value (MGET).
    pub fn values<K: AsRef<[u8]>>(&self, keys: &[K]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|key| self.get(key.as_ref()).map(<[u8]>::to_vec)).collect()
    }

    /// How many of the keys exist, each counted as often as it is listed (EXISTS).
    pub fn existing<K: AsRef<[u8]>>(&self, keys: &[K]) -> u64 {
        keys.iter().filter(|key| self.get(key.as_ref()).is_some()).count() as u64
    }

    /// The length of a key's value, 0 if it is missing (STRLEN).
    pub fn value_len(&self, key: &[u8]) -> u64 {
        self.get(key).map_or(0, |value| value.len() as u64)
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.data.keys().map(Vec::as_slice).filter(|key| !self.expired(key))
    }

    /// What the keys and values take in memory, expired ones included until they are removed:
    /// their bytes and `KEY_OVERHEAD_BYTES` each.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Keys that have not expired.
    pub fn len(&self) -> usize {
        self.data.len() - self.deadlines.due(self.log_time)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks a log index as applied that carries no command (a leader's no-op).
    pub fn skip(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// Applies a configuration entry: the store keeps it for its snapshots.
    pub fn apply_membership(&mut self, index: u64, encoded: &[u8]) {
        self.skip(index);
        self.membership = encoded.to_vec();
    }

    /// The encoded configuration last applied (empty: none).
    pub fn membership(&self) -> &[u8] {
        &self.membership
    }

    /// Applies the command committed at `index` and returns its reply. A write whose sequence
    /// number the client's session has already seen is not applied again: the reply recorded the
    /// first time is returned instead (exactly-once). Reads are executed afresh each time, which
    /// gives a retried read an answer no older than its first try.
    pub fn apply(&mut self, index: u64, command: &CommandRef<'_>) -> Reply {
        self.applied_index = self.applied_index.max(index);
        let tracked = command.client_id != 0 && command.op.is_write();
        if tracked {
            if let Some(session) = self.sessions.get(&command.client_id) {
                if command.seq <= session.seq {
                    return session.reply.clone();
                }
            }
        }
        let reply = self.execute(&command.op);
        if tracked {
            self.remember(command.client_id, Session { seq: command.seq, reply: reply.clone(), last_index: index });
        }
        reply
    }

    /// Records a client's last write, forgetting the session whose last write is oldest if the
    /// limit is reached.
    pub(crate) fn remember(&mut self, client_id: u64, session: Session) {
        self.session_order.insert((session.last_index, client_id));
        if let Some(previous) = self.sessions.insert(client_id, session) {
            self.session_order.remove(&(previous.last_index, client_id));
        }
        while self.sessions.len() > self.session_limit {
            let Some((_, oldest)) = self.session_order.pop_first() else { break };
            self.sessions.remove(&oldest);
        }
    }

    /// Allocates only what the store keeps: the new value, and the key when it is new.
    fn execute(&mut self, op: &OpRef<'_>) -> Reply {
        // An expired key the operation touches is removed first: to it, the key is missing.
        if !self.deadlines.is_empty() {
            for key in op.keys() {
                if self.expired(key) {
                    self.remove(key);
                }
            }
        }
        match op {
            OpRef::Get { key } => Reply::Value(self.data.get(*key).map(|value| value.as_slice().to_vec())),
            OpRef::Put { key, value } => {
                self.put(key, value);
                self.deadlines.set(key, None);
                Reply::Done
            }
            OpRef::Append { key, value } => {
                let index = self.applied_index;
                let stored = match self.data.get_mut(*key) {
                    Some(stored) => stored,
                    None => {
                        self.data_bytes += entry_bytes(key, &[]);
                        self.data.entry(key.to_vec()).or_insert_with(|| Value { bytes: Bytes::Growing(Arc::default()), changed: index, version: 0 })
                    }
                };
                stored.changed_at(index);
                let length = stored.append(value);
                self.data_bytes += value.len() as u64;
                Reply::Length(length)
            }
            OpRef::Delete { keys } => Reply::Removed(keys.iter().filter(|key| self.remove(key).is_some()).count() as u64),
            OpRef::ClusterId { id } => {
                if self.cluster_id == 0 {
                    self.cluster_id = *id;
                }
                Reply::Done
            }
            OpRef::IncrBy { key, delta } => {
                let current = match self.data.get(*key) {
                    None => 0,
                    Some(value) => match parse_integer(value.as_slice()) {
                        Some(current) => current,
                        None => return Reply::Error(NOT_AN_INTEGER.into()),
                    },
                };
                let Some(new) = current.checked_add(*delta) else {
                    return Reply::Error("ERR increment or decrement would overflow".into());
                };
                self.put(key, new.to_string().as_bytes());
                Reply::Integer(new)
            }
            OpRef::Set { key, value, flags, expiry } => {
                let old = self.data.get(*key).map(|old| old.as_slice().to_vec());
                let allowed = !(flags & SetFlags::ONLY_NEW != 0 && old.is_some() || flags & SetFlags::ONLY_EXISTING != 0 && old.is_none());
                if allowed {
                    self.put(key, value);
                    self.expire_at(key, *expiry);
                }
                match (flags & SetFlags::GET != 0, flags & SetFlags::INTEGER_REPLY != 0, allowed) {
                    (true, _, _) => Reply::Value(old),
                    (false, true, set) => Reply::Integer(i64::from(set)),
                    (false, false, true) => Reply::Done,
                    (false, false, false) => Reply::Value(None),
                }
            }
            OpRef::GetDel { key } => Reply::Value(self.remove(key).map(|old| old.as_slice().to_vec())),
            OpRef::MSet { pairs, only_new } => {
                if *only_new && pairs.iter().any(|(key, _)| self.data.contains_key(*key)) {
                    return Reply::Integer(0);
                }
                for (key, value) in pairs {
                    self.put(key, value);
                    self.deadlines.set(key, None);
                }
                if *only_new { Reply::Integer(1) } else { Reply::Done }
            }
            OpRef::Flush => {
                self.data.clear();
                self.data_bytes = 0;
                self.deadlines.clear();
                self.removals.all(self.applied_index);
                Reply::Done
            }
            OpRef::Multi { ops, watched } => {
                let changed = match watched {
                    WatchedRef::Since(keys) => keys.iter().any(|(key, since)| self.changed_since(key, *since)),
                    WatchedRef::Values(values) => values.iter().any(|(key, value)| self.get(key) != *value),
                };
                if changed {
                    return Reply::Aborted;
                }
                Reply::Multi(ops.iter().map(|op| self.execute(op)).collect())
            }
            OpRef::MGet { keys } => Reply::Values(self.values(keys)),
            OpRef::Exists { keys } => Reply::Integer(self.existing(keys) as i64),
            OpRef::Strlen { key } => Reply::Integer(self.value_len(key) as i64),
            OpRef::Refused { message } => Reply::Error(String::from_utf8_lossy(message).into_owned()),
            OpRef::SetRange { key, offset, value, max_len } => {
                let current = self.get(key).map(<[u8]>::to_vec);
                if value.is_empty() {
                    return Reply::Integer(current.map_or(0, |current| current.len() as i64));
                }
                let end = offset.saturating_add(value.len() as u64);
                if end > *max_len {
                    return Reply::Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into());
                }
                let mut bytes = current.unwrap_or_default();
                let (offset, end) = (*offset as usize, end as usize);
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[offset..end].copy_from_slice(value);
                self.put(key, &bytes);
                Reply::Integer(bytes.len() as i64)
            }
            OpRef::IncrByFloat { key, delta } => {
                let Some(delta) = parse_float(delta) else {
                    return Reply::Error("ERR value is not a valid float".into());
                };
                let current = match self.get(key) {
                    None => 0.0,
                    Some(value) => match parse_float(value) {
                        Some(current) => current,
                        None => return Reply::Error("ERR value is not a valid float".into()),
                    },
                };
                let new = current + delta;
                if !new.is_finite() {
                    return Reply::Error("ERR increment would produce NaN or Infinity".into());
                }
                let text = format_float(new);
                self.put(key, text.as_bytes());
                Reply::Value(Some(text.into_bytes()))
            }
            OpRef::Copy { from, to, replace } => {
                let version = self.next_version(to);
                let Some(value) = self.data.get(*from).map(|value| Value::new(value.as_slice(), self.applied_index, version)) else {
                    return Reply::Integer(0);
                };
                if !replace && self.data.contains_key(*to) {
                    return Reply::Integer(0);
                }
                self.insert(to, value);
                self.deadlines.set(to, self.deadlines.get(from));
                Reply::Integer(1)
            }
            OpRef::Rename { from, to, only_new } => {
                if !self.data.contains_key(*from) {
                    return Reply::Error("ERR no such key".into());
                }
                if *only_new && self.data.contains_key(*to) {
                    return Reply::Integer(0);
                }
                if from != to {
                    let deadline = self.deadlines.get(from);
                    let version = self.next_version(to);
                    if let Some(mut value) = self.remove(from) {
                        value.changed = self.applied_index;
                        value.version = version;
                        self.insert(to, value);
                        self.deadlines.set(to, deadline);
                    }
                }
                if *only_new { Reply::Integer(1) } else { Reply::Done }
            }
            OpRef::Clock { now_ms } => {
                self.log_time = self.log_time.max(*now_ms);
                for _ in 0..PURGE_PER_CLOCK {
                    let Some(key) = self.deadlines.pop_due(self.log_time) else { break };
                    if self.remove_entry(&key).is_some() {
                        self.removals.record(self.applied_index, &key);
                    }
                }
                Reply::Done
            }
            OpRef::Expire { key, expiry, condition } => {
                if !self.data.contains_key(*key) {
                    return Reply::Integer(0);
                }
                let current = self.deadlines.get(key);
                let Some(at) = self.resolve(*expiry) else {
                    // PERSIST: 1 if there was a time to live to remove.
                    if current.is_some() {
                        self.deadlines.set(key, None);
                        self.touch(key);
                    }
                    return Reply::Integer(i64::from(current.is_some()));
                };
                let allowed = match current {
                    None => condition & (ExpireIf::SET | ExpireIf::LATER) == 0,
                    Some(current) => {
                        condition & ExpireIf::NONE_SET == 0
                            && (condition & ExpireIf::LATER == 0 || at > current)
                            && (condition & ExpireIf::EARLIER == 0 || at < current)
                    }
                };
                if allowed {
                    self.deadlines.set(key, Some(at));
                    self.touch(key);
                }
                Reply::Integer(i64::from(allowed))
            }
            OpRef::VersionedPut { key, value, version } => {
                if let Err(refusal) = self.version_matches(key, *version) {
                    return refusal;
                }
                self.put(key, value);
                self.deadlines.set(key, None);
                Reply::Integer(self.data.get(*key).map_or(0, |stored| i64::try_from(stored.version).unwrap_or(i64::MAX)))
            }
            OpRef::VersionedDelete { key, version } => {
                if let Err(refusal) = self.version_matches(key, *version) {
                    return refusal;
                }
                Reply::Removed(u64::from(self.remove(key).is_some()))
            }
            OpRef::DeleteIf { key, value, equal } => {
                let matches = self.data.get(*key).is_some_and(|stored| (stored.as_slice() == *value) == *equal);
                Reply::Removed(u64::from(matches && self.remove(key).is_some()))
            }
            OpRef::GetEx { key, expiry } => {
                let value = self.data.get(*key).map(|value| value.as_slice().to_vec());
                if value.is_some() {
                    self.expire_at(key, *expiry);
                }
                Reply::Value(value)
            }
        }
    }

    /// The deadline `expiry` sets (None: it clears the time to live). `Keep` is not resolved.
    fn resolve(&self, expiry: Expiry) -> Option<u64> {
        match expiry {
            Expiry::Clear | Expiry::Keep => None,
            Expiry::At(at) => Some(at),
            Expiry::After(after) => Some(self.log_time.saturating_add(after)),
        }
    }

    /// Gives `key` (which exists) the time to live `expiry` says.
    fn expire_at(&mut self, key: &[u8], expiry: Expiry) {
        if expiry != Expiry::Keep {
            self.deadlines.set(key, self.resolve(expiry));
            self.touch(key);
        }
    }

    /// Records that `key` (which exists) changed at the index being applied.
    fn touch(&mut self, key: &[u8]) {
        if let Some(value) = self.data.get_mut(key) {
            value.changed_at(self.applied_index);
        }
    }

    /// The version `key` has once written: one more than now, 1 if it is created.
    fn next_version(&self, key: &[u8]) -> u64 {
        self.data.get(key).map_or(1, |value| value.version.saturating_add(1))
    }

    /// Whether a VSET or VDEL naming `version` may write `key`: the key is at that version, or it
    /// is missing and the version is 0. Otherwise the refusal, with the version it is at.
    fn version_matches(&self, key: &[u8], version: u64) -> Result<(), Reply> {
        match self.data.get(key) {
            Some(value) if value.version == version => Ok(()),
            Some(value) => Err(Reply::Error(format!("VERSION the key is at version {}", value.version))),
            None if version == 0 => Ok(()),
            None => Err(Reply::Error("NOKEY no such key".into())),
        }
    }

    /// Removes a key and its time to live.
    fn remove(&mut self, key: &[u8]) -> Option<Value> {
        self.deadlines.set(key, None);
        let removed = self.remove_entry(key);
        if removed.is_some() {
            self.removals.record(self.applied_index, key);
        }
        removed
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        let value = Value::new(value, self.applied_index, self.next_version(key));
        match self.data.get_mut(key) {
            Some(stored) => {
                self.data_bytes = self.data_bytes - stored.as_slice().len() as u64 + value.as_slice().len() as u64;
                *stored = value;
            }
            None => self.insert(key, value),
        }
    }

    /// Sets `key` to `value`, replacing any value it had, and counts the bytes.
    fn insert(&mut self, key: &[u8], value: Value) {
        self.data_bytes += entry_bytes(key, value.as_slice());
        if let Some(old) = self.data.insert(key.to_vec(), value) {
            self.data_bytes -= entry_bytes(key, old.as_slice());
        }
    }

    /// Takes `key` out of the map (nothing else), and counts the bytes.
    fn remove_entry(&mut self, key: &[u8]) -> Option<Value> {
        let removed = self.data.remove(key);
        if let Some(value) = &removed {
            self.data_bytes -= entry_bytes(key, value.as_slice());
        }
        removed
    }
}

/// A key's first 8 bytes as a big-endian number, zero-padded: SCAN's position.
fn prefix(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let len = key.len().min(8);
    bytes[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(bytes)
}

/// A value as Redis reads a float: decimal or exponent notation, no spaces, finite.
pub fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.trim() != text || text.contains(['n', 'N', 'i', 'I']) {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// A float as INCRBYFLOAT writes it: the shortest decimal that reads back the same, without an
/// exponent or trailing zeros (`10.5`, `3`, `0.1`).
fn format_float(value: f64) -> String {
    format!("{value}")
}

/// Redis's reply to arithmetic on a value that is not a 64-bit integer.
pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// A value as Redis reads an integer: optional `-`, decimal digits, no leading zeros or spaces,
/// within 64 bits.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || bytes.len() > 20 {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::{Command, Op, Watched};
    use crate::expiry::Expiry;

    fn write(client_id: u64, seq: u64, op: Op) -> Command {
        Command { client_id, seq, op }
    }

    fn apply(store: &mut Store, index: u64, command: Command) -> Reply {
        store.apply(index, &command.as_ref())
    }

    fn append(key: &str, value: &str) -> Op {
        Op::Append { key: key.into(), value: value.into() }
    }

    /// Every write keeps `data_bytes` equal to what the keys and values take, counted afresh;
    /// a snapshot's copy counts the same. Seeded: a failure names its seed.
    #[test]
    fn data_bytes_follow_every_write() {
        for seed in 1..=40u64 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut below = |n: u64| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % n
            };
            let mut store = Store::new();
            for index in 1..=400 {
                let key = |n: u64| format!("k{n}").into_bytes();
                let (a, b) = (key(below(6)), key(below(6)));
                let value = vec![b'v'; below(40) as usize];
                let op = match below(16) {
                    0 => Op::Put { key: a, value },
                    1 => Op::Append { key: a, value },
                    2 => Op::Delete { keys: vec![a, b] },
                    3 => Op::IncrBy { key: a, delta: 7 },
                    4 => Op::Set { key: a, value, flags: 0, expiry: Expiry::After(below(50)) },
                    5 => Op::GetDel { key: a },
                    6 => Op::MSet { pairs: vec![(a, value.clone()), (b, value)], only_new: below(2) == 0 },
                    7 if below(8) == 0 => Op::Flush,
                    8 => Op::Rename { from: a, to: b, only_new: below(2) == 0 },
                    9 => Op::SetRange { key: a, offset: below(30), value, max_len: 1 << 20 },
                    10 => Op::Copy { from: a, to: b, replace: below(2) == 0 },
                    11 => Op::Clock { now_ms: index * 10 },
                    12 => Op::Multi { ops: vec![Op::Append { key: a.clone(), value: value.clone() }, Op::Put { key: b, value }], watched: Watched::Since(Vec::new()) },
                    13 => Op::VersionedPut { key: a, value, version: below(3) },
                    14 => Op::DeleteIf { key: a, value, equal: below(2) == 0 },
                    _ => Op::IncrByFloat { key: a, delta: b"1.5".to_vec() },
                };
                apply(&mut store, index, write(0, 0, op));
                let counted: u64 = store.data.iter().map(|(key, value)| entry_bytes(key, value.as_slice())).sum();
                assert_eq!(store.data_bytes(), counted, "seed {seed}, after write {index}");
            }
            let copy = Store::decode_snapshot(&store.encode_snapshot()).expect("a snapshot of it");
            assert_eq!(copy.data_bytes(), store.data_bytes(), "seed {seed}: the snapshot's copy");
        }
    }

    #[test]
    fn string_commands_answer_as_redis_does() {
        let mut store = Store::new();
        let mut index = 0;
        let mut run = |store: &mut Store, op: Op| {
            index += 1;
            apply(store, index, write(0, 0, op))
        };
        let incr = |delta| Op::IncrBy { key: b"n".to_vec(), delta };
        assert_eq!(run(&mut store, incr(5)), Reply::Integer(5), "a missing key counts from 0");
        assert_eq!(run(&mut store, incr(-7)), Reply::Integer(-2));
        assert_eq!(store.get(b"n"), Some(&b"-2"[..]));
        run(&mut store, Op::Put { key: b"n".to_vec(), value: i64::MAX.to_string().into_bytes() });
        assert_eq!(run(&mut store, incr(1)), Reply::Error("ERR increment or decrement would overflow".into()));
        for bad in ["", " 1", "+1", "01", "-0", "1.0", "99999999999999999999"] {
            run(&mut store, Op::Put { key: b"n".to_vec(), value: bad.as_bytes().to_vec() });
            assert_eq!(run(&mut store, incr(1)), Reply::Error(NOT_AN_INTEGER.into()), "{bad:?}");
        }
        let set = |value: &str, flags| Op::Set { key: b"s".to_vec(), value: value.as_bytes().to_vec(), flags, expiry: Expiry::Clear };
        assert_eq!(run(&mut store, set("1", SetFlags::ONLY_EXISTING)), Reply::Value(None), "XX on a missing key: nil");
        assert_eq!(run(&mut store, set("1", SetFlags::ONLY_NEW)), Reply::Done);
        assert_eq!(run(&mut store, set("2", SetFlags::ONLY_NEW | SetFlags::INTEGER_REPLY)), Reply::Integer(0), "SETNX on an existing key");
        assert_eq!(run(&mut store, set("3", SetFlags::ONLY_NEW | SetFlags::GET)), Reply::Value(Some(b"1".to_vec())), "NX GET: the old value, nothing set");
        assert_eq!(store.get(b"s"), Some(&b"1"[..]));
        assert_eq!(run(&mut store, set("4", SetFlags::GET)), Reply::Value(Some(b"1".to_vec())));
        assert_eq!(run(&mut store, Op::GetDel { key: b"s".to_vec() }), Reply::Value(Some(b"4".to_vec())));
        assert_eq!(store.get(b"s"), None);
        let mset = |keys: &[&str], only_new| Op::MSet { pairs: keys.iter().map(|key| (key.as_bytes().to_vec(), b"v".to_vec())).collect(), only_new };
        assert_eq!(run(&mut store, mset(&["a", "b"], false)), Reply::Done);
        assert_eq!(run(&mut store, mset(&["b", "c"], true)), Reply::Integer(0));
        assert_eq!(store.get(b"c"), None, "MSETNX sets nothing if one key exists");
        assert_eq!(run(&mut store, mset(&["c", "d"], true)), Reply::Integer(1));
        let rename = |from: &str, to: &str, only_new| Op::Rename { from: from.into(), to: to.into(), only_new };
        assert_eq!(run(&mut store, rename("missing", "x", false)), Reply::Error("ERR no such key".into()));
        assert_eq!(run(&mut store, rename("c", "d", true)), Reply::Integer(0), "RENAMENX onto an existing key");
        assert_eq!(run(&mut store, rename("c", "e", false)), Reply::Done);
        assert_eq!((store.get(b"c"), store.get(b"e")), (None, Some(&b"v"[..])));
        assert_eq!(run(&mut store, rename("e", "e", false)), Reply::Done, "onto itself: nothing changes");
        assert_eq!(store.get(b"e"), Some(&b"v"[..]));
        // Exactly once: a retried INCR is answered with its first result and not applied again.
        let tagged = Command { client_id: 4, seq: 1, op: Op::IncrBy { key: b"t".to_vec(), delta: 2 } };
        assert_eq!(apply(&mut store, 100, tagged.clone()), Reply::Integer(2));
        assert_eq!(apply(&mut store, 101, tagged), Reply::Integer(2));
        assert_eq!(store.get(b"t"), Some(&b"2"[..]));
        let setrange = |offset, value: &str| Op::SetRange { key: b"r".to_vec(), offset, value: value.as_bytes().to_vec(), max_len: 100 };
        assert_eq!(run(&mut store, setrange(0, "")), Reply::Integer(0), "nothing written, no key made");
        assert_eq!(store.get(b"r"), None);
        assert_eq!(run(&mut store, setrange(3, "ab")), Reply::Integer(5));
        assert_eq!(store.get(b"r"), Some(&b"\0\0\0ab"[..]), "padded with zero bytes");
        assert_eq!(run(&mut store, setrange(1, "X")), Reply::Integer(5));
        assert_eq!(store.get(b"r"), Some(&b"\0X\0ab"[..]));
        assert!(matches!(run(&mut store, setrange(99, "ab")), Reply::Error(message) if message.contains("maximum allowed size")));
        let float = |delta: &str| Op::IncrByFloat { key: b"f".to_vec(), delta: delta.as_bytes().to_vec() };
        assert_eq!(run(&mut store, float("10.5")), Reply::Value(Some(b"10.5".to_vec())));
        assert_eq!(run(&mut store, float("0.1")), Reply::Value(Some(b"10.6".to_vec())));
        assert_eq!(run(&mut store, float("-5.6")), Reply::Value(Some(b"5".to_vec())));
        assert_eq!(run(&mut store, float("5.0e3")), Reply::Value(Some(b"5005".to_vec())));
        let max = f64::MAX.to_string();
        assert!(matches!(run(&mut store, float(&max)), Reply::Value(Some(_))));
        assert!(matches!(run(&mut store, float(&max)), Reply::Error(message) if message.contains("NaN or Infinity")));
        run(&mut store, Op::Put { key: b"f".to_vec(), value: b"abc".to_vec() });
        assert_eq!(run(&mut store, float("1")), Reply::Error("ERR value is not a valid float".into()));
        let copy = |from: &str, to: &str, replace| Op::Copy { from: from.into(), to: to.into(), replace };
        assert_eq!(run(&mut store, copy("none", "x", false)), Reply::Integer(0));
        assert_eq!(run(&mut store, copy("r", "f", false)), Reply::Integer(0), "the destination exists");
        assert_eq!(run(&mut store, copy("r", "f", true)), Reply::Integer(1));
        assert_eq!(store.get(b"f"), store.get(b"r"));
        // A transaction logged by an earlier build runs only if its watched keys hold what WATCH read.
        let transaction = |watched| Op::Multi { ops: vec![Op::IncrBy { key: b"w".to_vec(), delta: 1 }], watched: crate::Watched::Values(watched) };
        assert_eq!(run(&mut store, transaction(vec![(b"w".to_vec(), None)])), Reply::Multi(vec![Reply::Integer(1)]));
        assert_eq!(run(&mut store, transaction(vec![(b"w".to_vec(), None)])), Reply::Aborted, "w exists now");
        assert_eq!(run(&mut store, transaction(vec![(b"w".to_vec(), Some(b"1".to_vec()))])), Reply::Multi(vec![Reply::Integer(2)]));
        assert_eq!(store.get(b"w"), Some(&b"2"[..]));
        assert_eq!(apply(&mut store, 102, write(0, 0, Op::Flush)), Reply::Done);
        assert_eq!(store.len(), 0);
    }

    /// The 2025 lab's versioned Put (VSET), and VDEL: version 0 creates, every change of the key
    /// by any command counts one, and a refusal changes nothing and names the version.
    #[test]
    fn versioned_writes_apply_only_at_the_version_named() {
        let mut store = Store::new();
        let vset = |key: &str, value: &str, version| write(0, 0, Op::VersionedPut { key: key.into(), value: value.into(), version });
        let version = |store: &Store, key: &str| store.get_versioned(key.as_bytes()).map(|(value, version)| (String::from_utf8_lossy(value).into_owned(), version));
        assert_eq!(apply(&mut store, 1, vset("k", "a", 0)), Reply::Integer(1));
        assert_eq!(version(&store, "k"), Some(("a".into(), 1)));
        assert_eq!(apply(&mut store, 2, vset("k", "b", 0)), Reply::Error("VERSION the key is at version 1".into()), "0 only creates");
        assert_eq!(apply(&mut store, 3, vset("y", "b", 1)), Reply::Error("NOKEY no such key".into()));
        assert_eq!(version(&store, "y"), None);
        assert_eq!(apply(&mut store, 4, vset("k", "b", 1)), Reply::Integer(2));
        assert_eq!(apply(&mut store, 5, vset("k", "c", 1)), Reply::Error("VERSION the key is at version 2".into()), "a retry of the same write is refused");
        assert_eq!(version(&store, "k"), Some(("b".into(), 2)));
        // Every other write counts: APPEND, INCR, a time to live; RENAME and COPY write their target.
        apply(&mut store, 6, write(0, 0, append("k", "x")));
        apply(&mut store, 7, write(0, 0, Op::Expire { key: b"k".to_vec(), expiry: crate::Expiry::After(60_000), condition: 0 }));
        assert_eq!(version(&store, "k"), Some(("bx".into(), 4)));
        apply(&mut store, 8, write(0, 0, Op::Copy { from: b"k".to_vec(), to: b"c".to_vec(), replace: false }));
        assert_eq!(version(&store, "c"), Some(("bx".into(), 1)), "a copy is a new key");
        apply(&mut store, 9, write(0, 0, Op::Rename { from: b"k".to_vec(), to: b"c".to_vec(), only_new: false }));
        assert_eq!(version(&store, "c"), Some(("bx".into(), 2)), "renamed onto an existing key: its next version");
        apply(&mut store, 10, write(0, 0, append("new", "x")));
        assert_eq!(version(&store, "new"), Some(("x".into(), 1)));
        // VDEL: only at the version named; a removed key starts again at 1.
        let vdel = |key: &str, version| write(0, 0, Op::VersionedDelete { key: key.into(), version });
        assert_eq!(apply(&mut store, 11, vdel("c", 1)), Reply::Error("VERSION the key is at version 2".into()));
        assert_eq!(apply(&mut store, 12, vdel("c", 2)), Reply::Removed(1));
        assert_eq!(apply(&mut store, 13, vdel("c", 0)), Reply::Removed(0));
        assert_eq!(apply(&mut store, 14, vset("c", "again", 0)), Reply::Integer(1));
        // DELEX: by value, so a lock's token (unique per taking) never matches the next holder's.
        let delex = |value: &str, equal| write(0, 0, Op::DeleteIf { key: b"c".to_vec(), value: value.into(), equal });
        assert_eq!(apply(&mut store, 15, delex("other", true)), Reply::Removed(0));
        assert_eq!(apply(&mut store, 16, delex("again", false)), Reply::Removed(0));
        assert_eq!(apply(&mut store, 17, delex("again", true)), Reply::Removed(1));
        assert_eq!(apply(&mut store, 18, delex("again", true)), Reply::Removed(0), "gone");
        apply(&mut store, 19, vset("c", "x", 0));
        assert_eq!(apply(&mut store, 20, delex("y", false)), Reply::Removed(1));
        // Versions survive a snapshot.
        let restored = Store::decode_snapshot(&store.encode_snapshot()).expect("a valid snapshot");
        assert_eq!(restored, store);
        assert_eq!(version(&restored, "new"), Some(("x".into(), 1)));
    }

    #[test]
    fn a_transaction_runs_only_if_no_watched_key_changed_since_watch_read_it() {
        let mut store = Store::new();
        let exec = |store: &mut Store, index, watched: &[(&str, u64)]| {
            let watched = crate::Watched::Since(watched.iter().map(|(key, since)| (key.as_bytes().to_vec(), *since)).collect());
            apply(store, index, write(0, 0, Op::Multi { ops: vec![Op::IncrBy { key: b"n".to_vec(), delta: 1 }], watched }))
        };
        let put = |key: &str, value: &str| write(0, 0, Op::Put { key: key.into(), value: value.into() });
        apply(&mut store, 1, put("k", "a"));
        assert_eq!(exec(&mut store, 2, &[("k", 1), ("missing", 1)]), Reply::Multi(vec![Reply::Integer(1)]), "nothing changed since 1");
        // Changed and changed back (ABA): Redis aborts, so does this.
        apply(&mut store, 3, put("k", "b"));
        apply(&mut store, 4, put("k", "a"));
        assert_eq!(exec(&mut store, 5, &[("k", 2)]), Reply::Aborted);
        assert_eq!(exec(&mut store, 6, &[("k", 4)]), Reply::Multi(vec![Reply::Integer(2)]), "watched after the change");
        // A missing key created and removed again since.
        apply(&mut store, 7, put("gone", "x"));
        apply(&mut store, 8, write(0, 0, Op::Delete { keys: vec![b"gone".to_vec()] }));
        assert_eq!(exec(&mut store, 9, &[("gone", 6)]), Reply::Aborted);
        assert_eq!(exec(&mut store, 10, &[("gone", 8)]), Reply::Multi(vec![Reply::Integer(3)]));
        // A new time to live is a change; EXPIRE on a missing key is not.
        let expire = |key: &str| write(0, 0, Op::Expire { key: key.into(), expiry: crate::Expiry::After(60_000), condition: 0 });
        apply(&mut store, 11, expire("k"));
        assert_eq!(exec(&mut store, 12, &[("k", 10)]), Reply::Aborted);
        apply(&mut store, 13, expire("nothing"));
        assert_eq!(exec(&mut store, 14, &[("nothing", 12)]), Reply::Multi(vec![Reply::Integer(4)]));
        // A transaction's own writes are changes too: watching "n" before the last EXEC aborts.
        assert_eq!(exec(&mut store, 15, &[("n", 13)]), Reply::Aborted);
        // FLUSHDB changes every key, missing ones included.
        apply(&mut store, 16, write(0, 0, Op::Flush));
        assert_eq!(exec(&mut store, 17, &[("never-there", 15)]), Reply::Aborted);
        assert_eq!(exec(&mut store, 18, &[("never-there", 16)]), Reply::Multi(vec![Reply::Integer(1)]));
        // What a snapshot restores judges the same.
        let restored = Store::decode_snapshot(&store.encode_snapshot()).expect("decodes");
        assert_eq!(restored, store);
        for (key, since) in [("n", 17), ("n", 18), ("k", 15), ("never-there", 15), ("gone", 16)] {
            assert_eq!(restored.changed_since(key.as_bytes(), since), store.changed_since(key.as_bytes(), since), "{key} since {since}");
        }
    }

    #[test]
    fn removals_remembered_are_bounded_and_older_ones_count_as_changes() {
        let mut store = Store::new();
        let (put, delete) = (|key: &[u8]| write(0, 0, Op::Put { key: key.to_vec(), value: b"v".to_vec() }), |key: &[u8]| write(0, 0, Op::Delete { keys: vec![key.to_vec()] }));
        let mut index = 0;
        for round in 0..=REMOVALS_KEPT as u64 {
            let key = round.to_be_bytes();
            apply(&mut store, index + 1, put(&key));
            apply(&mut store, index + 2, delete(&key));
            index += 2;
        }
        assert_eq!(store.removals.order.len(), REMOVALS_KEPT);
        // The first removal (at index 2) was forgotten: a missing key watched before it has changed.
        assert!(store.changed_since(b"never-there", 1));
        assert!(!store.changed_since(b"never-there", 2));
        assert!(store.changed_since(&(REMOVALS_KEPT as u64).to_be_bytes(), index - 1));
    }

    /// What WATCH remembers of a removed key costs the same whatever its length: a client that
    /// creates and deletes large keys cannot grow the store (or its snapshots) with their copies.
    #[test]
    fn a_removed_key_costs_its_removal_a_few_bytes_whatever_its_length() {
        let mut store = Store::new();
        let key = vec![b'k'; 1 << 20];
        apply(&mut store, 1, write(0, 0, Op::Put { key: key.clone(), value: b"v".to_vec() }));
        apply(&mut store, 2, write(0, 0, Op::Delete { keys: vec![key.clone()] }));
        assert!(store.changed_since(&key, 1), "the removal is remembered");
        assert!(!store.changed_since(&key, 2));
        let snapshot = store.encode_snapshot();
        assert!(snapshot.len() < 1024, "the snapshot holds {} bytes for one removed key", snapshot.len());
        assert_eq!(Store::decode_snapshot(&snapshot).expect("valid"), store);
    }

    #[test]
    fn a_scan_returns_every_key_present_throughout_once_or_more_whatever_changes_between_pages() {
        let mut store = Store::new();
        let mut index = 0;
        let mut put = |store: &mut Store, key: Vec<u8>| {
            index += 1;
            apply(store, index, write(0, 0, Op::Put { key, value: b"v".to_vec() }));
        };
        // Keys sharing long prefixes (one page must take all of a prefix), a key of 0xff bytes.
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|n| match n % 3 {
                0 => format!("user:{n:05}").into_bytes(),
                1 => format!("k{n}").into_bytes(),
                _ => vec![0xff; 8 + (n as usize % 4)],
            })
            .collect();
        for key in &keys {
            put(&mut store, key.clone());
        }
        let (mut cursor, mut seen, mut pages) = (0, std::collections::BTreeSet::new(), 0);
        loop {
            let (next, page) = store.scan(cursor, 7);
            seen.extend(page.iter().map(|key| key.to_vec()));
            pages += 1;
            // Changes between pages: new keys come, and others go.
            put(&mut store, format!("new{pages}").into_bytes());
            cursor = next;
            if cursor == 0 {
                break;
            }
            assert!(pages < 1000, "the scan never ends");
        }
        for key in &keys {
            assert!(seen.contains(key), "{key:?} was never returned");
        }
    }

    #[test]
    fn a_retried_write_is_applied_once_and_answered_the_same() {
        let mut store = Store::new();
        assert_eq!(apply(&mut store, 1, write(9, 1, append("k", "ab"))), Reply::Length(2));
        assert_eq!(apply(&mut store, 2, write(9, 1, append("k", "ab"))), Reply::Length(2));
        assert_eq!(store.get(b"k"), Some(&b"ab"[..]));
        assert_eq!(apply(&mut store, 3, write(9, 2, append("k", "c"))), Reply::Length(3));
        // A stale duplicate of an older write arriving late changes nothing either.
        apply(&mut store, 4, write(9, 1, append("k", "ab")));
        assert_eq!(store.get(b"k"), Some(&b"abc"[..]));
    }

    /// Every write command, retried with its tag (as the project's client retries a write whose
    /// outcome it does not know), takes effect once and is answered as the first time: INCR and
    /// its kin, a transaction, a versioned write, a conditional delete — none counts twice.
    #[test]
    fn every_write_retried_with_its_tag_takes_effect_once() {
        let watched = crate::Watched::Since(vec![(b"n".to_vec(), 1)]);
        let ops = [
            Op::IncrBy { key: b"n".to_vec(), delta: 5 },
            Op::IncrByFloat { key: b"f".to_vec(), delta: b"1.5".to_vec() },
            Op::Append { key: b"s".to_vec(), value: b"x".to_vec() },
            Op::SetRange { key: b"s".to_vec(), offset: 3, value: b"y".to_vec(), max_len: 1 << 20 },
            Op::MSet { pairs: vec![(b"a".to_vec(), b"1".to_vec())], only_new: true },
            Op::Multi { ops: vec![Op::IncrBy { key: b"n".to_vec(), delta: 1 }, Op::Append { key: b"s".to_vec(), value: b"z".to_vec() }], watched },
            Op::VersionedPut { key: b"v".to_vec(), value: b"1".to_vec(), version: 0 },
            Op::DeleteIf { key: b"a".to_vec(), value: b"1".to_vec(), equal: true },
            Op::Rename { from: b"s".to_vec(), to: b"t".to_vec(), only_new: false },
            Op::Copy { from: b"t".to_vec(), to: b"u".to_vec(), replace: true },
        ];
        let mut once = Store::new();
        let mut twice = Store::new();
        let mut index = 0;
        for (seq, op) in ops.into_iter().enumerate() {
            let command = write(7, seq as u64 + 1, op);
            index += 1;
            let first = apply(&mut once, index, command.clone());
            apply(&mut twice, index, command.clone());
            let retried = apply(&mut twice, index + 1000, command.clone());
            assert_eq!(retried, first, "{command:?}: the retry is answered as the first time");
            let values = |store: &Store| ["n", "f", "s", "a", "v", "t", "u"].map(|key| store.get_versioned(key.as_bytes()).map(|(value, version)| (value.to_vec(), version)));
            assert_eq!(values(&twice), values(&once), "{command:?}: the retry changed nothing");
        }
    }

    #[test]
    fn sessions_are_per_client_and_reads_are_not_deduplicated() {
        let mut store = Store::new();
        apply(&mut store, 1, write(1, 1, Op::Put { key: b"k".to_vec(), value: b"x".to_vec() }));
        apply(&mut store, 2, write(2, 1, append("k", "y")));
        assert_eq!(apply(&mut store, 3, write(1, 5, Op::Get { key: b"k".to_vec() })), Reply::Value(Some(b"xy".to_vec())));
        apply(&mut store, 4, write(2, 2, append("k", "z")));
        assert_eq!(apply(&mut store, 5, write(1, 5, Op::Get { key: b"k".to_vec() })), Reply::Value(Some(b"xyz".to_vec())));
        assert_eq!(apply(&mut store, 6, write(3, 1, Op::Delete { keys: vec![b"k".to_vec(), b"none".to_vec(), b"k".to_vec()] })), Reply::Removed(1));
        assert_eq!(apply(&mut store, 7, write(3, 2, Op::Delete { keys: vec![b"k".to_vec()] })), Reply::Removed(0));
        assert_eq!(store.applied_index(), 7);
    }

    #[test]
    fn past_the_limit_the_session_written_longest_ago_is_forgotten() {
        let mut store = Store::with_session_limit(2);
        apply(&mut store, 1, write(1, 1, append("k", "a")));
        apply(&mut store, 2, write(2, 1, append("k", "b")));
        // Client 1 writes again: now client 2's last write is the oldest.
        apply(&mut store, 3, write(1, 2, append("k", "c")));
        apply(&mut store, 4, write(3, 1, append("k", "d")));
        assert_eq!(store.sessions(), 2);
        assert_eq!(store.get(b"k"), Some(&b"abcd"[..]));
        // Client 1's retry is still recognised; client 2's is not (it was forgotten).
        assert_eq!(apply(&mut store, 5, write(1, 2, append("k", "c"))), Reply::Length(3), "the recorded reply");
        assert_eq!(store.get(b"k"), Some(&b"abcd"[..]));
        assert_eq!(apply(&mut store, 6, write(2, 1, append("k", "b"))), Reply::Length(5), "applied again");
        // Every replica forgets the same one: the same log gives the same state.
        let mut again = Store::with_session_limit(2);
        for (index, command) in [(1, write(1, 1, append("k", "a"))), (2, write(2, 1, append("k", "b"))), (3, write(1, 2, append("k", "c"))), (4, write(3, 1, append("k", "d"))), (5, write(1, 2, append("k", "c"))), (6, write(2, 1, append("k", "b")))] {
            apply(&mut again, index, command);
        }
        assert_eq!(again, store);
    }

    #[test]
    fn appends_grow_a_value_in_place_unless_a_snapshot_holds_it() {
        let mut store = Store::new();
        apply(&mut store, 1, write(0, 0, append("k", "ab")));
        // Where the value's buffer lives: the same while it grows in place (its bytes may move
        // as it doubles), another once it had to be copied.
        let value = |store: &Store| match &store.data[&b"k"[..]].bytes {
            Bytes::Growing(buffer) => Arc::as_ptr(buffer),
            Bytes::Fixed(_) => panic!("an appended value is growable"),
        };
        let before = value(&store);
        for index in 2..100 {
            apply(&mut store, index, write(0, 0, append("k", "c")));
        }
        assert_eq!(store.get(b"k").map(<[u8]>::len), Some(100));
        assert_eq!(value(&store), before, "grown in place, not copied");
        let snapshot = store.clone();
        apply(&mut store, 100, write(0, 0, append("k", "d")));
        // The snapshot's copy is untouched; the store's value was copied once and grew.
        assert_eq!(snapshot.get(b"k").map(<[u8]>::len), Some(100));
        assert_eq!(store.get(b"k").map(<[u8]>::len), Some(101));
        assert_ne!(value(&store), value(&snapshot));
        assert_eq!(value(&snapshot), before);
    }

    #[test]
    fn the_first_cluster_id_applied_stays() {
        let mut store = Store::new();
        assert_eq!(store.cluster_id(), 0);
        apply(&mut store, 1, write(0, 0, Op::ClusterId { id: 77 }));
        apply(&mut store, 2, write(0, 0, Op::ClusterId { id: 99 }));
        assert_eq!(store.cluster_id(), 77);
        assert_eq!(Command::decode(&write(0, 0, Op::ClusterId { id: 5 }).encode()), Ok(write(0, 0, Op::ClusterId { id: 5 })));
    }

    #[test]
    fn untagged_writes_apply_every_time() {
        let mut store = Store::new();
        apply(&mut store, 1, write(0, 0, append("k", "a")));
        apply(&mut store, 2, write(0, 0, append("k", "a")));
        assert_eq!(store.get(b"k"), Some(&b"aa"[..]));
    }

    /// Keys expire by log time alone: a clock entry moves it (never backwards), and a key at or
    /// past its deadline is gone for reads at once and for writes, which see it missing.
    #[test]
    fn keys_expire_by_the_log_time() {
        let mut store = Store::new();
        let mut index = 0;
        let mut run = |store: &mut Store, op: Op| {
            index += 1;
            apply(store, index, write(0, 0, op))
        };
        let clock = |now_ms| Op::Clock { now_ms };
        let set = |key: &str, expiry| Op::Set { key: key.into(), value: b"v".to_vec(), flags: 0, expiry };
        let expire = |key: &str, expiry, condition| Op::Expire { key: key.into(), expiry, condition };
        run(&mut store, clock(10_000));
        run(&mut store, set("a", Expiry::After(100)));
        run(&mut store, set("b", Expiry::At(10_050)));
        run(&mut store, set("c", Expiry::Clear));
        assert_eq!((store.deadline(b"a"), store.deadline(b"c"), store.deadline(b"x")), (Some(Some(10_100)), Some(None), None));
        run(&mut store, clock(9_000));
        assert_eq!(store.log_time(), 10_000, "the log time never goes back");
        run(&mut store, clock(10_050));
        assert_eq!((store.get(b"b"), store.len()), (None, 2), "b expired at its deadline");
        assert_eq!(run(&mut store, Op::IncrBy { key: b"a".to_vec(), delta: 1 }), Reply::Error(NOT_AN_INTEGER.into()));
        assert_eq!(store.deadline(b"a"), Some(Some(10_100)), "INCR and the like keep the time to live");
        assert_eq!(run(&mut store, expire("a", Expiry::At(10_090), ExpireIf::LATER)), Reply::Integer(0), "GT: not earlier");
        assert_eq!(run(&mut store, expire("a", Expiry::At(10_090), ExpireIf::EARLIER)), Reply::Integer(1));
        assert_eq!(run(&mut store, expire("c", Expiry::After(5), ExpireIf::SET)), Reply::Integer(0), "XX: c has none");
        assert_eq!(run(&mut store, expire("c", Expiry::After(5), ExpireIf::LATER)), Reply::Integer(0), "GT: none is later than any");
        assert_eq!(run(&mut store, expire("c", Expiry::After(5), ExpireIf::NONE_SET)), Reply::Integer(1));
        assert_eq!(run(&mut store, expire("c", Expiry::Clear, 0)), Reply::Integer(1), "PERSIST");
        assert_eq!(run(&mut store, expire("c", Expiry::Clear, 0)), Reply::Integer(0), "PERSIST again: nothing to remove");
        run(&mut store, Op::Rename { from: b"a".to_vec(), to: b"r".to_vec(), only_new: false });
        assert_eq!(store.deadline(b"r"), Some(Some(10_090)), "RENAME carries the time to live");
        run(&mut store, Op::Set { key: b"r".to_vec(), value: b"w".to_vec(), flags: 0, expiry: Expiry::Keep });
        assert_eq!(store.deadline(b"r"), Some(Some(10_090)), "KEEPTTL");
        run(&mut store, clock(10_090));
        assert_eq!(store.get(b"r"), None);
        assert_eq!(run(&mut store, Op::Set { key: b"r".to_vec(), value: b"n".to_vec(), flags: SetFlags::ONLY_NEW, expiry: Expiry::Clear }), Reply::Done, "NX sees an expired key as missing");
        assert_eq!(store.deadline(b"r"), Some(None));
        assert_eq!(store.keys().collect::<Vec<_>>(), vec![&b"c"[..], b"r"]);
        assert_eq!(store.volatile_keys(), 0, "clock entries and writes removed every expired key");
    }

    /// A clock entry removes at most `PURGE_PER_CLOCK` keys: bounded work per entry.
    #[test]
    fn expired_keys_are_removed_a_bounded_number_per_clock_entry() {
        let mut store = Store::new();
        let count = PURGE_PER_CLOCK as u64 + 10;
        for key in 0..count {
            let op = Op::Set { key: key.to_string().into_bytes(), value: b"v".to_vec(), flags: 0, expiry: Expiry::At(5) };
            apply(&mut store, key + 1, write(0, 0, op));
        }
        apply(&mut store, count + 1, write(0, 0, Op::Clock { now_ms: 5 }));
        assert_eq!((store.data.len(), store.len(), store.volatile_keys()), (10, 0, 10));
        apply(&mut store, count + 2, write(0, 0, Op::Clock { now_ms: 6 }));
        assert_eq!((store.data.len(), store.volatile_keys()), (0, 0));
    }
}
