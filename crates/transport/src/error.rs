//! The transport's errors: what `start` can fail with, and why a frame could not be read or written.

use raft::codec::DecodeError;

/// Why `Transport::start` failed. Once started, the transport never fails as a whole: broken
/// connections are logged, counted and retried.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen for peers on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid transport config: {0}")]
    Config(String),
}

/// Why bytes are not a valid frame. Any of these closes the connection they arrived on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Checked on the length prefix alone, before a byte of the body is buffered, so a peer cannot
    /// make us allocate more than the limit.
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge { length: usize, max: usize },
    #[error("frame length {0} is too short for the version and kind bytes")]
    TooShort(usize),
    #[error("unsupported frame version {0}")]
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
