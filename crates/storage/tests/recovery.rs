//! Named scenarios: round trips, the Persist rules one by one, crashes, torn tails, corruption,
//! segment rolling and deletion, snapshot damage.

mod common;

use std::path::Path;

use common::*;
use raft::{LogIndex, Persist, SnapshotMeta, Term};
use storage::{Disk, DiskFile, MemDisk, Options, Storage, StorageError};

const DIR: &str = "/node";

/// Without preallocation: most tests here cut and count the log's bytes, which then end with the
/// last record. Preallocation has its own tests at the end.
fn open(disk: &MemDisk) -> (Storage<MemDisk>, Model) {
    open_with(disk, unpreallocated(Options::default().segment_bytes))
}

fn unpreallocated(segment_bytes: u64) -> Options {
    Options { segment_bytes, preallocate_bytes: 0 }
}

fn open_with(disk: &MemDisk, options: Options) -> (Storage<MemDisk>, Model) {
    let (storage, restored) = Storage::open_with(disk.clone(), DIR, options).expect("open");
    (storage, Model::from_restored(restored))
}

fn open_err(disk: &MemDisk) -> StorageError {
    match Storage::open(disk.clone(), DIR) {
        Ok(_) => panic!("open succeeded"),
        Err(error) => error,
    }
}

/// Saves each persist to both the storage and the model.
fn save_all(storage: &mut Storage<MemDisk>, model: &mut Model, persists: &[Persist]) {
    for persist in persists {
        storage.save(persist).expect("save");
        model.apply(persist);
    }
}

fn reopen_matches(disk: &MemDisk, model: &Model) {
    let (_, restored) = open(disk);
    assert_eq!(&restored, model);
}

#[test]
fn a_new_directory_opens_empty() {
    let disk = MemDisk::new(1);
    let (_, restored) = open(&disk);
    assert_eq!(restored, Model::default());
    reopen_matches(&disk, &Model::default());
}

#[test]
fn entries_and_hard_state_round_trip() {
    let disk = MemDisk::new(1);
    let (mut storage, mut model) = open(&disk);
    let mut big = entry(4, 2, &vec![7; 5000]);
    big.kind = raft::EntryKind::Noop;
    save_all(
        &mut storage,
        &mut model,
        &[
            persist(Some(hard_state(1, Some(1), 0)), None, entries(1..=3, 1)),
            persist(None, None, vec![big]),
            persist(Some(hard_state(2, None, 4)), None, Vec::new()),
        ],
    );
    assert_eq!(model.entries.len(), 4);
    assert_eq!(storage.hard_state(), hard_state(2, None, 4));
    reopen_matches(&disk, &model);
}

#[test]
fn a_follower_conflict_truncates_the_suffix() {
    let disk = MemDisk::new(2);
    let (mut storage, mut model) = open(&disk);
    save_all(
        &mut storage,
        &mut model,
        &[persist(None, None, entries(1..=10, 1)), persist(Some(hard_state(3, Some(2), 4)), None, entries(6..=7, 3))],
    );
    assert_eq!(model.last_index(), LogIndex(7));
    assert_eq!(storage.last_index(), LogIndex(7));
    assert_eq!(storage.entry_term(LogIndex(6)), Some(Term(3)));
    reopen_matches(&disk, &model);
    // And again after the reopen, on top of the recovered log.
    let (mut storage, mut model) = open(&disk);
    save_all(&mut storage, &mut model, &[persist(None, None, entries(2..=2, 4))]);
    assert_eq!(model.entries.len(), 2);
    reopen_matches(&disk, &model);
}

#[test]
fn a_snapshot_matching_the_log_keeps_the_entries_after_it() {
    let disk = MemDisk::new(3);
    let (mut storage, mut model) = open(&disk);
    save_all(
        &mut storage,
        &mut model,
        &[persist(None, None, entries(1..=10, 2)), persist(None, Some(snapshot(6, 2, b"state@6")), Vec::new())],
    );
    assert_eq!(model.entries.first().map(|entry| entry.index), Some(LogIndex(7)));
    reopen_matches(&disk, &model);
}

#[test]
fn a_snapshot_that_does_not_match_drops_every_entry() {
    let disk = MemDisk::new(4);
    let (mut storage, mut model) = open(&disk);
    save_all(
        &mut storage,
        &mut model,
        &[
            persist(None, None, entries(1..=10, 1)),
            // Wrong term at 6: the stored suffix belongs to another history.
            persist(Some(hard_state(5, None, 6)), Some(snapshot(6, 4, b"leader's")), Vec::new()),
        ],
    );
    assert!(model.entries.is_empty());
    assert_eq!(storage.last_index(), LogIndex(6));
    reopen_matches(&disk, &model);
    // Past the end of the log, too; and entries in the same persist land after it.
    let (mut storage, mut model) = open(&disk);
    save_all(&mut storage, &mut model, &[persist(None, Some(snapshot(20, 5, b"far")), entries(21..=22, 5))]);
    assert_eq!(model.entries.len(), 2);
    reopen_matches(&disk, &model);
}

