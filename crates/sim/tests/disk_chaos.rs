//! The randomized safety simulation with every node on raftkv's storage over a simulated disk, and
//! disk faults, over a fixed set of seeds (CI's share; the `disk_chaos` binary runs as many as you
//! like). Every failure names its seed and the command that replays it.

use sim::viz::{self, RunInfo};

#[test]
fn disk_chaos_seeds_keep_raft_safe_durable_and_live() {
    let seeds = sim::rng::seeds_from_env(1);
    // By default: 200 seeds starting at 1, unless SIM_SEED / SIM_SEEDS / SIM_SEED_BASE say otherwise.
    let seeds = if std::env::var_os("SIM_SEED").is_none() && std::env::var_os("SIM_SEEDS").is_none() {
        (1..=200).collect()
    } else {
        seeds
    };
    let mut failures = Vec::new();
    let mut faults = sim::disk_chaos::Faults::default();
    for &seed in &seeds {
        let replay = format!("cargo run --release -p sim --bin disk_chaos -- --from {seed} --seeds 1 --trace");
        let info = RunInfo { test: "disk_chaos", seed, replay: &replay };
        match sim::disk_chaos::run(seed) {
            Ok(summary) => {
                if viz::draw_passing() {
                    viz::write_and_tell(&summary.trace, &info);
                }
                let f = summary.faults;
                faults.crashes += f.crashes;
                faults.torn_crashes += f.torn_crashes;
                faults.died_in_save += f.died_in_save;
                faults.crashed_in_recovery += f.crashed_in_recovery;
                faults.restarts += f.restarts;
                faults.corrupted += f.corrupted;
                faults.refused += f.refused;
                faults.recovered_from_corruption += f.recovered_from_corruption;
                faults.failed_save_landed += f.failed_save_landed;
                faults.failed_save_snapshot_only += f.failed_save_snapshot_only;
            }
            Err((params, message, trace)) => {
                eprintln!("seed {seed} FAILED: {message}\n  parameters: {params:?}");
                for line in trace.tail(60) {
                    eprintln!("  {line}");
                }
                eprintln!("  replay: {replay}");
                viz::write_and_tell(&trace, &info);
                failures.push(seed);
            }
        }
    }
    println!("{} passed, {} failed; faults over the passing seeds: {faults:?}", seeds.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "disk chaos failed for seeds {failures:?}");
}
