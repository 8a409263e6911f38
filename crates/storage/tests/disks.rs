//! The disks themselves: MemDisk's crash model and determinism, and storage on the real file system.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use storage::{Disk, DiskFile, MemDisk, Options, StdDisk, Storage, StorageError};

#[test]
fn mem_disk_loses_unsynced_data_and_unsynced_names() {
    let disk = MemDisk::new(1);
    let dir = Path::new("/d");
    disk.create_dir_all(dir).unwrap();
    let a = dir.join("a");
    let mut file = disk.open(&a, true).unwrap();
    file.append(b"synced").unwrap();
    file.sync().unwrap();
    file.append(b" lost").unwrap();
    // The file is synced but its name is not: a crash loses the whole file.
    disk.crash();
    assert!(!disk.exists(&a).unwrap());
    assert!(file.append(b"x").is_err(), "handles from before a crash are stale");

    let mut file = disk.open(&a, true).unwrap();
    file.append(b"synced").unwrap();
    file.sync().unwrap();
    disk.sync_dir(dir).unwrap();
    file.append(b" lost").unwrap();
    disk.crash();
    assert_eq!(disk.read(&a).unwrap(), b"synced");

    // An unsynced truncation into synced bytes is undone; a rename needs the directory synced.
    let mut file = disk.open(&a, false).unwrap();
    file.truncate(2).unwrap();
    disk.rename(&a, &dir.join("b")).unwrap();
    assert_eq!(disk.list(dir).unwrap(), vec!["b".to_string()]);
    disk.crash();
    assert_eq!(disk.list(dir).unwrap(), vec!["a".to_string()]);
    assert_eq!(disk.read(&a).unwrap(), b"synced");
}

#[test]
fn mem_disk_undoes_unsynced_overwrites_and_tears_them_in_order() {
    let path = PathBuf::from("/f");
    let setup = |seed: u64| {
        let disk = MemDisk::new(seed);
        let mut file = disk.open(&path, true).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        file.append(&[0; 100]).unwrap();
        file.sync().unwrap();
        // Two overwrites of synced zeros, then one past the end (leaving a hole).
        file.write_at(10, &[1; 20]).unwrap();
        file.write_at(50, &[2; 20]).unwrap();
        file.write_at(120, &[3; 10]).unwrap();
        assert_eq!(disk.read(&path).unwrap().len(), 130);
        disk
    };
    let disk = setup(1);
    disk.crash();
    assert_eq!(disk.read(&path).unwrap(), vec![0; 100], "a crash undoes every unsynced overwrite");
    let mut seen_partial = false;
    for seed in 0..60 {
        let disk = setup(seed);
        disk.crash_torn();
        let data = disk.read(&path).unwrap();
        let ones = data[10..30].iter().take_while(|&&byte| byte == 1).count();
        let twos = data[50..70].iter().take_while(|&&byte| byte == 2).count();
        // A prefix of the writes, in order: a later one only if the earlier ones are whole.
        assert!(data[10 + ones..30].iter().all(|&byte| byte == 0), "seed {seed}: a prefix of the first write");
        assert!(twos == 0 || ones == 20, "seed {seed}: the second write without the whole first");
        assert!(data.len() == 100 || twos == 20, "seed {seed}: the third write without the whole second");
        seen_partial |= (1..20).contains(&ones) || (1..20).contains(&twos);
    }
    assert!(seen_partial, "some tears cut an overwrite");
}

