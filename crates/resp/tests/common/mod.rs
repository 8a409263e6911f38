//! Shared by the integration tests: a seeded PRNG and random values.
#![allow(dead_code)] // each test binary uses a different part

use resp::Value;

/// SplitMix64: tiny, seedable, good enough to explore inputs; failures reproduce from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), up to a negligible bias.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Text a simple string or error can carry: no CR or LF, some non-ASCII.
pub fn text(rng: &mut Rng) -> String {
    let len = rng.below(12);
    (0..len)
        .map(|_| *rng.pick(&['a', 'Z', '0', ' ', '-', ':', '$', '*', '"', 'é', '✓']))
        .collect()
}

/// A random value nested at most `depth` arrays deep.
pub fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Simple(text(rng)),
        1 => Value::Error(text(rng)),
        2 => Value::Integer(match rng.below(4) {
            0 => *rng.pick(&[0, -1, 1, i64::MIN, i64::MAX]),
            1 => rng.below(1000) as i64 - 500,
            _ => rng.next_u64() as i64,
        }),
        3 => {
            // Bias towards bytes that mean something to the protocol, CRLF included.
            let len = rng.below(16);
            Value::bulk(
                (0..len)
                    .map(|_| *rng.pick(b"\r\n$*+-:0a\0\xff"))
                    .collect::<Vec<u8>>(),
            )
        }
        4 => {
            if rng.below(2) == 0 {
                Value::nil()
            } else {
                Value::Array(None)
            }
        }
        _ => {
            let len = rng.below(5);
            Value::Array(Some((0..len).map(|_| value(rng, depth - 1)).collect()))
        }
    }
}

/// A sample of every kind of value, with edge cases.
pub fn samples() -> Vec<Value> {
    vec![
        Value::ok(),
        Value::Simple(String::new()),
        Value::Simple("héllo wörld".into()),
        Value::error("ERR unknown command 'FOO'"),
        Value::Error(String::new()),
        Value::Integer(0),
        Value::Integer(-1),
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::bulk(&b"bar"[..]),
        Value::bulk(Vec::new()),
        Value::bulk(&b"\r\n$-1\r\n\0\xff"[..]),
        Value::nil(),
        Value::Array(None),
        Value::Array(Some(vec![])),
        Value::Array(Some(vec![Value::bulk(&b"GET"[..]), Value::bulk(&b"k"[..])])),
        Value::Array(Some(vec![
            Value::Integer(1),
            Value::Array(Some(vec![
                Value::nil(),
                Value::Array(Some(vec![])),
                Value::ok(),
            ])),
            Value::Array(None),
        ])),
    ]
}
