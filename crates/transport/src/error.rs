//! The transport's errors: what `start` can fail with. (Why a frame could not be read or written is
//! `wire::FrameError`.)

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
