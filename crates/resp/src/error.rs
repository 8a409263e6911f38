//! Why bytes can never form a valid frame.

use std::ascii::escape_default;

/// The bytes at the front of the buffer can never form a valid frame, whatever follows them.
///
/// The messages are short and lowercase so that a server can send
/// `-ERR Protocol error: {error}` before closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown type byte '{}'", escape_default(*.0))]
    UnknownType(u8),
    #[error("expected '$', got '{}'", escape_default(*.0))]
    ExpectedBulk(u8),
    #[error("expected CRLF")]
    ExpectedCrlf,
    #[error("line too long (over {limit} bytes)")]
    LineTooLong { limit: usize },
    #[error("invalid integer")]
    InvalidInteger,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("invalid multibulk length")]
    InvalidArrayLength,
    #[error("bulk too large ({len} > {limit})")]
    BulkTooLarge { len: u64, limit: usize },
    #[error("array too long ({len} > {limit})")]
    ArrayTooLong { len: u64, limit: usize },
    #[error("nesting too deep (over {limit} levels)")]
    NestingTooDeep { limit: usize },
    #[error("nil bulk string in a command")]
    NilArgument,
    #[error("inline request too long (over {limit} bytes)")]
    InlineTooLong { limit: usize },
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
}
