//! One client connection's pipeline, without the socket: the commands its session parsed go to
//! the node a round at a time, and the replies come out in the order the commands came, whatever
//! order the node's answers and the connection's own replies are ready in.
//!
//! ```text
//!  push(steps) ──> waiting ──next_round()──> requests for the node (at most `window`)
//!                                 │
//!  answered(answer) ──> owed, in order ──> output() ──> written()
//! ```
//!
//! A round goes only once every reply of the one before is written: a client that sends a long
//! pipeline and does not read the replies stops its connection (the writes block) with at most
//! one round of replies built. The client port runs one per connection; so do the simulator's
//! clients, which check what it writes.

use std::collections::VecDeque;

use crate::request::{Answer, Request};
use crate::session::{Session, Step};

/// Requests of one connection with the node at once (the client port's round).
pub const WINDOW: usize = 64;
/// Replies are due for writing once this many bytes of them are ready, before the round ends.
pub const FLUSH_BYTES: usize = 256 * 1024;

pub struct Pipeline {
    window: usize,
    /// Commands parsed and not yet in a round.
    waiting: VecDeque<Step>,
    /// The round's replies not yet ready, in order; the first is always the node's to give.
    owed: VecDeque<Owed>,
    /// Replies ready, in order, not yet written.
    out: Vec<u8>,
}

enum Owed {
    /// The node's answer, written in RESP3 if true.
    Answer(bool),
    /// The node's answer to a WATCH, which the session keeps (and gives the reply for).
    Watch,
    /// A reply the connection gave itself, behind one the node owes.
    Now(Vec<u8>),
}

impl Pipeline {
    /// `window`: the most requests of a round (`WINDOW` on the client port).
    pub fn new(window: usize) -> Pipeline {
        Pipeline { window: window.max(1), waiting: VecDeque::new(), owed: VecDeque::new(), out: Vec::new() }
    }

    /// Commands the session parsed, in the client's order.
    pub fn push(&mut self, steps: impl IntoIterator<Item = Step>) {
        self.waiting.extend(steps);
    }

    /// The next round's requests for the node, in order: none while a reply of the last round is
    /// owed or not yet written; else up to `window` of them, with the replies the connection gives
    /// itself among them put in their places.
    pub fn next_round(&mut self) -> Vec<Request> {
        let mut requests = Vec::new();
        if !self.owed.is_empty() || !self.out.is_empty() {
            return requests;
        }
        while requests.len() < self.window {
            match self.waiting.pop_front() {
                None => break,
                Some(Step::Reply(bytes)) if self.owed.is_empty() => self.out.extend_from_slice(&bytes),
                Some(Step::Reply(bytes)) => self.owed.push_back(Owed::Now(bytes)),
                Some(Step::Request { request, resp3 }) => {
                    self.owed.push_back(Owed::Answer(resp3));
                    requests.push(request);
                }
                Some(Step::Watch { request, .. }) => {
                    self.owed.push_back(Owed::Watch);
                    requests.push(request);
                }
            }
        }
        requests
    }

    /// The node's answer to the earliest request of the round it has not answered yet (the node
    /// answers a connection's requests in order). False if no answer was owed.
    pub fn answered(&mut self, answer: Answer, session: &mut Session) -> bool {
        match self.owed.pop_front() {
            Some(Owed::Answer(resp3)) => answer.to_resp(&mut self.out, resp3),
            Some(Owed::Watch) => session.watch_answered(answer, &mut self.out),
            Some(Owed::Now(_)) => unreachable!("the connection's own replies never lead what is owed"),
            None => return false,
        }
        while let Some(Owed::Now(_)) = self.owed.front() {
            if let Some(Owed::Now(bytes)) = self.owed.pop_front() {
                self.out.extend_from_slice(&bytes);
            }
        }
        true
    }

    /// Whether the node owes an answer of this round.
    pub fn awaiting(&self) -> bool {
        !self.owed.is_empty()
    }

    /// The replies ready to write, in order.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Whether the replies should be written now: the round's are all ready, or many are.
    pub fn flush_due(&self) -> bool {
        !self.out.is_empty() && (self.owed.is_empty() || self.out.len() >= FLUSH_BYTES)
    }

