//! The RESP2 value tree.

/// One RESP2 value, as read by [`parse`](crate::parse) or written by [`encode`](crate::encode).
///
/// `Simple` and `Error` hold text: RESP forbids CR and LF in them, so [`encode`](crate::encode)
/// writes those as spaces; [`parse`](crate::parse) replaces invalid UTF-8 with U+FFFD rather than
/// rejecting a reply over an odd byte in a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `+OK\r\n`
    Simple(String),
    /// `-ERR message\r\n`; the text includes the error code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:42\r\n`
    Integer(i64),
    /// `$3\r\nfoo\r\n`, binary-safe; `None` is the nil reply `$-1\r\n`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`; `None` is the nil array `*-1\r\n`.
    Array(Option<Vec<Value>>),
}

impl Value {
    /// `+OK`, the reply to SET.
    pub fn ok() -> Value {
        Value::Simple("OK".to_owned())
    }

    /// The nil bulk string, the reply to GET of a missing key.
    pub fn nil() -> Value {
        Value::Bulk(None)
    }

    /// A bulk string holding `data`.
    pub fn bulk(data: impl Into<Vec<u8>>) -> Value {
        Value::Bulk(Some(data.into()))
    }

    /// An error reply; `message` should start with a code such as `ERR `.
    pub fn error(message: impl Into<String>) -> Value {
        Value::Error(message.into())
    }

    /// The value's wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        crate::encode(self, &mut out);
        out
    }
}
