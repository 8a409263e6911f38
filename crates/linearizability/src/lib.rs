//! # linearizability: does a concurrent history have a legal sequential explanation?
//!
//! A history is a list of [`Operation`]s, each invoked by a client at a `call` time and answered
//! at a `return_time`. It is *linearizable* (Herlihy & Wing) if every operation can be given a
//! single instant between its call and its return such that applying the operations one by one
//! in the order of those instants, starting from the [`Model`]'s initial state, produces exactly
//! the outputs the clients saw. This is the correctness condition a replicated key/value service
//! (the MIT 6.5840 labs) must meet, so this crate is the oracle of the simulator's tests.
//!
//! The algorithm is Wing & Gong's, with Lowe's improvements, as popularised by the Go library
//! porcupine:
//! - call and return *events* are sorted by time into a doubly linked list;
//! - a depth-first search repeatedly picks a call that is still in the list, applies it to the
//!   model, and, if the model accepts the output, removes the call and its return from the list
//!   ("lifts" it) and starts again from the head. Meeting a *return* event means the operation it
//!   belongs to should already have taken effect, so the search backtracks (restores the last
//!   lifted operation and tries the next candidate after it);
//! - a cache of (set of linearized operations, model state) pairs prunes every configuration that
//!   was already explored: two paths that linearized the same operations and reached the same state
//!   have the same future (Lowe's key observation, which makes the search practical);
//! - the model may [`partition`](Model::partition) a history into independent parts (for a
//!   key/value store: one per key), each checked separately, which turns one exponential search
//!   into many small ones (a history is linearizable iff each independent part is: locality).
//!
//! The search is bounded by a *step budget* rather than a wall clock, so a verdict is
//! reproducible: the same history and budget always give the same [`CheckResult`], and running out
//! gives [`CheckResult::Unknown`], never a silent pass.
//!
//! [`write_html`] draws a history and a verdict as a self-contained HTML page, so a person can see
//! *why* a history is not linearizable: the longest prefix the search managed to linearize, and the
//! operation that could not come next. [`kv`] holds the model of the labs' key/value service,
//! [`versioned`] that of the 2025 lab's versioned Put, [`strings`] that of raftkv's counters,
//! expiring keys and transactions.
//!
//! ```
//! use linearizability::{check, kv::{KvInput, KvModel, KvOutput}, CheckResult, Operation};
//! let history = vec![
//!     Operation { client: 0, input: KvInput::put("x", "1"), call: 0, output: Some(KvOutput::default()), return_time: Some(10) },
//!     // A later read that misses the completed write: a stale read.
//!     Operation { client: 1, input: KvInput::get("x"), call: 20, output: Some(KvOutput::new("")), return_time: Some(30) },
//! ];
//! assert!(matches!(check(&KvModel, &history, 10_000), CheckResult::Illegal(_)));
//! ```

use std::fmt;

mod check;
mod html;
pub mod kv;
pub mod strings;
pub mod versioned;

pub use html::{render_html, write_html};

/// A sequential specification: what the object would do if operations happened one at a time.
///
/// Why a trait with an explicit state rather than a mutable object: the search must go back to
/// earlier states (backtracking) and compare states (the cache), so states are values that are
/// cloned, hashed and compared, and `step` is a pure function.
pub trait Model {
    /// The object's state. `Hash + Eq` because the search caches (linearized set, state) pairs;
    /// `Clone` because each level of the search keeps the state it started from.
    type State: Clone + Eq + std::hash::Hash + std::fmt::Debug;
    /// What a client asked for.
    type Input: std::fmt::Debug;
    /// What a client was told.
    type Output: std::fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after applying `input` that returned `output` (None = the client never learned
    /// the outcome: any output is acceptable), or None if that output is impossible in `state`.
    ///
    /// Must be deterministic: the checker replays steps to report the states of a failure.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether this operation, with this output, leaves the state as it is in every state where
    /// it is legal (a read; a write refused for its version). The search then linearizes such an
    /// operation as soon as it may, without trying it later as well: any linearization that puts
    /// it later stays one with it moved to the front, since it changes no state and nothing left
    /// must precede it. Without this, k such operations pending at once are tried in up to 2^k
    /// orders. Default: false (the search tries every order). A model that says true for an
    /// operation that may change the state makes the checker wrong.
    fn is_read_only(&self, input: &Self::Input, output: Option<&Self::Output>) -> bool {
        let _ = (input, output);
        false
    }

    /// Split a history into independent parts (default: one part). Returns indices into the
    /// history.
    ///
    /// Why: linearizability is local, so a history whose operations touch disjoint objects (keys)
    /// is linearizable iff each object's sub-history is; searching parts separately is
    /// exponentially cheaper than searching their interleavings. Every index should appear in
    /// exactly one part (an index left out is simply not checked).
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// A short name for one part returned by [`partition`](Model::partition) (e.g. `key "x"`),
    /// shown in reports. Why it exists: a person reading a failure needs to know which object
    /// failed. The default names nothing; reports then fall back to the part's number.
    fn describe_partition(
        &self,
        history: &[Operation<Self::Input, Self::Output>],
        part: &[usize],
    ) -> String {
        let _ = (history, part);
        String::new()
    }

    /// Human-readable description of an operation, for the visualisation.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// Human-readable description of a state, for the visualisation. Why strings: a
    /// [`CheckResult`] is not generic over the model, so the states of a failure are kept in the
    /// form a person reads them.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// One part per key, in order of first appearance (deterministic, unlike a HashMap's order): the
/// partition of every model whose keys are independent registers.
pub fn partition_by_key<I, O>(history: &[Operation<I, O>], key: impl Fn(&I) -> &str) -> Vec<Vec<usize>> {
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        let part = *index.entry(key(&op.input)).or_insert_with(|| {
            parts.push(Vec::new());
            parts.len() - 1
        });
        parts[part].push(i);
    }
    parts
}

/// One operation of a history, as observed by the client that issued it.
///
/// `call` and `return_time` are timestamps on one clock shared by all clients (e.g. nanoseconds
/// of simulated time); only their order matters. Equal timestamps count as *overlapping*: a call
/// at the very instant another operation returns may be ordered either way, because a real
/// clock's resolution cannot tell which came first.
///
/// `return_time: None` means the outcome is unknown (the client gave up, e.g. on a timeout): the
/// operation may take effect at any point after its call, or never. Its `output` is then usually
/// `None` too (any output is acceptable); a `Some` output is still passed to [`Model::step`].
/// With a known `return_time`, `output: None` means "returned, but the output is not checked".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Who issued it; operations of one client are drawn in one lane.
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When it was invoked.
    pub call: u64,
    /// What was answered, if known.
    pub output: Option<O>,
    /// When the answer arrived, if it did; must not be before `call`.
    pub return_time: Option<u64>,
}

