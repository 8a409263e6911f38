//! # resp: RESP2 framing for raftkv's client port
//!
//! Pure: no I/O. A server appends what it reads from a socket to a buffer and calls
//! [`parse_command`] (a client reading replies calls [`parse`]). Each call looks at the front of
//! the buffer and answers with a complete frame and the number of bytes it used, `Ok(None)` when
//! more bytes are needed, or an error when no bytes still to come could make the frame valid; the
//! caller then replies `-ERR Protocol error: {error}` and closes the connection.
//!
//! The parser keeps no state between calls, so a frame split at any byte boundary needs no special
//! care: a partial frame is scanned again from its start when more bytes arrive (linear in the
//! buffered bytes). Each call first *scans* the frame, validating it and finding its end without
//! building anything, and only then *builds* the value from the now complete bytes. Hence a header
//! announcing a huge length allocates nothing until the data is actually in the buffer, and
//! [`Limits`] reject lengths no legitimate client sends as soon as the header is read. Nested arrays
//! use an explicit stack instead of recursion, so no input can overflow the call stack.
//!
//! ```
//! use resp::{encode_bulk, parse_command, Limits};
//!
//! let limits = Limits::default();
//! let mut buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPI".to_vec();
//! let mut replies = Vec::new();
//! while let Some((args, used)) = parse_command(&buf, &limits).expect("valid frames") {
//!     buf.drain(..used);
//!     if args.is_empty() { continue } // a blank line or `*0`: nothing to answer
//!     encode_bulk(&args[0], &mut replies);
//! }
//! assert_eq!(replies, b"$3\r\nGET\r\n$4\r\nPING\r\n");
//! assert_eq!(buf, b"*1\r\n$4\r\nPI"); // the rest of a frame still on its way
//! ```

mod command;
mod cursor;
mod encode;
mod error;
mod inline;
mod parse;
mod value;

pub use command::{parse_command, parse_command_into, parse_command_resumable, ArgBuf, Args, Resume};
pub use encode::{
    encode, encode_array_len, encode_array_of_bulks, encode_bulk, encode_error, encode_integer, encode_map_len, encode_nil, encode_null,
    encode_set_len, encode_simple, encode_verbatim_text,
};
pub use error::ParseError;
pub use parse::parse;
pub use value::Value;

/// Bounds on what a peer may make the parser accept, checked as soon as the bytes that exceed them
/// are read (before any data they announce arrives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, in bytes. Redis's `proto-max-bulk-len` defaults to 512 MiB too.
    pub max_bulk_bytes: usize,
    /// Most elements in one array (and most arguments in one command).
    pub max_array_len: usize,
    /// Longest line without its line ending: an inline command, a simple string or an error.
    pub max_inline_bytes: usize,
    /// Deepest nesting of arrays: 1 allows arrays of scalars only; commands need 1. The parser
    /// itself does not recurse, but dropping, comparing or printing a [`Value`] does, so a value
    /// nested many thousands deep would overflow the stack: keep this small.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_bytes: 512 << 20,
            max_array_len: 1 << 20,
            max_inline_bytes: 64 << 10,
            max_depth: 8,
        }
    }
}
