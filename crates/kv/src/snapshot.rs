//! The snapshot encoding of a `Store`: versioned and checksummed, so that a corrupt or foreign
//! snapshot is an error and never a silently empty store.
//!
//! ```text
//! "RKVS" | version (1 byte) | applied index | n keys | (key, value, changed, version)* | n sessions |
//!        (client id, seq, reply, last index)* | cluster id | log time | n deadlines |
//!        (key, deadline)* | configuration | removals horizon | n removals |
//!        (index, key fingerprint)* |
//!        CRC-32C of everything before it (4 bytes, LE)
//! ```
//! Numbers and lengths are LEB128 varints; the configuration is the encoded `raft::Membership`
//! of the last configuration entry applied (empty: none); `changed` is the log index of a key's
//! last change and `version` how many changes it has seen since it was created (VSET), and the removals are the ones WATCH remembers (see `store::Removals`), oldest
//! first. Older versions are still read: version 4 has no change indexes, versions or removals (every key
//! counts as changed at the snapshot's index, and so may any missing one; each is at version 1), version
//! 3 has no log time, deadlines or configuration (no key could expire), version 2 no cluster id either (0: not named yet),
//! version 1 neither, nor a session's last index (its sessions count as older than any write to
//! come).

use raft::codec::{put_varint, DecodeError, Reader};

use crate::command::Reply;
use raft::crc32c::crc32c;
use crate::store::{Session, Store, Value};

const MAGIC: &[u8; 4] = b"RKVS";
const VERSION: u8 = 5;
/// Without change indexes and removals.
const VERSION_4: u8 = 4;
/// Without the log time and the deadlines.
const VERSION_3: u8 = 3;
/// Without the cluster id.
const VERSION_2: u8 = 2;
/// Sessions without their last index, and no cluster id.
const VERSION_1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a raftkv snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot version {0} is not supported (this build reads versions {VERSION_1} to {VERSION})")]
    UnsupportedVersion(u8),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot is malformed: {0}")]
    Malformed(#[from] DecodeError),
}

