//! The model of the MIT 6.5840 key/value service: `Get`, `Put` and `Append` on string keys.
//!
//! Each key is an independent register, so histories are partitioned by key and the state of a
//! part is just that key's string (a missing key reads as `""`, as in the labs).

use crate::{Model, Operation};

/// Which operation a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Read the key's value.
    Get,
    /// Replace the key's value.
    Put,
    /// Append to the key's value.
    Append,
}

/// A client's request. `value` is ignored for `Get`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvInput {
    pub op: KvOp,
    pub key: String,
    pub value: String,
}

impl KvInput {
    pub fn get(key: impl Into<String>) -> Self {
        KvInput { op: KvOp::Get, key: key.into(), value: String::new() }
    }
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        KvInput { op: KvOp::Put, key: key.into(), value: value.into() }
    }
    pub fn append(key: impl Into<String>, value: impl Into<String>) -> Self {
        KvInput { op: KvOp::Append, key: key.into(), value: value.into() }
    }
}

/// What the service answered: the value read by a `Get` (ignored for `Put` and `Append`, whose
/// answers carry no information the model could check).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvOutput {
    pub value: String,
}

impl KvOutput {
    pub fn new(value: impl Into<String>) -> Self {
        KvOutput { value: value.into() }
    }
}

/// The sequential specification of the service.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvModel;

/// Longest string shown whole in a description; longer ones are shortened in the middle so a
/// state grown by thousands of appends stays readable.
const SHOWN: usize = 48;

fn show(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= SHOWN {
        return format!("{s:?}");
    }
    let head: String = chars[..SHOWN / 2].iter().collect();
    let tail: String = chars[chars.len() - SHOWN / 2..].iter().collect();
    format!("{head:?}…({} chars)…{tail:?}", chars.len())
}

impl Model for KvModel {
    /// The value of the part's one key.
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, input: &KvInput, output: Option<&KvOutput>) -> Option<String> {
        match input.op {
            // A Get changes nothing; its answer must be the current value, unless unknown.
            KvOp::Get => match output {
                Some(out) if out.value != *state => None,
                _ => Some(state.clone()),
            },
            KvOp::Put => Some(input.value.clone()),
            KvOp::Append => Some(format!("{state}{}", input.value)),
        }
    }

    /// A Get changes nothing.
    fn is_read_only(&self, input: &KvInput, _output: Option<&KvOutput>) -> bool {
        input.op == KvOp::Get
    }

    /// One part per key, in order of first appearance.
    fn partition(&self, history: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        crate::partition_by_key(history, |input| input.key.as_str())
    }

    fn describe_partition(&self, history: &[Operation<KvInput, KvOutput>], part: &[usize]) -> String {
        part.first().map_or_else(String::new, |&i| format!("key {}", show(&history[i].input.key)))
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        match (input.op, output) {
            (KvOp::Get, Some(out)) => format!("get({}) → {}", show(&input.key), show(&out.value)),
            (KvOp::Get, None) => format!("get({}) → ?", show(&input.key)),
            (KvOp::Put, _) => format!("put({}, {})", show(&input.key), show(&input.value)),
            (KvOp::Append, _) => format!("append({}, {})", show(&input.key), show(&input.value)),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        show(state)
    }
}
