//! Majority arithmetic, kept apart from the node so it can be tested on its own.

use crate::types::LogIndex;

/// The number of votes that make a majority of `voters`.
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index held by a majority, given each voter's match index (in any order).
pub fn committed_index(mut match_indexes: Vec<LogIndex>) -> LogIndex {
    assert!(!match_indexes.is_empty(), "a cluster has at least one voter");
    match_indexes.sort_unstable_by(|a, b| b.cmp(a));
    match_indexes[majority(match_indexes.len()) - 1]
}

/// Outcome of an election, counted from the answers so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

pub fn vote_result(voters: usize, granted: usize, rejected: usize) -> VoteResult {
    if granted >= majority(voters) {
        VoteResult::Won
    } else if rejected >= majority(voters) || voters - rejected < majority(voters) {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive definition: the largest index that at least a majority holds.
    fn naive_committed(matches: &[u64]) -> u64 {
        let need = majority(matches.len());
        (0..=*matches.iter().max().unwrap()).rev().find(|&i| matches.iter().filter(|&&m| m >= i).count() >= need).unwrap()
    }

    #[test]
    fn committed_index_matches_naive_definition() {
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..2000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let voters = (state >> 60) as usize % 7 + 1;
            let matches: Vec<u64> = (0..voters).map(|k| (state >> (k * 8)) & 15).collect();
            let got = committed_index(matches.iter().map(|&m| LogIndex(m)).collect());
            assert_eq!(got.0, naive_committed(&matches), "{matches:?}");
        }
    }

    #[test]
    fn votes_decide_as_soon_as_the_outcome_is_certain() {
        assert_eq!(vote_result(3, 2, 0), VoteResult::Won);
        assert_eq!(vote_result(3, 1, 1), VoteResult::Pending);
        assert_eq!(vote_result(3, 1, 2), VoteResult::Lost);
        assert_eq!(vote_result(4, 2, 2), VoteResult::Lost);
        assert_eq!(vote_result(1, 1, 0), VoteResult::Won);
    }
}
