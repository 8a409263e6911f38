//! Large generated histories: linearizable by construction, and corrupted copies of them.
//!
//! The budgets here are a few steps per operation, so "passes quickly" is checked
//! deterministically: a search that wandered would run out and answer Unknown.

mod common;

use common::*;
use linearizability::kv::{KvModel, KvOp, KvOutput};
use linearizability::{check, CheckResult};

#[test]
fn large_random_linearizable_history_passes() {
    for seed in 1..=3 {
        let h = random_history(seed, 5, 2000, 3, 0);
        let start = std::time::Instant::now();
        let r = check(&KvModel, &h, 20 * h.len() as u64);
        assert_eq!(r, CheckResult::Ok, "seed {seed}");
        eprintln!("seed {seed}: {} ops on 3 keys checked in {:?}", h.len(), start.elapsed());
    }
}

#[test]
fn large_random_history_with_unknown_outcomes_passes() {
    let h = random_history(7, 5, 2000, 3, 3);
    assert!(h.iter().any(|o| o.return_time.is_none()));
    assert_eq!(check(&KvModel, &h, 50 * h.len() as u64), CheckResult::Ok);
}

#[test]
fn twenty_thousand_operations_on_one_key_pass() {
    let h = random_history(11, 5, 4000, 1, 0);
    let start = std::time::Instant::now();
    assert_eq!(check(&KvModel, &h, 20 * h.len() as u64), CheckResult::Ok);
    eprintln!("{} ops on one key checked in {:?}", h.len(), start.elapsed());
}

#[test]
fn corrupted_read_in_large_history_fails() {
    let mut h = random_history(5, 5, 2000, 3, 0);
    let victim = (h.len() / 2..).find(|&i| h[i].input.op == KvOp::Get).unwrap();
    h[victim].output = Some(KvOutput::new("corrupted"));
    let start = std::time::Instant::now();
    match check(&KvModel, &h, 1000 * h.len() as u64) {
        CheckResult::Illegal(f) => {
            assert_eq!(f.partitions.len(), 1);
            let p = &f.partitions[0];
            assert_eq!(p.blocking, victim, "{f}");
            assert!(p.candidates.contains(&victim));
            assert!(p.prefix.len() > 100, "the prefix should reach the corruption: {f}");
        }
        other => panic!("expected illegal, got {other:?}"),
    }
    eprintln!("corrupted history rejected in {:?}", start.elapsed());
}

#[test]
fn stale_read_in_large_history_fails() {
    // Make a read return the value its key had well before: the previous Get's value on that key
    // from much earlier, when a Put has completed in between.
    let mut h = random_history(9, 5, 2000, 3, 0);
    let key_of = |i: usize, h: &[Op]| h[i].input.key.clone();
    let mut done = false;
    for i in h.len() / 2..h.len() {
        if h[i].input.op != KvOp::Get {
            continue;
        }
        let k = key_of(i, &h);
        // An earlier Get of the same key, by the same client, separated by a completed Put whose
        // value differs, all in real time.
        let same_client: Vec<usize> = (0..i).filter(|&j| h[j].client == h[i].client && key_of(j, &h) == k).collect();
        let Some(&old) = same_client.iter().rev().find(|&&j| h[j].input.op == KvOp::Get) else { continue };
        let old_value = h[old].output.clone().unwrap().value;
        let between = (0..h.len()).any(|j| {
            h[j].input.op == KvOp::Put
                && key_of(j, &h) == k
                && h[j].call > h[old].return_time.unwrap()
                && h[j].return_time.unwrap() < h[i].call
                && h[j].input.value != old_value
        });
        if between && h[i].output.as_ref().unwrap().value != old_value {
            h[i].output = Some(KvOutput::new(old_value));
            done = true;
            break;
        }
    }
    assert!(done, "found no read to make stale");
    assert!(matches!(check(&KvModel, &h, 1000 * h.len() as u64), CheckResult::Illegal(_)));
}
