//! The model of the 2025 lab's versioned key/value service (raftkv's VGET and VSET): each key
//! holds a value and a version, ("", 0) before its first write; a Put names the version it
//! expects and takes effect only at that version, raising it by one.
//!
//! Stricter than the lab's model, which ignores what a Get says of the version: here a Get must
//! return the value *and* the version of the state it is placed at.


use crate::{Model, Operation};

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VersionedInput {
    Get { key: String },
    /// Put `value` if the key is at `version`.
    Put { key: String, value: String, version: u64 },
}

impl VersionedInput {
    fn key(&self) -> &str {
        match self {
            VersionedInput::Get { key } | VersionedInput::Put { key, .. } => key,
        }
    }
}

/// What the service answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VersionedOutput {
    /// A Get: the value and version read (("", 0) for a missing key).
    Value { value: String, version: u64 },
    /// A Put that took effect.
    Ok,
    /// A Put refused because the key was at another version: it did not take effect.
    ErrVersion,
    /// A Put whose outcome the clerk does not know (a resend was refused): either reading holds.
    ErrMaybe,
}

/// The sequential specification, one key at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct VersionedModel;

impl Model for VersionedModel {
    /// (value, version) of the part's one key.
    type State = (String, u64);
    type Input = VersionedInput;
    type Output = VersionedOutput;

    fn init(&self) -> (String, u64) {
        (String::new(), 0)
    }

    fn step(&self, state: &(String, u64), input: &VersionedInput, output: Option<&VersionedOutput>) -> Option<(String, u64)> {
        match (input, output) {
            (VersionedInput::Get { .. }, None) => Some(state.clone()),
            (VersionedInput::Get { .. }, Some(VersionedOutput::Value { value, version })) => {
                (*value == state.0 && *version == state.1).then(|| state.clone())
            }
            (VersionedInput::Get { .. }, Some(_)) => None,
            (VersionedInput::Put { value, version, .. }, output) => {
                let applies = *version == state.1;
                match output {
                    Some(VersionedOutput::Ok) if applies => Some((value.clone(), version + 1)),
                    Some(VersionedOutput::ErrVersion) if !applies => Some(state.clone()),
                    // Unknown: placed where it applies, it applies; elsewhere it changes nothing.
                    None | Some(VersionedOutput::ErrMaybe) => Some(if applies { (value.clone(), version + 1) } else { state.clone() }),
                    Some(_) => None,
                }
            }
        }
    }

    /// A Get, and a Put refused for its version: neither changes the key where it is legal.
    fn is_read_only(&self, input: &VersionedInput, output: Option<&VersionedOutput>) -> bool {
        matches!((input, output), (VersionedInput::Get { .. }, _) | (VersionedInput::Put { .. }, Some(VersionedOutput::ErrVersion)))
    }

    /// One part per key, in order of first appearance.
    fn partition(&self, history: &[Operation<VersionedInput, VersionedOutput>]) -> Vec<Vec<usize>> {
        crate::partition_by_key(history, VersionedInput::key)
    }

    fn describe_partition(&self, history: &[Operation<VersionedInput, VersionedOutput>], part: &[usize]) -> String {
        part.first().map_or_else(String::new, |&i| format!("key {:?}", history[i].input.key()))
    }

    fn describe_operation(&self, input: &VersionedInput, output: Option<&VersionedOutput>) -> String {
        let output = match output {
            None => "?".to_string(),
            Some(VersionedOutput::Value { value, version }) => format!("({value:?}, {version})"),
            Some(other) => format!("{other:?}"),
        };
        match input {
            VersionedInput::Get { key } => format!("get({key:?}) → {output}"),
            VersionedInput::Put { key, value, version } => format!("put({key:?}, {value:?}, {version}) → {output}"),
        }
    }

    fn describe_state(&self, state: &(String, u64)) -> String {
        format!("({:?}, {})", state.0, state.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, CheckResult};

    fn op(client: u64, input: VersionedInput, output: VersionedOutput, call: u64, ret: u64) -> Operation<VersionedInput, VersionedOutput> {
        Operation { client, input, call, output: Some(output), return_time: Some(ret) }
    }

    fn put(value: &str, version: u64) -> VersionedInput {
        VersionedInput::Put { key: "k".into(), value: value.into(), version }
    }

    fn get() -> VersionedInput {
        VersionedInput::Get { key: "k".into() }
    }

    fn read(value: &str, version: u64) -> VersionedOutput {
        VersionedOutput::Value { value: value.into(), version }
    }

    #[test]
    fn puts_take_effect_only_at_their_version_and_maybe_either_way() {
        let legal = vec![
            op(0, put("a", 0), VersionedOutput::Ok, 0, 10),
            op(1, put("b", 0), VersionedOutput::ErrVersion, 20, 30),
            op(1, put("b", 1), VersionedOutput::ErrMaybe, 40, 50),
            op(0, get(), read("b", 2), 60, 70),
            // A maybe that did not take effect.
            op(1, put("c", 1), VersionedOutput::ErrMaybe, 80, 90),
            op(0, get(), read("b", 2), 100, 110),
        ];
        assert_eq!(check(&VersionedModel, &legal, 10_000), CheckResult::Ok);
        let cases: [(&str, Vec<Operation<VersionedInput, VersionedOutput>>); 4] = [
            ("an ErrVersion for a put that took effect", vec![op(0, put("a", 0), VersionedOutput::ErrVersion, 0, 10), op(0, get(), read("a", 1), 20, 30)]),
            ("an Ok at the wrong version", vec![op(0, put("a", 3), VersionedOutput::Ok, 0, 10)]),
            ("a get with the right value but the wrong version", vec![op(0, put("a", 0), VersionedOutput::Ok, 0, 10), op(0, get(), read("a", 2), 20, 30)]),
            ("a put applied twice", vec![op(0, put("a", 0), VersionedOutput::Ok, 0, 10), op(1, put("a", 0), VersionedOutput::Ok, 20, 30)]),
        ];
        for (why, history) in cases {
            assert!(matches!(check(&VersionedModel, &history, 10_000), CheckResult::Illegal(_)), "{why}");
        }
    }
}