#[test]
fn a_crash_after_saves_returned_keeps_everything() {
    let disk = MemDisk::new(5);
    let (mut storage, mut model) = open_with(&disk, unpreallocated(100));
    let mut rng = Prng::new(5);
    for _ in 0..100 {
        let persist = random_persist(&mut rng, &model, true);
        storage.save(&persist).unwrap();
        model.apply(&persist);
    }
    drop(storage);
    disk.crash_torn();
    let (_, restored) = open_with(&disk, unpreallocated(100));
    assert_eq!(restored, model);
}

#[test]
fn a_crash_before_the_fsync_loses_only_that_save() {
    let disk = MemDisk::new(6);
    let (mut storage, mut model) = open(&disk);
    save_all(&mut storage, &mut model, &[persist(Some(hard_state(1, Some(1), 0)), None, entries(1..=5, 1))]);
    disk.crash_at_sync(1, false);
    let error = storage.save(&persist(Some(hard_state(2, None, 3)), None, entries(6..=9, 2))).unwrap_err();
    assert!(error.to_string().contains("fsync"), "{error}");
    // A storage whose write failed refuses further work until reopened.
    assert!(matches!(storage.save(&persist(None, None, entries(6..=6, 2))), Err(StorageError::Poisoned)));
    reopen_matches(&disk, &model);
}

#[test]
fn a_torn_tail_is_cut_and_the_store_reopens() {
    let disk = MemDisk::new(7);
    let (mut storage, mut model) = open(&disk);
    save_all(
        &mut storage,
        &mut model,
        &[persist(None, None, entries(1..=3, 1)), persist(None, None, entries(4..=6, 1))],
    );
    drop(storage);
    let path = segment(Path::new(DIR), 1);
    let whole = disk.read(&path).unwrap();
    // Half of a record, as a crash in the middle of its write would leave it: every cut point of
    // the last record must recover the state before it.
    let last = *record_offsets(&whole).last().unwrap();
    for cut in last..whole.len() {
        let mut file = disk.open(&path, false).unwrap();
        file.truncate(cut as u64).unwrap();
        file.sync().unwrap();
        let (_, restored) = open(&disk);
        assert_eq!(restored.entries.len(), 3, "cut at {cut}");
        assert_eq!(disk.read(&path).unwrap().len(), last, "the tail was cut off at {cut}");
        let mut file = disk.open(&path, false).unwrap();
        file.append(&whole[last..]).unwrap();
        file.sync().unwrap();
    }
    // A garbled last record (bad checksum, nothing after it) is a tear too; the store then goes on.
    disk.corrupt(&path, whole.len() as u64 - 1);
    let (mut storage, mut model) = open(&disk);
    assert_eq!(model.entries.len(), 3);
    save_all(&mut storage, &mut model, &[persist(None, None, entries(4..=4, 2))]);
    reopen_matches(&disk, &model);
}

#[test]
fn a_torn_crash_keeps_a_prefix_of_the_last_write() {
    // Crash inside many saves with tearing; whatever prefix survives, the store reopens to the state
    // before the save or after it, and the file holds no garbage afterwards.
    let mut torn = 0;
    for seed in 0..40 {
        let disk = MemDisk::new(seed);
        let (mut storage, mut model) = open(&disk);
        save_all(&mut storage, &mut model, &[persist(None, None, entries(1..=3, 1))]);
        let path = segment(Path::new(DIR), 1);
        let synced = disk.read(&path).unwrap().len();
        disk.crash_at_sync(1, true);
        let next = persist(None, None, (4..=40).map(|index| entry(index, 1, &[index as u8; 30])).collect());
        assert!(storage.save(&next).is_err());
        let crashed_len = disk.read(&path).unwrap().len();
        let (_, restored) = open(&disk);
        let after_open = disk.read(&path).unwrap().len();
        if restored == model {
            assert_eq!(after_open, synced, "seed {seed}");
            torn += usize::from(crashed_len > synced);
        } else {
            model.apply(&next);
            assert_eq!(restored, model, "seed {seed}");
        }
    }
    assert!(torn > 10, "tears happened ({torn})");
}

