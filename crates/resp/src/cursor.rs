//! Reading the pieces every frame is made of (type bytes, lines, integers, lengths, bulk data)
//! from a buffer that may end anywhere.

use crate::{Limits, ParseError};

/// Why a parsing step could not go on.
pub(crate) enum Stop {
    /// The buffer ends before the frame does; more bytes may complete it.
    Incomplete,
    /// No bytes to come can make the frame valid.
    Invalid(ParseError),
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Self {
        Stop::Invalid(e)
    }
}

pub(crate) type Step<T> = Result<T, Stop>;

/// The public form of a step's outcome.
pub(crate) fn finish<T>(step: Step<T>) -> Result<Option<T>, ParseError> {
    match step {
        Ok(v) => Ok(Some(v)),
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Invalid(e)) => Err(e),
    }
}

/// The longest valid integer line, `-9223372036854775808`. A longer one is an error at once
/// instead of after `max_inline_bytes` of digits.
const MAX_INTEGER_LINE: usize = 20;

/// Which header a length belongs to: they differ in limit and error.
#[derive(Clone, Copy)]
pub(crate) enum LengthOf {
    Bulk,
    Array,
}

/// A read position in a buffer. Invariant: `pos <= buf.len()`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    pub limits: &'a Limits,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], limits: &'a Limits) -> Self {
        Cursor::at(buf, 0, limits)
    }

    /// A cursor that starts at `pos` (at most `buf.len()`).
    pub fn at(buf: &'a [u8], pos: usize, limits: &'a Limits) -> Self {
        Cursor { buf, pos: pos.min(buf.len()), limits }
    }

    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn byte(&mut self) -> Step<u8> {
        let b = *self.buf.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        Ok(b)
    }

    /// A line ended by CRLF, of at most `max` bytes without it; `too_long` if none ends in time.
    /// A bare CR or LF is an error: RESP lines cannot contain either.
    pub fn line(&mut self, max: usize, too_long: ParseError) -> Step<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        // Look no further than where a valid line must have ended, so that an endless line
        // fails after `max` bytes rather than waiting (and re-scanning) forever.
        let window = &rest[..rest.len().min(max.saturating_add(1))];
        match window.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(i) if window[i] == b'\n' => Err(ParseError::ExpectedCrlf.into()),
            Some(i) => match rest.get(i + 1) {
                Some(b'\n') => {
                    self.pos += i + 2;
                    Ok(&rest[..i])
                }
                Some(_) => Err(ParseError::ExpectedCrlf.into()),
                None => Err(Stop::Incomplete),
            },
            None if window.len() > max => Err(too_long.into()),
            None => Err(Stop::Incomplete),
        }
    }

    /// An integer line, as in `:42\r\n` after the type byte; `invalid` if it is not one.
    pub fn integer(&mut self, invalid: ParseError) -> Step<i64> {
        let line = self.line(MAX_INTEGER_LINE, invalid.clone())?;
        parse_i64(line).ok_or(Stop::Invalid(invalid))
    }

    /// The length in a `$` or `*` header: `None` for -1 (nil); an error if it is any other
    /// negative number or over the limit. Nothing is allocated for it here.
    pub fn length(&mut self, of: LengthOf) -> Step<Option<usize>> {
        let (invalid, limit) = match of {
            LengthOf::Bulk => (ParseError::InvalidBulkLength, self.limits.max_bulk_bytes),
            LengthOf::Array => (ParseError::InvalidArrayLength, self.limits.max_array_len),
        };
        let n = self.integer(invalid.clone())?;
        if n == -1 {
            return Ok(None);
        }
        let n = u64::try_from(n).map_err(|_| invalid)?;
        match usize::try_from(n) {
            Ok(len) if len <= limit => Ok(Some(len)),
            _ => Err(match of {
                LengthOf::Bulk => ParseError::BulkTooLarge { len: n, limit },
                LengthOf::Array => ParseError::ArrayTooLong { len: n, limit },
            }
            .into()),
        }
    }

    /// `n` bytes of bulk data and the CRLF after them, borrowed: copying is the caller's choice.
    pub fn data(&mut self, n: usize) -> Step<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let data = rest.get(..n).ok_or(Stop::Incomplete)?;
        // `n <= rest.len()` here, so `n + 1` cannot overflow.
        match (rest.get(n), rest.get(n + 1)) {
            (Some(b'\r'), Some(b'\n')) => {
                self.pos += n + 2;
                Ok(data)
            }
            (None, _) | (Some(b'\r'), None) => Err(Stop::Incomplete),
            _ => Err(ParseError::ExpectedCrlf.into()),
        }
    }
}

/// A decimal `i64`: an optional `-` and at least one digit, nothing else (no `+`, no spaces).
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate the magnitude unsigned so that i64::MIN, whose magnitude no i64 holds, parses.
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_i64;

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"--1",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