/// The verdict of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every part of the history is linearizable.
    Ok,
    /// At least one part is not linearizable; the failure says where the search got stuck.
    Illegal(Failure),
    /// No part was found illegal, but the step budget ran out before every part was decided.
    /// Callers must treat this as "not proven correct", never as a pass.
    Unknown,
}

impl CheckResult {
    /// True only for [`CheckResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }
}

/// Why a history is not linearizable: one entry per failing part, in partition order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The parts (from [`Model::partition`]) that were proven not linearizable. Parts left
    /// unchecked because the budget ran out are not listed.
    pub partitions: Vec<PartitionFailure>,
}

/// Where the search for one failing part got furthest.
///
/// Why "longest prefix": a non-linearizable history has no linearization to show, and the
/// deepest point the search reached is usually right before the bug (the stale read, the lost
/// write), which is what a person needs to look at. All indices are into the whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionFailure {
    /// Which part, as an index into the vector returned by [`Model::partition`].
    pub partition: usize,
    /// [`Model::describe_partition`] of that part (may be empty).
    pub label: String,
    /// All operations of the part, as given by the model.
    pub operations: Vec<usize>,
    /// [`Model::describe_state`] of the initial state.
    pub initial_state: String,
    /// The longest linearizable prefix found, in linearization order, each operation with the
    /// state after it.
    pub prefix: Vec<Linearized>,
    /// The operation whose return was reached before it could be linearized after `prefix`: its
    /// deadline passed, so the search had to backtrack.
    pub blocking: usize,
    /// Every operation that could have come next after `prefix` (called before `blocking`
    /// returned and not yet linearized, `blocking` included); none of them could be placed
    /// there without a dead end (the model rejected its output, or every continuation failed).
    pub candidates: Vec<usize>,
}

/// One operation of a linearizable prefix and the state it left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linearized {
    /// Index into the history.
    pub op: usize,
    /// [`Model::describe_state`] of the state after the operation.
    pub state: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.partitions {
            let name = if p.label.is_empty() { format!("partition {}", p.partition) } else { p.label.clone() };
            writeln!(
                f,
                "{name}: {} of {} operations linearized; operation {} could not be placed (candidates {:?}); state {:?}",
                p.prefix.len(),
                p.operations.len(),
                p.blocking,
                p.candidates,
                p.prefix.last().map_or(&p.initial_state, |l| &l.state),
            )?;
        }
        Ok(())
    }
}

/// Checks whether `history` is linearizable with respect to `model`.
///
/// `step_budget` bounds the number of search steps summed over all parts (a step is one visit of
/// an event by the search), so the answer does not depend on machine speed: parts are checked
/// smallest first, and once the budget is spent the remaining ones are left undecided. The result
/// is [`CheckResult::Illegal`] if any checked part is illegal, else [`CheckResult::Unknown`] if any
/// part was left undecided, else [`CheckResult::Ok`]. A linearizable history without much
/// concurrency needs about one step per operation, so a budget of a few hundred times the
/// history's length is generous.
///
/// Panics if an operation returns before it was called, or if a part holds an index out of range.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    step_budget: u64,
) -> CheckResult {
    check::check(model, history, step_budget)
}
