//! Shorthands for writing KV histories by hand, and a generator of random linearizable ones.
#![allow(dead_code)]

use linearizability::kv::{KvInput, KvModel, KvOp, KvOutput};
use linearizability::{Model, Operation};

pub type Op = Operation<KvInput, KvOutput>;

pub fn get(client: u64, key: &str, call: u64, ret: u64, value: &str) -> Op {
    Operation { client, input: KvInput::get(key), call, output: Some(KvOutput::new(value)), return_time: Some(ret) }
}

pub fn put(client: u64, key: &str, value: &str, call: u64, ret: u64) -> Op {
    Operation { client, input: KvInput::put(key, value), call, output: Some(KvOutput::default()), return_time: Some(ret) }
}

pub fn append(client: u64, key: &str, value: &str, call: u64, ret: u64) -> Op {
    Operation { client, input: KvInput::append(key, value), call, output: Some(KvOutput::default()), return_time: Some(ret) }
}

/// An operation whose client never learned the outcome (e.g. it timed out).
pub fn unknown(client: u64, input: KvInput, call: u64) -> Op {
    Operation { client, input, call, output: None, return_time: None }
}

/// xorshift64*: a tiny deterministic generator, so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A linearizable history by construction: each client issues `per_client` operations one after
/// the other on random keys, with random durations and gaps (a gap of 0 makes a call coincide
/// with the previous return, exercising equal timestamps). Every operation takes effect at a
/// random instant inside its interval; Get outputs are computed by applying the operations in
/// the order of those instants. With `unknown_percent`, some Puts and Appends time out: they take
/// effect at a random instant after their call, or never.
pub fn random_history(seed: u64, clients: u64, per_client: u64, keys: u64, unknown_percent: u64) -> Vec<Op> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut ops = Vec::new();
    let mut effect: Vec<Option<u64>> = Vec::new();
    for client in 0..clients {
        let mut t = rng.below(10);
        for i in 0..per_client {
            let key = format!("k{}", rng.below(keys));
            let dur = 1 + rng.below(20);
            let input = match rng.below(100) {
                0..=44 => KvInput::get(key),
                45..=89 => KvInput::put(key, format!("{client}.{i}")),
                _ => KvInput::append(key, format!("+{client}.{i}")),
            };
            if input.op != KvOp::Get && rng.below(100) < unknown_percent {
                let at = if rng.below(2) == 0 { Some(t + rng.below(200)) } else { None };
                ops.push(unknown(client, input, t));
                effect.push(at);
            } else {
                effect.push(Some(t + rng.below(dur + 1)));
                ops.push(Operation { client, input, call: t, output: Some(KvOutput::default()), return_time: Some(t + dur) });
            }
            t += dur + rng.below(5);
        }
    }
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| effect[i].is_some()).collect();
    // Equal instants lie in both intervals, so any order among them is valid.
    order.sort_by_key(|&i| (effect[i], i));
    let mut state: std::collections::HashMap<String, String> = Default::default();
    for i in order {
        let s = state.entry(ops[i].input.key.clone()).or_default();
        if ops[i].input.op == KvOp::Get {
            ops[i].output = Some(KvOutput::new(s.clone()));
        } else {
            *s = KvModel.step(s, &ops[i].input, None).unwrap();
        }
    }
    ops
}
