//! What clients ask of the store, and what it answers; with their compact binary encoding, which is
//! what travels in Raft log entries.

use bytes::BufMut;
use raft::codec::{put_varint, DecodeError, Reader};

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

/// An operation borrowed from wherever its bytes are (a client's request, a log entry): what
/// encoding and applying need, without copying keys or values into an owned `Op` first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpRef<'a> {
    Get { key: &'a [u8] },
    Put { key: &'a [u8], value: &'a [u8] },
    Append { key: &'a [u8], value: &'a [u8] },
    Delete { keys: Vec<&'a [u8]> },
    ClusterId { id: u64 },
}

impl OpRef<'_> {
    pub fn is_write(&self) -> bool {
        !matches!(self, OpRef::Get { .. })
    }

    pub fn to_owned(&self) -> Op {
        match self {
            OpRef::Get { key } => Op::Get { key: key.to_vec() },
            OpRef::Put { key, value } => Op::Put { key: key.to_vec(), value: value.to_vec() },
            OpRef::Append { key, value } => Op::Append { key: key.to_vec(), value: value.to_vec() },
            OpRef::Delete { keys } => Op::Delete { keys: keys.iter().map(|key| key.to_vec()).collect() },
            OpRef::ClusterId { id } => Op::ClusterId { id: *id },
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
        match &self.op {
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
        }
    }

    /// An upper bound of the encoding's size (for reserving room before `encode_into`).
    pub fn encoded_len_bound(&self) -> usize {
        let parts = match &self.op {
            OpRef::Get { key } => key.len() + 10,
            OpRef::Put { key, value } | OpRef::Append { key, value } => key.len() + value.len() + 20,
            OpRef::Delete { keys } => keys.iter().map(|key| key.len() + 10).sum::<usize>() + 10,
            OpRef::ClusterId { .. } => 10,
        };
        parts + 21
    }

    /// Reads a command, borrowing its keys and values from `input`.
    pub fn decode(input: &'a [u8]) -> Result<CommandRef<'a>, DecodeError> {
        let mut reader = Reader::new(input);
        let client_id = reader.varint()?;
        let seq = reader.varint()?;
        let tag = reader.byte()?;
        let op = match tag {
            0 => OpRef::Get { key: reader.bytes()? },
            1 => OpRef::Put { key: reader.bytes()?, value: reader.bytes()? },
            2 => OpRef::Append { key: reader.bytes()?, value: reader.bytes()? },
            3 => {
                let count = reader.varint()?;
                // Each key takes at least one byte, so the count cannot exceed the input's length.
                let mut keys = Vec::with_capacity(count.min(input.len() as u64) as usize);
                for _ in 0..count {
                    keys.push(reader.bytes()?);
                }
                OpRef::Delete { keys }
            }
            4 => OpRef::ClusterId { id: reader.varint()? },
            tag => return Err(DecodeError::BadTag { tag, at: 0 }),
        };
        reader.finish()?;
        Ok(CommandRef { client_id, seq, op })
    }

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
