//! A compact binary encoding of messages and durable state: LEB128 varints, no field names.
//! The lab's byte limits were tuned for Go's gob; this is smaller, so the same limits mean as much.
//! Decoding never panics: whatever a peer or a disk hands us is either a value or a `DecodeError`.


use bytes::{BufMut, Bytes};

use crate::message::{AppendResponse, Message, MessageBody};
use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, SnapshotMeta, Term};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input ends in the middle of a value at byte {0}")]
    Truncated(usize),
    #[error("unknown tag {tag} at byte {at}")]
    BadTag { tag: u8, at: usize },
    #[error("varint longer than 64 bits at byte {0}")]
    VarintOverflow(usize),
    #[error("{0} bytes left over after the value")]
    TrailingBytes(usize),
    /// A well-formed message no correct peer sends: a number that could overflow, or terms out of
    /// Raft's order. Refused before the core sees it.
    #[error("message out of range: {0}")]
    OutOfRange(&'static str),
}

/// Terms, indexes and read rounds from a peer must stay below this: a cluster at a billion
/// elections a second would take a century to get there, so a larger one is forged or garbage, and
/// taking it would let the next increment wrap.
pub const MAX_PEER_NUMBER: u64 = 1 << 62;

/// LEB128: seven bits a byte, low first. Into any buffer (a `Vec`, or a `BytesMut` entries are
/// split off).
pub fn put_varint(out: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// How many bytes `put_varint` writes for `value`.
pub fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// How many bytes an entry takes inside an encoded state or message (its index is implied).
pub fn encoded_entry_len(entry: &Entry) -> usize {
    varint_len(entry.term.0) + 1 + varint_len(entry.data.len() as u64) + entry.data.len()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over input that reports where it ran out.
pub struct Reader<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { input, position: 0 }
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.position;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(DecodeError::VarintOverflow(start));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow(start))
    }

    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.input.get(self.position).ok_or(DecodeError::Truncated(self.position))?;
        self.position += 1;
        Ok(byte)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.varint()?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| self.position.checked_add(length))
            .filter(|&end| end <= self.input.len())
            .ok_or(DecodeError::Truncated(self.position))?;
        let bytes = &self.input[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    pub fn finish(self) -> Result<(), DecodeError> {
        match self.input.len() - self.position {
            0 => Ok(()),
            left => Err(DecodeError::TrailingBytes(left)),
        }
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.position;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::BadTag { tag, at }),
        }
    }
}

fn put_entry_body(out: &mut Vec<u8>, entry: &Entry) {
    put_varint(out, entry.term.0);
    out.push(match entry.kind {
        EntryKind::Command => 0,
        EntryKind::Noop => 1,
        EntryKind::Config => 2,
    });
    put_bytes(out, &entry.data);
}

/// Where decoded entry payloads live: copied out of the input, or shared with the buffer the
/// input is (so a received frame's entries cost no payload copy).
#[derive(Clone, Copy)]
enum Payloads<'a> {
    Copied,
    SharedWith(&'a Bytes),
}

impl Payloads<'_> {
    /// `slice` must lie within the shared buffer: it always does, because a `SharedWith` decode
    /// reads that very buffer and `Reader::bytes` only hands out sub-slices of its input.
    fn bytes(self, slice: &[u8]) -> Bytes {
        match self {
            Payloads::Copied => Bytes::copy_from_slice(slice),
            Payloads::SharedWith(buffer) => buffer.slice_ref(slice),
        }
    }
}

fn entry_body(reader: &mut Reader<'_>, index: LogIndex, payloads: Payloads<'_>) -> Result<Entry, DecodeError> {
    let term = Term(reader.varint()?);
    let at = reader.position;
    let kind = match reader.byte()? {
        0 => EntryKind::Command,
        1 => EntryKind::Noop,
        2 => EntryKind::Config,
        tag => return Err(DecodeError::BadTag { tag, at }),
    };
    let data = payloads.bytes(reader.bytes()?);
    Ok(Entry { term, index, kind, data })
}

/// Entries that follow `prev` contiguously: indexes are implied, so only terms and data travel.
fn put_entries(out: &mut Vec<u8>, entries: &[Entry]) {
    put_varint(out, entries.len() as u64);
    for entry in entries {
        put_entry_body(out, entry);
    }
}