#[test]
fn a_corrupt_middle_record_fails_open_naming_file_and_offset() {
    let disk = MemDisk::new(8);
    let (mut storage, mut model) = open(&disk);
    for index in 1..=5 {
        save_all(
            &mut storage,
            &mut model,
            &[persist(Some(hard_state(1, None, index - 1)), None, entries(index..=index, 1))],
        );
    }
    drop(storage);
    let path = segment(Path::new(DIR), 1);
    let offsets = record_offsets(&disk.read(&path).unwrap());
    assert_eq!(offsets.len(), 6, "a checkpoint and five saves");
    // A payload byte of the third save.
    disk.corrupt(&path, offsets[3] as u64 + 12);
    let error = open_err(&disk);
    match &error {
        StorageError::Corrupt { file, offset, .. } => {
            assert_eq!(file, &path);
            assert_eq!(*offset, offsets[3] as u64);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = error.to_string();
    assert!(message.contains("/node/wal/0000000000000001.log"), "{message}");
    assert!(message.contains(&format!("byte {}", offsets[3])), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");
    // Repaired, it opens again: nothing was cut off.
    disk.corrupt(&path, offsets[3] as u64 + 12);
    reopen_matches(&disk, &model);
    // A garbled length is caught the same way: a valid record still follows.
    disk.corrupt(&path, offsets[2] as u64 + 1);
    assert!(matches!(open_err(&disk), StorageError::Corrupt { offset, .. } if offset == offsets[2] as u64));
}

#[test]
fn a_bad_record_in_a_segment_that_is_not_the_last_is_corruption() {
    let disk = MemDisk::new(9);
    let options = unpreallocated(64);
    let (mut storage, mut model) = open_with(&disk, options);
    for index in 1..=6 {
        save_all(&mut storage, &mut model, &[persist(None, None, vec![entry(index, 1, &[1; 40])])]);
    }
    assert!(storage.segment_count() >= 3);
    drop(storage);
    // The very last byte of segment 1: in the last segment this would be a tear.
    let path = segment(Path::new(DIR), 1);
    let len = disk.read(&path).unwrap().len() as u64;
    disk.corrupt(&path, len - 1);
    let error = open_err(&disk);
    assert!(matches!(&error, StorageError::Corrupt { file, .. } if file == &path), "{error}");
    assert!(error.to_string().contains("not the last"), "{error}");
}

#[test]
fn segments_roll_and_are_deleted_once_a_snapshot_covers_them() {
    let disk = MemDisk::new(10);
    let options = unpreallocated(256);
    let (mut storage, mut model) = open_with(&disk, options);
    for index in 1..=100u64 {
        let commit = index.saturating_sub(1);
        save_all(
            &mut storage,
            &mut model,
            &[persist(Some(hard_state(1, Some(1), commit)), None, vec![entry(index, 1, &[index as u8; 50])])],
        );
    }
    let wal = Path::new(DIR).join("wal");
    let before = disk.list(&wal).unwrap().len();
    assert_eq!(before, storage.segment_count());
    assert!(before > 20, "{before} segments");
    reopen_matches(&disk, &model);

    let (mut storage, mut model) = open_with(&disk, options);
    save_all(&mut storage, &mut model, &[persist(None, Some(snapshot(90, 1, b"state@90")), Vec::new())]);
    let after = disk.list(&wal).unwrap();
    assert_eq!(after.len(), storage.segment_count());
    assert!(after.len() <= 5, "{after:?}");
    assert!(!after.contains(&"0000000000000001.log".to_string()));
    // The surviving segments hold entries 91..=100, the hard state and the snapshot boundary.
    let (_, restored) = open_with(&disk, options);
    assert_eq!(restored, model);
    assert_eq!(restored.entries.first().unwrap().index, LogIndex(91));
    assert_eq!(restored.hard_state, hard_state(1, Some(1), 99));
    // The same after the deletions are undone by a crash (they are not fsync'd).
    disk.crash();
    let (_, restored) = open_with(&disk, options);
    assert_eq!(restored, model);
}

#[test]
fn a_corrupt_snapshot_fails_open_with_a_clear_error() {
    for (offset, expected) in [(60, "data checksum mismatch"), (14, "header checksum mismatch"), (2, "bad magic")] {
        let disk = MemDisk::new(11);
        let (mut storage, mut model) = open(&disk);
        save_all(
            &mut storage,
            &mut model,
            &[persist(None, None, entries(1..=5, 1)), persist(None, Some(snapshot(3, 1, &[42; 100])), Vec::new())],
        );
        drop(storage);
        let path = Path::new(DIR).join("snapshot.bin");
        disk.corrupt(&path, offset);
        let error = open_err(&disk);
        let message = error.to_string();
        assert!(matches!(&error, StorageError::Corrupt { file, .. } if file == &path), "{message}");
        assert!(message.contains("/node/snapshot.bin") && message.contains(expected), "{message}");
    }
}

#[test]
fn a_crash_between_the_snapshot_and_its_log_record_applies_the_rule_on_open() {
    // Syncs of a save with a snapshot: 1 snapshot.tmp, 2 the directory after the rename, 3 the log.
    // The snapshot's term matches the stored entry (keep 7..=10) or not (drop them all).
    for (term, next, kept) in [(1, 11, 4), (9, 7, 0)] {
        let disk = MemDisk::new(12);
        let (mut storage, mut model) = open(&disk);
        save_all(&mut storage, &mut model, &[persist(Some(hard_state(1, None, 0)), None, entries(1..=10, 1))]);
        disk.crash_at_sync(3, false);
        let interrupted =
            persist(Some(hard_state(9, None, 6)), Some(snapshot(6, term, b"six")), entries(next..=next, 9));
        assert!(storage.save(&interrupted).is_err());
        let (mut storage, mut recovered) = open(&disk);
        model.apply_snapshot(interrupted.snapshot.as_ref().unwrap());
        assert_eq!(recovered, model, "term {term}");
        assert_eq!(recovered.entries.len(), kept);
        assert_eq!(storage.snapshot_meta(), SnapshotMeta { index: LogIndex(6), term: Term(term) });
        // The repair was logged: later saves build on it and a reopen agrees.
        save_all(&mut storage, &mut recovered, &[persist(None, None, entries(7..=8, 9))]);
        reopen_matches(&disk, &recovered);
    }
}

#[test]
fn leftover_snapshot_tmp_is_removed() {
    let disk = MemDisk::new(13);
    let (mut storage, mut model) = open(&disk);
    save_all(&mut storage, &mut model, &[persist(None, None, entries(1..=5, 1))]);
    // The first sync of a snapshot save is snapshot.tmp's: crash in it, after its name was synced
    // by an unrelated directory sync.
    disk.crash_at_sync(2, false);
    assert!(storage.save(&persist(None, Some(snapshot(5, 1, b"x")), Vec::new())).is_err());
    let tmp = Path::new(DIR).join("snapshot.tmp");
    let mut file = disk.open(&tmp, true).unwrap();
    file.append(b"half a snapshot").unwrap();
    file.sync().unwrap();
    disk.sync_dir(Path::new(DIR)).unwrap();
    reopen_matches(&disk, &model);
    assert!(!disk.exists(&tmp).unwrap());
}

#[test]
fn invalid_persists_are_refused_and_write_nothing() {
    let disk = MemDisk::new(14);
    let (mut storage, mut model) = open(&disk);
    save_all(&mut storage, &mut model, &[persist(None, Some(snapshot(3, 1, b"s")), entries(4..=6, 1))]);
    let syncs = disk.sync_count();
    for bad in [
        persist(Some(hard_state(7, None, 0)), None, entries(8..=9, 1)), // a gap after 6
        persist(None, None, entries(2..=4, 1)),                         // into the snapshot
        persist(None, None, vec![entry(5, 1, b""), entry(7, 1, b"")]),  // not contiguous
    ] {
        assert!(matches!(storage.save(&bad), Err(StorageError::Invalid(_))), "{bad:?}");
    }
    assert_eq!(disk.sync_count(), syncs, "nothing was written");
    // Not poisoned by a refusal.
    save_all(&mut storage, &mut model, &[persist(None, None, entries(7..=7, 2))]);
    reopen_matches(&disk, &model);
}

#[test]
fn an_empty_persist_costs_nothing() {
    let disk = MemDisk::new(15);
    let (mut storage, _) = open(&disk);
    let syncs = disk.sync_count();
    storage.save(&Persist::default()).unwrap();
    assert_eq!(disk.sync_count(), syncs);
}

#[test]
fn one_save_is_one_log_fsync() {
    let disk = MemDisk::new(16);
    let (mut storage, _) = open(&disk);
    let syncs = disk.sync_count();
    storage.save(&persist(Some(hard_state(1, Some(1), 0)), None, entries(1..=500, 1))).unwrap();
    assert_eq!(disk.sync_count(), syncs + 1);
}

#[test]
fn snapshots_are_told_apart_by_number_not_by_index_and_term() {
    // A second snapshot with the same index and term (a rule-abiding storage still drops the entries
    // after it, as the persister does) interrupted before its log record: recovery must see that the
    // file on disk is newer than the log's marker, although their index and term agree.
    let disk = MemDisk::new(17);
    let (mut storage, mut model) = open(&disk);
    save_all(
        &mut storage,
        &mut model,
        &[persist(None, None, entries(1..=6, 1)), persist(None, Some(snapshot(3, 1, b"first")), Vec::new())],
    );
    disk.crash_at_sync(3, false);
    let second = snapshot(3, 1, b"second");
    assert!(storage.save(&persist(None, Some(second.clone()), Vec::new())).is_err());
    model.apply_snapshot(&second);
    assert!(model.entries.is_empty());
    reopen_matches(&disk, &model);
}

#[test]
fn a_missing_snapshot_file_is_inconsistent() {
    let disk = MemDisk::new(18);
    let (mut storage, mut model) = open(&disk);
    save_all(&mut storage, &mut model, &[persist(None, Some(snapshot(3, 1, b"s")), entries(4..=5, 1))]);
    drop(storage);
    disk.remove(&Path::new(DIR).join("snapshot.bin")).unwrap();
    let error = open_err(&disk);
    assert!(matches!(error, StorageError::Inconsistent { .. }), "{error}");
    assert!(error.to_string().contains("snapshot.bin is missing"), "{error}");
}

fn preallocated(bytes: u64) -> Options {
    Options { segment_bytes: Options::default().segment_bytes, preallocate_bytes: bytes }
}

#[test]
fn records_go_over_preallocated_zeros_which_reopening_keeps() {
    let disk = MemDisk::new(19);
    let options = preallocated(4096);
    let (mut storage, mut model) = open_with(&disk, options);
    save_all(&mut storage, &mut model, &[persist(Some(hard_state(1, Some(1), 0)), None, entries(1..=3, 1))]);
    drop(storage);
    let path = segment(Path::new(DIR), 1);
    let before = disk.read(&path).unwrap();
    let records_end = records_end(&before);
    assert!(before.len() >= records_end + 2048, "zeros reserved ahead: {} bytes for {records_end}", before.len());
    assert!(before[records_end..].iter().all(|&byte| byte == 0));

    // Reopening reads the zeros as not written yet: nothing is cut, nothing is lost.
    let (mut storage, restored) = open_with(&disk, options);
    assert_eq!(restored, model);
    assert_eq!(disk.read(&path).unwrap(), before, "open leaves a clean preallocated log as it is");
    // The next record lands right after the last one, and the log grows ahead again as it fills.
    save_all(&mut storage, &mut model, &[persist(None, None, entries(4..=4, 1))]);
    let after = disk.read(&path).unwrap();
    assert_eq!(after.len(), before.len(), "written over the zeros, not appended");
    assert_eq!(after[..records_end], before[..records_end]);
    let big = (5..=60).map(|index| entry(index, 1, &[index as u8; 100])).collect();
    save_all(&mut storage, &mut model, &[persist(None, None, big)]);
    assert!(disk.read(&path).unwrap().len() > before.len(), "extended ahead once half the reserve was used");
    drop(storage);
    let (_, restored) = open_with(&disk, options);
    assert_eq!(restored, model);
}

#[test]
fn a_torn_crash_inside_preallocated_space_loses_only_that_save() {
    // The write lands over zeros already on disk; a crash keeps any prefix of it. Whatever survives,
    // the store reopens to the state before that save or after it, and keeps working.
    let mut torn = 0;
    for seed in 0..40 {
        let disk = MemDisk::new(seed);
        let options = preallocated([64, 512, 1 << 20][seed as usize % 3]);
        let (mut storage, mut model) = open_with(&disk, options);
        save_all(&mut storage, &mut model, &[persist(None, None, entries(1..=3, 1))]);
        let path = segment(Path::new(DIR), 1);
        let synced = disk.read(&path).unwrap();
        disk.crash_at_sync(1, true);
        let next = persist(None, None, (4..=40).map(|index| entry(index, 1, &[index as u8; 30])).collect());
        assert!(storage.save(&next).is_err());
        torn += usize::from(disk.read(&path).unwrap() != synced);
        let (mut storage, restored) = open_with(&disk, options);
        if restored != model {
            model.apply(&next);
            assert_eq!(restored, model, "seed {seed}");
        }
        save_all(&mut storage, &mut model, &[persist(Some(hard_state(2, None, 0)), None, Vec::new())]);
        drop(storage);
        let (_, restored) = open_with(&disk, options);
        assert_eq!(restored, model, "seed {seed}: after more saves");
    }
    assert!(torn > 10, "tears happened ({torn})");
}
