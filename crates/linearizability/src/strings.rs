//! The model of raftkv's counters, expiring keys and transactions, as the production node's
//! simulation drives them: `GET`, `INCRBY`, `SET key value PX ttl`, and `MULTI` / `APPEND`… /
//! `GET` / `EXEC` on one key.
//!
//! Keys expire by the log's time, which a client never sees: it only knows a window. A key set
//! with a time to live may expire at any moment, but not before `not_before` (the earliest log
//! time its deadline can have, on the history's clock); a read that finds it gone must have been
//! served at a log time no later than its `latest`. The model makes the key expire at the first
//! read that finds it gone — and from then on it is gone: no later read sees the value again
//! until it is set again (a key once read as expired is never seen again).
//!
//! Exact only for the workload it is made for: counters and transaction keys never get a time to
//! live (an INCRBY on an expiring key could not tell whether it expired first).

use crate::{Model, Operation};

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StringsInput {
    /// GET. `latest`: the latest log time, on the history's clock, at which the read can have
    /// been served (its return plus the most any node's clock runs ahead).
    Get { key: String, latest: u64 },
    /// INCRBY.
    IncrBy { key: String, by: i64 },
    /// SET with PX. `not_before`: the earliest its deadline can be, on the history's clock (its
    /// call plus the time to live, less the most a leader's clock runs behind).
    SetExpiring { key: String, value: String, not_before: u64 },
    /// MULTI, APPEND of each value in turn, GET, EXEC: one transaction on one key.
    Transaction { key: String, appends: Vec<String> },
}

impl StringsInput {
    pub fn key(&self) -> &str {
        match self {
            StringsInput::Get { key, .. }
            | StringsInput::IncrBy { key, .. }
            | StringsInput::SetExpiring { key, .. }
            | StringsInput::Transaction { key, .. } => key,
        }
    }
}

/// What the node answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StringsOutput {
    /// GET: the value, or None for a missing (or expired) key.
    Value(Option<String>),
    /// INCRBY: the new value.
    Integer(i64),
    /// SET: OK.
    Done,
    /// EXEC: the length after each APPEND, and what the GET read.
    Exec { lengths: Vec<u64>, value: Option<String> },
}

/// One key's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub value: Option<String>,
    /// Set with a time to live that has not been seen to run out: the earliest its deadline can be.
    pub expires_not_before: Option<u64>,
}

/// The sequential specification, one key per part.
#[derive(Clone, Copy, Debug, Default)]
pub struct StringsModel;

impl Model for StringsModel {
    type State = KeyState;
    type Input = StringsInput;
    type Output = StringsOutput;

    fn init(&self) -> KeyState {
        KeyState::default()
    }

    fn step(&self, state: &KeyState, input: &StringsInput, output: Option<&StringsOutput>) -> Option<KeyState> {
        match input {
            StringsInput::Get { latest, .. } => match output {
                None => Some(state.clone()),
                Some(StringsOutput::Value(value)) if *value == state.value => Some(state.clone()),
                // Gone: it expired here, which its window must allow.
                Some(StringsOutput::Value(None)) => match state.expires_not_before {
                    Some(not_before) if *latest >= not_before => Some(KeyState::default()),
                    _ => None,
                },
                Some(_) => None,
            },
            StringsInput::IncrBy { by, .. } => {
                let current = match &state.value {
                    None => Some(0),
                    Some(value) => value.parse::<i64>().ok(),
                };
                // Not a number, or an overflow: refused, nothing changes (never in the workload,
                // so only an unknown outcome may take this path).
                let Some(new) = current.and_then(|current| current.checked_add(*by)) else {
                    return output.is_none().then(|| state.clone());
                };
                match output {
                    None => {}
                    Some(StringsOutput::Integer(answered)) if *answered == new => {}
                    Some(_) => return None,
                }
                Some(KeyState { value: Some(new.to_string()), expires_not_before: state.expires_not_before })
            }
            StringsInput::SetExpiring { value, not_before, .. } => match output {
                None | Some(StringsOutput::Done) => Some(KeyState { value: Some(value.clone()), expires_not_before: Some(*not_before) }),
                Some(_) => None,
            },
            StringsInput::Transaction { appends, .. } => {
                let mut value = state.value.clone().unwrap_or_default();
                let mut lengths = Vec::with_capacity(appends.len());
                for append in appends {
                    value.push_str(append);
                    lengths.push(value.len() as u64);
                }
                let value = Some(value);
                match output {
                    None => {}
                    Some(StringsOutput::Exec { lengths: answered, value: read }) if *answered == lengths && *read == value => {}
                    Some(_) => return None,
                }
                Some(KeyState { value, expires_not_before: state.expires_not_before })
            }
        }
    }

    /// A GET that found the value (or whose answer is unknown) changes nothing; one that found
    /// the key gone may have seen it expire.
    fn is_read_only(&self, input: &StringsInput, output: Option<&StringsOutput>) -> bool {
        matches!(input, StringsInput::Get { .. }) && !matches!(output, Some(StringsOutput::Value(None)))
    }

