//! The search: Wing & Gong's depth-first search over a linked list of events, with Lowe's cache.
//!
//! Layout of the event list. Node ids are `u32` indices into `next`/`prev`: `HEAD` and `TAIL` are
//! sentinels (so unlinking never has to test for the list's ends), and local operation `i` owns
//! node `2 + 2i` (its call) and `3 + 2i` (its return). An operation with an unknown outcome has no
//! return node in the list: nothing forces it to take effect, so it may be linearized anywhere
//! after its call, or never. Hence the search succeeds as soon as it walks off the end of the list
//! without meeting a return: every remaining event is then the call of such an operation.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::{CheckResult, Failure, Linearized, Model, Operation, PartitionFailure};

const HEAD: u32 = 0;
const TAIL: u32 = 1;

fn call_node(op: u32) -> u32 {
    2 + 2 * op
}
fn return_node(op: u32) -> u32 {
    3 + 2 * op
}
fn is_call(node: u32) -> bool {
    node & 1 == 0
}
fn op_of(node: u32) -> u32 {
    (node - 2) / 2
}

/// Checks every part of the history against one shared budget (see [`crate::check`]).
pub(crate) fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    step_budget: u64,
) -> CheckResult {
    let parts = model.partition(history);
    // Smallest parts first: with a budget shared by all parts, this decides as many parts as
    // possible before a big hard one can swallow the rest; ties keep the model's order, so the
    // result stays deterministic.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&p| parts[p].len());

    let mut remaining = step_budget;
    let mut failures = Vec::new();
    let mut undecided = false;
    for p in order {
        if parts[p].is_empty() {
            continue;
        }
        let mut search = Search::new(model, history, &parts[p]);
        match search.run(&mut remaining) {
            Outcome::Linearizable => {}
            Outcome::Illegal(prefix) => {
                failures.push(search.explain(p, &prefix));
            }
            Outcome::Exhausted => {
                // Nothing is left to decide the remaining parts with.
                undecided = true;
                break;
            }
        }
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f: &PartitionFailure| f.partition);
        CheckResult::Illegal(Failure { partitions: failures })
    } else if undecided {
        CheckResult::Unknown
    } else {
        CheckResult::Ok
    }
}

enum Outcome {
    Linearizable,
    /// The longest linearizable prefix found, as local operation indices.
    Illegal(Vec<u32>),
    Exhausted,
}

