//! [`parse`]: any RESP2 value.

use crate::cursor::{finish, Cursor, LengthOf, Step};
use crate::{Limits, ParseError, Value};

/// Parses one complete frame from the front of `buf`.
///
/// `Ok(Some((value, consumed)))` if a whole frame is there (drop `consumed` bytes and call again for
/// a pipelined next one); `Ok(None)` if more bytes are needed; `Err` if the bytes can never form a
/// valid frame, in which case the caller should reply `-ERR Protocol error` and close.
///
/// Allocates nothing until the whole frame is in `buf`. Never panics.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, ParseError> {
    // Scan first, so that a partial frame, however large its headers claim it is, costs no memory
    // and no copying each time it is re-scanned; then build from exactly the frame's bytes.
    let Some((_, end)) = finish(frame(buf, limits, Pass::Scan))? else {
        return Ok(None);
    };
    finish(frame(&buf[..end], limits, Pass::Build))
}

/// Whether a pass builds the value or only validates the frame and finds its end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Returns placeholders instead of values and allocates nothing but the stack of open arrays.
    Scan,
    Build,
}

fn frame(buf: &[u8], limits: &Limits, pass: Pass) -> Step<(Value, usize)> {
    let mut cur = Cursor::new(buf, limits);
    let value = value(&mut cur, pass)?;
    Ok((value, cur.pos()))
}

/// One value. Arrays are kept on an explicit stack rather than by recursion, so the nesting an
/// input can ask for costs heap bounded by `max_depth`, never the call stack.
fn value(cur: &mut Cursor, pass: Pass) -> Step<Value> {
    let build = pass == Pass::Build;
    // The arrays being filled, innermost last: the items so far and how many are still to come.
    let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
    loop {
        let mut done = match cur.byte()? {
            b'+' => Value::Simple(text(cur, build)?),
            b'-' => Value::Error(text(cur, build)?),
            b':' => Value::Integer(cur.integer(ParseError::InvalidInteger)?),
            b'$' => Value::Bulk(match cur.length(LengthOf::Bulk)? {
                None => None,
                Some(n) => {
                    let data = cur.data(n)?;
                    Some(if build { data.to_vec() } else { Vec::new() })
                }
            }),
            b'*' => {
                if open.len() >= cur.limits.max_depth {
                    let limit = cur.limits.max_depth;
                    return Err(ParseError::NestingTooDeep { limit }.into());
                }
                match cur.length(LengthOf::Array)? {
                    None => Value::Array(None),
                    Some(0) => Value::Array(Some(Vec::new())),
                    Some(n) => {
                        // Only the build pass reserves, and then the frame is complete, so all
                        // `n` items (3 bytes at least each) are in the buffer: the reservation
                        // is bounded by bytes received, not by the header's claim.
                        let reserve = if build { n.min(cur.remaining() / 3) } else { 0 };
                        open.push((Vec::with_capacity(reserve), n));
                        continue;
                    }
                }
            }
            other => return Err(ParseError::UnknownType(other).into()),
        };
        // Hand the finished value to the arrays it completes, innermost first.
        loop {
            let Some((items, left)) = open.last_mut() else {
                return Ok(done);
            };
            if build {
                items.push(done);
            }
            *left -= 1;
            if *left > 0 {
                break;
            }
            // The innermost array is full: it is itself a finished value. (`open` is not empty.)
            let items = open.pop().map(|(items, _)| items).unwrap_or_default();
            done = Value::Array(Some(items));
        }
    }
}

/// The text of a simple string or error line.
fn text(cur: &mut Cursor, build: bool) -> Step<String> {
    let limit = cur.limits.max_inline_bytes;
    let line = cur.line(limit, ParseError::LineTooLong { limit })?;
    Ok(if build {
        String::from_utf8_lossy(line).into_owned()
    } else {
        String::new()
    })
}