    fn partition(&self, history: &[Operation<StringsInput, StringsOutput>]) -> Vec<Vec<usize>> {
        crate::partition_by_key(history, StringsInput::key)
    }

    fn describe_partition(&self, history: &[Operation<StringsInput, StringsOutput>], part: &[usize]) -> String {
        part.first().map_or_else(String::new, |&i| format!("key {:?}", history[i].input.key()))
    }

    fn describe_operation(&self, input: &StringsInput, output: Option<&StringsOutput>) -> String {
        let answer = output.map_or_else(|| "?".to_string(), |output| format!("{output:?}"));
        match input {
            StringsInput::Get { key, latest } => format!("get({key:?}) served by {latest} → {answer}"),
            StringsInput::IncrBy { key, by } => format!("incrby({key:?}, {by}) → {answer}"),
            StringsInput::SetExpiring { key, value, not_before } => format!("set({key:?}, {value:?}) expiring from {not_before} → {answer}"),
            StringsInput::Transaction { key, appends } => format!("multi(append({key:?}, {appends:?}), get) → {answer}"),
        }
    }

    fn describe_state(&self, state: &KeyState) -> String {
        match state.expires_not_before {
            Some(not_before) => format!("{:?}, may expire from {not_before}", state.value),
            None => format!("{:?}", state.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, CheckResult};

    fn op(client: u64, input: StringsInput, call: u64, output: StringsOutput, return_time: u64) -> Operation<StringsInput, StringsOutput> {
        Operation { client, input, call, output: Some(output), return_time: Some(return_time) }
    }

    fn get(key: &str, latest: u64) -> StringsInput {
        StringsInput::Get { key: key.into(), latest }
    }

    fn set_expiring(key: &str, value: &str, not_before: u64) -> StringsInput {
        StringsInput::SetExpiring { key: key.into(), value: value.into(), not_before }
    }

    #[test]
    fn an_expired_key_is_never_seen_again() {
        let seen_again = vec![
            op(0, set_expiring("e", "a", 50), 0, StringsOutput::Done, 10),
            op(1, get("e", 100), 60, StringsOutput::Value(None), 70),
            op(2, get("e", 120), 80, StringsOutput::Value(Some("a".into())), 90),
        ];
        assert!(matches!(check(&StringsModel, &seen_again, 10_000), CheckResult::Illegal(_)));
        let concurrent = vec![
            op(0, set_expiring("e", "a", 50), 0, StringsOutput::Done, 10),
            op(1, get("e", 100), 60, StringsOutput::Value(None), 90),
            op(2, get("e", 120), 70, StringsOutput::Value(Some("a".into())), 80),
        ];
        assert_eq!(check(&StringsModel, &concurrent, 10_000), CheckResult::Ok);
    }

    #[test]
    fn a_key_may_not_expire_before_its_window() {
        let early = vec![op(0, set_expiring("e", "a", 500), 0, StringsOutput::Done, 10), op(1, get("e", 400), 20, StringsOutput::Value(None), 30)];
        assert!(matches!(check(&StringsModel, &early, 10_000), CheckResult::Illegal(_)));
        let in_time = vec![op(0, set_expiring("e", "a", 500), 0, StringsOutput::Done, 10), op(1, get("e", 500), 20, StringsOutput::Value(None), 30)];
        assert_eq!(check(&StringsModel, &in_time, 10_000), CheckResult::Ok);
    }

    #[test]
    fn counters_count_each_increment_once() {
        let incr = |by| StringsInput::IncrBy { key: "c".into(), by };
        let history = vec![
            op(0, incr(2), 0, StringsOutput::Integer(2), 10),
            Operation { client: 1, input: incr(3), call: 5, output: None, return_time: None },
            op(2, get("c", 0), 20, StringsOutput::Value(Some("5".into())), 30),
        ];
        assert_eq!(check(&StringsModel, &history, 10_000), CheckResult::Ok);
        let twice = vec![op(0, incr(2), 0, StringsOutput::Integer(2), 10), op(2, get("c", 0), 20, StringsOutput::Value(Some("4".into())), 30)];
        assert!(matches!(check(&StringsModel, &twice, 10_000), CheckResult::Illegal(_)));
    }

    #[test]
    fn a_transaction_is_not_interleaved() {
        let transaction = |appends: [&str; 2]| StringsInput::Transaction { key: "t".into(), appends: appends.map(String::from).to_vec() };
        let exec = |lengths: Vec<u64>, value: &str| StringsOutput::Exec { lengths, value: Some(value.into()) };
        let whole = vec![op(0, transaction(["a", "b"]), 0, exec(vec![1, 2], "ab"), 10), op(1, transaction(["c", "d"]), 5, exec(vec![3, 4], "abcd"), 15)];
        assert_eq!(check(&StringsModel, &whole, 10_000), CheckResult::Ok);
        // Each transaction's appends applied apart, the other's between them.
        let split = vec![op(0, transaction(["a", "b"]), 0, exec(vec![1, 3], "acb"), 10), op(1, transaction(["c", "d"]), 0, exec(vec![2, 4], "acbd"), 10)];
        assert!(matches!(check(&StringsModel, &split, 10_000), CheckResult::Illegal(_)));
    }
}