fn entries(reader: &mut Reader<'_>, prev: LogIndex, payloads: Payloads<'_>) -> Result<Vec<Entry>, DecodeError> {
    let count = reader.varint()?;
    // Never trust a count to size an allocation: each entry takes at least 3 bytes.
    let mut entries = Vec::with_capacity(count.min(reader.input.len() as u64 / 3) as usize);
    let mut index = prev;
    for _ in 0..count {
        index = index.next();
        entries.push(entry_body(reader, index, payloads)?);
    }
    Ok(entries)
}

pub fn encode_message(message: &Message, out: &mut Vec<u8>) {
    put_varint(out, message.from.0);
    put_varint(out, message.to.0);
    put_varint(out, message.term.0);
    match &message.body {
        MessageBody::VoteRequest { pre_vote, transfer, last_log_index, last_log_term } => {
            out.push(0);
            // Bit 0: a pre-vote; bit 1: a transfer's election.
            out.push(u8::from(*pre_vote) | (u8::from(*transfer) << 1));
            put_varint(out, last_log_index.0);
            put_varint(out, last_log_term.0);
        }
        MessageBody::VoteResponse { pre_vote, granted } => {
            out.push(1);
            out.push(u8::from(*pre_vote));
            out.push(u8::from(*granted));
        }
        MessageBody::AppendRequest { prev_log_index, prev_log_term, entries, leader_commit, read_round } => {
            out.push(2);
            put_varint(out, prev_log_index.0);
            put_varint(out, prev_log_term.0);
            put_varint(out, leader_commit.0);
            put_varint(out, *read_round);
            put_entries(out, entries);
        }
        MessageBody::AppendResponse { response: AppendResponse::Accepted { match_index }, read_round } => {
            out.push(3);
            put_varint(out, match_index.0);
            put_varint(out, *read_round);
        }
        MessageBody::AppendResponse {
            response: AppendResponse::Rejected { rejected_prev_index, conflict_index, conflict_term },
            read_round,
        } => {
            out.push(4);
            put_varint(out, rejected_prev_index.0);
            put_varint(out, conflict_index.0);
            put_varint(out, conflict_term.map_or(0, |term| term.0 + 1));
            put_varint(out, *read_round);
        }
        MessageBody::SnapshotRequest { meta, total, checksum, offset, data } => {
            out.push(5);
            put_varint(out, meta.index.0);
            put_varint(out, meta.term.0);
            put_varint(out, *total);
            put_varint(out, u64::from(*checksum));
            put_varint(out, *offset);
            put_bytes(out, data);
        }
        MessageBody::SnapshotResponse { index, received } => {
            out.push(6);
            put_varint(out, index.0);
            put_varint(out, *received);
        }
        MessageBody::TimeoutNow => out.push(7),
    }
}

/// Decodes a message, copying each entry's payload out of `input`.
pub fn decode_message(input: &[u8]) -> Result<Message, DecodeError> {
    decode_message_from(input, Payloads::Copied)
}

/// Decodes a message whose entries share `frame`'s buffer instead of copying out of it: each
/// entry's `data` is a reference-counted slice of `frame`. The buffer then lives as long as the
/// longest-lived entry taken from it, which is what a receiver appending them to its log wants.
pub fn decode_message_shared(frame: &Bytes) -> Result<Message, DecodeError> {
    decode_message_from(frame, Payloads::SharedWith(frame))
}

