//! What clients ask of the store, and what it answers; with their compact binary encoding, which is
//! what travels in Raft log entries.

use raft::codec::{put_varint, DecodeError, Reader};

/// One operation on the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Get { key: Vec<u8> },
    Put { key: Vec<u8>, value: Vec<u8> },
    Append { key: Vec<u8>, value: Vec<u8> },
    /// Removes every listed key at once (Redis's DEL is atomic over its keys).
    Delete { keys: Vec<Vec<u8>> },
}

impl Op {
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
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
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        put_varint(&mut out, self.client_id);
        put_varint(&mut out, self.seq);
        match &self.op {
            Op::Get { key } => {
                out.push(0);
                put_bytes(&mut out, key);
            }
            Op::Put { key, value } => {
                out.push(1);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Op::Append { key, value } => {
                out.push(2);
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
            Op::Delete { keys } => {
                out.push(3);
                put_varint(&mut out, keys.len() as u64);
                for key in keys {
                    put_bytes(&mut out, key);
                }
            }
        }
        out
    }

    pub fn decode(input: &[u8]) -> Result<Command, DecodeError> {
        let mut reader = Reader::new(input);
        let client_id = reader.varint()?;
        let seq = reader.varint()?;
        let tag = reader.byte()?;
        let op = match tag {
            0 => Op::Get { key: reader.bytes()?.to_vec() },
            1 => Op::Put { key: reader.bytes()?.to_vec(), value: reader.bytes()?.to_vec() },
            2 => Op::Append { key: reader.bytes()?.to_vec(), value: reader.bytes()?.to_vec() },
            3 => {
                let count = reader.varint()?;
                // Each key takes at least one byte, so the count cannot exceed the input's length.
                let mut keys = Vec::with_capacity(count.min(input.len() as u64) as usize);
                for _ in 0..count {
                    keys.push(reader.bytes()?.to_vec());
                }
                Op::Delete { keys }
            }
            tag => return Err(DecodeError::BadTag { tag, at: 0 }),
        };
        reader.finish()?;
        Ok(Command { client_id, seq, op })
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
        }
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Reply, DecodeError> {
        Ok(match reader.byte()? {
            0 => Reply::Value(None),
            1 => Reply::Value(Some(reader.bytes()?.to_vec())),
            2 => Reply::Done,
            3 => Reply::Length(reader.varint()?),
            4 => Reply::Removed(reader.varint()?),
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
        ];
        for op in ops {
            let command = Command { client_id: u64::MAX, seq: 7, op };
            let bytes = command.encode();
            assert_eq!(Command::decode(&bytes), Ok(command));
            for cut in 0..bytes.len() {
                assert!(Command::decode(&bytes[..cut]).is_err());
            }
        }
    }
}