impl Store {
    pub fn encode_snapshot(&self) -> Vec<u8> {
        // Sized up front: a store of a gigabyte would otherwise be copied again at every doubling.
        let entries: usize = self.data.iter().map(|(key, value)| key.len() + value.as_slice().len() + 20).sum();
        let mut out = Vec::with_capacity(64 + entries + self.sessions.len() * 64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_varint(&mut out, self.applied_index);
        put_varint(&mut out, self.data.len() as u64);
        for (key, value) in &self.data {
            let (bytes, changed, version) = (value.as_slice(), value.changed, value.version);
            put_varint(&mut out, key.len() as u64);
            out.extend_from_slice(key);
            put_varint(&mut out, bytes.len() as u64);
            out.extend_from_slice(bytes);
            put_varint(&mut out, changed);
            put_varint(&mut out, version);
        }
        put_varint(&mut out, self.sessions.len() as u64);
        for (client_id, session) in &self.sessions {
            put_varint(&mut out, *client_id);
            put_varint(&mut out, session.seq);
            session.reply.encode(&mut out);
            put_varint(&mut out, session.last_index);
        }
        put_varint(&mut out, self.cluster_id);
        put_varint(&mut out, self.log_time);
        put_varint(&mut out, self.deadlines.len() as u64);
        for (key, at) in self.deadlines.iter() {
            put_varint(&mut out, key.len() as u64);
            out.extend_from_slice(key);
            put_varint(&mut out, at);
        }
        put_varint(&mut out, self.membership.len() as u64);
        out.extend_from_slice(&self.membership);
        put_varint(&mut out, self.removals.horizon);
        put_varint(&mut out, self.removals.order.len() as u64);
        for (index, print) in &self.removals.order {
            put_varint(&mut out, *index);
            put_varint(&mut out, *print);
        }
        let checksum = crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<Store, SnapshotError> {
        if bytes.len() < MAGIC.len() + 1 + 4 || &bytes[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = bytes[4];
        if ![VERSION, VERSION_4, VERSION_3, VERSION_2, VERSION_1].contains(&version) {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let computed = crc32c(body);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        let mut reader = Reader::new(&body[5..]);
        let mut store = Store { applied_index: reader.varint()?, ..Store::default() };
        for _ in 0..reader.varint()? {
            let key = reader.bytes()?.to_vec();
            let bytes = reader.bytes()?;
            let (changed, key_version) = if version >= VERSION { (reader.varint()?, reader.varint()?) } else { (store.applied_index, 1) };
            if changed > store.applied_index || key_version == 0 {
                return Err(DecodeError::OutOfRange("a key changed after the snapshot's index, or at version 0").into());
            }
            store.data_bytes += crate::store::entry_bytes(&key, bytes);
            if store.data.insert(key, Value::new(bytes, changed, key_version)).is_some() {
                return Err(DecodeError::OutOfRange("a key twice").into());
            }
        }
        for _ in 0..reader.varint()? {
            let client_id = reader.varint()?;
            let seq = reader.varint()?;
            let reply = Reply::decode(&mut reader)?;
            let last_index = if version == VERSION_1 { 0 } else { reader.varint()? };
            store.remember(client_id, Session { seq, reply, last_index });
        }
        if version >= VERSION_3 {
            store.cluster_id = reader.varint()?;
        }
        if version >= VERSION_4 {
            store.log_time = reader.varint()?;
            for _ in 0..reader.varint()? {
                let key = reader.bytes()?;
                let at = reader.varint()?;
                if !store.data.contains_key(key) {
                    return Err(DecodeError::OutOfRange("a deadline for a key the snapshot does not hold").into());
                }
                store.deadlines.set(key, Some(at));
            }
            store.membership = reader.bytes()?.to_vec();
        }
        store.removals.horizon = store.applied_index;
        if version >= VERSION {
            let horizon = reader.varint()?;
            let mut order = std::collections::VecDeque::new();
            let mut last = horizon;
            for _ in 0..reader.varint()? {
                let index = reader.varint()?;
                if index < last || index > store.applied_index || order.len() >= crate::store::REMOVALS_KEPT {
                    return Err(DecodeError::OutOfRange("removals out of order, after the snapshot's index, or too many").into());
                }
                last = index;
                order.push_back((index, reader.varint()?));
            }
            if horizon > store.applied_index {
                return Err(DecodeError::OutOfRange("a removals horizon after the snapshot's index").into());
            }
            store.removals = crate::store::Removals::restore(order, horizon);
        }
        reader.finish()?;
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Op};

    fn sample() -> Store {
        let mut store = Store::new();
        store.apply(1, &Command { client_id: 5, seq: 1, op: Op::Put { key: b"a".to_vec(), value: b"1".to_vec() } }.as_ref());
        store.apply(2, &Command { client_id: 6, seq: 3, op: Op::Append { key: b"b".to_vec(), value: b"xy".to_vec() } }.as_ref());
        store.apply(3, &Command { client_id: 0, seq: 0, op: Op::Clock { now_ms: 1_000 } }.as_ref());
        store.apply(4, &Command { client_id: 0, seq: 0, op: Op::Expire { key: b"a".to_vec(), expiry: crate::Expiry::After(500), condition: 0 } }.as_ref());
        store.apply_membership(5, b"members");
        store
    }

    #[test]
    fn round_trips_data_sessions_and_index() {
        let store = sample();
        assert_eq!(store.deadline(b"a"), Some(Some(1_500)));
        assert_eq!(Store::decode_snapshot(&store.encode_snapshot()), Ok(store));
        assert_eq!(Store::decode_snapshot(&Store::new().encode_snapshot()), Ok(Store::new()));
    }

    #[test]
    fn every_single_byte_corruption_is_detected() {
        let bytes = sample().encode_snapshot();
        for position in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[position] ^= 0x01;
            assert!(Store::decode_snapshot(&corrupt).is_err(), "flip at {position} went unnoticed");
        }
        for cut in 0..bytes.len() {
            assert!(Store::decode_snapshot(&bytes[..cut]).is_err(), "truncation to {cut} went unnoticed");
        }
    }

    /// A snapshot written by the previous version (no session's last index) is still read.
    #[test]
    fn version_1_snapshots_are_read() {
        let mut body = b"RKVS\x01".to_vec();
        for number in [7u64, 1, 1] {
            put_varint(&mut body, number);
        }
        body.extend_from_slice(b"a");
        put_varint(&mut body, 1);
        body.extend_from_slice(b"1");
        for number in [1u64, 5, 2] {
            put_varint(&mut body, number);
        }
        Reply::Done.encode(&mut body);
        let checksum = crc32c(&body);
        body.extend_from_slice(&checksum.to_le_bytes());
        let store = Store::decode_snapshot(&body).expect("a version 1 snapshot");
        assert_eq!((store.applied_index(), store.get(b"a"), store.sessions()), (7, Some(&b"1"[..]), 1));
        assert_eq!(store.sessions[&5], Session { seq: 2, reply: Reply::Done, last_index: 0 });
    }

    #[test]
    fn the_empty_input_is_not_an_empty_store() {
        assert_eq!(Store::decode_snapshot(&[]), Err(SnapshotError::BadMagic));
    }
}
