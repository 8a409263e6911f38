//! The command line shared by the seed runners (`chaos`, `disk_chaos`): run seeds S, S+1, ...,
//! print `N passed, M failed`, and for each failure its parameters, message, replay command, the
//! drawing of its run (`viz`) and, with `--trace`, the end of its trace. `SIM_VIZ=1` draws passing
//! seeds too.

use std::process::ExitCode;

use crate::trace::Trace;
use crate::viz::{self, RunInfo};

/// What one seed's run reports: on success a one-line summary and its trace; on failure the
/// parameters, the message and the trace.
pub type SeedResult = Result<(String, Trace), (String, String, Trace)>;

/// Parses `--seeds N --from S --trace --verbose` and runs `run` for each seed.
pub fn main(name: &str, run: impl Fn(u64) -> SeedResult) -> ExitCode {
    main_with_switches(name, &[], |seed, _| run(seed))
}

/// `main`, plus on/off `switches` of the runner's own (e.g. `--lease-reads`): `run` gets those
/// given, and the replay command of a failure repeats them.
pub fn main_with_switches(name: &str, switches: &[&str], run: impl Fn(u64, &[String]) -> SeedResult) -> ExitCode {
    let own: String = switches.iter().map(|switch| format!(" [{switch}]")).collect();
    let usage = format!("usage: {name} [--seeds N] [--from S] [--trace] [--verbose]{own}");
    let mut given: Vec<String> = Vec::new();
    let (mut seeds, mut from, mut show_trace, mut verbose) = (100u64, 1u64, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> Result<u64, ExitCode> {
            args.next().and_then(|value| value.parse().ok()).ok_or_else(|| {
                eprintln!("{flag} needs a number");
                ExitCode::from(2)
            })
        };
        match arg.as_str() {
            "--seeds" => match number("--seeds") {
                Ok(value) => seeds = value,
                Err(code) => return code,
            },
            "--from" => match number("--from") {
                Ok(value) => from = value,
                Err(code) => return code,
            },
            "--trace" => show_trace = true,
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{usage}");
                return ExitCode::SUCCESS;
            }
            switch if switches.contains(&switch) => given.push(switch.to_string()),
            other => {
                eprintln!("unknown argument {other:?}; {usage}");
                return ExitCode::from(2);
            }
        }
    }
    let replay_switches: String = given.iter().map(|switch| format!(" {switch}")).collect();
    let (mut passed, mut failed) = (0, 0);
    let test: String = std::iter::once(name.to_string()).chain(given.iter().map(|switch| switch.trim_start_matches('-').to_string())).collect::<Vec<_>>().join("-");
    for seed in from..from.saturating_add(seeds) {
        let replay = format!("cargo run --release -p sim --bin {name} -- --from {seed} --seeds 1 --trace{replay_switches}");
        let info = RunInfo { test: &test, seed, replay: &replay };
        match run(seed, &given) {
            Ok((summary, trace)) => {
                passed += 1;
                if viz::draw_passing() {
                    viz::write_and_tell(&trace, &info);
                }
                if verbose {
                    println!("seed {seed}: ok, {summary}");
                    if show_trace {
                        for line in trace.all() {
                            println!("  {line}");
                        }
                    }
                }
            }
            Err((params, message, trace)) => {
                failed += 1;
                eprintln!("seed {seed} FAILED: {message}\n  parameters: {params}");
                eprintln!("  replay: {replay}");
                viz::write_and_tell(&trace, &info);
                if show_trace {
                    for line in trace.tail(200) {
                        eprintln!("  {line}");
                    }
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The loop of the CI tests over a seed runner: the seeds `SIM_SEED` / `SIM_SEEDS` /
/// `SIM_SEED_BASE` select, or else `default`; for each, `run` gives a passing seed's summary and
/// trace, or a failure's parameters, message and trace. A failure is printed with the end of its
/// trace, `replay(seed)` and its drawing (`viz`); a passing seed is drawn when `SIM_VIZ` asks.
/// Returns the passing seeds' summaries; panics, listing the failing seeds, if any failed.
pub fn test_seeds<S>(
    test: &str,
    default: std::ops::RangeInclusive<u64>,
    replay: impl Fn(u64) -> String,
    run: impl Fn(u64) -> Result<(S, Trace), (String, String, Trace)>,
) -> Vec<S> {
    let chosen = std::env::var_os("SIM_SEED").is_some() || std::env::var_os("SIM_SEEDS").is_some();
    let seeds: Vec<u64> = if chosen { crate::rng::seeds_from_env(*default.start()) } else { default.collect() };
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    for &seed in &seeds {
        let replay = replay(seed);
        let info = RunInfo { test, seed, replay: &replay };
        match run(seed) {
            Ok((summary, trace)) => {
                if viz::draw_passing() {
                    viz::write_and_tell(&trace, &info);
                }
                passed.push(summary);
            }
            Err((params, message, trace)) => {
                eprintln!("seed {seed} FAILED: {message}\n  parameters: {params}");
                for line in trace.tail(60) {
                    eprintln!("  {line}");
                }
                eprintln!("  replay: {replay}");
                viz::write_and_tell(&trace, &info);
                failures.push(seed);
            }
        }
    }
    println!("{test}: {} passed, {} failed", passed.len(), failures.len());
    assert!(failures.is_empty(), "{test} failed for seeds {failures:?}");
    passed
}
