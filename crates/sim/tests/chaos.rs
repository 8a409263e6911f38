//! The randomized safety simulation over a fixed set of seeds (CI's share; the `chaos` binary runs
//! as many as you like). Every failure names its seed and the command that replays it.

#[test]
fn chaos_seeds_keep_raft_safe_and_live() {
    let seeds = sim::rng::seeds_from_env(1);
    // By default: 300 seeds starting at 1, unless SIM_SEED / SIM_SEEDS / SIM_SEED_BASE say otherwise.
    let seeds = if std::env::var_os("SIM_SEED").is_none() && std::env::var_os("SIM_SEEDS").is_none() {
        (1..=300).collect()
    } else {
        seeds
    };
    let mut failures = Vec::new();
    for &seed in &seeds {
        if let Err((params, message, trace)) = sim::chaos::run(seed) {
            eprintln!("seed {seed} FAILED: {message}\n  parameters: {params:?}");
            for line in trace.tail(60) {
                eprintln!("  {line}");
            }
            eprintln!("  replay: cargo run --release -p sim --bin chaos -- --from {seed} --seeds 1 --trace");
            failures.push(seed);
        }
    }
    println!("{} passed, {} failed", seeds.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "chaos failed for seeds {failures:?}");
}