fn decode_message_from(input: &[u8], payloads: Payloads<'_>) -> Result<Message, DecodeError> {
    let mut reader = Reader::new(input);
    let from = NodeId(reader.varint()?);
    let to = NodeId(reader.varint()?);
    let term = Term(reader.varint()?);
    let at = reader.position;
    let body = match reader.byte()? {
        0 => {
            let at = reader.position;
            let flags = reader.byte()?;
            if flags > 3 {
                return Err(DecodeError::BadTag { tag: flags, at });
            }
            MessageBody::VoteRequest {
                pre_vote: flags & 1 != 0,
                transfer: flags & 2 != 0,
                last_log_index: LogIndex(reader.varint()?),
                last_log_term: Term(reader.varint()?),
            }
        }
        1 => MessageBody::VoteResponse { pre_vote: reader.bool()?, granted: reader.bool()? },
        2 => {
            let prev_log_index = LogIndex(reader.varint()?);
            let prev_log_term = Term(reader.varint()?);
            let leader_commit = LogIndex(reader.varint()?);
            let read_round = reader.varint()?;
            // Checked before the entries' indexes are counted up from it.
            below_max(prev_log_index.0, "previous log index")?;
            let entries = entries(&mut reader, prev_log_index, payloads)?;
            MessageBody::AppendRequest { prev_log_index, prev_log_term, entries, leader_commit, read_round }
        }
        3 => MessageBody::AppendResponse {
            response: AppendResponse::Accepted { match_index: LogIndex(reader.varint()?) },
            read_round: reader.varint()?,
        },
        4 => MessageBody::AppendResponse {
            response: AppendResponse::Rejected {
                rejected_prev_index: LogIndex(reader.varint()?),
                conflict_index: LogIndex(reader.varint()?),
                conflict_term: reader.varint()?.checked_sub(1).map(Term),
            },
            read_round: reader.varint()?,
        },
        5 => {
            let meta = SnapshotMeta { index: LogIndex(reader.varint()?), term: Term(reader.varint()?) };
            let total = reader.varint()?;
            let checksum = u32::try_from(reader.varint()?).map_err(|_| DecodeError::OutOfRange("snapshot checksum"))?;
            let offset = reader.varint()?;
            let data = payloads.bytes(reader.bytes()?);
            MessageBody::SnapshotRequest { meta, total, checksum, offset, data }
        }
        6 => MessageBody::SnapshotResponse { index: LogIndex(reader.varint()?), received: reader.varint()? },
        7 => MessageBody::TimeoutNow,
        tag => return Err(DecodeError::BadTag { tag, at }),
    };
    reader.finish()?;
    let message = Message { from, to, term, body };
    check_ranges(&message)?;
    Ok(message)
}

fn below_max(value: u64, what: &'static str) -> Result<(), DecodeError> {
    if value < MAX_PEER_NUMBER {
        Ok(())
    } else {
        Err(DecodeError::OutOfRange(what))
    }
}

fn at_most_message_term(value: Term, term: Term, what: &'static str) -> Result<(), DecodeError> {
    if value <= term {
        Ok(())
    } else {
        Err(DecodeError::OutOfRange(what))
    }
}

/// Every number below `MAX_PEER_NUMBER`, and terms in Raft's order: nothing a message names is
/// newer than the message's own term, and a run of entries never goes back in term.
fn check_ranges(message: &Message) -> Result<(), DecodeError> {
    let term = message.term;
    below_max(term.0, "term")?;
    match &message.body {
        MessageBody::VoteRequest { last_log_index, last_log_term, .. } => {
            below_max(last_log_index.0, "last log index")?;
            at_most_message_term(*last_log_term, term, "last log term above the message's term")
        }
        MessageBody::VoteResponse { .. } | MessageBody::TimeoutNow => Ok(()),
        MessageBody::AppendRequest { prev_log_term, entries, leader_commit, read_round, .. } => {
            below_max(leader_commit.0, "commit index")?;
            below_max(*read_round, "read round")?;
            at_most_message_term(*prev_log_term, term, "previous log term above the message's term")?;
            if let Some(last) = entries.last() {
                below_max(last.index.0, "last entry index")?;
            }
            let mut previous = *prev_log_term;
            for entry in entries {
                if entry.term < previous {
                    return Err(DecodeError::OutOfRange("entry terms going down"));
                }
                at_most_message_term(entry.term, term, "an entry's term above the message's term")?;
                previous = entry.term;
            }
            Ok(())
        }
        MessageBody::AppendResponse { response, read_round } => {
            below_max(*read_round, "read round")?;
            match response {
                AppendResponse::Accepted { match_index } => below_max(match_index.0, "match index"),
                AppendResponse::Rejected { rejected_prev_index, conflict_index, conflict_term } => {
                    below_max(rejected_prev_index.0, "rejected index")?;
                    below_max(conflict_index.0, "conflict index")?;
                    conflict_term.map_or(Ok(()), |conflict| at_most_message_term(conflict, term, "conflict term above the message's term"))
                }
            }
        }
        MessageBody::SnapshotRequest { meta, total, offset, data, .. } => {
            below_max(meta.index.0, "snapshot index")?;
            below_max(*total, "snapshot length")?;
            if offset.checked_add(data.len() as u64).is_none_or(|end| end > *total) {
                return Err(DecodeError::OutOfRange("snapshot chunk beyond the snapshot's length"));
            }
            at_most_message_term(meta.term, term, "snapshot term above the message's term")
        }
        MessageBody::SnapshotResponse { index, received } => {
            below_max(index.0, "snapshot index")?;
            below_max(*received, "snapshot bytes received")
        }
    }
}

