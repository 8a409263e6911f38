//! The lab's persister: Raft state and snapshot, saved together in one atomic step.
//!
//! A node gets a handle; the tester keeps another. At a crash the tester swaps its own for a copy,
//! so whatever the dead instance still writes lands in an object nobody reads again.

use std::cell::RefCell;
use std::rc::Rc;

#[derive(Default, Clone)]
struct Saved {
    raft_state: Vec<u8>,
    snapshot: Vec<u8>,
}

#[derive(Clone, Default)]
pub struct Persister(Rc<RefCell<Saved>>);

impl Persister {
    pub fn new() -> Persister {
        Persister::default()
    }

    /// A new persister with the same contents, sharing nothing with this one.
    pub fn copy(&self) -> Persister {
        Persister(Rc::new(RefCell::new(self.0.borrow().clone())))
    }

    /// Replaces both the Raft state and the snapshot; an empty snapshot erases the stored one.
    pub fn save(&self, raft_state: Vec<u8>, snapshot: Vec<u8>) {
        *self.0.borrow_mut() = Saved { raft_state, snapshot };
    }

    pub fn raft_state(&self) -> Vec<u8> {
        self.0.borrow().raft_state.clone()
    }

    pub fn snapshot(&self) -> Vec<u8> {
        self.0.borrow().snapshot.clone()
    }

    pub fn raft_state_size(&self) -> usize {
        self.0.borrow().raft_state.len()
    }

    pub fn snapshot_size(&self) -> usize {
        self.0.borrow().snapshot.len()
    }
}
