//! `Model::is_read_only` lets the search linearize reads (and refused versioned Puts) eagerly. It
//! must never change a verdict: on random small histories — overlapping at random, with values
//! and versions drawn from a small set so that many are illegal, some outcomes unknown — the
//! checker with it and without it must agree. The seed of a disagreement is printed.

use linearizability::kv::{KvInput, KvModel, KvOutput};
use linearizability::versioned::{VersionedInput, VersionedModel, VersionedOutput};
use linearizability::{check, CheckResult, Model, Operation};

/// A model as it is, but claiming no operation read-only: the full search.
struct Full<M>(M);

impl<M: Model> Model for Full<M> {
    type State = M::State;
    type Input = M::Input;
    type Output = M::Output;
    fn init(&self) -> M::State {
        self.0.init()
    }
    fn step(&self, state: &M::State, input: &M::Input, output: Option<&M::Output>) -> Option<M::State> {
        self.0.step(state, input, output)
    }
    fn describe_operation(&self, input: &M::Input, output: Option<&M::Output>) -> String {
        self.0.describe_operation(input, output)
    }
    fn describe_state(&self, state: &M::State) -> String {
        self.0.describe_state(state)
    }
}

/// xorshift64*: the test's only randomness, from the seed it prints.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Call and return times for `n` operations by 3 clients, each client's one after another.
fn times(rng: &mut Rng, n: usize) -> Vec<(u64, u64, u64)> {
    let mut free = [0u64; 3];
    (0..n)
        .map(|_| {
            let client = rng.below(3) as usize;
            let call = free[client] + rng.below(20);
            let ret = call + 1 + rng.below(40);
            free[client] = ret + 1;
            (client as u64, call, ret)
        })
        .collect()
}

fn agree<M: Model + Copy>(model: M, history: &[Operation<M::Input, M::Output>], seed: u64) -> bool {
    let fast = check(&model, history, 5_000_000);
    let full = check(&Full(model), history, 50_000_000);
    assert!(fast != CheckResult::Unknown && full != CheckResult::Unknown, "seed {seed}: a search ran out");
    assert_eq!(matches!(fast, CheckResult::Ok), matches!(full, CheckResult::Ok), "seed {seed}: the read-only shortcut changed the verdict on {history:#?}");
    matches!(full, CheckResult::Ok)
}

#[test]
fn eager_reads_never_change_a_kv_verdict() {
    let (mut legal, mut illegal) = (0, 0);
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let n = 2 + rng.below(9) as usize;
        let history: Vec<_> = times(&mut rng, n)
            .into_iter()
            .map(|(client, call, ret)| {
                let value = ["", "a", "b"][rng.below(3) as usize];
                let (input, output) = match rng.below(3) {
                    0 => (KvInput::get("k"), Some(KvOutput::new(["", "a", "b", "ab", "ba"][rng.below(5) as usize]))),
                    1 => (KvInput::put("k", value), Some(KvOutput::default())),
                    _ => (KvInput::append("k", value), Some(KvOutput::default())),
                };
                let unknown = input.op != linearizability::kv::KvOp::Get && rng.below(8) == 0;
                Operation { client, input, call, output: if unknown { None } else { output }, return_time: if unknown { None } else { Some(ret) } }
            })
            .collect();
        if agree(KvModel, &history, seed) {
            legal += 1;
        } else {
            illegal += 1;
        }
    }
    assert!(legal > 150 && illegal > 150, "both verdicts are exercised: {legal} legal, {illegal} illegal");
}

#[test]
fn eager_reads_and_refused_puts_never_change_a_versioned_verdict() {
    let (mut legal, mut illegal) = (0, 0);
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1);
        let n = 2 + rng.below(9) as usize;
        let history: Vec<_> = times(&mut rng, n)
            .into_iter()
            .map(|(client, call, ret)| {
                let version = rng.below(3);
                let value = ["a", "b"][rng.below(2) as usize].to_string();
                let (input, output) = if rng.below(3) == 0 {
                    (VersionedInput::Get { key: "k".into() }, VersionedOutput::Value { value: ["", "a", "b"][rng.below(3) as usize].into(), version: rng.below(3) })
                } else {
                    let output = [VersionedOutput::Ok, VersionedOutput::ErrVersion, VersionedOutput::ErrMaybe][rng.below(3) as usize].clone();
                    (VersionedInput::Put { key: "k".into(), value, version }, output)
                };
                Operation { client, input, call, output: Some(output), return_time: Some(ret) }
            })
            .collect();
        if agree(VersionedModel, &history, seed) {
            legal += 1;
        } else {
            illegal += 1;
        }
    }
    assert!(legal > 150 && illegal > 150, "both verdicts are exercised: {legal} legal, {illegal} illegal");
}
