//! # wire: the frames raftkv nodes exchange
//!
//! Frame encoding and decoding: pure functions over byte slices, no I/O. The TCP transport carries
//! these frames; the simulator encodes every frame it carries with the same code, so that the
//! same limits apply.
//!
//! ```text
//!  byte 0          4         5        6
//!       +----------+---------+--------+---------------------------------+
//!       |  length  | version |  kind  | payload: length - 2 bytes       |
//!       |  u32 LE  |   u8    |   u8   |                                 |
//!       +----------+---------+--------+---------------------------------+
//!       `length` counts every byte after itself (version + kind + payload) and is at most
//!       the configured limit (64 MiB by default).
//!
//!  kind 1  Hello         varint node id of the dialer, varint cluster id (0: not known yet), then
//!                        optionally the dialer's peer address (varint length, UTF-8, at most
//!                        255 bytes) and the highest frame version the dialer speaks (varint;
//!                        absent: 4), then fields a later build may add, which this one ignores;
//!                        the first frame on every connection, always framed as `LOWEST_VERSION`
//!  kind 2  Raft          raft::codec::encode_message
//!  kind 3  Forward       varint request id, then opaque bytes up to the end of the frame
//!  kind 4  ForwardReply  varint request id, then opaque bytes up to the end of the frame
//! ```
//!
//! Versions: a build speaks every frame version from `LOWEST_VERSION` to `VERSION` and decodes
//! each frame by its own version byte. It sends a peer frames of the highest version both speak —
//! `agreed_version` of what the peer's Hello said — and of `LOWEST_VERSION` until it has heard,
//! so a build that adds a version can be rolled out over one that does not know it, node by node.
//!
//! Kinds start at 1 so that a run of zero bytes is rejected as soon as its kind byte arrives.
//! Decoding never panics and never allocates by a length it has not checked.
//!
//! Two decoders: `decode` reads a borrowed slice and copies what it keeps; `take` splits a whole
//! frame off a read buffer and decodes a Raft frame's entries as slices of it, so a received
//! entry's payload is never copied (the hot path of replication).

pub mod admission;

use bytes::{Bytes, BytesMut};
use raft::codec::{decode_message, decode_message_shared, encode_message, put_varint, DecodeError};
use raft::{Message, NodeId};


/// Why bytes are not a valid frame. Any of these closes the connection they arrived on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Checked on the length prefix alone, before a byte of the body is buffered, so a peer cannot
    /// make us allocate more than the limit.
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge { length: usize, max: usize },
    #[error("frame length {0} is too short for the version and kind bytes")]
    TooShort(usize),
    #[error("unsupported frame version {0} (this build speaks versions {LOWEST_VERSION} to {VERSION}: upgrade through a build that speaks both)")]
    BadVersion(u8),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("malformed {kind} frame: {source}")]
    BadPayload {
        kind: &'static str,
        #[source]
        source: DecodeError,
    },
}

/// The highest frame version this build speaks. A frame of a version outside
/// `LOWEST_VERSION..=VERSION` disconnects its sender.
/// 2: the cluster id in Hello; snapshots in chunks (SnapshotRequest's layout, SnapshotResponse).
/// 3: configuration entries, TimeoutNow, and the transfer flag of vote requests.
/// 4: the dialer's address in Hello, and (without a change of layout) the highest version it
///    speaks, after which a Hello may carry fields this build ignores.
pub const VERSION: u8 = 4;
/// The lowest frame version this build speaks (and frames its Hellos as). Versions 1–3 had no
/// negotiation: a build of one of them and this one cannot be members of one cluster at once.
pub const LOWEST_VERSION: u8 = 4;
/// What a Hello that does not say is taken to mean: builds of version 4 before negotiation.
const HIGHEST_OF_THE_SILENT: u8 = 4;
/// The longest address a Hello may carry.
pub const MAX_ADDRESS_BYTES: usize = 255;
/// The bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;
/// The bytes after the length prefix that every frame has: version and kind.
pub const HEADER_BYTES: usize = 2;
/// The default limit on a frame's `length` field.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

const KIND_HELLO: u8 = 1;
const KIND_RAFT: u8 = 2;
const KIND_FORWARD: u8 = 3;
const KIND_FORWARD_REPLY: u8 = 4;

