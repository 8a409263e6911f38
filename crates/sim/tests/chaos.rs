//! The randomized safety simulation over a fixed set of seeds (CI's share; the `chaos` binary runs
//! as many as you like). Every failure names its seed and the command that replays it.

use sim::chaos::ChaosReads;

#[test]
fn chaos_seeds_keep_raft_safe_and_live() {
    run_seeds(ChaosReads::Off, "");
}

/// The same runs with ReadIndex reads on every believed leader, each checked for linearizability.
#[test]
fn chaos_seeds_with_read_index_reads_stay_linearizable() {
    run_seeds(ChaosReads::ReadIndex, " --read-index");
}

/// The same with leader leases on every node: crashes and restarts exercise the restart fence,
/// partitions and long reordering the lease's expiry (every node ticks on one virtual clock).
#[test]
fn chaos_seeds_with_lease_reads_stay_linearizable() {
    run_seeds(ChaosReads::Lease, " --lease-reads");
}

fn run_seeds(reads: ChaosReads, switch: &str) {
    let test = format!("chaos{}", switch.replace(' ', "-").replace("--", ""));
    let replay = |seed| format!("cargo run --release -p sim --bin chaos -- --from {seed} --seeds 1 --trace{switch}");
    // By default: 300 seeds starting at 1.
    sim::seeds_cli::test_seeds(&test, 1..=300, replay, |seed| match sim::chaos::run_with(seed, reads) {
        Ok(summary) => Ok(((), summary.trace)),
        Err((params, message, trace)) => Err((format!("{params:?}, reads: {reads:?}"), message, trace)),
    });
}
