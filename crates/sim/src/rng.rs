//! The simulation's one source of randomness. Every random choice of a run (delays, drops, faults,
//! client workloads) comes from one `SimRng` seeded by the run's seed, so the seed replays the run.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

#[derive(Clone)]
pub struct SimRng(Rc<RefCell<raft::Rng>>);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(Rc::new(RefCell::new(raft::Rng::new(seed))))
    }

    pub fn u64(&self) -> u64 {
        self.0.borrow_mut().next_u64()
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&self, n: u64) -> u64 {
        self.0.borrow_mut().below(n)
    }

    /// True with probability numerator / denominator.
    pub fn chance(&self, numerator: u64, denominator: u64) -> bool {
        self.0.borrow_mut().chance(numerator, denominator)
    }

    pub fn millis_below(&self, n: u64) -> Duration {
        Duration::from_millis(self.below(n))
    }

    pub fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The seeds a test runs: `SIM_SEED=s` replays one seed; `SIM_SEEDS=n` runs n seeds from
/// `SIM_SEED_BASE` (default: the test's own base). Without either, the test runs its base seed.
pub fn seeds_from_env(default_base: u64) -> Vec<u64> {
    let read = |name: &str| std::env::var(name).ok().and_then(|value| value.trim().parse::<u64>().ok());
    if let Some(seed) = read("SIM_SEED") {
        return vec![seed];
    }
    let base = read("SIM_SEED_BASE").unwrap_or(default_base);
    let count = read("SIM_SEEDS").unwrap_or(1);
    (0..count).map(|k| base.wrapping_add(k)).collect()
}
