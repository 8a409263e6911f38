//! The write-ahead log's bytes: record framing, the operations a record carries, and the scan that
//! tells a torn tail (cut off, recovery goes on) from corruption (recovery stops).
//!
//! ```text
//! record  := len:u32 LE | crc:u32 LE | payload[len]      crc = crc32c(payload), 1 <= len
//! payload := count:varint op{count}                        (all the ops of one save)
//! op      := 1 | first:varint | count:varint | (term:varint kind:u8 size:varint data[size]) * count
//!          | 2 | term:varint | vote:varint (0 = none) | commit:varint
//!          | 3 | from:varint                             drop the entries at or after `from`
//!          | 4 | seq:varint | index:varint | term:varint  snapshot number `seq` now covers up to `index`
//! ```

use raft::codec::{put_varint, DecodeError, Reader};
use raft::{Entry, EntryKind, HardState, LogIndex, SnapshotMeta, Term};

pub(crate) const RECORD_HEADER: usize = 8;

const OP_ENTRIES: u8 = 1;
const OP_HARD_STATE: u8 = 2;
const OP_TRUNCATE: u8 = 3;
const OP_SNAPSHOT: u8 = 4;

/// One change to the durable state, as replayed from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Drop the entries at or after the first one's index, then append these (contiguous, non-empty).
    Entries(Vec<Entry>),
    HardState(HardState),
    TruncateFrom(LogIndex),
    /// Entries at or below `index` now live in the snapshot.
    Snapshot(Marker),
}

/// Which snapshot a marker names. Snapshots are numbered from 1 in the order they are saved (0: none),
/// and `snapshot.bin` carries its number too: two snapshots can share an index and term, never a
/// number, so recovery can tell exactly whether the log's last marker names the file on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marker {
    pub seq: u64,
    pub meta: SnapshotMeta,
}

pub(crate) fn segment_name(seq: u64) -> String {
    format!("{seq:016}.log")
}

pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 16 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Starts a record in `out`: room for the header, filled in by `finish_record`.
pub(crate) fn begin_record(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    start
}

