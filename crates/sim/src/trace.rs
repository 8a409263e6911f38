//! A bounded record of a simulated run, in two forms: readable lines (who sent what, role changes
//! and faults, each stamped with virtual time), printed when a test fails; and structured events
//! (roles, crashes, links, messages, checks, annotations), from which `viz` draws the run as a page.
//! Both are kept for every run, since whether a run fails is known only at its end.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use raft::Role;
use wire::Frame;

const KEPT_LINES: usize = 20_000;
/// Role changes, checks, notes, index changes, faults: a run makes far fewer than messages.
const KEPT_EVENTS: usize = 100_000;
/// Messages are most of a run; the newest are kept, since a failure is at the end.
const KEPT_MESSAGES: usize = 30_000;
/// A message's one-line description is cut to this many characters in the drawing.
const MESSAGE_TEXT_CHARS: usize = 160;

/// What happened at one instant of virtual time. Servers are the lab's 0-based indexes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The server's role and term from now until its next `Role` or `Stop`.
    Role { server: usize, role: Role, term: u64, leader: Option<usize> },
    /// An incarnation starts (at the beginning, and after each crash).
    Start { server: usize, term: u64 },
    /// The server is down from now until its next `Start`.
    Stop { server: usize, why: String },
    Index { server: usize, commit: u64, applied: u64, last: u64, snapshot: u64 },
    /// A fault of the server's disk.
    Disk { server: usize, what: String },
    /// Reachability from now on: `up[i][j]` when messages from server i can reach server j.
    Links(Vec<Vec<bool>>),
    Net { reliable: bool, long_reordering: bool, long_delays: bool },
    /// A check the tester made, and its outcome.
    Check { name: String, ok: bool, detail: String },
    /// An annotation (the lab's `Annotate`): by the tester of its own actions, or by a test.
    Note { server: Option<usize>, short: String, details: String, by: NoteBy },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteBy {
    Tester,
    Test,
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered (or on its way) to the incarnation it was sent to.
    Delivered,
    /// Lost by the unreliable network.
    Dropped,
    /// Its link was down when it was sent.
    LinkDown,
    /// It arrived after its addressee crashed or was replaced.
    ServerGone,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    pub from: usize,
    pub to: usize,
    pub sent: Duration,
    pub arrive: Option<Duration>,
    pub kind: &'static str,
    pub fate: Fate,
    pub text: String,
}

/// Identifies a recorded message, to change its fate later; stays valid while it is kept.
#[derive(Clone, Copy, Debug)]
pub struct MessageId(u64);

/// Draws the history of a KV test on demand (it costs a linearizability check).
pub type HistorySource = Rc<dyn Fn() -> Option<String>>;

#[derive(Default)]
struct Record {
    lines: VecDeque<String>,
    events: VecDeque<(Duration, Event)>,
    messages: VecDeque<MessageRecord>,
    dropped_events: u64,
    dropped_messages: u64,
    servers: usize,
    failure: Option<(Duration, String)>,
    history: Option<HistorySource>,
}

#[derive(Clone, Default)]
pub struct Trace(Rc<RefCell<Record>>);

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) -> bool {
    let full = queue.len() == limit;
    if full {
        queue.pop_front();
    }
    queue.push_back(item);
    full
}

impl Trace {
    pub fn record(&self, now: Duration, line: impl std::fmt::Display) {
        push_bounded(&mut self.0.borrow_mut().lines, format!("{:>9.3}s {line}", now.as_secs_f64()), KEPT_LINES);
    }

    /// The last `count` lines, oldest first.
    pub fn tail(&self, count: usize) -> Vec<String> {
        let record = self.0.borrow();
        record.lines.iter().skip(record.lines.len().saturating_sub(count)).cloned().collect()
    }

    pub fn all(&self) -> Vec<String> {
        self.0.borrow().lines.iter().cloned().collect()
    }

    /// How many servers the run has (one lane each in the drawing).
    pub fn set_servers(&self, servers: usize) {
        self.0.borrow_mut().servers = servers;
    }

    pub fn servers(&self) -> usize {
        self.0.borrow().servers
    }

    pub fn event(&self, now: Duration, event: Event) {
        let mut record = self.0.borrow_mut();
        // Links change one end at a time; only where they settle at an instant matters.
        if let Event::Links(_) = event {
            if let Some((at, Event::Links(_))) = record.events.back() {
                if *at == now {
                    record.events.pop_back();
                }
            }
        }
        if push_bounded(&mut record.events, (now, event), KEPT_EVENTS) {
            record.dropped_events += 1;
        }
    }

    /// A check the tester made. A failing one is what the drawing highlights.
    pub fn check(&self, now: Duration, name: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        if !ok {
            self.record(now, format_args!("check FAILED: {name}: {detail}"));
        }
        self.event(now, Event::Check { name: name.to_string(), ok, detail });
    }

    /// The lab's `Annotate(server, short, details)`: shown at its time in the server's lane, or
    /// across the cluster when `server` is None.
    pub fn annotate(&self, now: Duration, server: Option<usize>, short: &str, details: &str) {
        self.note(now, server, short, details, NoteBy::Test);
    }

    pub fn note(&self, now: Duration, server: Option<usize>, short: &str, details: &str, by: NoteBy) {
        let event = Event::Note { server, short: short.to_string(), details: details.to_string(), by };
        self.event(now, event);
    }

