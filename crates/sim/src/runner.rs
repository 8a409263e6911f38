//! Runs a simulated test once per seed and, when one fails, says how to replay it: the seed, the one
//! command that reruns exactly that run, and the end of its trace (the whole trace goes to a file).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use std::rc::Rc;
use std::time::Duration;

use crate::executor::Sim;
use crate::rng::{seeds_from_env, SimRng};
use crate::trace::Trace;

/// What one seeded run gets: its clock, its randomness and its trace.
pub struct Run {
    pub seed: u64,
    pub sim: Sim,
    pub rng: SimRng,
    pub trace: Trace,
}

/// A stable per-test base seed, so that different tests explore different runs by default.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// Runs `body` for every seed `seeds_from_env` selects. `test_file` is the integration test target
/// (for the replay command).
pub fn run_seeded(test_file: &str, test_name: &str, body: impl Fn(&Run)) {
    for seed in seeds_from_env(name_seed(test_name) % 1_000_000) {
        let run = Run { seed, sim: Sim::new(), rng: SimRng::new(seed), trace: Trace::default() };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&run))) {
            report_failure(test_file, test_name, &run);
            resume_unwind(panic);
        }
    }
}

fn report_failure(test_file: &str, test_name: &str, run: &Run) {
    let trace_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/sim-traces")
        .join(format!("{test_name}-{}.log", run.seed));
    let written = std::fs::create_dir_all(trace_path.parent().expect("a trace file has a directory"))
        .and_then(|()| std::fs::write(&trace_path, run.trace.all().join("\n")));
    eprintln!("---- trace (last 150 lines) ----");
    for line in run.trace.tail(150) {
        eprintln!("{line}");
    }
    eprintln!("---- end of trace ----");
    match written {
        Ok(()) => eprintln!("full trace: {}", trace_path.display()),
        Err(error) => eprintln!("could not write the full trace to {}: {error}", trace_path.display()),
    }
    eprintln!("FAILED {test_name} with seed {} at virtual time {:?}", run.seed, run.sim.now());
    eprintln!("replay: SIM_SEED={} cargo test --release -p sim --test {test_file} -- --exact {test_name}", run.seed);
}

/// Every lab test must finish within this much virtual time (both lab suites' limit).
pub const LAB_TEST_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Runs a lab test for every selected seed: a fresh harness from `make`, the test's `body` on it,
/// then the harness's `cleanup` (which also checks the time limit).
pub fn run_harness<H, F, Fut>(test_file: &str, test_name: &str, make: impl Fn(&Run) -> Rc<H>, cleanup: fn(&H), body: F)
where
    H: 'static,
    F: Fn(Rc<H>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    run_seeded(test_file, test_name, |run| {
        let harness = make(run);
        let future = body(harness.clone());
        run.sim.block_on(async move {
            future.await;
            cleanup(&harness);
        });
    });
}
