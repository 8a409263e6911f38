//! What the replica's tests share: driving a replica whose saves complete at once.

use replica::{Output, Replica};

/// Takes the outputs, completing every save at once; returns the rest.
pub fn take_saves_done(replica: &mut Replica) -> Vec<Output> {
    let mut rest = Vec::new();
    loop {
        let outputs = replica.take_outputs();
        if outputs.is_empty() {
            return rest;
        }
        for output in outputs {
            match output {
                Output::Save { id, .. } => replica.persisted(id),
                other => rest.push(other),
            }
        }
    }
}
