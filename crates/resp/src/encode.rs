//! Writing values in RESP2, for replies (server) and requests (client).

use crate::Value;

/// Appends `value`'s wire form to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    // An explicit stack of the arrays being written, so deep values need no deep call stack.
    let mut open = vec![std::slice::from_ref(value).iter()];
    while let Some(items) = open.last_mut() {
        let Some(item) = items.next() else {
            open.pop();
            continue;
        };
        match item {
            Value::Simple(text) => encode_simple(text, out),
            Value::Error(text) => encode_error(text, out),
            Value::Integer(n) => encode_integer(*n, out),
            Value::Bulk(Some(data)) => encode_bulk(data, out),
            Value::Bulk(None) => encode_nil(out),
            Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(Some(items)) => {
                header(b'*', items.len(), out);
                open.push(items.iter());
            }
        }
    }
}

/// `+text\r\n`. RESP has no way to put CR or LF in a simple string; they are written as spaces,
/// as Redis does in error messages, rather than ending the line early and corrupting the stream.
pub fn encode_simple(text: &str, out: &mut Vec<u8>) {
    line(b'+', text, out);
}

/// `-message\r\n`, where the message starts with a code such as `ERR`. CR and LF become spaces.
pub fn encode_error(message: &str, out: &mut Vec<u8>) {
    line(b'-', message, out);
}

/// `:n\r\n`
pub fn encode_integer(n: i64, out: &mut Vec<u8>) {
    out.push(b':');
    if n < 0 {
        out.push(b'-');
    }
    decimal(n.unsigned_abs(), out);
    out.extend_from_slice(b"\r\n");
}

/// `$len\r\ndata\r\n`
pub fn encode_bulk(data: &[u8], out: &mut Vec<u8>) {
    header(b'$', data.len(), out);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `$-1\r\n`, the nil reply.
pub fn encode_nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `_\r\n`, the nil reply of RESP3 (a connection that said `HELLO 3`).
pub fn encode_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"_\r\n");
}

/// `*n\r\n`: an array of the `n` replies that follow.
pub fn encode_array_len(n: usize, out: &mut Vec<u8>) {
    header(b'*', n, out);
}

/// `%n\r\n`: a RESP3 map of the `n` key-value pairs that follow.
pub fn encode_map_len(n: usize, out: &mut Vec<u8>) {
    header(b'%', n, out);
}

/// `~n\r\n`: a RESP3 set of the `n` replies that follow.
pub fn encode_set_len(n: usize, out: &mut Vec<u8>) {
    header(b'~', n, out);
}

/// `=len\r\ntxt:text\r\n`: a RESP3 verbatim string of plain text (how Redis answers INFO and
/// CLIENT INFO to a connection that said `HELLO 3`).
pub fn encode_verbatim_text(text: &[u8], out: &mut Vec<u8>) {
    header(b'=', text.len() + 4, out);
    out.extend_from_slice(b"txt:");
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// An array of bulk strings: how a client sends a command, e.g. `&[&b"GET"[..], key]`.
pub fn encode_array_of_bulks<T: AsRef<[u8]>>(items: &[T], out: &mut Vec<u8>) {
    header(b'*', items.len(), out);
    for item in items {
        encode_bulk(item.as_ref(), out);
    }
}

fn line(kind: u8, text: &str, out: &mut Vec<u8>) {
    out.push(kind);
    let bytes = text.as_bytes();
    if bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            bytes
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(b"\r\n");
}

fn header(kind: u8, len: usize, out: &mut Vec<u8>) {
    out.push(kind);
    decimal(len as u64, out);
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal, without going through a `String`.
fn decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}