    /// The output was written. A buffer a large reply grew is given back.
    pub fn written(&mut self) {
        self.out.clear();
        if self.out.capacity() > FLUSH_BYTES * 2 {
            self.out = Vec::new();
        }
    }

    /// Nothing left to send, to wait for, or to write.
    pub fn done(&self) -> bool {
        self.waiting.is_empty() && self.owed.is_empty() && self.out.is_empty()
    }

    /// What the pipeline's buffers take, for the clients' memory budget.
    pub fn buffer_bytes(&self) -> u64 {
        self.out.capacity() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::session::NodeView;

    fn session() -> Session {
        Session::new(resp::Limits::default(), Arc::default())
    }

    /// What a client sending these commands at once makes of them.
    fn parse(session: &mut Session, commands: &[&[&str]]) -> Vec<Step> {
        for words in commands {
            resp::encode_array_of_bulks(words, session.read_space());
        }
        let config = raft::Config::new(raft::NodeId(1), vec![raft::NodeId(1)]);
        let status = raft::Node::new(config, raft::Restored::default()).expect("a valid node").status();
        session.parse(&NodeView::of(status))
    }

    fn take(pipeline: &mut Pipeline) -> String {
        let written = String::from_utf8_lossy(pipeline.output()).into_owned();
        pipeline.written();
        written
    }

    #[test]
    fn replies_come_in_the_order_of_the_commands() {
        let mut session = session();
        let mut pipeline = Pipeline::new(WINDOW);
        pipeline.push(parse(&mut session, &[&["PING"], &["GET", "a"], &["PING", "x"], &["GET", "b"], &["ECHO", "y"]]));
        let requests = pipeline.next_round();
        assert_eq!(requests.len(), 2);
        assert!(!pipeline.flush_due(), "the first reply is ready, the second is the node's");
        assert_eq!(pipeline.output(), b"+PONG\r\n");
        assert!(pipeline.answered(Answer::Value(None), &mut session));
        assert!(!pipeline.flush_due());
        assert!(pipeline.answered(Answer::Reply(kv::Reply::Value(Some(b"v".to_vec()))), &mut session));
        assert!(pipeline.flush_due() && !pipeline.awaiting());
        assert_eq!(take(&mut pipeline), "+PONG\r\n$-1\r\n$1\r\nx\r\n$1\r\nv\r\n$1\r\ny\r\n");
        assert!(pipeline.done());
        assert!(!pipeline.answered(Answer::Value(None), &mut session), "nothing more was asked");
    }

    #[test]
    fn a_round_goes_only_once_the_last_ones_replies_are_written() {
        let mut session = session();
        let mut pipeline = Pipeline::new(2);
        pipeline.push(parse(&mut session, &[&["GET", "a"], &["GET", "b"], &["PING"], &["GET", "c"]]));
        assert_eq!(pipeline.next_round().len(), 2, "a round is the window");
        assert!(pipeline.next_round().is_empty(), "answers owed");
        pipeline.answered(Answer::Count(1), &mut session);
        pipeline.answered(Answer::Count(2), &mut session);
        assert!(pipeline.next_round().is_empty(), "replies not written yet");
        assert_eq!(take(&mut pipeline), ":1\r\n:2\r\n");
        assert_eq!(pipeline.next_round().len(), 1);
        assert_eq!(pipeline.output(), b"+PONG\r\n", "a reply before the round's first request is ready at once");
        pipeline.answered(Answer::Error("no leader".into()), &mut session);
        assert_eq!(take(&mut pipeline), "+PONG\r\n-ERR no leader\r\n");
        assert!(pipeline.done());
    }

    #[test]
    fn replies_are_due_before_the_round_ends_once_many_are_ready() {
        let mut session = session();
        let mut pipeline = Pipeline::new(WINDOW);
        pipeline.push(parse(&mut session, &[&["GET", "a"], &["GET", "b"]]));
        assert_eq!(pipeline.next_round().len(), 2);
        pipeline.answered(Answer::Reply(kv::Reply::Value(Some(vec![b'x'; FLUSH_BYTES]))), &mut session);
        assert!(pipeline.flush_due() && pipeline.awaiting());
        pipeline.written();
        assert!(pipeline.next_round().is_empty(), "the round is not over");
    }
}