/// What one node sends another, after the Hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Raft(Message),
    /// A client command a follower forwards to the leader; the bytes are the server's business.
    Forward { request_id: u64, payload: Bytes },
    /// The leader's answer to a `Forward`, relayed back on the leader's own connection to the follower.
    ForwardReply { request_id: u64, payload: Bytes },
}

/// Everything that travels on a connection: the Hello that opens it, then frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `cluster`: the id of the dialer's cluster, 0 while it does not know it yet. `address`:
    /// where the dialer takes peer connections (empty: not known), so that a node that has not
    /// heard of it yet (it joined while that node was away) can answer it. `speaks`: the highest
    /// frame version the dialer speaks.
    Hello { from: NodeId, cluster: u64, address: String, speaks: u8 },
    Frame(Frame),
}

impl Wire {
    /// The Hello this build opens its connections with: it speaks up to `VERSION`.
    pub fn hello(from: NodeId, cluster: u64, address: String) -> Wire {
        Wire::Hello { from, cluster, address, speaks: VERSION }
    }

    fn kind(&self) -> u8 {
        match self {
            Wire::Hello { .. } => KIND_HELLO,
            Wire::Frame(Frame::Raft(_)) => KIND_RAFT,
            Wire::Frame(Frame::Forward { .. }) => KIND_FORWARD,
            Wire::Frame(Frame::ForwardReply { .. }) => KIND_FORWARD_REPLY,
        }
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_HELLO => "Hello",
        KIND_RAFT => "Raft",
        KIND_FORWARD => "Forward",
        _ => "ForwardReply",
    }
}

/// The frame version to send a peer whose Hello said it speaks up to `theirs` (None: no Hello
/// heard from it yet): the highest both speak. A peer that speaks none of this build's versions
/// gets `LOWEST_VERSION` and refuses it, saying why.
pub fn agreed_version(theirs: Option<u8>) -> u8 {
    theirs.unwrap_or(LOWEST_VERSION).clamp(LOWEST_VERSION, VERSION)
}

/// Appends one whole frame (length prefix included) of `VERSION` to `out`; see `encode_as`.
pub fn encode(wire: &Wire, max_frame_bytes: usize, out: &mut Vec<u8>) -> Result<usize, FrameError> {
    encode_as(VERSION, wire, max_frame_bytes, out)
}

/// Appends one whole frame (length prefix included) of frame version `version` (one of this
/// build's) to `out` and returns how many bytes it took. A Hello is always of `LOWEST_VERSION`, so
/// that every build this one can talk to reads it. A frame over `max_frame_bytes` is not appended:
/// the receiver would only reject it, so the sender drops it instead of breaking the connection.
/// (Versions 4 and up share one layout so far; a later version's changes branch on `version`.)
pub fn encode_as(version: u8, wire: &Wire, max_frame_bytes: usize, out: &mut Vec<u8>) -> Result<usize, FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    out.push(if matches!(wire, Wire::Hello { .. }) { LOWEST_VERSION } else { version.clamp(LOWEST_VERSION, VERSION) });
    out.push(wire.kind());
    match wire {
        Wire::Hello { from, cluster, address, speaks } => {
            put_varint(out, from.0);
            put_varint(out, *cluster);
            // An address that cannot be said is not said (empty): the Hello stays valid.
            let address = if address.len() <= MAX_ADDRESS_BYTES { address.as_bytes() } else { &[] };
            put_varint(out, address.len() as u64);
            out.extend_from_slice(address);
            put_varint(out, u64::from(*speaks));
        }
        Wire::Frame(Frame::Raft(message)) => encode_message(message, out),
        Wire::Frame(Frame::Forward { request_id, payload } | Frame::ForwardReply { request_id, payload }) => {
            put_varint(out, *request_id);
            out.extend_from_slice(payload);
        }
    }
    let length = out.len() - start - LENGTH_BYTES;
    let max = max_frame_bytes.min(u32::MAX as usize);
    if length > max {
        out.truncate(start);
        return Err(FrameError::TooLarge { length, max: max_frame_bytes });
    }
    out[start..start + LENGTH_BYTES].copy_from_slice(&(length as u32).to_le_bytes());
    Ok(out.len() - start)
}

