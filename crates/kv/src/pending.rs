//! Callers waiting for their proposals, keyed by the log index the leader gave them. A caller
//! learns its result when its own entry is applied at that index, and learns it lost (so it should
//! try another server) when a different entry shows up there, when a snapshot skips past it, or when
//! the term moves on. Generic over the waiter (a channel in the simulator or in the server), so both
//! runtimes share the rule.

use std::collections::BTreeMap;

use crate::command::Reply;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied(Reply),
    /// The proposal may or may not commit later; the caller must retry (exactly-once makes that safe).
    Lost,
}

struct Waiting<W> {
    term: u64,
    tag: (u64, u64),
    waiter: W,
}

pub struct Pending<W> {
    by_index: BTreeMap<u64, Waiting<W>>,
}

impl<W> Default for Pending<W> {
    fn default() -> Self {
        Pending { by_index: BTreeMap::new() }
    }
}

impl<W> Pending<W> {
    pub fn new() -> Pending<W> {
        Pending::default()
    }

    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// Registers a caller for the entry proposed at `index` in `term`, tagged (client id, seq).
    /// A caller already waiting at that index was overtaken by a newer leader's entry: it lost.
    pub fn insert(&mut self, index: u64, term: u64, tag: (u64, u64), waiter: W) -> Vec<(W, Outcome)> {
        let displaced = self.by_index.insert(index, Waiting { term, tag, waiter });
        displaced.into_iter().map(|old| (old.waiter, Outcome::Lost)).collect()
    }

    /// The entry at `index` was applied; `applied` is its tag and reply (None: not a client command).
    pub fn applied(&mut self, index: u64, applied: Option<((u64, u64), &Reply)>) -> Vec<(W, Outcome)> {
        let mut resolved = self.lost_below(index);
        if let Some(waiting) = self.by_index.remove(&index) {
            let outcome = match applied {
                Some((tag, reply)) if tag == waiting.tag => Outcome::Applied(reply.clone()),
                _ => Outcome::Lost,
            };
            resolved.push((waiting.waiter, outcome));
        }
        resolved
    }

    /// A snapshot moved the state machine to `index`: callers at or below it cannot learn a reply.
    pub fn skipped_to(&mut self, index: u64) -> Vec<(W, Outcome)> {
        self.lost_below(index + 1)
    }

    /// The node is in `term` now (or no longer leads): callers from earlier terms must retry.
    pub fn term_changed(&mut self, term: u64, still_leader: bool) -> Vec<(W, Outcome)> {
        let stale: Vec<u64> = self
            .by_index
            .iter()
            .filter(|(_, waiting)| !still_leader || waiting.term < term)
            .map(|(&index, _)| index)
            .collect();
        stale.into_iter().filter_map(|index| self.by_index.remove(&index)).map(|waiting| (waiting.waiter, Outcome::Lost)).collect()
    }

    /// Everyone still waiting (the node is shutting down).
    pub fn drain(&mut self) -> Vec<(W, Outcome)> {
        std::mem::take(&mut self.by_index).into_values().map(|waiting| (waiting.waiter, Outcome::Lost)).collect()
    }

    fn lost_below(&mut self, index: u64) -> Vec<(W, Outcome)> {
        let kept = self.by_index.split_off(&index);
        let lost = std::mem::replace(&mut self.by_index, kept);
        lost.into_values().map(|waiting| (waiting.waiter, Outcome::Lost)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_entry_resolves_with_its_reply_and_a_foreign_one_loses() {
        let mut pending = Pending::new();
        pending.insert(5, 2, (7, 1), "a");
        pending.insert(6, 2, (8, 1), "b");
        assert_eq!(pending.applied(5, Some(((7, 1), &Reply::Done))), vec![("a", Outcome::Applied(Reply::Done))]);
        assert_eq!(pending.applied(6, Some(((9, 4), &Reply::Done))), vec![("b", Outcome::Lost)]);
        assert!(pending.is_empty());
    }

    #[test]
    fn term_change_snapshot_and_displacement_all_mean_retry() {
        let mut pending = Pending::new();
        pending.insert(1, 1, (1, 1), 1);
        pending.insert(2, 2, (1, 2), 2);
        assert_eq!(pending.term_changed(2, true), vec![(1, Outcome::Lost)]);
        assert_eq!(pending.insert(2, 3, (2, 1), 3), vec![(2, Outcome::Lost)]);
        pending.insert(9, 3, (2, 2), 9);
        assert_eq!(pending.skipped_to(2), vec![(3, Outcome::Lost)]);
        assert_eq!(pending.term_changed(3, false), vec![(9, Outcome::Lost)]);
    }
}