pub fn encode_hard_state(hard_state: &HardState, out: &mut Vec<u8>) {
    put_varint(out, hard_state.term.0);
    put_varint(out, hard_state.vote.map_or(0, |vote| vote.0));
    put_varint(out, hard_state.commit.0);
}

pub fn decode_hard_state(reader: &mut Reader<'_>) -> Result<HardState, DecodeError> {
    let term = Term(reader.varint()?);
    let vote = Some(reader.varint()?).filter(|&vote| vote != 0).map(NodeId);
    let commit = LogIndex(reader.varint()?);
    Ok(HardState { term, vote, commit })
}

/// The whole durable Raft state as one value, for stores that save it in one piece (the lab's
/// persister): hard state, the snapshot boundary, and the entries after it.
pub fn encode_state(hard_state: &HardState, snapshot: SnapshotMeta, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_hard_state(hard_state, &mut out);
    put_varint(&mut out, snapshot.index.0);
    put_varint(&mut out, snapshot.term.0);
    put_entries(&mut out, entries);
    out
}

pub fn decode_state(input: &[u8]) -> Result<(HardState, SnapshotMeta, Vec<Entry>), DecodeError> {
    let mut reader = Reader::new(input);
    let hard_state = decode_hard_state(&mut reader)?;
    let snapshot = SnapshotMeta { index: LogIndex(reader.varint()?), term: Term(reader.varint()?) };
    let entries = entries(&mut reader, snapshot.index, Payloads::Copied)?;
    reader.finish()?;
    Ok((hard_state, snapshot, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_messages() -> Vec<Message> {
        let entry = |index, term| Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: vec![7; index as usize].into() };
        let bodies = vec![
            MessageBody::VoteRequest { pre_vote: true, transfer: false, last_log_index: LogIndex(300), last_log_term: Term(2) },
            MessageBody::VoteRequest { pre_vote: false, transfer: true, last_log_index: LogIndex(3), last_log_term: Term(2) },
            MessageBody::TimeoutNow,
            MessageBody::VoteResponse { pre_vote: false, granted: true },
            MessageBody::AppendRequest {
                prev_log_index: LogIndex(4),
                prev_log_term: Term(1),
                entries: vec![entry(5, 2), Entry { kind: EntryKind::Noop, ..entry(6, 3) }],
                leader_commit: LogIndex(4),
                read_round: 300,
            },
            MessageBody::AppendResponse { response: AppendResponse::Accepted { match_index: LogIndex(9) }, read_round: 2 },
            MessageBody::AppendResponse {
                response: AppendResponse::Rejected {
                    rejected_prev_index: LogIndex(9),
                    conflict_index: LogIndex(3),
                    conflict_term: Some(Term(0)),
                },
                read_round: 0,
            },
            MessageBody::SnapshotRequest {
                meta: SnapshotMeta { index: LogIndex(10), term: Term(3) },
                total: 7,
                checksum: 0xdead_beef,
                offset: 4,
                data: vec![1, 2, 3].into(),
            },
            MessageBody::SnapshotResponse { index: LogIndex(10), received: 4 },
        ];
        bodies.into_iter().map(|body| Message { from: NodeId(1), to: NodeId(2), term: Term(3), body }).collect()
    }

    #[test]
    fn messages_round_trip() {
        for message in sample_messages() {
            let mut bytes = Vec::new();
            encode_message(&message, &mut bytes);
            assert_eq!(decode_message(&bytes), Ok(message));
        }
    }

    #[test]
    fn shared_decode_gives_the_same_messages() {
        for message in sample_messages() {
            let mut bytes = Vec::new();
            encode_message(&message, &mut bytes);
            let frame = Bytes::from(bytes);
            assert_eq!(decode_message_shared(&frame), decode_message(&frame));
            assert_eq!(decode_message_shared(&frame), Ok(message));
        }
    }

    #[test]
    fn shared_decode_points_into_the_frame() {
        let frame = sample_messages()
            .into_iter()
            .find(|message| matches!(&message.body, MessageBody::AppendRequest { entries, .. } if !entries.is_empty()))
            .map(|message| {
                let mut bytes = Vec::new();
                encode_message(&message, &mut bytes);
                Bytes::from(bytes)
            })
            .expect("a sample AppendRequest with entries");
        let frame_range = frame.as_ptr_range();
        let MessageBody::AppendRequest { entries, .. } = decode_message_shared(&frame).expect("decodes").body else {
            panic!("not an AppendRequest");
        };
        for entry in entries.iter().filter(|entry| !entry.data.is_empty()) {
            let data_range = entry.data.as_ptr_range();
            assert!(frame_range.start <= data_range.start && data_range.end <= frame_range.end, "entry {} was copied", entry.index);
        }
        // And the copying decoder really does copy, so the check above means something.
        let MessageBody::AppendRequest { entries, .. } = decode_message(&frame).expect("decodes").body else {
            panic!("not an AppendRequest");
        };
        assert!(entries.iter().all(|entry| !frame_range.contains(&entry.data.as_ptr())));
    }

    #[test]
    fn shared_decode_of_truncated_or_corrupt_frames_is_an_error_or_a_value() {
        for message in sample_messages() {
            let mut bytes = Vec::new();
            encode_message(&message, &mut bytes);
            for cut in 0..bytes.len() {
                assert!(decode_message_shared(&Bytes::copy_from_slice(&bytes[..cut])).is_err(), "prefix of {cut} bytes decoded");
            }
            for position in 0..bytes.len() {
                let mut corrupt = bytes.clone();
                corrupt[position] ^= 0xff;
                let corrupt = Bytes::from(corrupt);
                assert_eq!(decode_message_shared(&corrupt), decode_message(&corrupt));
            }
        }
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_or_a_value_never_a_panic() {
        for message in sample_messages() {
            let mut bytes = Vec::new();
            encode_message(&message, &mut bytes);
            for cut in 0..bytes.len() {
                assert!(decode_message(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
            }
            for position in 0..bytes.len() {
                let mut corrupt = bytes.clone();
                corrupt[position] ^= 0xff;
                let _ = decode_message(&corrupt);
            }
        }
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        let mut bytes = vec![1, 2, 3, 2, 0, 0, 0, 0];
        put_varint(&mut bytes, u64::MAX);
        assert!(decode_message(&bytes).is_err());
    }

    #[test]
    fn lengths_match_the_encoding() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(varint_len(value), out.len(), "{value}");
        }
        let entry = Entry { term: Term(300), index: LogIndex(1), kind: EntryKind::Command, data: vec![1; 200].into() };
        // Five one-byte zeros (term, vote, commit, snapshot index and term), a one-byte count, the entry.
        assert_eq!(encode_state(&HardState::default(), SnapshotMeta::default(), std::slice::from_ref(&entry)).len(), 5 + 1 + encoded_entry_len(&entry));
    }

    #[test]
    fn state_round_trips() {
        let hard_state = HardState { term: Term(4), vote: Some(NodeId(2)), commit: LogIndex(6) };
        let snapshot = SnapshotMeta { index: LogIndex(5), term: Term(2) };
        let entries = vec![Entry { term: Term(4), index: LogIndex(6), kind: EntryKind::Command, data: Bytes::from_static(b"x") }];
        let bytes = encode_state(&hard_state, snapshot, &entries);
        assert_eq!(decode_state(&bytes), Ok((hard_state, snapshot, entries)));
    }
}
