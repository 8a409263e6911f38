//! [`parse_command`]: a client's request, in either form Redis accepts.

use crate::cursor::{finish, Cursor, LengthOf, Step};
use crate::{inline, Limits, ParseError};

/// A request's arguments, the command name first, each binary-safe.
pub type Args = Vec<Vec<u8>>;

/// Parses one client request from the front of `buf` into its arguments, the command name first.
///
/// A request is either an array of bulk strings (what client libraries send) or, when `buf` does
/// not start with `*`, an inline command: one line of words separated by spaces, ended by `\n` or
/// `\r\n` (what telnet and `redis-cli` in some modes send), where `"..."` quotes a word that holds
/// spaces or escapes (`\n`, `\r`, `\t`, `\"`, `\\`, `\xHH`) and `'...'` quotes one literally.
///
/// Results as for [`parse`](crate::parse). A blank line, `*0\r\n` and `*-1\r\n` are requests with
/// no arguments: Redis ignores them without a reply, and so should the caller, after dropping
/// `consumed` bytes. Allocates nothing until the whole request is in `buf`. Never panics.
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, ParseError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => {
            let mut args = Vec::new();
            Ok(multibulk_into(buf, limits, &mut args)?.map(|used| (args, used)))
        }
        Some(_) => inline::command(buf, limits),
    }
}

/// A request's arguments in one buffer that is reused from request to request: what a server
/// parses into, so that parsing allocates nothing once the buffer has grown to its working size.
/// Indexing gives each argument as a slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgBuf {
    bytes: Vec<u8>,
    /// Where each argument ends in `bytes`.
    ends: Vec<usize>,
}

