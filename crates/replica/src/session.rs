//! One client connection's side of the RESP protocol, without the socket: the bytes a client sent
//! go in; out come, in the client's order, replies the connection can give at once (PING, INFO,
//! protocol errors, ...) and requests for the node (reads and writes). The client port runs one per
//! connection; the simulator's clients go through the same type.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use raft::{Role, Status};

use crate::request::{command_name, to_request, Request, WriteEncoder};

/// What one command of a client becomes, in its order among the connection's commands.
#[derive(Debug)]
pub enum Step {
    /// This reply, as it goes on the wire.
    Reply(Vec<u8>),
    /// The node answers this (its `Answer::to_resp` is the reply).
    Request(Request),
}

pub struct Session {
    /// Bytes received and not parsed yet (the start of an incomplete command).
    unparsed: Vec<u8>,
    args: resp::ArgBuf,
    /// How far the scan of an incomplete command got, so that its bytes are not scanned again.
    resume: resp::Resume,
    writes: WriteEncoder,
    limits: resp::Limits,
    /// After QUIT or a protocol error: nothing more is read, the connection closes once the
    /// replies so far are written.
    closing: bool,
}

impl Session {
    /// `untagged`: the node's counter for untagged writes (see `WriteEncoder`).
    pub fn new(limits: resp::Limits, untagged: Arc<AtomicU64>) -> Session {
        Session { unparsed: Vec::new(), args: resp::ArgBuf::new(), resume: resp::Resume::default(), writes: WriteEncoder::new(untagged), limits, closing: false }
    }

    /// Where the connection puts the bytes it reads (at the end), so that they are copied once.
    pub fn read_space(&mut self) -> &mut Vec<u8> {
        &mut self.unparsed
    }

    /// Whether the connection must close once the replies so far are written.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Bytes the parser has examined so far (for tests: about twice what arrived, however it was
    /// split).
    pub fn scanned_bytes(&self) -> u64 {
        self.resume.scanned()
    }

    /// Every whole command received so far, as steps in order. `status` is the node's, for INFO.
    pub fn parse(&mut self, status: &Status) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut consumed = 0;
        while !self.closing {
            match resp::parse_command_resumable(&self.unparsed[consumed..], &self.limits, &mut self.args, &mut self.resume) {
                Ok(Some(used)) => {
                    consumed += used;
                    if !self.args.is_empty() {
                        steps.push(self.command(status));
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let mut out = Vec::new();
                    resp::encode_error(&format!("ERR Protocol error: {error}"), &mut out);
                    steps.push(Step::Reply(out));
                    self.closing = true;
                }
            }
        }
        self.unparsed.drain(..consumed);
        steps
    }

    fn command(&mut self, status: &Status) -> Step {
        let args = &self.args;
        let mut out = Vec::new();
        // The limit on one argument bounds what the parser buffers; this one bounds what a command
        // proposes, so that every log entry fits in a peer frame with room to spare.
        let bytes: usize = args.iter().map(<[u8]>::len).sum();
        if bytes > self.limits.max_bulk_bytes {
            let limit = self.limits.max_bulk_bytes;
            resp::encode_error(&format!("ERR command too large: its arguments take {bytes} bytes, the limit is {limit} (--max-value-bytes)"), &mut out);
            return Step::Reply(out);
        }
        match command_name(&args[0]) {
            "QUIT" => {
                self.closing = true;
                resp::encode_simple("OK", &mut out);
            }
            "PING" => match args.len() {
                1 => resp::encode_simple("PONG", &mut out),
                2 => resp::encode_bulk(&args[1], &mut out),
                _ => resp::encode_error("ERR wrong number of arguments for 'ping' command", &mut out),
            },
            "INFO" => resp::encode_bulk(info(status).as_bytes(), &mut out),
            // redis-cli, redis-benchmark and client libraries probe these at start; a neutral answer
            // keeps them going (there is no configuration or command table to report).
            "COMMAND" | "CONFIG" => out.extend_from_slice(b"*0\r\n"),
            "CLIENT" => resp::encode_simple("OK", &mut out),
            "SELECT" if args.get(1) == Some(&b"0"[..]) => resp::encode_simple("OK", &mut out),
            _ => match to_request(args, &mut self.writes) {
                Ok(request) => return Step::Request(request),
                Err(error) => resp::encode_error(&error.message(), &mut out),
            },
        }
        Step::Reply(out)
    }
}

