//! Keys with a time to live, by log time. Time comes from the log, never from a replica's clock:
//! the leader proposes `Op::Clock` entries carrying its wall-clock time, each replica's log time is
//! the largest one applied so far (so it never goes backwards, whatever the leaders' clocks), and
//! a key whose deadline is at or before the log time is gone — for reads at once, and from memory
//! when the next `Op::Clock` removes it (a bounded number per entry) or a write touches it. Every
//! replica applying the same log expires the same keys at the same index.

use std::collections::{BTreeMap, BTreeSet};

use bytes::BufMut;
use raft::codec::{put_varint, DecodeError, Reader};

/// Keys an `Op::Clock` removes at most: expiry costs bounded work per log entry.
pub const PURGE_PER_CLOCK: usize = 1000;

/// What a write does to its key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// None from now on (a plain SET; PERSIST).
    Clear,
    /// Whatever it had (KEEPTTL).
    Keep,
    /// At this log time, in milliseconds since the Unix epoch (EXAT, PXAT, EXPIREAT).
    At(u64),
    /// This many milliseconds after the log time at which the write is applied (EX, PX, EXPIRE).
    After(u64),
}

impl Expiry {
    pub(crate) fn encode_into(&self, out: &mut impl BufMut) {
        let (tag, number) = match *self {
            Expiry::Clear => (0, 0),
            Expiry::Keep => (1, 0),
            Expiry::At(at) => (2, at),
            Expiry::After(after) => (3, after),
        };
        out.put_u8(tag);
        put_varint(out, number);
    }

    pub(crate) fn decode(reader: &mut Reader<'_>) -> Result<Expiry, DecodeError> {
        let tag = reader.byte()?;
        let number = reader.varint()?;
        Ok(match tag {
            0 => Expiry::Clear,
            1 => Expiry::Keep,
            2 => Expiry::At(number),
            3 => Expiry::After(number),
            tag => return Err(DecodeError::BadTag { tag, at: 0 }),
        })
    }

    /// Whether applying it needs the log time to be current (a relative time to live): the leader
    /// then proposes a clock entry first.
    pub fn is_relative(&self) -> bool {
        matches!(self, Expiry::After(_))
    }
}

/// EXPIRE's conditions, as bits.
pub struct ExpireIf;

impl ExpireIf {
    /// Only if the key has no time to live (NX).
    pub const NONE_SET: u8 = 1;
    /// Only if it has one (XX).
    pub const SET: u8 = 2;
    /// Only if the new one is later (GT; none counts as infinitely late).
    pub const LATER: u8 = 4;
    /// Only if the new one is earlier (LT).
    pub const EARLIER: u8 = 8;
}

/// The deadlines of the keys that have one, and the same ordered by deadline (to remove the due
/// ones first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deadlines {
    by_key: BTreeMap<Vec<u8>, u64>,
    by_time: BTreeSet<(u64, Vec<u8>)>,
}

impl Deadlines {
    pub(crate) fn get(&self, key: &[u8]) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.by_key.iter().map(|(key, &at)| (key.as_slice(), at))
    }

    /// Sets or clears `key`'s deadline.
    pub(crate) fn set(&mut self, key: &[u8], at: Option<u64>) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.to_vec()));
        }
        if let Some(at) = at {
            self.by_key.insert(key.to_vec(), at);
            self.by_time.insert((at, key.to_vec()));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_time.clear();
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<u64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// How many keys are due at `now` (deadline at or before it).
    pub(crate) fn due(&self, now: u64) -> usize {
        self.by_time.range(..(now.saturating_add(1), Vec::new())).count()
    }

    /// Takes the earliest due key at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Vec<u8>> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }
}