/// Seals the record begun at `start`; the payload is everything written since. Fails (with the
/// payload's size) if it does not fit a u32 length.
pub(crate) fn finish_record(out: &mut [u8], start: usize) -> Result<(), usize> {
    let payload = &out[start + RECORD_HEADER..];
    let len = u32::try_from(payload.len()).map_err(|_| payload.len())?;
    let crc = raft::crc32c::crc32c(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

pub(crate) fn put_entries(out: &mut Vec<u8>, entries: &[Entry]) {
    out.push(OP_ENTRIES);
    put_varint(out, entries[0].index.0);
    put_varint(out, entries.len() as u64);
    for entry in entries {
        put_varint(out, entry.term.0);
        out.push(match entry.kind {
            EntryKind::Command => 0,
            EntryKind::Noop => 1,
            EntryKind::Config => 2,
        });
        put_varint(out, entry.data.len() as u64);
        out.extend_from_slice(&entry.data);
    }
}

pub(crate) fn put_hard_state(out: &mut Vec<u8>, hard_state: &HardState) {
    out.push(OP_HARD_STATE);
    raft::codec::encode_hard_state(hard_state, out);
}

pub(crate) fn put_truncate(out: &mut Vec<u8>, from: LogIndex) {
    out.push(OP_TRUNCATE);
    put_varint(out, from.0);
}

pub(crate) fn put_snapshot(out: &mut Vec<u8>, marker: Marker) {
    out.push(OP_SNAPSHOT);
    put_varint(out, marker.seq);
    put_varint(out, marker.meta.index.0);
    put_varint(out, marker.meta.term.0);
}

/// Starts a payload of `count` ops.
pub(crate) fn put_op_count(out: &mut Vec<u8>, count: usize) {
    put_varint(out, count as u64);
}

/// Decodes a payload whose checksum matched: failing here means a bug or a foreign format, never
/// a torn write.
pub(crate) fn decode_ops(payload: &[u8]) -> Result<Vec<Op>, String> {
    let text = |error: DecodeError| error.to_string();
    let mut reader = Reader::new(payload);
    let count = reader.varint().map_err(text)?;
    if count == 0 {
        return Err("a record with no ops".into());
    }
    let mut ops = Vec::new();
    for _ in 0..count {
        let op = match reader.byte().map_err(text)? {
            OP_ENTRIES => Op::Entries(decode_entries(&mut reader, payload.len())?),
            OP_HARD_STATE => Op::HardState(raft::codec::decode_hard_state(&mut reader).map_err(text)?),
            OP_TRUNCATE => Op::TruncateFrom(LogIndex(reader.varint().map_err(text)?)),
            OP_SNAPSHOT => Op::Snapshot(Marker {
                seq: reader.varint().map_err(text)?,
                meta: SnapshotMeta {
                    index: LogIndex(reader.varint().map_err(text)?),
                    term: Term(reader.varint().map_err(text)?),
                },
            }),
            kind => return Err(format!("unknown op kind {kind}")),
        };
        ops.push(op);
    }
    reader.finish().map_err(text)?;
    Ok(ops)
}

fn decode_entries(reader: &mut Reader<'_>, payload_len: usize) -> Result<Vec<Entry>, String> {
    let text = |error: DecodeError| error.to_string();
    let first = reader.varint().map_err(text)?;
    let count = reader.varint().map_err(text)?;
    if count == 0 || first == 0 || first.checked_add(count).is_none() {
        return Err(format!("an entries op with {count} entries from index {first}"));
    }
    // Never size an allocation by a count read from disk: each entry takes at least 3 bytes.
    let mut entries = Vec::with_capacity(count.min(payload_len as u64 / 3) as usize);
    for offset in 0..count {
        let term = Term(reader.varint().map_err(text)?);
        let kind = match reader.byte().map_err(text)? {
            0 => EntryKind::Command,
            1 => EntryKind::Noop,
            2 => EntryKind::Config,
            kind => return Err(format!("unknown entry kind {kind}")),
        };
        let data = reader.bytes().map_err(text)?;
        // One copy per entry on recovery: the record buffer is not kept.
        let data = raft::Bytes::copy_from_slice(data);
        entries.push(Entry { term, index: LogIndex(first + offset), kind, data });
    }
    Ok(entries)
}

/// How a segment's bytes end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Every byte belongs to a valid record.
    Clean,
    /// The bytes from `offset` on are all zeros: space reserved ahead of the log (see
    /// `Options::preallocate_bytes`) that no record reached yet, in any segment.
    Unwritten { offset: u64 },
    /// The last record was cut short or garbled by a crash and nothing valid follows it: drop the
    /// bytes from `offset` on. Only ever the verdict for the last segment.
    Torn { offset: u64, reason: String },
    /// Damage that a crash cannot explain: stop, report, lose nothing silently.
    Corrupt { offset: u64, reason: String },
}

/// Reads a segment's records, up to the first one that is not valid.
///
/// A bad record is a torn tail only if it is in the last segment (earlier segments were fsync'd
/// whole before the next one was created) and no valid record follows it anywhere (a crash tears
/// the end of the last write; it does not garble a record and leave intact ones after it). A
/// record whose checksum matches but does not decode is corrupt wherever it is: the bytes are the
/// ones written, so no crash explains it.
/// Returns the ops of each valid record, in order, and how the segment ends.
pub(crate) fn scan(bytes: &[u8], last_segment: bool) -> (Vec<Vec<Op>>, End) {
    let mut records = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let offset = position as u64;
        if bytes[position..].iter().all(|&byte| byte == 0) {
            return (records, End::Unwritten { offset });
        }
        match frame_at(bytes, position) {
            Ok(payload) => match decode_ops(payload) {
                Ok(ops) => {
                    records.push(ops);
                    position += RECORD_HEADER + payload.len();
                }
                Err(reason) => {
                    let reason = format!("checksum matches but the record does not decode: {reason}");
                    return (records, End::Corrupt { offset, reason });
                }
            },
            Err(reason) if !last_segment => {
                let reason = format!("{reason}, in a segment that is not the last");
                return (records, End::Corrupt { offset, reason });
            }
            Err(reason) => {
                return match valid_record_after(bytes, position + 1) {
                    Some(next) => {
                        let reason = format!("{reason}, and a valid record follows at byte {next}");
                        (records, End::Corrupt { offset, reason })
                    }
                    None => (records, End::Torn { offset, reason }),
                };
            }
        }
    }
    (records, End::Clean)
}

/// The payload of the record at `position`, if its frame is whole and its checksum matches.
fn frame_at(bytes: &[u8], position: usize) -> Result<&[u8], String> {
    let rest = &bytes[position..];
    if rest.len() < RECORD_HEADER {
        return Err(format!("record header cut short ({} of {RECORD_HEADER} bytes)", rest.len()));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let stored = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len == 0 {
        // Never written (every record has an op count); what a zero-filled tail looks like.
        return Err("zero-length record".into());
    }
    let payload = rest
        .get(RECORD_HEADER..RECORD_HEADER + len)
        .ok_or_else(|| format!("record payload cut short ({} of {len} bytes)", rest.len() - RECORD_HEADER))?;
    let computed = raft::crc32c::crc32c(payload);
    if computed != stored {
        return Err(format!("checksum mismatch (stored {stored:08x}, computed {computed:08x})"));
    }
    Ok(payload)
}

/// The offset of the first valid, decodable record starting at or after `from`, searching every
/// byte offset: records do not announce themselves, so this is the only way to know whether a
/// garbled record was the last one.
fn valid_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER)).find(|&position| {
        plausible(&bytes[position..]) && frame_at(bytes, position).is_ok_and(|payload| decode_ops(payload).is_ok())
    })
}

/// A cheap filter before checksumming a candidate: a payload starts with an op count and an op
/// kind, both 1..=4. Without it, every offset whose four bytes read as a length that fits would
/// cost a checksum over up to the rest of the segment.
fn plausible(rest: &[u8]) -> bool {
    let small = |byte: u8| (1..=4).contains(&byte);
    rest.len() >= RECORD_HEADER + 2 && small(rest[RECORD_HEADER]) && small(rest[RECORD_HEADER + 1])
}
