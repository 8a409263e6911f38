//! Hand-made KV histories with known verdicts.

mod common;

use common::*;
use linearizability::kv::{KvInput, KvModel};
use linearizability::{check, CheckResult, Failure};

const BUDGET: u64 = 1_000_000;

fn verdict(history: &[Op]) -> CheckResult {
    check(&KvModel, history, BUDGET)
}

fn assert_ok(history: &[Op]) {
    let r = verdict(history);
    assert_eq!(r, CheckResult::Ok, "expected linearizable: {history:#?}");
}

fn assert_illegal(history: &[Op]) -> Failure {
    match verdict(history) {
        CheckResult::Illegal(f) => f,
        other => panic!("expected illegal, got {other:?} for {history:#?}"),
    }
}

#[test]
fn empty_history_passes() {
    assert_ok(&[]);
    assert_eq!(check(&KvModel, &[], 0), CheckResult::Ok);
}

#[test]
fn sequential_history_passes() {
    assert_ok(&[
        get(0, "x", 0, 1, ""),
        put(0, "x", "a", 2, 3),
        get(1, "x", 4, 5, "a"),
        append(1, "x", "b", 6, 7),
        get(0, "x", 8, 9, "ab"),
        put(1, "y", "z", 10, 11),
        get(0, "y", 12, 13, "z"),
        get(0, "x", 14, 15, "ab"),
    ]);
}

#[test]
fn concurrent_history_passes() {
    // Two overlapping puts: reads during and after may see them in either order, as long as all
    // reads after both agree on the last one.
    assert_ok(&[
        put(0, "x", "1", 0, 100),
        put(1, "x", "2", 10, 90),
        get(2, "x", 20, 30, "2"),
        get(2, "x", 40, 50, "1"),
        get(3, "x", 110, 120, "1"),
    ]);
    // Concurrent appends in either order.
    assert_ok(&[
        append(0, "x", "a", 0, 10),
        append(1, "x", "b", 0, 10),
        get(2, "x", 5, 20, "ba"),
        get(3, "x", 21, 22, "ba"),
    ]);
}

#[test]
fn concurrent_reads_must_agree_with_one_order() {
    // After both puts complete, one reader sees 1 then the other sees 2 then 1 again: no single
    // order of the puts explains that.
    let f = assert_illegal(&[
        put(0, "x", "1", 0, 10),
        put(1, "x", "2", 0, 10),
        get(2, "x", 20, 30, "1"),
        get(2, "x", 40, 50, "2"),
    ]);
    assert_eq!(f.partitions.len(), 1);
}

#[test]
fn stale_read_fails() {
    let history = [
        put(0, "x", "1", 0, 10),
        put(0, "x", "2", 20, 30),
        get(1, "x", 40, 50, "1"), // the later Put completed before this Get began
    ];
    let f = assert_illegal(&history);
    let p = &f.partitions[0];
    assert_eq!(p.label, "key \"x\"");
    assert_eq!(p.blocking, 2, "{f}");
    let prefix: Vec<usize> = p.prefix.iter().map(|l| l.op).collect();
    assert_eq!(prefix, vec![0, 1]);
    assert_eq!(p.prefix[1].state, "\"2\"");
    assert_eq!(p.candidates, vec![2]);
}

#[test]
fn lost_write_fails() {
    assert_illegal(&[
        append(0, "x", "a", 0, 10),
        append(1, "x", "b", 5, 15),
        get(2, "x", 20, 30, "a"), // "b" was acknowledged, then lost
    ]);
}

#[test]
fn duplicated_append_fails() {
    assert_illegal(&[
        append(0, "x", "a", 0, 10),
        append(1, "x", "b", 0, 10),
        get(2, "x", 20, 30, "aba"), // "a" applied twice (e.g. a retried request not deduplicated)
    ]);
}

#[test]
fn wrong_return_value_fails() {
    let f = assert_illegal(&[put(0, "x", "1", 0, 10), get(1, "x", 5, 15, "never written")]);
    assert_eq!(f.partitions[0].blocking, 1);
}

