//! `disk_chaos`: runs the randomized safety simulation with disk faults (`sim::disk_chaos`) for many
//! seeds and prints `N passed, M failed`.
//!
//! Usage: disk_chaos [--seeds N] [--from S] [--trace] [--verbose]
//!   --seeds N   how many seeds to run (default 100)
//!   --from S    the first seed (default 1); seeds are S, S+1, ...
//!   --trace     print the end of the trace of each failing seed
//!   --verbose   print what each passing seed did

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut seeds = 100u64;
    let mut from = 1u64;
    let mut show_trace = false;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Option<u64> {
            let value = args.next().and_then(|value| value.parse().ok());
            if value.is_none() {
                eprintln!("{name} needs a number");
            }
            value
        };
        match arg.as_str() {
            "--seeds" => match number("--seeds") {
                Some(value) => seeds = value,
                None => return ExitCode::from(2),
            },
            "--from" => match number("--from") {
                Some(value) => from = value,
                None => return ExitCode::from(2),
            },
            "--trace" => show_trace = true,
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("usage: disk_chaos [--seeds N] [--from S] [--trace] [--verbose]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}; try --help");
                return ExitCode::from(2);
            }
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for seed in from..from.saturating_add(seeds) {
        match sim::disk_chaos::run(seed) {
            Ok(summary) => {
                passed += 1;
                if verbose {
                    println!(
                        "seed {seed}: ok, {} commands committed, {} terms had a leader, {:.1}s virtual, {:?}, {:?}",
                        summary.committed,
                        summary.terms_with_leader,
                        summary.virtual_time.as_secs_f64(),
                        summary.faults,
                        summary.params
                    );
                    if show_trace {
                        for line in summary.trace.all() {
                            println!("  {line}");
                        }
                    }
                }
            }
            Err((params, message, trace)) => {
                failed += 1;
                eprintln!("seed {seed} FAILED: {message}\n  parameters: {params:?}");
                eprintln!("  replay: cargo run --release -p sim --bin disk_chaos -- --from {seed} --seeds 1 --trace");
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
