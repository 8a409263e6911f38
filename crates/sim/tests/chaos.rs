//! The randomized safety simulation over a fixed set of seeds (CI's share; the `chaos` binary runs
//! as many as you like). Every failure names its seed and the command that replays it.

use sim::chaos::ChaosReads;
use sim::viz::{self, RunInfo};

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
    let seeds = sim::rng::seeds_from_env(1);
    // By default: 300 seeds starting at 1, unless SIM_SEED / SIM_SEEDS / SIM_SEED_BASE say otherwise.
    let seeds = if std::env::var_os("SIM_SEED").is_none() && std::env::var_os("SIM_SEEDS").is_none() {
        (1..=300).collect()
    } else {
        seeds
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        let replay = format!("cargo run --release -p sim --bin chaos -- --from {seed} --seeds 1 --trace{switch}");
        let info = RunInfo { test: &test, seed, replay: &replay };
        match sim::chaos::run_with(seed, reads) {
            Ok(summary) if viz::draw_passing() => viz::write_and_tell(&summary.trace, &info),
            Ok(_) => {}
            Err((params, message, trace)) => {
                eprintln!("seed {seed} FAILED: {message}\n  parameters: {params:?}, reads: {reads:?}");
                for line in trace.tail(60) {
                    eprintln!("  {line}");
                }
                eprintln!("  replay: {replay}");
                viz::write_and_tell(&trace, &info);
                failures.push(seed);
            }
        }
    }
    println!("{} passed, {} failed", seeds.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "chaos ({reads:?} reads) failed for seeds {failures:?}");
}