#[test]
fn unknown_outcome_put_observed_passes() {
    assert_ok(&[
        put(0, "x", "1", 0, 10),
        unknown(1, KvInput::put("x", "2"), 5),
        get(2, "x", 100, 110, "2"),
        get(2, "x", 120, 130, "2"),
    ]);
}

#[test]
fn unknown_outcome_put_never_observed_passes() {
    assert_ok(&[
        put(0, "x", "1", 0, 10),
        unknown(1, KvInput::put("x", "2"), 5),
        get(2, "x", 100, 110, "1"),
        get(2, "x", 120, 130, "1"),
    ]);
    // Unknown Gets are always fine.
    assert_ok(&[put(0, "x", "1", 0, 10), unknown(1, KvInput::get("x"), 5), get(2, "x", 100, 110, "1")]);
}

#[test]
fn unknown_outcome_put_cannot_be_undone() {
    // Once observed, a write cannot disappear, unknown outcome or not.
    assert_illegal(&[
        put(0, "x", "1", 0, 10),
        unknown(1, KvInput::put("x", "2"), 5),
        get(2, "x", 100, 110, "2"),
        get(2, "x", 120, 130, "1"),
    ]);
    // Nor can it take effect before it was called.
    assert_illegal(&[put(0, "x", "1", 0, 10), get(2, "x", 20, 30, "2"), unknown(1, KvInput::put("x", "2"), 40)]);
}

#[test]
fn equal_timestamps_overlap() {
    // The Get is called at the instant the Put returns: they overlap, so the Get may come first.
    assert_ok(&[put(0, "x", "1", 0, 10), get(1, "x", 10, 20, "")]);
    // And it may come after.
    assert_ok(&[put(0, "x", "1", 0, 10), get(1, "x", 10, 20, "1")]);
    // One tick later they no longer overlap.
    assert_illegal(&[put(0, "x", "1", 0, 10), get(1, "x", 11, 20, "")]);
    // Zero-length operations at one instant overlap each other too.
    assert_ok(&[get(1, "x", 5, 5, "1"), put(0, "x", "1", 5, 5)]);
}

#[test]
fn keys_are_checked_independently() {
    let f = assert_illegal(&[
        put(0, "x", "1", 0, 10),
        put(0, "y", "1", 0, 10),
        get(1, "y", 20, 30, "1"),
        get(1, "x", 20, 30, "stale"),
        get(1, "z", 20, 30, "also bad"),
    ]);
    let labels: Vec<&str> = f.partitions.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["key \"x\"", "key \"z\""]);
    assert_eq!(f.partitions[1].prefix.len(), 0);
    assert_eq!(f.partitions[1].initial_state, "\"\"");
}

/// Many concurrent appends of distinct values, then a read no order can produce: the search must
/// try every order of the appends (the cache cannot help, each order gives a different string).
fn hard_history(appends: u64) -> Vec<Op> {
    let mut h: Vec<Op> = (0..appends).map(|i| append(i, "x", &format!("{i},"), 0, 100)).collect();
    h.push(get(99, "x", 200, 300, "impossible"));
    h
}

#[test]
fn tiny_budget_on_hard_history_is_unknown() {
    assert_eq!(check(&KvModel, &hard_history(12), 1_000), CheckResult::Unknown);
    assert_eq!(check(&KvModel, &hard_history(12), 1_000), CheckResult::Unknown, "deterministic");
    // The same shape, small enough, is decided.
    assert!(matches!(check(&KvModel, &hard_history(5), 1_000_000), CheckResult::Illegal(_)));
    // A budget of zero decides nothing.
    assert_eq!(check(&KvModel, &[put(0, "x", "1", 0, 1)], 0), CheckResult::Unknown);
}

#[test]
fn illegal_wins_over_unknown() {
    // Key "x" is too hard for the budget, key "y" is small and wrong: the verdict is Illegal.
    let mut h = hard_history(12);
    h.push(put(0, "y", "1", 0, 10));
    h.push(get(1, "y", 20, 30, "0"));
    match check(&KvModel, &h, 1_000) {
        CheckResult::Illegal(f) => assert_eq!(f.partitions[0].label, "key \"y\""),
        other => panic!("expected illegal, got {other:?}"),
    }
}
