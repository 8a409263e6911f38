//! The state machine: keys and values, plus one session per client that remembers the client's
//! last write and its reply, so that a write retried after a timeout or a leader change is applied
//! exactly once. Applying is deterministic: every replica that applies the same log ends with
//! byte-identical state (ordered maps only), which the snapshot encoding relies on.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::command::{CommandRef, OpRef, Reply};

/// The last write of one client. Clients have one operation outstanding at a time and number them
/// in order, so the last one is all that must be remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub seq: u64,
    pub reply: Reply,
}

/// Cloning is cheap next to the data it holds: values are shared (`Arc`), so a clone costs a copy
/// of the keys and the map's nodes. That is how a snapshot is taken of a large store without
/// stopping the applies: clone, then encode the clone on another thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    pub(crate) data: BTreeMap<Vec<u8>, Arc<[u8]>>,
    pub(crate) sessions: BTreeMap<u64, Session>,
    /// The log index of the last command applied (or of the snapshot restored).
    pub(crate) applied_index: u64,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.data.get(key).map(|value| &value[..])
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Marks a log index as applied that carries no command (a leader's no-op).
    pub fn skip(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// Applies the command committed at `index` and returns its reply. A write whose sequence
    /// number the client's session has already seen is not applied again: the reply recorded the
    /// first time is returned instead (exactly-once). Reads are executed afresh each time, which
    /// gives a retried read an answer no older than its first try.
    pub fn apply(&mut self, index: u64, command: &CommandRef<'_>) -> Reply {
        self.applied_index = self.applied_index.max(index);
        let tracked = command.client_id != 0 && command.op.is_write();
        if tracked {
            if let Some(session) = self.sessions.get(&command.client_id) {
                if command.seq <= session.seq {
                    return session.reply.clone();
                }
            }
        }
        let reply = self.execute(&command.op);
        if tracked {
            self.sessions.insert(command.client_id, Session { seq: command.seq, reply: reply.clone() });
        }
        reply
    }

    /// Allocates only what the store keeps: the new value, and the key when it is new.
    fn execute(&mut self, op: &OpRef<'_>) -> Reply {
        match op {
            OpRef::Get { key } => Reply::Value(self.data.get(*key).map(|value| value.to_vec())),
            OpRef::Put { key, value } => {
                let value = Arc::from(*value);
                match self.data.get_mut(*key) {
                    Some(stored) => *stored = value,
                    None => {
                        self.data.insert(key.to_vec(), value);
                    }
                }
                Reply::Done
            }
            OpRef::Append { key, value } => {
                // A shared value cannot grow in place: the appended one is a new copy.
                let old = self.data.get(*key).map_or(&[][..], |old| &old[..]);
                let appended: Arc<[u8]> = old.iter().chain(value.iter()).copied().collect();
                let length = appended.len() as u64;
                match self.data.get_mut(*key) {
                    Some(stored) => *stored = appended,
                    None => {
                        self.data.insert(key.to_vec(), appended);
                    }
                }
                Reply::Length(length)
            }
            OpRef::Delete { keys } => Reply::Removed(keys.iter().filter(|key| self.data.remove(**key).is_some()).count() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::{Command, Op};

    fn write(client_id: u64, seq: u64, op: Op) -> Command {
        Command { client_id, seq, op }
    }

    fn apply(store: &mut Store, index: u64, command: Command) -> Reply {
        store.apply(index, &command.as_ref())
    }

    fn append(key: &str, value: &str) -> Op {
        Op::Append { key: key.into(), value: value.into() }
    }

    #[test]
    fn a_retried_write_is_applied_once_and_answered_the_same() {
        let mut store = Store::new();
        assert_eq!(apply(&mut store, 1, write(9, 1, append("k", "ab"))), Reply::Length(2));
        assert_eq!(apply(&mut store, 2, write(9, 1, append("k", "ab"))), Reply::Length(2));
        assert_eq!(store.get(b"k"), Some(&b"ab"[..]));
        assert_eq!(apply(&mut store, 3, write(9, 2, append("k", "c"))), Reply::Length(3));
        // A stale duplicate of an older write arriving late changes nothing either.
        apply(&mut store, 4, write(9, 1, append("k", "ab")));
        assert_eq!(store.get(b"k"), Some(&b"abc"[..]));
    }

    #[test]
    fn sessions_are_per_client_and_reads_are_not_deduplicated() {
        let mut store = Store::new();
        apply(&mut store, 1, write(1, 1, Op::Put { key: b"k".to_vec(), value: b"x".to_vec() }));
        apply(&mut store, 2, write(2, 1, append("k", "y")));
        assert_eq!(apply(&mut store, 3, write(1, 5, Op::Get { key: b"k".to_vec() })), Reply::Value(Some(b"xy".to_vec())));
        apply(&mut store, 4, write(2, 2, append("k", "z")));
        assert_eq!(apply(&mut store, 5, write(1, 5, Op::Get { key: b"k".to_vec() })), Reply::Value(Some(b"xyz".to_vec())));
        assert_eq!(apply(&mut store, 6, write(3, 1, Op::Delete { keys: vec![b"k".to_vec(), b"none".to_vec(), b"k".to_vec()] })), Reply::Removed(1));
        assert_eq!(apply(&mut store, 7, write(3, 2, Op::Delete { keys: vec![b"k".to_vec()] })), Reply::Removed(0));
        assert_eq!(store.applied_index(), 7);
    }

    #[test]
    fn untagged_writes_apply_every_time() {
        let mut store = Store::new();
        apply(&mut store, 1, write(0, 0, append("k", "a")));
        apply(&mut store, 2, write(0, 0, append("k", "a")));
        assert_eq!(store.get(b"k"), Some(&b"aa"[..]));
    }
}
