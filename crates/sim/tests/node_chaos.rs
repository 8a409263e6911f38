//! The production node's simulation over a fixed set of seeds (CI's share; the `node_chaos` binary
//! runs as many as you like). Every failure names its seed, the command that replays it, and the
//! drawing of its run.

use sim::viz::{self, RunInfo};

#[test]
fn node_chaos_seeds_stay_linearizable_ordered_and_answered() {
    let seeds = sim::rng::seeds_from_env(1);
    // By default: 100 seeds starting at 1, unless SIM_SEED / SIM_SEEDS / SIM_SEED_BASE say otherwise.
    let seeds = if std::env::var_os("SIM_SEED").is_none() && std::env::var_os("SIM_SEEDS").is_none() {
        (1..=100).collect()
    } else {
        seeds
    };
    let (mut failures, mut undecided, mut answered, mut errors) = (Vec::new(), 0, 0, 0);
    for &seed in &seeds {
        let replay = format!("cargo run --release -p sim --bin node_chaos -- --from {seed} --seeds 1 --trace");
        let info = RunInfo { test: "node_chaos", seed, replay: &replay };
        match sim::node_chaos::run(seed) {
            Ok(summary) => {
                if viz::draw_passing() {
                    viz::write_and_tell(&summary.trace, &info);
                }
                undecided += usize::from(summary.undecided);
                answered += summary.answered;
                errors += summary.errors;
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
    println!(
        "{} passed, {} failed; {answered} answers, {errors} errors; linearizability undecided within the budget for {undecided}",
        seeds.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "node chaos failed for seeds {failures:?}");
}

/// Each defect the server had before it ran the replica, brought back on purpose, is caught by
/// some seed among the first few hundred (the first such seed is printed).
#[test]
fn deliberately_broken_replicas_are_caught() {
    use replica::Mutation;
    for mutation in [Mutation::AnswersMatchedByIdAlone, Mutation::ParkedOvertakenByNewer, Mutation::ForwardsDroppedSilently] {
        let caught = (1..=400).find_map(|seed| sim::node_chaos::run_with(seed, mutation).err().map(|(_, message, _)| (seed, message)));
        let Some((seed, message)) = caught else { panic!("no seed of 400 catches {mutation:?}") };
        println!("{mutation:?}: caught by seed {seed}: {message}");
    }
}