impl ArgBuf {
    pub fn new() -> ArgBuf {
        ArgBuf::default()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.bytes[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

impl std::ops::Index<usize> for ArgBuf {
    type Output = [u8];

    fn index(&self, index: usize) -> &[u8] {
        match self.get(index) {
            Some(arg) => arg,
            None => panic!("argument {index} of {}", self.len()),
        }
    }
}

/// Where parsed arguments go: a `Vec` per argument (`Args`) or one shared buffer (`ArgBuf`).
trait Sink {
    fn push(&mut self, arg: &[u8]);
}

impl Sink for Args {
    fn push(&mut self, arg: &[u8]) {
        Vec::push(self, arg.to_vec());
    }
}

impl Sink for ArgBuf {
    fn push(&mut self, arg: &[u8]) {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
    }
}

/// [`parse_command`] into a reused [`ArgBuf`]: the same requests, errors and byte counts, and no
/// allocation per argument. `args` is cleared first and holds the arguments when this returns a
/// count of bytes used.
pub fn parse_command_into(buf: &[u8], limits: &Limits, args: &mut ArgBuf) -> Result<Option<usize>, ParseError> {
    args.clear();
    match buf.first() {
        None => Ok(None),
        Some(b'*') => multibulk_into(buf, limits, args),
        Some(_) => {
            // Inline commands (typed by hand) are rare: parse them as usual, then copy.
            let Some((words, used)) = inline::command(buf, limits)? else { return Ok(None) };
            for word in &words {
                args.push(word);
            }
            Ok(Some(used))
        }
    }
}

/// How far the scan of an incomplete command got: with more bytes, [`parse_command_resumable`]
/// goes on from the last whole argument instead of from the command's start, so that a command
/// trickled in a byte at a time costs work in proportion to its size, not to its size squared.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Arguments still to come, once the `*N` header is read.
    remaining: Option<u64>,
    /// Where the next argument starts.
    pos: usize,
    /// Bytes examined by scans, for tests that check the work stays linear.
    scanned: u64,
}

impl Resume {
    /// Bytes scans have examined so far (each parse of a whole command adds its length once more).
    pub fn scanned(&self) -> u64 {
        self.scanned
    }
}

/// [`parse_command_into`] for a buffer that grows between calls: `resume` keeps the progress over
/// the same incomplete command (the caller passes the same start of that command each time, with
/// more bytes after it) and is reset once a command is whole or refused.
pub fn parse_command_resumable(buf: &[u8], limits: &Limits, args: &mut ArgBuf, resume: &mut Resume) -> Result<Option<usize>, ParseError> {
    if buf.first().is_some_and(|&first| first != b'*') {
        // An inline command is one line: parse it once its end is here (or it is too long to be one).
        let searched = resume.pos.min(buf.len());
        resume.scanned += (buf.len() - searched) as u64;
        if !buf[searched..].contains(&b'\n') && buf.len() <= limits.max_inline_bytes {
            resume.pos = buf.len();
            return Ok(None);
        }
        *resume = Resume { scanned: resume.scanned, ..Resume::default() };
        return parse_command_into(buf, limits, args);
    }
    let scanned_before = resume.scanned;
    let outcome = finish(scan_multibulk(buf, limits, resume));
    match outcome {
        Ok(None) => Ok(None),
        Ok(Some(end)) => {
            let counted = resume.scanned;
            *resume = Resume { scanned: counted + end as u64, ..Resume::default() };
            args.clear();
            finish(multibulk(&buf[..end], limits, Some(args)))
        }
        Err(error) => {
            *resume = Resume { scanned: scanned_before, ..Resume::default() };
            Err(error)
        }
    }
}

/// Validates the arguments of a multibulk command from where `resume` left off; its end once all
/// are here.
fn scan_multibulk(buf: &[u8], limits: &Limits, resume: &mut Resume) -> Step<usize> {
    let remaining = match resume.remaining {
        Some(remaining) => remaining,
        None => {
            let mut cur = Cursor::new(buf, limits);
            cur.byte()?; // the '*' that brought us here
            if limits.max_depth == 0 {
                return Err(ParseError::NestingTooDeep { limit: 0 }.into());
            }
            let n = cur.length(LengthOf::Array)?.unwrap_or(0);
            resume.scanned += cur.pos() as u64;
            resume.remaining = Some(n as u64);
            resume.pos = cur.pos();
            n as u64
        }
    };
    let mut cur = Cursor::at(buf, resume.pos, limits);
    for _ in 0..remaining {
        let start = cur.pos();
        let step = (|| {
            match cur.byte()? {
                b'$' => {}
                other => return Err(ParseError::ExpectedBulk(other).into()),
            }
            let len = cur.length(LengthOf::Bulk)?.ok_or(ParseError::NilArgument)?;
            cur.data(len).map(|_| ())
        })();
        resume.scanned += (cur.pos() - start) as u64;
        step?;
        resume.pos = cur.pos();
        resume.remaining = resume.remaining.map(|left| left - 1);
    }
    Ok(cur.pos())
}

/// As in `parse`: validate and measure first, copy arguments only once all are here.
fn multibulk_into(buf: &[u8], limits: &Limits, sink: &mut impl Sink) -> Result<Option<usize>, ParseError> {
    let Some(end) = finish(multibulk(buf, limits, None::<&mut ArgBuf>))? else {
        return Ok(None);
    };
    finish(multibulk(&buf[..end], limits, Some(sink)))
}

/// `*N\r\n` and N bulk strings, each pushed into `sink` if there is one; returns the end.
fn multibulk(buf: &[u8], limits: &Limits, mut sink: Option<&mut impl Sink>) -> Step<usize> {
    let mut cur = Cursor::new(buf, limits);
    cur.byte()?; // the '*' that brought us here
    if limits.max_depth == 0 {
        return Err(ParseError::NestingTooDeep { limit: 0 }.into());
    }
    let n = cur.length(LengthOf::Array)?.unwrap_or(0);
    for _ in 0..n {
        match cur.byte()? {
            b'$' => {}
            other => return Err(ParseError::ExpectedBulk(other).into()),
        }
        let len = cur.length(LengthOf::Bulk)?.ok_or(ParseError::NilArgument)?;
        let data = cur.data(len)?;
        if let Some(sink) = sink.as_mut() {
            sink.push(data);
        }
    }
    Ok(cur.pos())
}