/// Decodes the frame at the start of `input`. `Ok(None)` means "need more bytes": `input` is a
/// prefix of a frame that is valid so far. `Ok(Some((wire, used)))` consumed `used` bytes. The
/// header is checked as soon as its bytes are there, so garbage is rejected early.
pub fn decode(input: &[u8], max_frame_bytes: usize) -> Result<Option<(Wire, usize)>, FrameError> {
    let Some((kind, total)) = header(input, max_frame_bytes)? else {
        return Ok(None);
    };
    let Some(payload) = input.get(LENGTH_BYTES + HEADER_BYTES..total) else {
        return Ok(None);
    };
    let wire = decode_payload(kind, payload).map_err(|source| bad_payload(kind, source))?;
    Ok(Some((wire, total)))
}

/// Like `decode`, but takes the whole frame at the start of `buffer` off it (`Ok(None)` leaves
/// `buffer` as it was). A Raft frame's entries keep slices of the frame's bytes instead of copies.
pub fn take(buffer: &mut BytesMut, max_frame_bytes: usize) -> Result<Option<Wire>, FrameError> {
    let Some((kind, total)) = header(buffer, max_frame_bytes)? else {
        return Ok(None);
    };
    if buffer.len() < total {
        return Ok(None);
    }
    let payload = buffer.split_to(total).freeze().split_off(LENGTH_BYTES + HEADER_BYTES);
    let wire = decode_payload_shared(kind, &payload).map_err(|source| bad_payload(kind, source))?;
    Ok(Some(wire))
}

/// Checks the header of the frame at the start of `input` as far as its bytes are there, and
/// returns its kind and total size (length prefix included) once the kind byte has arrived.
fn header(input: &[u8], max_frame_bytes: usize) -> Result<Option<(u8, usize)>, FrameError> {
    let Some(prefix) = input.first_chunk::<LENGTH_BYTES>() else {
        return Ok(None);
    };
    let length = u32::from_le_bytes(*prefix) as usize;
    if length > max_frame_bytes {
        return Err(FrameError::TooLarge { length, max: max_frame_bytes });
    }
    if length < HEADER_BYTES {
        return Err(FrameError::TooShort(length));
    }
    if let Some(&version) = input.get(LENGTH_BYTES) {
        if !(LOWEST_VERSION..=VERSION).contains(&version) {
            return Err(FrameError::BadVersion(version));
        }
    }
    let kind = match input.get(LENGTH_BYTES + 1) {
        Some(&kind) if (KIND_HELLO..=KIND_FORWARD_REPLY).contains(&kind) => kind,
        Some(&kind) => return Err(FrameError::UnknownKind(kind)),
        None => return Ok(None),
    };
    // No overflow: `length` fits in a u32, and `usize` is at least 32 bits.
    Ok(Some((kind, LENGTH_BYTES.saturating_add(length))))
}

fn bad_payload(kind: u8, source: DecodeError) -> FrameError {
    FrameError::BadPayload { kind: kind_name(kind), source }
}

/// Raft entries and forwarded requests are slices of the frame, not copies.
fn decode_payload_shared(kind: u8, payload: &Bytes) -> Result<Wire, DecodeError> {
    match kind {
        KIND_RAFT => Ok(Wire::Frame(Frame::Raft(decode_message_shared(payload)?))),
        KIND_FORWARD | KIND_FORWARD_REPLY => {
            let (request_id, rest) = take_varint(payload)?;
            Ok(forward(kind, request_id, payload.slice(payload.len() - rest.len()..)))
        }
        _ => decode_payload(kind, payload),
    }
}

fn forward(kind: u8, request_id: u64, payload: Bytes) -> Wire {
    Wire::Frame(if kind == KIND_FORWARD {
        Frame::Forward { request_id, payload }
    } else {
        Frame::ForwardReply { request_id, payload }
    })
}

