//! The snapshot encoding of a `Store`: versioned and checksummed, so that a corrupt or foreign
//! snapshot is an error and never a silently empty store.
//!
//! ```text
//! "RKVS" | version (1 byte) | applied index | n keys | (key, value)* | n sessions |
//!        (client id, seq, reply)* | CRC-32C of everything before it (4 bytes, little-endian)
//! ```
//! Numbers and lengths are LEB128 varints.

use raft::codec::{put_varint, DecodeError, Reader};

use crate::command::Reply;
use crate::crc32c::crc32c;
use crate::store::{Session, Store};

const MAGIC: &[u8; 4] = b"RKVS";
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a raftkv snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot version {0} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion(u8),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot is malformed: {0}")]
    Malformed(#[from] DecodeError),
}

impl Store {
    pub fn encode_snapshot(&self) -> Vec<u8> {
        // Sized up front: a store of a gigabyte would otherwise be copied again at every doubling.
        let entries: usize = self.data.iter().map(|(key, value)| key.len() + value.len() + 20).sum();
        let mut out = Vec::with_capacity(64 + entries + self.sessions.len() * 64);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_varint(&mut out, self.applied_index);
        put_varint(&mut out, self.data.len() as u64);
        for (key, value) in &self.data {
            put_varint(&mut out, key.len() as u64);
            out.extend_from_slice(key);
            put_varint(&mut out, value.len() as u64);
            out.extend_from_slice(value);
        }
        put_varint(&mut out, self.sessions.len() as u64);
        for (client_id, session) in &self.sessions {
            put_varint(&mut out, *client_id);
            put_varint(&mut out, session.seq);
            session.reply.encode(&mut out);
        }
        let checksum = crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    pub fn decode_snapshot(bytes: &[u8]) -> Result<Store, SnapshotError> {
        if bytes.len() < MAGIC.len() + 1 + 4 || &bytes[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(SnapshotError::UnsupportedVersion(bytes[4]));
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
            let value = reader.bytes()?.into();
            store.data.insert(key, value);
        }
        for _ in 0..reader.varint()? {
            let client_id = reader.varint()?;
            let seq = reader.varint()?;
            let reply = Reply::decode(&mut reader)?;
            store.sessions.insert(client_id, Session { seq, reply });
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
        store
    }

    #[test]
    fn round_trips_data_sessions_and_index() {
        let store = sample();
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

    #[test]
    fn the_empty_input_is_not_an_empty_store() {
        assert_eq!(Store::decode_snapshot(&[]), Err(SnapshotError::BadMagic));
    }
}