/// INFO's text: the node's replication state.
fn info(status: &Status) -> String {
    let role = match status.role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::PreCandidate | Role::Candidate => "candidate",
    };
    format!(
        "# Replication\r\nrole:{role}\r\nnode_id:{}\r\nleader_id:{}\r\nterm:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_log_index:{}\r\nsnapshot_index:{}\r\n",
        status.id.0,
        status.leader.map_or(0, |leader| leader.0),
        status.term.0,
        status.commit.0,
        status.applied.0,
        status.last_index.0,
        status.snapshot_index.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::NodeId;

    fn session() -> Session {
        Session::new(resp::Limits::default(), Arc::new(AtomicU64::new(0)))
    }

    fn status() -> Status {
        let config = raft::Config::new(NodeId(1), vec![NodeId(1)]);
        raft::Node::new(config, raft::Restored::default()).expect("a valid node").status()
    }

    fn feed(session: &mut Session, bytes: &[u8]) -> Vec<Step> {
        session.read_space().extend_from_slice(bytes);
        session.parse(&status())
    }

    fn reply(step: &Step) -> &[u8] {
        match step {
            Step::Reply(bytes) => bytes,
            Step::Request(request) => panic!("expected a reply, got {request:?}"),
        }
    }

    #[test]
    fn commands_split_anywhere_come_out_whole_and_in_order() {
        let input = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n";
        for split in 0..=input.len() {
            let mut s = session();
            let mut steps = feed(&mut s, &input[..split]);
            steps.extend(feed(&mut s, &input[split..]));
            assert_eq!(steps.len(), 3, "split at {split}");
            assert_eq!(reply(&steps[0]), b"+PONG\r\n");
            assert!(matches!(&steps[1], Step::Request(Request::Get { key }) if key == b"k"));
            assert!(reply(&steps[2]).starts_with(b"-ERR unknown command"), "{:?}", String::from_utf8_lossy(reply(&steps[2])));
            assert!(!s.closing());
        }
    }

    #[test]
    fn a_protocol_error_answers_then_closes_and_ignores_the_rest() {
        let mut s = session();
        let steps = feed(&mut s, b"*1\r\n$4\r\nPING\r\n*x\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(steps.len(), 2);
        assert!(reply(&steps[1]).starts_with(b"-ERR Protocol error"));
        assert!(s.closing());
        assert!(feed(&mut s, b"*1\r\n$4\r\nPING\r\n").is_empty());
    }

    /// A large command arriving in small reads is not scanned again from its start on each one.
    #[test]
    fn a_trickled_command_is_scanned_about_once() {
        let keys: Vec<String> = (0..20_000).map(|k| format!("key{k}")).collect();
        let mut words = vec!["DEL"];
        words.extend(keys.iter().map(String::as_str));
        let mut input = Vec::new();
        resp::encode_array_of_bulks(&words, &mut input);
        let mut s = session();
        let mut steps = Vec::new();
        for piece in input.chunks(5) {
            steps.extend(feed(&mut s, piece));
        }
        assert!(matches!(&steps[..], [Step::Request(Request::Write(_))]), "{steps:?}");
        assert!(s.scanned_bytes() <= 3 * input.len() as u64, "{} scanned for {} bytes", s.scanned_bytes(), input.len());
    }

    #[test]
    fn quit_answers_ok_and_closes() {
        let mut s = session();
        let steps = feed(&mut s, b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(steps.len(), 1);
        assert_eq!(reply(&steps[0]), b"+OK\r\n");
        assert!(s.closing());
    }

    #[test]
    fn commands_over_the_value_limit_are_refused_before_they_become_requests() {
        let limits = resp::Limits { max_bulk_bytes: 100, ..resp::Limits::default() };
        let mut s = Session::new(limits, Arc::new(AtomicU64::new(0)));
        let command = |key: usize, value: usize| {
            let mut wire = Vec::new();
            resp::encode_array_of_bulks(&["SET", &"k".repeat(key), &"v".repeat(value)], &mut wire);
            wire
        };
        let steps = feed(&mut s, &command(1, 90));
        assert!(matches!(&steps[..], [Step::Request(Request::Write(_))]), "{steps:?}");
        // Key and value within the limit one by one, not together.
        let steps = feed(&mut s, &command(50, 60));
        let text = String::from_utf8_lossy(reply(&steps[0])).into_owned();
        assert!(text.starts_with("-ERR command too large: its arguments take 113 bytes, the limit is 100"), "{text}");
        assert!(!s.closing());
        // One argument over it: the parser refuses it as soon as its length is read.
        let steps = feed(&mut s, &command(1, 101)[..30]);
        assert!(reply(&steps[0]).starts_with(b"-ERR Protocol error: bulk too large (101 > 100)"));
        assert!(s.closing());
    }

    #[test]
    fn info_names_the_role_and_the_indexes() {
        let mut s = session();
        let steps = feed(&mut s, b"*1\r\n$4\r\nINFO\r\n");
        let text = String::from_utf8_lossy(reply(&steps[0])).into_owned();
        assert!(text.contains("# Replication\r\nrole:follower\r\nnode_id:1\r\n"), "{text}");
        assert!(text.contains("applied_index:0\r\n"), "{text}");
    }
}