fn decode_payload(kind: u8, payload: &[u8]) -> Result<Wire, DecodeError> {
    match kind {
        KIND_HELLO => {
            let (from, rest) = take_varint(payload)?;
            let (cluster, rest) = if rest.is_empty() { (0, rest) } else { take_varint(rest)? };
            let (address, rest) = if rest.is_empty() { (String::new(), rest) } else { take_address(rest)? };
            let (speaks, _later_fields) = if rest.is_empty() { (u64::from(HIGHEST_OF_THE_SILENT), rest) } else { take_varint(rest)? };
            // What follows is for later builds: ignored here, so that they may say more to this
            // one in their Hellos.
            Ok(Wire::Hello { from: NodeId(from), cluster, address, speaks: u8::try_from(speaks).unwrap_or(u8::MAX) })
        }
        KIND_RAFT => Ok(Wire::Frame(Frame::Raft(decode_message(payload)?))),
        _ => {
            let (request_id, rest) = take_varint(payload)?;
            Ok(forward(kind, request_id, Bytes::copy_from_slice(rest)))
        }
    }
}

/// A Hello's address: a varint length (at most `MAX_ADDRESS_BYTES`), then that much UTF-8.
fn take_address(input: &[u8]) -> Result<(String, &[u8]), DecodeError> {
    let (length, rest) = take_varint(input)?;
    let length = usize::try_from(length).ok().filter(|&length| length <= MAX_ADDRESS_BYTES && length <= rest.len());
    let Some(length) = length else { return Err(DecodeError::OutOfRange("a Hello's address is longer than its frame or 255 bytes")) };
    let address = std::str::from_utf8(&rest[..length]).map_err(|_| DecodeError::OutOfRange("a Hello's address is not UTF-8"))?;
    Ok((address.to_string(), &rest[length..]))
}

