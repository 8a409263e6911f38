//! Client connections, each a queue of its requests in the order they arrived, and the rule that
//! makes a connection's commands take effect in that order (as in Redis): a run of requests of one
//! kind (writes, or reads) may be in flight together — consecutive writes share a batch and an
//! fsync — but a request of the other kind waits until everything before it is answered. Answers
//! leave in arrival order, whatever order they come in. Every request has a deadline, counted from
//! its arrival.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::request::{Answer, Request};

/// A connection, named by the shell (unique within one incarnation of the node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// One request of a connection, numbered in arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub conn: ConnId,
    pub number: u64,
}

struct Entry {
    number: u64,
    write: bool,
    deadline: u64,
    /// Set until the request is admitted (handed on to be served).
    request: Option<Request>,
    answer: Option<Answer>,
}

#[derive(Default)]
struct Connection {
    next_number: u64,
    /// Requests not yet replied to, oldest first.
    queue: VecDeque<Entry>,
}

#[derive(Default)]
pub struct Connections {
    open: BTreeMap<ConnId, Connection>,
    /// (deadline tick, slot) of every request not yet answered.
    deadlines: BTreeSet<(u64, Slot)>,
}

impl Connections {
    /// Queues a request; returns its slot.
    pub fn push(&mut self, conn: ConnId, request: Request, deadline: u64) -> Slot {
        let connection = self.open.entry(conn).or_default();
        let number = connection.next_number;
        connection.next_number += 1;
        let write = request.orders_as_write();
        connection.queue.push_back(Entry { number, write, deadline, request: Some(request), answer: None });
        let slot = Slot { conn, number };
        self.deadlines.insert((deadline, slot));
        slot
    }

    /// The requests of `conn` that may be served now, in order (each is handed out once).
    pub fn admit(&mut self, conn: ConnId) -> Vec<(Slot, Request)> {
        let Some(connection) = self.open.get_mut(&conn) else { return Vec::new() };
        let mut admitted = Vec::new();
        // The kind of the oldest request not yet answered decides what may be in flight.
        let Some(kind) = connection.queue.iter().find(|entry| entry.answer.is_none()).map(|entry| entry.write) else {
            return admitted;
        };
        for entry in connection.queue.iter_mut().filter(|entry| entry.answer.is_none()) {
            if entry.write != kind {
                break;
            }
            if let Some(request) = entry.request.take() {
                admitted.push((Slot { conn, number: entry.number }, request));
            }
        }
        admitted
    }

    /// Records the answer for `slot`, unless it was answered already (a timeout came first) or its
    /// connection is gone. Returns whether it was taken.
    pub fn answer(&mut self, slot: Slot, answer: Answer) -> bool {
        let Some(connection) = self.open.get_mut(&slot.conn) else { return false };
        let Some(front) = connection.queue.front().map(|entry| entry.number) else { return false };
        let Some(entry) = slot.number.checked_sub(front).and_then(|at| connection.queue.get_mut(at as usize)) else {
            return false;
        };
        if entry.answer.is_some() {
            return false;
        }
        entry.request = None;
        entry.answer = Some(answer);
        self.deadlines.remove(&(entry.deadline, slot));
        true
    }

    /// `slot`'s place in its connection's queue, while it is there.
    fn entry(&self, slot: Slot) -> Option<&Entry> {
        let connection = self.open.get(&slot.conn)?;
        let front = connection.queue.front()?.number;
        connection.queue.get(usize::try_from(slot.number.checked_sub(front)?).ok()?)
    }

    /// The deadline of `slot`'s request (None: no longer queued, or its connection closed).
    pub fn deadline(&self, slot: Slot) -> Option<u64> {
        self.entry(slot).map(|entry| entry.deadline)
    }

    /// Whether `slot` still waits for its answer (its connection is open and nothing answered it).
    pub fn is_waiting(&self, slot: Slot) -> bool {
        self.entry(slot).is_some_and(|entry| entry.answer.is_none())
    }

    /// The answers of `conn` that can leave now: the answered requests at the front of its queue.
    pub fn replies(&mut self, conn: ConnId) -> Vec<Answer> {
        let Some(connection) = self.open.get_mut(&conn) else { return Vec::new() };
        let mut out = Vec::new();
        while connection.queue.front().is_some_and(|entry| entry.answer.is_some()) {
            if let Some(Entry { answer: Some(answer), .. }) = connection.queue.pop_front() {
                out.push(answer);
            }
        }
        out
    }

    /// Every unanswered request whose deadline is at or before `now`, removed from the deadlines.
    pub fn expired(&mut self, now: u64) -> Vec<Slot> {
        let mut expired = Vec::new();
        while let Some(&(deadline, slot)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            expired.push(slot);
        }
        expired
    }

    pub fn close(&mut self, conn: ConnId) {
        self.open.remove(&conn);
        self.deadlines.retain(|(_, slot)| slot.conn != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Write;

    fn write() -> Request {
        Request::Write(Write { tag: (0, 1), data: bytes::Bytes::from_static(b"w"), timed: false })
    }

    fn read() -> Request {
        Request::Get { key: b"k".to_vec() }
    }

    #[test]
    fn runs_of_one_kind_go_together_and_the_other_kind_waits() {
        let mut connections = Connections::default();
        let conn = ConnId(1);
        for request in [write(), write(), read(), read(), write()] {
            connections.push(conn, request, 100);
        }
        let first: Vec<u64> = connections.admit(conn).into_iter().map(|(slot, _)| slot.number).collect();
        assert_eq!(first, [0, 1], "the two writes, not the read behind them");
        assert!(connections.admit(conn).is_empty(), "each request is handed out once");
        assert!(connections.answer(Slot { conn, number: 1 }, Answer::Count(1)));
        assert!(connections.replies(conn).is_empty(), "the second answer waits for the first");
        assert!(connections.admit(conn).is_empty(), "the reads wait until both writes are answered");
        assert!(connections.answer(Slot { conn, number: 0 }, Answer::Count(0)));
        assert_eq!(connections.replies(conn), [Answer::Count(0), Answer::Count(1)]);
        let reads: Vec<u64> = connections.admit(conn).into_iter().map(|(slot, _)| slot.number).collect();
        assert_eq!(reads, [2, 3]);
    }

    #[test]
    fn a_late_answer_after_a_timeout_is_dropped() {
        let mut connections = Connections::default();
        let conn = ConnId(7);
        let slot = connections.push(conn, read(), 5);
        connections.admit(conn);
        assert_eq!(connections.expired(4), []);
        assert_eq!(connections.expired(5), [slot]);
        assert!(connections.answer(slot, Answer::Error("timeout".into())));
        assert!(!connections.answer(slot, Answer::Count(3)), "the timeout answered it");
        assert_eq!(connections.replies(conn), [Answer::Error("timeout".into())]);
        assert!(!connections.answer(slot, Answer::Count(3)), "replied and gone");
    }
}
