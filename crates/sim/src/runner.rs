//! Runs a simulated test once per seed and, when one fails, says how to replay it: the seed, the one
//! command that reruns exactly that run, and the end of its trace (the whole trace goes to a file,
//! and a drawing of the run to a page next to it).

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use crate::executor::Sim;
use crate::rng::{seeds_from_env, SimRng};
use crate::trace::Trace;
use crate::viz::{self, RunInfo};

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
    run_seeds(test_file, test_name, &seeds_from_env(name_seed(test_name) % 1_000_000), body);
}

/// Runs `body` for each of `seeds`. A failing seed is reported (its trace, its drawing, the command
/// that replays it) and its panic goes on; a passing one is drawn if `SIM_VIZ` asks for it.
pub fn run_seeds(test_file: &str, test_name: &str, seeds: &[u64], body: impl Fn(&Run)) {
    for &seed in seeds {
        let run = Run { seed, sim: Sim::new(), rng: SimRng::new(seed), trace: Trace::default() };
        let replay = format!("SIM_SEED={seed} cargo test --release -p sim --test {test_file} -- --exact {test_name}");
        let info = RunInfo { test: test_name, seed, replay: &replay };
        match catch_unwind(AssertUnwindSafe(|| body(&run))) {
            Ok(()) if viz::draw_passing() => viz::write_and_tell(&run.trace, &info),
            Ok(()) => {}
            Err(panic) => {
                run.trace.fail(run.sim.now(), &panic_message(panic.as_ref()));
                report_failure(&run, &info);
                resume_unwind(panic);
            }
        }
    }
}

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_else(|| "panic".to_string())
}

fn report_failure(run: &Run, info: &RunInfo) {
    eprintln!("---- trace (last 150 lines) ----");
    for line in run.trace.tail(150) {
        eprintln!("{line}");
    }
    eprintln!("---- end of trace ----");
    match viz::write(&run.trace, info) {
        Ok(page) => eprintln!("full trace: {}\ndrawing of the run: {}", viz::output_path(info.test, info.seed, "log").display(), page.display()),
        Err(error) => eprintln!("could not write the trace and its drawing under {}: {error}", viz::output_path(info.test, info.seed, "log").display()),
    }
    eprintln!("FAILED {} with seed {} at virtual time {:?}", info.test, run.seed, run.sim.now());
    eprintln!("replay: {}", info.replay);
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
