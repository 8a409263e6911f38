//! What a client asks a node, and what it gets back: the mapping between RESP commands and the
//! store's operations, and the compact encoding used when a follower forwards a request to the
//! leader over the peer connection.

use kv::{Command, Op, Reply};
use raft::codec::{put_varint, Reader};

/// A request as the Raft loop handles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A write, through the log. `client_id` 0 is untagged (a plain Redis client): applied every
    /// time it commits. Tagged writes (the project's own client) are applied exactly once.
    Write(Command),
    /// A linearizable read (ReadIndex): the value of one key.
    Get { key: Vec<u8> },
    /// A linearizable read: how many of the keys exist.
    Exists { keys: Vec<Vec<u8>> },
}

/// The outcome of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Reply(Reply),
    Count(u64),
    /// Nothing is known about a write's outcome; the message says why.
    Error(String),
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Write(command) => {
                out.push(0);
                out.extend_from_slice(&command.encode());
            }
            Request::Get { key } => {
                out.push(1);
                put_varint(&mut out, key.len() as u64);
                out.extend_from_slice(key);
            }
            Request::Exists { keys } => {
                out.push(2);
                put_varint(&mut out, keys.len() as u64);
                for key in keys {
                    put_varint(&mut out, key.len() as u64);
                    out.extend_from_slice(key);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Request> {
        let (&tag, rest) = bytes.split_first()?;
        match tag {
            0 => Command::decode(rest).ok().map(Request::Write),
            1 => {
                let mut reader = Reader::new(rest);
                let key = reader.bytes().ok()?.to_vec();
                reader.finish().ok()?;
                Some(Request::Get { key })
            }
            2 => {
                let mut reader = Reader::new(rest);
                let count = reader.varint().ok()?;
                let mut keys = Vec::new();
                for _ in 0..count {
                    keys.push(reader.bytes().ok()?.to_vec());
                }
                reader.finish().ok()?;
                Some(Request::Exists { keys })
            }
            _ => None,
        }
    }
}

impl Answer {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Answer::Reply(reply) => {
                out.push(0);
                reply.encode(&mut out);
            }
            Answer::Count(count) => {
                out.push(1);
                put_varint(&mut out, *count);
            }
            Answer::Error(message) => {
                out.push(2);
                out.extend_from_slice(message.as_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        let (&tag, rest) = bytes.split_first()?;
        let mut reader = Reader::new(rest);
        let answer = match tag {
            0 => Answer::Reply(Reply::decode(&mut reader).ok()?),
            1 => Answer::Count(reader.varint().ok()?),
            2 => return Some(Answer::Error(String::from_utf8_lossy(rest).into_owned())),
            _ => return None,
        };
        reader.finish().ok()?;
        Some(answer)
    }

    /// The RESP reply a Redis client expects for this answer.
    pub fn to_resp(&self, out: &mut Vec<u8>) {
        match self {
            Answer::Reply(Reply::Value(Some(value))) => resp::encode_bulk(value, out),
            Answer::Reply(Reply::Value(None)) => resp::encode_nil(out),
            Answer::Reply(Reply::Done) => resp::encode_simple("OK", out),
            Answer::Reply(Reply::Length(length)) | Answer::Reply(Reply::Removed(length)) | Answer::Count(length) => {
                resp::encode_integer(i64::try_from(*length).unwrap_or(i64::MAX), out)
            }
            Answer::Error(message) => resp::encode_error(&format!("ERR {message}"), out),
        }
    }
}

/// The prefix by which the project's own client tags a write for exactly-once application:
/// `TAGGED <client-id> <seq> SET key value` (also APPEND and DEL).
pub const TAG_COMMAND: &[u8] = b"TAGGED";

/// Why a RESP command cannot become a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    WrongArity(String),
    Unknown(String),
    BadTag,
}

impl CommandError {
    pub fn message(&self) -> String {
        match self {
            CommandError::WrongArity(name) => format!("ERR wrong number of arguments for '{name}' command"),
            CommandError::Unknown(name) => format!("ERR unknown command '{name}'"),
            CommandError::BadTag => "ERR TAGGED needs a client id >= 1 and a sequence number, then SET, APPEND or DEL".into(),
        }
    }
}

/// Turns a data command (GET, SET, APPEND, DEL, EXISTS, optionally TAGGED) into a request.
/// PING and INFO are answered by the connection itself and never reach here.
pub fn to_request(args: &[Vec<u8>]) -> Result<Request, CommandError> {
    let name = args.first().map(|name| name.to_ascii_uppercase()).unwrap_or_default();
    if name == TAG_COMMAND {
        let number = |arg: Option<&Vec<u8>>| arg.and_then(|arg| std::str::from_utf8(arg).ok()?.parse::<u64>().ok());
        let (Some(client_id), Some(seq)) = (number(args.get(1)), number(args.get(2))) else {
            return Err(CommandError::BadTag);
        };
        if client_id == 0 || args.len() < 4 {
            return Err(CommandError::BadTag);
        }
        return match to_request(&args[3..])? {
            Request::Write(command) => Ok(Request::Write(Command { client_id, seq, ..command })),
            _ => Err(CommandError::BadTag),
        };
    }
    let shown = String::from_utf8_lossy(&name).to_lowercase();
    let arity = |ok: bool| if ok { Ok(()) } else { Err(CommandError::WrongArity(shown.clone())) };
    let write = |op| Request::Write(Command { client_id: 0, seq: 0, op });
    match name.as_slice() {
        b"GET" => {
            arity(args.len() == 2)?;
            Ok(Request::Get { key: args[1].clone() })
        }
        b"SET" => {
            arity(args.len() == 3)?;
            Ok(write(Op::Put { key: args[1].clone(), value: args[2].clone() }))
        }
        b"APPEND" => {
            arity(args.len() == 3)?;
            Ok(write(Op::Append { key: args[1].clone(), value: args[2].clone() }))
        }
        b"DEL" => {
            arity(args.len() >= 2)?;
            Ok(write(Op::Delete { keys: args[1..].to_vec() }))
        }
        b"EXISTS" => {
            arity(args.len() >= 2)?;
            Ok(Request::Exists { keys: args[1..].to_vec() })
        }
        _ => Err(CommandError::Unknown(String::from_utf8_lossy(args.first().map_or(&[][..], |name| name)).into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|word| word.as_bytes().to_vec()).collect()
    }

    #[test]
    fn commands_map_to_requests_and_round_trip() {
        let cases = [
            args(&["get", "k"]),
            args(&["SET", "k", "v"]),
            args(&["append", "k", "v"]),
            args(&["DEL", "a", "b"]),
            args(&["exists", "a", "b", "a"]),
            args(&["TAGGED", "7", "3", "SET", "k", "v"]),
        ];
        for case in cases {
            let request = to_request(&case).expect("valid");
            assert_eq!(Request::decode(&request.encode()), Some(request));
        }
        let tagged = to_request(&args(&["TAGGED", "7", "3", "APPEND", "k", "v"])).expect("valid");
        assert!(matches!(tagged, Request::Write(Command { client_id: 7, seq: 3, .. })));
    }

    #[test]
    fn bad_commands_are_named_errors() {
        assert_eq!(to_request(&args(&["GET"])), Err(CommandError::WrongArity("get".into())));
        assert_eq!(to_request(&args(&["SET", "k"])), Err(CommandError::WrongArity("set".into())));
        assert_eq!(to_request(&args(&["FLUSHALL"])), Err(CommandError::Unknown("FLUSHALL".into())));
        assert_eq!(to_request(&args(&["TAGGED", "0", "1", "SET", "k", "v"])), Err(CommandError::BadTag));
        assert_eq!(to_request(&args(&["TAGGED", "1", "1", "GET", "k"])), Err(CommandError::BadTag));
        assert_eq!(Request::decode(&[9, 9]), None);
        assert_eq!(Request::decode(&[]), None);
    }

    #[test]
    fn answers_round_trip_and_render_as_redis_replies() {
        for answer in [Answer::Reply(Reply::Value(None)), Answer::Reply(Reply::Length(5)), Answer::Count(2), Answer::Error("no leader".into())] {
            assert_eq!(Answer::decode(&answer.encode()), Some(answer));
        }
        let mut out = Vec::new();
        Answer::Reply(Reply::Done).to_resp(&mut out);
        Answer::Reply(Reply::Value(Some(b"v".to_vec()))).to_resp(&mut out);
        Answer::Error("timeout".into()).to_resp(&mut out);
        assert_eq!(out, b"+OK\r\n$1\r\nv\r\n-ERR timeout\r\n");
    }
}
