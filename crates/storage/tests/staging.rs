//! Snapshots staged by another thread: the save that records one renames the file into place, a
//! staged file that no longer fits is written over, and leftovers never outlive a reopen.

mod common;

use std::path::Path;

use common::*;
use raft::{LogIndex, SnapshotMeta, Term};
use storage::{Disk, MemDisk, Storage};

const DIR: &str = "/node";

fn open(disk: &MemDisk) -> (Storage<MemDisk>, Model) {
    let (storage, restored) = Storage::open(disk.clone(), DIR).expect("open");
    (storage, Model::from_restored(restored))
}

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta { index: LogIndex(index), term: Term(term) }
}

fn staged_files(disk: &MemDisk) -> Vec<String> {
    disk.list(Path::new(DIR)).expect("list").into_iter().filter(|name| name.starts_with("snapshot.staged")).collect()
}

/// A storage holding entries 1..=10 of term 1.
fn with_entries(disk: &MemDisk) -> (Storage<MemDisk>, Model) {
    let (mut storage, mut model) = open(disk);
    let first = persist(Some(hard_state(1, Some(1), 10)), None, entries(1..=10, 1));
    storage.save(&first).expect("save");
    model.apply(&first);
    (storage, model)
}

#[test]
fn an_adopted_staged_snapshot_is_renamed_into_place() {
    let disk = MemDisk::new(1);
    let (mut storage, mut model) = with_entries(&disk);
    // The staged bytes differ from the ones the save is given, which the contract forbids; it is
    // how this test sees that the save renamed the staged file instead of writing its own.
    let staged = storage.snapshot_stager().stage(meta(6, 1), b"staged bytes").expect("stage");
    assert_eq!(staged_files(&disk).len(), 1);
    storage.adopt_staged(staged).expect("adopt");
    let syncs = disk.sync_count();
    let recorded = persist(None, Some(snapshot(6, 1, b"given bytes")), Vec::new());
    storage.save(&recorded).expect("save");
    // A rename needs no file fsync: the directory's and the log record's only.
    assert_eq!(disk.sync_count() - syncs, 2, "the save should rename, not write, the snapshot");
    model.apply(&persist(None, Some(snapshot(6, 1, b"staged bytes")), Vec::new()));
    assert!(staged_files(&disk).is_empty());
    drop(storage);
    disk.crash();
    let (_, restored) = open(&disk);
    assert_eq!(restored, model);
}

#[test]
fn a_staged_snapshot_for_another_index_is_removed_and_the_save_writes_its_own() {
    let disk = MemDisk::new(2);
    let (mut storage, mut model) = with_entries(&disk);
    let staged = storage.snapshot_stager().stage(meta(4, 1), b"old").expect("stage");
    storage.adopt_staged(staged).expect("adopt");
    let recorded = persist(None, Some(snapshot(7, 1, b"new")), Vec::new());
    storage.save(&recorded).expect("save");
    model.apply(&recorded);
    assert!(staged_files(&disk).is_empty());
    drop(storage);
    let (_, restored) = open(&disk);
    assert_eq!(restored, model);
}

#[test]
fn a_snapshot_saved_after_staging_takes_its_number_and_the_staged_file_is_not_used() {
    let disk = MemDisk::new(3);
    let (mut storage, mut model) = with_entries(&disk);
    let stager = storage.snapshot_stager();
    let staged = stager.stage(meta(8, 1), b"staged").expect("stage");
    // Meanwhile another snapshot is saved (say, one installed from the leader).
    let installed = persist(None, Some(snapshot(5, 1, b"installed")), Vec::new());
    storage.save(&installed).expect("save");
    model.apply(&installed);
    storage.adopt_staged(staged).expect("adopt");
    let recorded = persist(None, Some(snapshot(8, 1, b"written")), Vec::new());
    storage.save(&recorded).expect("save");
    model.apply(&recorded);
    drop(storage);
    let (_, restored) = open(&disk);
    assert_eq!(restored, model, "the snapshot must be the one written, numbered after the installed one");
    assert!(staged_files(&disk).is_empty());
}

#[test]
fn staged_files_never_recorded_are_removed_on_open_and_change_nothing() {
    for torn in [false, true] {
        let disk = MemDisk::new(4);
        let (storage, model) = with_entries(&disk);
        let stager = storage.snapshot_stager();
        stager.stage(meta(3, 1), b"never adopted").expect("stage");
        let adopted_but_never_saved = stager.stage(meta(9, 1), &[7; 4000]).expect("stage");
        let mut storage = storage;
        storage.adopt_staged(adopted_but_never_saved).expect("adopt");
        drop(storage);
        if torn {
            disk.crash_torn();
        } else {
            disk.crash();
        }
        let (_, restored) = open(&disk);
        assert_eq!(restored, model);
        assert!(staged_files(&disk).is_empty(), "torn: {torn}");
    }
}