    /// Records the run's failure. A failure that no check recorded (an assertion in a test) becomes
    /// a failing check of its own, so that every failure has a marker.
    pub fn fail(&self, now: Duration, message: &str) {
        let failed_check = self.0.borrow().events.iter().any(|(_, event)| matches!(event, Event::Check { ok: false, .. }));
        if !failed_check {
            self.check(now, "assertion", false, message);
        }
        self.0.borrow_mut().failure = Some((now, message.to_string()));
    }

    pub fn failure(&self) -> Option<(Duration, String)> {
        self.0.borrow().failure.clone()
    }

    pub fn message(&self, from: usize, to: usize, sent: Duration, frame: &Frame, fate: Fate, arrive: Option<Duration>) -> MessageId {
        let mut text = describe(frame);
        if text.len() > MESSAGE_TEXT_CHARS {
            let cut = (0..=MESSAGE_TEXT_CHARS).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        let record = MessageRecord { from, to, sent, arrive, kind: frame_kind(frame), fate, text };
        let mut inner = self.0.borrow_mut();
        if push_bounded(&mut inner.messages, record, KEPT_MESSAGES) {
            inner.dropped_messages += 1;
        }
        MessageId(inner.dropped_messages + inner.messages.len() as u64 - 1)
    }

    /// A delivered message reached an incarnation that is gone, at `now`.
    pub fn message_lost(&self, id: MessageId, now: Duration) {
        let mut record = self.0.borrow_mut();
        let Some(position) = id.0.checked_sub(record.dropped_messages) else { return };
        if let Some(message) = record.messages.get_mut(position as usize) {
            message.fate = Fate::ServerGone;
            message.arrive = Some(now);
        }
    }

    /// Lets the drawing show the KV history next to the Raft events.
    pub fn set_history(&self, source: HistorySource) {
        self.0.borrow_mut().history = Some(source);
    }

    pub fn history(&self) -> Option<String> {
        let source = self.0.borrow().history.clone();
        source.and_then(|draw| draw())
    }

    pub fn events(&self) -> Vec<(Duration, Event)> {
        self.0.borrow().events.iter().cloned().collect()
    }

    pub fn messages(&self) -> Vec<MessageRecord> {
        self.0.borrow().messages.iter().cloned().collect()
    }

    /// How many of the oldest events and messages were dropped to keep the record bounded.
    pub fn dropped(&self) -> (u64, u64) {
        let record = self.0.borrow();
        (record.dropped_events, record.dropped_messages)
    }
}

/// A frame as the trace's text shows it.
pub fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Raft(message) => message.to_string(),
        Frame::Forward { request_id, payload } => format!("forward #{request_id} ({} bytes)", payload.len()),
        Frame::ForwardReply { request_id, payload } => format!("answer to forward #{request_id} ({} bytes)", payload.len()),
    }
}

fn frame_kind(frame: &Frame) -> &'static str {
    use raft::MessageBody::*;
    let message = match frame {
        Frame::Raft(message) => message,
        Frame::Forward { .. } => return "Forward",
        Frame::ForwardReply { .. } => return "ForwardReply",
    };
    match &message.body {
        VoteRequest { pre_vote: true, .. } => "PreVoteRequest",
        VoteRequest { pre_vote: false, .. } => "VoteRequest",
        VoteResponse { pre_vote: true, .. } => "PreVoteResponse",
        VoteResponse { pre_vote: false, .. } => "VoteResponse",
        AppendRequest { entries, .. } if entries.is_empty() => "Heartbeat",
        AppendRequest { .. } => "AppendRequest",
        AppendResponse { .. } => "AppendResponse",
        SnapshotRequest { .. } => "SnapshotRequest",
        SnapshotResponse { .. } => "SnapshotResponse",
        TimeoutNow => "TimeoutNow",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_settling_at_one_instant_are_one_event() {
        let trace = Trace::default();
        let t = Duration::from_millis(5);
        trace.event(t, Event::Links(vec![vec![true, false], vec![false, true]]));
        trace.event(t, Event::Links(vec![vec![true, true], vec![true, true]]));
        trace.event(t * 2, Event::Links(vec![vec![true, false], vec![false, true]]));
        let links: Vec<_> = trace.events().into_iter().filter(|(_, event)| matches!(event, Event::Links(_))).collect();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].1, Event::Links(vec![vec![true, true], vec![true, true]]));
    }

    #[test]
    fn a_failure_without_a_failing_check_becomes_one() {
        let trace = Trace::default();
        trace.check(Duration::ZERO, "one leader", true, "leader 0");
        trace.fail(Duration::from_secs(1), "boom");
        let failing: Vec<_> = trace.events().into_iter().filter(|(_, event)| matches!(event, Event::Check { ok: false, .. })).collect();
        assert_eq!(failing.len(), 1);
        assert_eq!(trace.failure(), Some((Duration::from_secs(1), "boom".to_string())));
        // A recorded failing check is not doubled.
        let trace = Trace::default();
        trace.check(Duration::ZERO, "no leader", false, "2 leads");
        trace.fail(Duration::ZERO, "expected no leader");
        let failing = trace.events().into_iter().filter(|(_, event)| matches!(event, Event::Check { ok: false, .. })).count();
        assert_eq!(failing, 1);
    }
}
