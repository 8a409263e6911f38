//! A bounded, readable record of a simulated run: who sent what, role changes and faults, each line
//! stamped with virtual time. Printed when a test fails, so a seed's failure can be read, not only replayed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

const KEPT_LINES: usize = 20_000;

#[derive(Clone, Default)]
pub struct Trace(Rc<RefCell<VecDeque<String>>>);

impl Trace {
    pub fn record(&self, now: Duration, line: impl std::fmt::Display) {
        let mut lines = self.0.borrow_mut();
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(format!("{:>9.3}s {line}", now.as_secs_f64()));
    }

    /// The last `count` lines, oldest first.
    pub fn tail(&self, count: usize) -> Vec<String> {
        let lines = self.0.borrow();
        lines.iter().skip(lines.len().saturating_sub(count)).cloned().collect()
    }

    pub fn all(&self) -> Vec<String> {
        self.0.borrow().iter().cloned().collect()
    }
}