/// The search state for one part of the history.
struct Search<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    /// Local operation index -> index into `history`.
    ops: &'a [usize],
    /// Event nodes in time order (kept to explain a failure after the search).
    events: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, history: &'a [Operation<M::Input, M::Output>], ops: &'a [usize]) -> Self {
        assert!(ops.len() < (u32::MAX as usize - 3) / 2, "too many operations in one part");
        let mut events = Vec::with_capacity(2 * ops.len());
        for (i, &g) in ops.iter().enumerate() {
            let op = &history[g];
            events.push(call_node(i as u32));
            if let Some(ret) = op.return_time {
                assert!(ret >= op.call, "operation {g} returns at {ret}, before its call at {}", op.call);
                events.push(return_node(i as u32));
            }
        }
        // By time; at equal times calls before returns, so that operations touching at an instant
        // overlap (either order is allowed). The sort is stable, so the rest is deterministic.
        let time = |node: u32| {
            let op = &history[ops[op_of(node) as usize]];
            if is_call(node) {
                (op.call, 0u8)
            } else {
                (op.return_time.unwrap(), 1u8)
            }
        };
        events.sort_by_key(|&n| time(n));

        let mut next = vec![TAIL; 2 * ops.len() + 2];
        let mut prev = vec![HEAD; 2 * ops.len() + 2];
        let mut last = HEAD;
        for &n in &events {
            next[last as usize] = n;
            prev[n as usize] = last;
            last = n;
        }
        next[last as usize] = TAIL;
        prev[TAIL as usize] = last;
        Search { model, history, ops, events, next, prev }
    }

    fn has_return(&self, op: u32) -> bool {
        self.history[self.ops[op as usize]].return_time.is_some()
    }

    fn unlink(&mut self, n: u32) {
        let (p, x) = (self.prev[n as usize], self.next[n as usize]);
        self.next[p as usize] = x;
        self.prev[x as usize] = p;
    }

    /// Undoes `unlink(n)`; valid because `n` keeps its own links and removals are undone in
    /// reverse order (dancing links).
    fn relink(&mut self, n: u32) {
        let (p, x) = (self.prev[n as usize], self.next[n as usize]);
        self.next[p as usize] = n;
        self.prev[x as usize] = n;
    }

    fn lift(&mut self, op: u32) {
        self.unlink(call_node(op));
        if self.has_return(op) {
            self.unlink(return_node(op));
        }
    }

    fn unlift(&mut self, op: u32) {
        if self.has_return(op) {
            self.relink(return_node(op));
        }
        self.relink(call_node(op));
    }

    /// The depth-first search, iterative with an explicit stack so that parts of tens of
    /// thousands of operations cannot overflow the thread's stack.
    fn run(&mut self, budget: &mut u64) -> Outcome {
        let n = self.ops.len();
        let mut linearized = vec![0u64; n.div_ceil(64)];
        // Zobrist hash of `linearized`, updated per bit, so that a cache probe does not rehash
        // the whole bitset.
        let mut set_hash = 0u64;
        let mut cache: Cache<M::State> = Cache::default();
        let mut state = self.model.init();
        // Operations linearized so far, each with the state before it (to restore on backtrack)
        // and whether it was read-only (`Model::is_read_only`): no other choice is tried in its
        // place, so backtracking goes on past it.
        let mut stack: Vec<(u32, M::State, bool)> = Vec::new();
        // Longest prefix seen at a dead end; `clean` = how much of it still equals the bottom of
        // `stack` (the stack's lowest height since the copy), so a new record copies only the
        // part that changed and recording stays linear overall.
        let mut best: Vec<u32> = Vec::new();
        let mut best_found = false;
        let mut clean = 0usize;

        let mut entry = self.next[HEAD as usize];
        loop {
            if entry == TAIL {
                return Outcome::Linearizable;
            }
            if *budget == 0 {
                return Outcome::Exhausted;
            }
            *budget -= 1;

            if is_call(entry) {
                let op = op_of(entry);
                let o = &self.history[self.ops[op as usize]];
                if let Some(new_state) = self.model.step(&state, &o.input, o.output.as_ref()) {
                    let read_only = self.model.is_read_only(&o.input, o.output.as_ref());
                    set_bit(&mut linearized, op);
                    set_hash ^= zobrist(op);
                    if cache.insert(set_hash, &linearized, &new_state) {
                        // A configuration never seen before: go deeper, from the head again.
                        stack.push((op, std::mem::replace(&mut state, new_state), read_only));
                        self.lift(op);
                        entry = self.next[HEAD as usize];
                        continue;
                    }
                    // Seen before (and so already proven a dead end): skip it.
                    clear_bit(&mut linearized, op);
                    set_hash ^= zobrist(op);
                }
                entry = self.next[entry as usize];
            } else {
                // A return: its operation should already be linearized, so this branch is dead.
                if !best_found || stack.len() > best.len() {
                    best.truncate(clean);
                    best.extend(stack[clean..].iter().map(|(op, _, _)| *op));
                    clean = stack.len();
                    best_found = true;
                }
                // Undo the last choice, and the read-only operations lifted after it (each was
                // the only thing to try where it stood).
                let op = loop {
                    let Some((op, before, read_only)) = stack.pop() else {
                        return Outcome::Illegal(best);
                    };
                    clean = clean.min(stack.len());
                    state = before;
                    clear_bit(&mut linearized, op);
                    set_hash ^= zobrist(op);
                    self.unlift(op);
                    if !read_only {
                        break op;
                    }
                };
                // Try the candidates after the one just undone.
                entry = self.next[call_node(op) as usize];
            }
        }
    }

    /// Builds the report of a failing part from the longest prefix. The list's shape at that
    /// point is a function of the prefix (every event except the prefix's, in time order), so it
    /// is rebuilt here instead of being copied at every new record during the search.
    fn explain(&self, partition: usize, prefix: &[u32]) -> PartitionFailure {
        let mut in_prefix = vec![false; self.ops.len()];
        let mut state = self.model.init();
        let initial_state = self.model.describe_state(&state);
        let mut steps = Vec::with_capacity(prefix.len());
        for &op in prefix {
            in_prefix[op as usize] = true;
            let g = self.ops[op as usize];
            let o = &self.history[g];
            // The search accepted this very step, and models are deterministic.
            state = self.model.step(&state, &o.input, o.output.as_ref()).expect("Model::step is not deterministic");
            steps.push(Linearized { op: g, state: self.model.describe_state(&state) });
        }
        let mut candidates = Vec::new();
        let mut blocking = None;
        for &node in &self.events {
            let op = op_of(node);
            if in_prefix[op as usize] {
                continue;
            }
            if is_call(node) {
                candidates.push(self.ops[op as usize]);
            } else {
                blocking = Some(self.ops[op as usize]);
                break;
            }
        }
        PartitionFailure {
            partition,
            label: self.model.describe_partition(self.history, self.ops),
            operations: self.ops.to_vec(),
            initial_state,
            prefix: steps,
            // A record is only ever taken at a return event, which is the first remaining one.
            blocking: blocking.expect("a failing search stops at a return event"),
            candidates,
        }
    }
}

fn set_bit(bits: &mut [u64], i: u32) {
    bits[(i / 64) as usize] |= 1 << (i % 64);
}

fn clear_bit(bits: &mut [u64], i: u32) {
    bits[(i / 64) as usize] &= !(1 << (i % 64));
}

/// A fixed pseudo-random key per operation (splitmix64), so the hash of a set is the xor of its
/// members' keys and is deterministic from run to run.
fn zobrist(i: u32) -> u64 {
    let mut z = (i as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The set of (linearized operations, state) configurations already explored.
///
/// Semantically a `HashSet<(bitset, State)>`, stored as buckets keyed by a precomputed hash so a
/// probe borrows the current bitset instead of cloning it: only configurations that are new (and
/// so will be explored) are copied.
struct Cache<S> {
    buckets: HashMap<u64, Vec<Configuration<S>>>,
}

/// A linearized set (as bitset words) and the state it led to.
type Configuration<S> = (Box<[u64]>, S);

impl<S> Default for Cache<S> {
    fn default() -> Self {
        Cache { buckets: HashMap::new() }
    }
}

impl<S: Clone + Eq + Hash> Cache<S> {
    /// Inserts the configuration; false if it was already there.
    fn insert(&mut self, set_hash: u64, bits: &[u64], state: &S) -> bool {
        let mut h = DefaultHasher::new();
        state.hash(&mut h);
        let bucket = self.buckets.entry(set_hash ^ h.finish()).or_default();
        if bucket.iter().any(|(b, s)| **b == *bits && s == state) {
            return false;
        }
        bucket.push((bits.into(), state.clone()));
        true
    }
}
