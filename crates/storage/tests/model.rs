//! Random sequences of `Persist` values, checked against the model of the documented rules:
//! through reopens, clean crashes, and crashes in the middle of a save (torn or not).

mod common;

use common::{random_persist, Model, Prng};
use storage::{MemDisk, Options, Storage};

const DIR: &str = "/node";

/// Preallocation varies with the seed too: none, less than a record, a few records, a whole segment.
fn open(disk: &MemDisk, segment_bytes: u64, seed: u64) -> (Storage<MemDisk>, Model) {
    let preallocate_bytes = [0, 16, 300, 64 << 20][(seed / 3 % 4) as usize];
    let options = Options { segment_bytes, preallocate_bytes };
    let (storage, restored) = Storage::open_with(disk.clone(), DIR, options).expect("open");
    (storage, Model::from_restored(restored))
}

#[test]
fn random_saves_match_the_model_across_reopens() {
    for seed in 0..40 {
        let disk = MemDisk::new(seed);
        let mut rng = Prng::new(seed);
        let segment_bytes = [200, 1000, 64 << 20][seed as usize % 3];
        let (mut storage, restored) = open(&disk, segment_bytes, seed);
        let mut model = Model::default();
        assert_eq!(restored, model);
        let mut max_segments = 0;
        for step in 0..400 {
            let persist = random_persist(&mut rng, &model, seed % 2 == 0);
            storage.save(&persist).unwrap_or_else(|error| panic!("seed {seed} step {step}: {error}"));
            model.apply(&persist);
            assert_eq!(storage.last_index(), model.last_index(), "seed {seed} step {step}");
            assert_eq!(storage.snapshot_meta(), model.meta(), "seed {seed} step {step}");
            max_segments = max_segments.max(storage.segment_count());
            if rng.chance(1, 15) {
                drop(storage);
                let (reopened, restored) = open(&disk, segment_bytes, seed);
                assert_eq!(restored, model, "seed {seed} step {step}: reopen");
                storage = reopened;
            }
        }
        drop(storage);
        let (_, restored) = open(&disk, segment_bytes, seed);
        assert_eq!(restored, model, "seed {seed}: final reopen");
        if segment_bytes == 200 {
            assert!(max_segments > 3, "seed {seed}: small segments roll ({max_segments})");
        }
    }
}

/// A crash at a random sync — while writing the snapshot, the log record, a new segment's name —
/// loses at most the save in progress: what comes back is the state before it, after it, or (when
/// the snapshot file made it but the log record did not) after its snapshot step. A clean crash
/// after saves returned loses nothing.
#[test]
fn crashes_recover_a_state_the_model_went_through() {
    let mut outcomes = [0u32; 3];
    for seed in 0..60 {
        let disk = MemDisk::new(seed);
        let mut rng = Prng::new(seed ^ 0xc0ffee);
        let segment_bytes = [150, 600][seed as usize % 2];
        let (mut storage, _) = open(&disk, segment_bytes, seed);
        let mut model = Model::default();
        for step in 0..300 {
            if rng.chance(1, 12) {
                disk.crash_at_sync(rng.range(1, 4), rng.chance(1, 2));
            }
            let persist = random_persist(&mut rng, &model, true);
            let before = model.clone();
            let middle = model.apply(&persist);
            match storage.save(&persist) {
                Ok(()) => {}
                Err(error) => {
                    disk.disarm();
                    drop(storage);
                    let (reopened, recovered) = open(&disk, segment_bytes, seed);
                    let outcome = if recovered == before {
                        0
                    } else if recovered == model {
                        1
                    } else if Some(&recovered) == middle.as_ref() {
                        2
                    } else {
                        panic!("seed {seed} step {step}: after a crash in save ({error}) recovered\n{recovered:?}\nwhich is none of before\n{before:?}\nafter\n{model:?}\nmiddle\n{middle:?}");
                    };
                    outcomes[outcome] += 1;
                    model = recovered;
                    // Recovery left the files in a state that recovers to the same thing.
                    drop(reopened);
                    let (reopened, again) = open(&disk, segment_bytes, seed);
                    assert_eq!(again, model, "seed {seed} step {step}: second recovery");
                    storage = reopened;
                }
            }
            if rng.chance(1, 25) {
                disk.disarm();
                drop(storage);
                if rng.chance(1, 2) {
                    disk.crash_torn();
                } else {
                    disk.crash();
                }
                let (reopened, recovered) = open(&disk, segment_bytes, seed);
                assert_eq!(recovered, model, "seed {seed} step {step}: a crash after synced saves");
                storage = reopened;
            }
        }
    }
    println!("crash outcomes: before {}, after {}, snapshot only {}", outcomes[0], outcomes[1], outcomes[2]);
    assert!(outcomes[0] > 20 && outcomes[1] > 0, "crashes landed both before and after the log fsync: {outcomes:?}");
}
