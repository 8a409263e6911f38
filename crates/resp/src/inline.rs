//! Inline commands: `SET key "a value"\r\n`, as typed into telnet.

use crate::{Args, Limits, ParseError};

/// One inline command line from the front of `buf`, split into arguments.
pub(crate) fn command(buf: &[u8], limits: &Limits) -> Result<Option<(Args, usize)>, ParseError> {
    let max = limits.max_inline_bytes;
    // A valid line's `\n` lies within `max + 2` bytes (`max`, then `\r\n`); look no further, so an
    // endless line fails as soon as it is too long rather than being re-scanned forever.
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        // A line still arriving is too long once it has more than `max` bytes, not counting a
        // final '\r' that may be the start of its "\r\n".
        let content = window.strip_suffix(b"\r").unwrap_or(window);
        return if content.len() > max {
            Err(ParseError::InlineTooLong { limit: max })
        } else {
            Ok(None)
        };
    };
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max {
        return Err(ParseError::InlineTooLong { limit: max });
    }
    let args = split_args(line)?;
    if args.len() > limits.max_array_len {
        let (len, limit) = (args.len() as u64, limits.max_array_len);
        return Err(ParseError::ArrayTooLong { len, limit });
    }
    Ok(Some((args, newline + 1)))
}

/// Splits a line the way Redis's `sdssplitargs` does: words separated by whitespace; inside
/// `"..."` the escapes `\xHH \n \r \t \b \a` and `\<any>` for that character; inside `'...'` only
/// `\'`. A closing quote must be followed by whitespace or the end of the line.
fn split_args(line: &[u8]) -> Result<Args, ParseError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|&b| is_space(b)) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        loop {
            match line.get(i) {
                None => break,
                Some(&b) if is_space(b) => break,
                Some(b'"') => i = double_quoted(line, i + 1, &mut arg)?,
                Some(b'\'') => i = single_quoted(line, i + 1, &mut arg)?,
                Some(&b) => {
                    arg.push(b);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// The rest of a `"..."` word starting at `i`, appended to `arg`; returns where the word goes on.
fn double_quoted(line: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, ParseError> {
    loop {
        match (line.get(i), line.get(i + 1)) {
            (None, _) => return Err(ParseError::UnbalancedQuotes),
            (Some(b'"'), next) => return closed(next, i + 1),
            (Some(b'\\'), Some(b'x')) if hex_byte(line, i + 2).is_some() => {
                arg.extend(hex_byte(line, i + 2));
                i += 4;
            }
            (Some(b'\\'), Some(&c)) => {
                arg.push(match c {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                i += 2;
            }
            (Some(&b), _) => {
                arg.push(b);
                i += 1;
            }
        }
    }
}

/// The rest of a `'...'` word starting at `i`, appended to `arg`; returns where the word goes on.
fn single_quoted(line: &[u8], mut i: usize, arg: &mut Vec<u8>) -> Result<usize, ParseError> {
    loop {
        match (line.get(i), line.get(i + 1)) {
            (None, _) => return Err(ParseError::UnbalancedQuotes),
            (Some(b'\\'), Some(b'\'')) => {
                arg.push(b'\'');
                i += 2;
            }
            (Some(b'\''), next) => return closed(next, i + 1),
            (Some(&b), _) => {
                arg.push(b);
                i += 1;
            }
        }
    }
}

/// After a closing quote: `"a"b` is as ambiguous as it looks, so Redis rejects it and so do we.
fn closed(next: Option<&u8>, after: usize) -> Result<usize, ParseError> {
    match next {
        Some(&b) if !is_space(b) => Err(ParseError::UnbalancedQuotes),
        _ => Ok(after),
    }
}

/// The byte written as two hex digits at `line[i..i + 2]`.
fn hex_byte(line: &[u8], i: usize) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    match line.get(i..i + 2)? {
        &[hi, lo] => Some((digit(hi)? * 16 + digit(lo)?) as u8),
        _ => None,
    }
}

fn is_space(b: u8) -> bool {
    // C's isspace(), which sdssplitargs uses.
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}
