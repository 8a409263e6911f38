//! The randomized safety simulation with every node on raftkv's storage over a simulated disk, and
//! disk faults, over a fixed set of seeds (CI's share; the `disk_chaos` binary runs as many as you
//! like). Every failure names its seed and the command that replays it.

#[test]
fn disk_chaos_seeds_keep_raft_safe_durable_and_live() {
    let replay = |seed| format!("cargo run --release -p sim --bin disk_chaos -- --from {seed} --seeds 1 --trace");
    // By default: 200 seeds starting at 1.
    let passed = sim::seeds_cli::test_seeds("disk_chaos", 1..=200, replay, |seed| match sim::disk_chaos::run(seed) {
        Ok(summary) => Ok((summary.faults, summary.trace)),
        Err((params, message, trace)) => Err((format!("{params:?}"), message, trace)),
    });
    let mut faults = sim::disk_chaos::Faults::default();
    for f in passed {
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
    println!("faults over the passing seeds: {faults:?}");
}