/// A LEB128 varint as `raft::codec::put_varint` writes it, and what follows it.
fn take_varint(input: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        // The tenth byte holds bit 63 only.
        if i == 9 && byte > 1 {
            return Err(DecodeError::VarintOverflow(0));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, &input[i + 1..]));
        }
    }
    Err(DecodeError::Truncated(input.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{AppendResponse, Entry, EntryKind, LogIndex, MessageBody, SnapshotMeta, Term};

    const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

    fn samples() -> Vec<Wire> {
        let message = |body| Message { from: NodeId(1), to: NodeId(2), term: Term(7), body };
        let entry = |index: u64| Entry {
            term: Term(7),
            index: LogIndex(index),
            kind: EntryKind::Command,
            data: vec![index as u8; index as usize * 10].into(),
        };
        vec![
            Wire::hello(NodeId(1), 0, String::new()),
            Wire::hello(NodeId(u64::MAX), u64::MAX, "node-9.example:7001".into()),
            Wire::Frame(Frame::Raft(message(MessageBody::VoteRequest {
                pre_vote: true,
                transfer: false,
                last_log_index: LogIndex(300),
                last_log_term: Term(6),
            }))),
            Wire::Frame(Frame::Raft(message(MessageBody::AppendRequest {
                prev_log_index: LogIndex(3),
                prev_log_term: Term(6),
                entries: vec![entry(4), entry(5)],
                leader_commit: LogIndex(3),
                read_round: 12,
            }))),
            Wire::Frame(Frame::Raft(message(MessageBody::AppendResponse {
                response: AppendResponse::Rejected {
                    rejected_prev_index: LogIndex(9),
                    conflict_index: LogIndex(2),
                    conflict_term: None,
                },
                read_round: 12,
            }))),
            Wire::Frame(Frame::Raft(message(MessageBody::whole_snapshot(SnapshotMeta { index: LogIndex(10), term: Term(3) }, &[9; 1000])))),
            Wire::Frame(Frame::Raft(message(MessageBody::SnapshotResponse { index: LogIndex(10), received: 1000 }))),
            Wire::Frame(Frame::Forward { request_id: 0, payload: Bytes::new() }),
            Wire::Frame(Frame::Forward { request_id: 300, payload: Bytes::from_static(b"*1\r\n$4\r\nPING\r\n") }),
            Wire::Frame(Frame::ForwardReply { request_id: u64::MAX, payload: vec![0xff; 500].into() }),
        ]
    }

    fn encoded(wire: &Wire) -> Vec<u8> {
        let mut out = Vec::new();
        let used = encode(wire, MAX, &mut out).unwrap();
        assert_eq!(used, out.len());
        out
    }

    #[test]
    fn every_kind_round_trips() {
        for wire in samples() {
            let bytes = encoded(&wire);
            let version = if matches!(wire, Wire::Hello { .. }) { LOWEST_VERSION } else { VERSION };
            assert_eq!(bytes[LENGTH_BYTES], version);
            assert_eq!(u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize, bytes.len() - LENGTH_BYTES);
            assert_eq!(decode(&bytes, MAX), Ok(Some((wire.clone(), bytes.len()))));
        }
    }

    #[test]
    fn frames_in_a_row_decode_one_at_a_time() {
        let mut stream = Vec::new();
        for wire in samples() {
            encode(&wire, MAX, &mut stream).unwrap();
        }
        let mut rest = &stream[..];
        for wire in samples() {
            let (decoded, used) = decode(rest, MAX).unwrap().unwrap();
            assert_eq!(decoded, wire);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn take_matches_decode_and_consumes_one_frame_at_a_time() {
        let mut buffer = BytesMut::new();
        for wire in samples() {
            encode_into(&wire, &mut buffer);
        }
        for wire in samples() {
            assert_eq!(take(&mut buffer, MAX), Ok(Some(wire)));
        }
        assert!(buffer.is_empty());
        assert_eq!(take(&mut buffer, MAX), Ok(None));
    }

    #[test]
    fn take_of_a_truncated_frame_needs_more_and_leaves_the_buffer_alone() {
        for wire in samples() {
            let bytes = encoded(&wire);
            for cut in 0..bytes.len() {
                let mut buffer = BytesMut::from(&bytes[..cut]);
                assert_eq!(take(&mut buffer, MAX), Ok(None), "{wire:?} cut at {cut}");
                assert_eq!(&buffer[..], &bytes[..cut]);
            }
        }
    }

    #[test]
    fn taken_entries_share_the_read_buffer() {
        let append = samples()
            .into_iter()
            .find(|wire| matches!(wire, Wire::Frame(Frame::Raft(Message { body: MessageBody::AppendRequest { .. }, .. }))))
            .expect("a sample AppendRequest");
        let mut buffer = BytesMut::new();
        encode_into(&append, &mut buffer);
        let buffer_range = buffer.as_ptr_range();
        let Ok(Some(Wire::Frame(Frame::Raft(Message { body: MessageBody::AppendRequest { entries, .. }, .. })))) =
            take(&mut buffer, MAX)
        else {
            panic!("not an AppendRequest");
        };
        assert!(!entries.is_empty());
        for entry in entries {
            let data = entry.data.as_ptr_range();
            assert!(buffer_range.start <= data.start && data.end <= buffer_range.end, "entry {} was copied", entry.index);
        }
    }

    fn encode_into(wire: &Wire, buffer: &mut BytesMut) {
        buffer.extend_from_slice(&encoded(wire));
    }

    #[test]
    fn every_truncation_needs_more() {
        for wire in samples() {
            let bytes = encoded(&wire);
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut], MAX), Ok(None), "{wire:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn oversize_length_is_rejected_from_the_prefix_alone() {
        // Only the four length bytes: nothing has been buffered, and the answer is already no.
        for length in [1025u32, u32::MAX] {
            assert_eq!(decode(&length.to_le_bytes(), 1024), Err(FrameError::TooLarge { length: length as usize, max: 1024 }));
        }
        let mut at_limit = 1024u32.to_le_bytes().to_vec();
        at_limit.extend_from_slice(&[VERSION, KIND_FORWARD, 0]);
        assert_eq!(decode(&at_limit, 1024), Ok(None));
    }

    #[test]
    fn oversize_frames_are_not_encoded() {
        let wire = Wire::Frame(Frame::Forward { request_id: 1, payload: vec![0; 100].into() });
        let mut out = vec![42];
        assert_eq!(encode(&wire, 50, &mut out), Err(FrameError::TooLarge { length: 103, max: 50 }));
        assert_eq!(out, vec![42], "nothing appended");
        assert_eq!(encode(&wire, 103, &mut out), Ok(107));
    }

    #[test]
    fn a_hello_address_that_is_too_long_or_not_text_is_refused() {
        let hello = |address: &[u8]| {
            let mut bytes = vec![0, 0, 0, 0, VERSION, KIND_HELLO, 2, 5];
            put_varint(&mut bytes, address.len() as u64);
            bytes.extend_from_slice(address);
            let length = (bytes.len() - LENGTH_BYTES) as u32;
            bytes[..LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
            decode(&bytes, MAX)
        };
        let decoded = hello(b"10.0.0.2:7001");
        assert!(matches!(decoded, Ok(Some((Wire::Hello { ref address, .. }, _))) if address == "10.0.0.2:7001"), "{decoded:?}");
        assert!(matches!(hello(&[b'a'; MAX_ADDRESS_BYTES + 1]), Err(FrameError::BadPayload { .. })));
        assert!(matches!(hello(&[0xff, 0xfe]), Err(FrameError::BadPayload { .. })));
        // A length that claims more than the frame holds.
        assert!(matches!(decode(&[9, 0, 0, 0, VERSION, KIND_HELLO, 2, 5, 40, b'a', b'b', b'c', b'd'], MAX), Err(FrameError::BadPayload { .. })));
        // Too long to be said: the Hello goes without it.
        let mut out = Vec::new();
        encode(&Wire::hello(NodeId(2), 5, "a".repeat(MAX_ADDRESS_BYTES + 1)), MAX, &mut out).expect("encodes");
        assert!(matches!(decode(&out, MAX), Ok(Some((Wire::Hello { ref address, .. }, _))) if address.is_empty()));
    }

    /// A later build may say more in its Hello (after the version it speaks): this one takes the
    /// Hello and ignores the rest, so that such a build can join a cluster of this one.
    #[test]
    fn fields_after_a_hellos_version_are_ignored() {
        let hello = Wire::Hello { from: NodeId(2), cluster: 5, address: "10.0.0.2:7001".into(), speaks: 9 };
        let mut bytes = encoded(&hello);
        bytes.extend_from_slice(&[5, 4, 0x80, 0x01]);
        let length = (bytes.len() - LENGTH_BYTES) as u32;
        bytes[..LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
        assert_eq!(decode(&bytes, MAX), Ok(Some((hello.clone(), bytes.len()))));
        let mut buffer = BytesMut::from(&bytes[..]);
        assert_eq!(take(&mut buffer, MAX), Ok(Some(hello)));
    }

    /// A Hello of a build before negotiation (nothing after the address, or not even that) speaks
    /// version 4; this build's Hellos say `VERSION`, and are framed as `LOWEST_VERSION` whatever
    /// version the connection's frames are then sent in.
    #[test]
    fn a_hello_says_the_highest_version_its_sender_speaks() {
        let silent = [
            vec![3, 0, 0, 0, 4, KIND_HELLO, 2],
            vec![4, 0, 0, 0, 4, KIND_HELLO, 2, 5],
            vec![6, 0, 0, 0, 4, KIND_HELLO, 2, 5, 1, b'a'],
        ];
        for bytes in silent {
            assert!(matches!(decode(&bytes, MAX), Ok(Some((Wire::Hello { speaks: 4, .. }, _)))), "{bytes:?}");
        }
        let mut out = Vec::new();
        encode_as(VERSION, &Wire::hello(NodeId(2), 5, String::new()), MAX, &mut out).expect("encodes");
        assert_eq!(out[LENGTH_BYTES], LOWEST_VERSION);
        assert!(matches!(decode(&out, MAX), Ok(Some((Wire::Hello { speaks: VERSION, .. }, _)))));
        // A number of versions no byte holds is taken as "all of them".
        let mut out = Vec::new();
        encode(&Wire::hello(NodeId(2), 5, String::new()), MAX, &mut out).expect("encodes");
        out.pop();
        put_varint(&mut out, 1000);
        let length = (out.len() - LENGTH_BYTES) as u32;
        out[..LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
        assert!(matches!(decode(&out, MAX), Ok(Some((Wire::Hello { speaks: u8::MAX, .. }, _)))));
    }

    /// The version sent is the highest both ends speak; before a peer's Hello, the lowest.
    #[test]
    fn frames_go_in_the_highest_version_both_ends_speak() {
        assert_eq!(agreed_version(None), LOWEST_VERSION);
        assert_eq!(agreed_version(Some(VERSION)), VERSION);
        assert_eq!(agreed_version(Some(u8::MAX)), VERSION, "a later build gets this build's highest");
        assert_eq!(agreed_version(Some(LOWEST_VERSION)), LOWEST_VERSION);
        assert_eq!(agreed_version(Some(1)), LOWEST_VERSION, "an older build is sent what it will refuse, saying why");
        let mut out = Vec::new();
        let frame = Wire::Frame(Frame::Forward { request_id: 1, payload: Bytes::new() });
        encode_as(agreed_version(Some(u8::MAX)), &frame, MAX, &mut out).expect("encodes");
        assert_eq!(out[LENGTH_BYTES], VERSION);
        assert_eq!(decode(&out, MAX), Ok(Some((frame, out.len()))));
    }

    #[test]
    fn bad_version_kind_and_length_are_rejected() {
        let mut bytes = encoded(&Wire::hello(NodeId(3), 7, String::new()));
        for version in [1, LOWEST_VERSION - 1, VERSION + 1] {
            bytes[LENGTH_BYTES] = version;
            assert_eq!(decode(&bytes, MAX), Err(FrameError::BadVersion(version)), "a build that speaks none of this one's versions");
            // Rejected as soon as the byte is there, without waiting for the rest of the frame.
            assert_eq!(decode(&bytes[..LENGTH_BYTES + 1], MAX), Err(FrameError::BadVersion(version)));
        }

        for kind in [0, 5, 0xff] {
            let mut bytes = encoded(&Wire::hello(NodeId(3), 7, String::new()));
            bytes[LENGTH_BYTES + 1] = kind;
            assert_eq!(decode(&bytes, MAX), Err(FrameError::UnknownKind(kind)));
        }
        for length in [0u32, 1] {
            assert_eq!(decode(&length.to_le_bytes(), MAX), Err(FrameError::TooShort(length as usize)));
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        // A Hello with a byte after its cluster id, one whose varint never ends, a Raft frame of garbage.
        let cases: [&[u8]; 4] = [
            &[5, 0, 0, 0, VERSION, KIND_HELLO, 1, 9, 9],
            &[3, 0, 0, 0, VERSION, KIND_HELLO, 0x80],
            &[12, 0, 0, 0, VERSION, KIND_HELLO, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            &[5, 0, 0, 0, VERSION, KIND_RAFT, 1, 2, 3],
        ];
        for bytes in cases {
            assert!(matches!(decode(bytes, MAX), Err(FrameError::BadPayload { .. })), "{bytes:?}");
        }
        // Forward needs at least its request id.
        assert!(matches!(decode(&[2, 0, 0, 0, VERSION, KIND_FORWARD], MAX), Err(FrameError::BadPayload { .. })));
    }

    /// xorshift64*: a fixed seed makes any failure reproducible.
    struct Prng(u64);

    impl Prng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn check_outcome(input: &[u8], max: usize) {
        // "Need more" and errors are both fine; a frame must lie within the input.
        let decoded = decode(input, max);
        if let Ok(Some((_, used))) = decoded {
            assert!(used <= input.len() && used >= LENGTH_BYTES + HEADER_BYTES);
        }
        // The sharing decoder must agree on every input, garbage included.
        let mut buffer = BytesMut::from(input);
        let taken = take(&mut buffer, max);
        assert_eq!(taken, decoded.clone().map(|frame| frame.map(|(wire, _)| wire)));
        if let Ok(Some((_, used))) = decoded {
            assert_eq!(buffer.len(), input.len() - used);
        }
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = Prng(0x5eed_1234_abcd_0001);
        for _ in 0..20_000 {
            let len = rng.below(64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the time, a plausible header so the payload decoders see garbage too.
            if len >= 6 && rng.below(2) == 0 {
                bytes[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
                bytes[4] = VERSION;
                bytes[5] = 1 + rng.below(4) as u8;
            }
            check_outcome(&bytes, 1 + rng.below(128) as usize);
            check_outcome(&bytes, MAX);
        }
    }

    #[test]
    fn corrupted_frames_never_panic() {
        let mut rng = Prng(42);
        for wire in samples() {
            let bytes = encoded(&wire);
            for _ in 0..500 {
                let mut corrupt = bytes.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(corrupt.len() as u64) as usize;
                    corrupt[at] = rng.next() as u8;
                }
                check_outcome(&corrupt, MAX);
            }
        }
    }
}