#[test]
fn mem_disk_tears_keep_a_prefix_and_are_deterministic() {
    let run = |seed: u64| {
        let disk = MemDisk::new(seed);
        let path = PathBuf::from("/f");
        let mut lens = Vec::new();
        for _ in 0..20 {
            let mut file = disk.open(&path, true).unwrap();
            disk.sync_dir(Path::new("/")).unwrap();
            file.append(&[1; 100]).unwrap();
            disk.crash_torn();
            let data = disk.read(&path).unwrap();
            assert!(data.iter().all(|&byte| byte == 1), "a prefix of what was written");
            lens.push(data.len());
        }
        lens
    };
    let lens = run(7);
    assert_eq!(lens, run(7), "same seed, same tears");
    assert_ne!(lens, run(8));
    assert!(lens.windows(2).any(|pair| pair[1] % 100 != 0 && pair[1] > pair[0]), "some tears cut a write: {lens:?}");
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("raftkv-storage-{name}-{}-{nanos}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn std_disk_round_trip_torn_tail_and_corruption() {
    std_disk_round_trip(Options { segment_bytes: 512, preallocate_bytes: 0 });
}

#[test]
fn std_disk_round_trip_preallocated() {
    std_disk_round_trip(Options { segment_bytes: 512, preallocate_bytes: 300 });
}

fn std_disk_round_trip(options: Options) {
    let dir = temp_dir(&format!("std-{}", options.preallocate_bytes));
    let mut rng = Prng::new(99);
    let mut model = Model::default();
    {
        let (mut storage, restored) = Storage::open_with(StdDisk, &dir, options).unwrap();
        assert_eq!(Model::from_restored(restored), model);
        for _ in 0..200 {
            let persist = random_persist(&mut rng, &model, true);
            storage.save(&persist).unwrap();
            model.apply(&persist);
        }
        assert!(storage.segment_count() > 1);
    }
    let (storage, restored) = Storage::open_with(StdDisk, &dir, options).unwrap();
    assert_eq!(Model::from_restored(restored), model);
    let last = dir.join("wal").join(storage.disk().list(&dir.join("wal")).unwrap().pop().unwrap());
    drop(storage);

    // Half a record after the last one: cut off on open.
    let bytes = std::fs::read(&last).unwrap();
    let end = bytes.iter().rposition(|&byte| byte != 0).map_or(0, |last_nonzero| last_nonzero + 1);
    let mut file = StdDisk.open(&last, false).unwrap();
    file.write_at(end as u64, &[40, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(file);
    let (_, restored) = Storage::open_with(StdDisk, &dir, options).unwrap();
    assert_eq!(Model::from_restored(restored), model);
    assert_eq!(std::fs::metadata(&last).unwrap().len(), end as u64, "cut back to the last whole record");

    // A flipped byte in the first segment: open refuses, naming the file.
    let first = dir.join("wal").join(StdDisk.list(&dir.join("wal")).unwrap()[0].clone());
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[10] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    match Storage::open_with(StdDisk, &dir, options) {
        Err(error @ StorageError::Corrupt { .. }) => {
            assert!(error.to_string().contains(&first.display().to_string()), "{error}")
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("opened a corrupt log"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A full disk (MemDisk with a capacity) refuses a save without poisoning the storage: nothing of
/// it took effect, the same save succeeds once there is room, and recovery sees every save that
/// succeeded — also when the full disk was met while starting a new segment or writing a snapshot.
#[test]
fn a_save_on_a_full_disk_changes_nothing_and_succeeds_once_there_is_room() {
    for (segment_bytes, preallocate_bytes) in [(64 << 20, 1 << 20), (4 << 10, 0), (4 << 10, 1 << 10)] {
        let options = Options { segment_bytes, preallocate_bytes };
        let disk = MemDisk::new(7);
        let (mut storage, _) = Storage::open_with(disk.clone(), "/n", options).expect("open");
        let mut next = 1;
        let save_of = |next: u64, round: u64| {
            let batch: Vec<_> = (next..next + 4).map(|index| entry(index, 1, &vec![round as u8; 700])).collect();
            persist(Some(hard_state(1, Some(1), next - 1)), None, batch)
        };
        for round in 0..12u64 {
            // 1,000 bytes more may be taken: saves go on (into preallocated space first) until
            // one needs more than there is.
            disk.set_capacity(Some(disk.used() + 1000));
            let mut save = save_of(next, round);
            let mut taken = 0;
            while let Ok(()) = storage.save(&save) {
                next += 4;
                taken += 1;
                assert!(taken < 10_000, "the disk never filled");
                save = save_of(next, round);
            }
            let refused = storage.save(&save).expect_err("the disk is full");
            assert!(refused.is_no_space(), "segment {segment_bytes}, round {round}: {refused}");
            // A snapshot that does not fit is refused the same way.
            if round % 4 == 3 {
                let with_snapshot = persist(None, Some(snapshot(next - 1, 1, &vec![9; 5000])), Vec::new());
                assert!(storage.save(&with_snapshot).expect_err("no room for it").is_no_space());
                disk.set_capacity(None);
                storage.save(&with_snapshot).expect("the snapshot, with room");
            }
            disk.set_capacity(None);
            storage.save(&save).expect("the same save, with room");
            next += 4;
        }
        disk.crash();
        let (storage, restored) = Storage::open_with(disk.clone(), "/n", options).expect("recovery");
        assert_eq!(storage.last_index().0, next - 1, "segment {segment_bytes}: every successful save recovered");
        assert_eq!(restored.hard_state.term.0, 1);
        let first = restored.snapshot.as_ref().map_or(1, |snapshot| snapshot.meta.index.0 + 1);
        assert_eq!(restored.entries.first().map(|entry| entry.index.0), Some(first));
        assert!(restored.entries.windows(2).all(|pair| pair[1].index.0 == pair[0].index.0 + 1), "contiguous");
    }
}
