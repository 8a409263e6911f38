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
            // As in `parse`: validate and measure first, copy arguments only once all are here.
            let Some((_, end)) = finish(multibulk(buf, limits, false))? else {
                return Ok(None);
            };
            finish(multibulk(&buf[..end], limits, true))
        }
        Some(_) => inline::command(buf, limits),
    }
}

/// `*N\r\n` and N bulk strings. Without `build`, returns no arguments, just the end.
fn multibulk(buf: &[u8], limits: &Limits, build: bool) -> Step<(Args, usize)> {
    let mut cur = Cursor::new(buf, limits);
    cur.byte()?; // the '*' that brought us here
    if limits.max_depth == 0 {
        return Err(ParseError::NestingTooDeep { limit: 0 }.into());
    }
    let n = cur.length(LengthOf::Array)?.unwrap_or(0);
    // Each argument takes 6 bytes at least (`$0\r\n\r\n`), and when building they are all here.
    let mut args = Vec::with_capacity(if build { n.min(cur.remaining() / 6) } else { 0 });
    for _ in 0..n {
        match cur.byte()? {
            b'$' => {}
            other => return Err(ParseError::ExpectedBulk(other).into()),
        }
        let len = cur.length(LengthOf::Bulk)?.ok_or(ParseError::NilArgument)?;
        let data = cur.data(len)?;
        if build {
            args.push(data.to_vec());
        }
    }
    Ok((args, cur.pos()))
}
