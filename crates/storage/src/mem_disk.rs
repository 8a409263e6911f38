//! `MemDisk`: an in-memory `Disk` that models what survives a power failure, for tests and, later,
//! the simulator.
//!
//! The model, per file (an "inode"):
//! - `data` is what reads see.
//! - Every write and truncation since the last `sync` is remembered with what it replaced, in
//!   order; `sync` forgets them (everything in `data` is now durable).
//! - A crash undoes them all, newest first, which leaves the durable contents, including bytes an
//!   unsynced overwrite or truncation replaced.
//!
//! And per directory: names (creations, renames, removals) are durable only after `sync_dir` of
//! their directory; until then a crash restores the old names. Directories themselves are always
//! durable (storage creates them once, at open).
//!
//! `crash()` keeps exactly the durable state. `crash_torn()` then redoes a random prefix of each
//! file's unsynced changes, in order, the last one possibly in part (the disk wrote part of the last
//! write before power went), which can cut a record in half, in the middle of a file as well as at
//! its end. `crash_at_sync(n, torn)` arms a crash that happens instead of the n-th
//! next sync, which is how tests catch a `save` between its write and its fsync. Every random choice
//! comes from the seed, so a seed replays a run exactly.
//!
//! After a crash every handle opened before it is stale: its operations fail, so a storage instance
//! that "died" cannot write into the recovered disk. A removed file's data is freed once no name,
//! durable or not, refers to it; a handle to it then fails too (storage never uses one).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::disk::{Disk, DiskFile};

/// A shared handle: clones see the same disk, so a test keeps one to crash or corrupt the disk a
/// `Storage` owns another of.
#[derive(Clone, Debug)]
pub struct MemDisk(Arc<Mutex<State>>);

#[derive(Debug)]
struct State {
    rng: u64,
    /// Bumped by every crash; handles from an older generation are stale.
    generation: u64,
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// (syncs left before the crash, whether it tears).
    armed: Option<(u64, bool)>,
    syncs: u64,
    /// With a capacity, the bytes of all files together may not grow past it: a write that would
    /// is cut where the space ends and fails, as `write` does with ENOSPC.
    capacity: Option<u64>,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    /// The changes since the last sync, oldest first.
    unsynced: Vec<Change>,
}

/// One unsynced change to a file, with what it replaced, so that a crash can undo it.
#[derive(Debug)]
enum Change {
    /// `bytes` written at `offset`; the file was `old_len` long and `replaced` held the bytes
    /// (within `old_len`) that the write covered.
    Write { offset: usize, bytes: Vec<u8>, old_len: usize, replaced: Vec<u8> },
    /// The file cut (or grown with zeros) to `len`; `cut` holds the bytes beyond `len` it dropped.
    Resize { len: usize, old_len: usize, cut: Vec<u8> },
}

impl Inode {
    fn write(&mut self, offset: usize, bytes: &[u8]) {
        let old_len = self.data.len();
        let end = offset + bytes.len();
        let replaced = self.data[offset.min(old_len)..end.min(old_len)].to_vec();
        self.redo_write(offset, bytes);
        self.unsynced.push(Change::Write { offset, bytes: bytes.to_vec(), old_len, replaced });
    }

    fn redo_write(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset + bytes.len();
        if self.data.len() < end {
            // A write past the end leaves a hole of zeros, as on a real file system.
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(bytes);
    }

    fn resize(&mut self, len: usize) {
        let old_len = self.data.len();
        let cut = self.data[len.min(old_len)..].to_vec();
        self.data.resize(len, 0);
        self.unsynced.push(Change::Resize { len, old_len, cut });
    }

    /// Undoes every unsynced change; with `keep`, then redoes the first `keep` bytes' worth of them
    /// in order (a resize costs one byte, so that it too can be the point the disk stopped at).
    fn crash(&mut self, keep: Option<u64>) {
        let changes = std::mem::take(&mut self.unsynced);
        for change in changes.iter().rev() {
            match change {
                Change::Write { offset, old_len, replaced, .. } => {
                    self.data[*offset..*offset + replaced.len()].copy_from_slice(replaced);
                    self.data.truncate(*old_len);
                }
                Change::Resize { old_len, cut, .. } => {
                    self.data.truncate(old_len - cut.len());
                    self.data.extend_from_slice(cut);
                    self.data.truncate(*old_len);
                }
            }
        }
        let Some(mut budget) = keep else { return };
        for change in &changes {
            if budget == 0 {
                break;
            }
            match change {
                Change::Write { offset, bytes, .. } => {
                    let kept = bytes.len().min(usize::try_from(budget).unwrap_or(usize::MAX));
                    self.redo_write(*offset, &bytes[..kept]);
                    budget -= kept as u64;
                }
                Change::Resize { len, .. } => {
                    self.data.resize(*len, 0);
                    budget -= 1;
                }
            }
        }
    }

    /// How many bytes' worth of unsynced changes a torn crash can keep (see `crash`).
    fn unsynced_weight(&self) -> u64 {
        self.unsynced
            .iter()
            .map(|change| match change {
                Change::Write { bytes, .. } => bytes.len() as u64,
                Change::Resize { .. } => 1,
            })
            .sum()
    }
}

#[derive(Debug)]
pub struct MemFile {
    disk: MemDisk,
    inode: u64,
    generation: u64,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

impl MemDisk {
    pub fn new(seed: u64) -> MemDisk {
        MemDisk(Arc::new(Mutex::new(State {
            rng: seed ^ 0x6a09_e667_f3bc_c908,
            generation: 0,
            dirs: BTreeSet::from([PathBuf::from("/"), PathBuf::new()]),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_inode: 1,
            armed: None,
            syncs: 0,
            capacity: None,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the disk from the assertions that follow.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Power failure: everything not synced is lost.
    pub fn crash(&self) {
        self.state().crash(false);
    }

    /// Power failure that tears: each file keeps a random prefix of its unsynced appends.
    pub fn crash_torn(&self) {
        self.state().crash(true);
    }

    /// The `n`-th sync from now (file or directory, counting from 1) crashes the disk instead of
    /// syncing, and fails.
    pub fn crash_at_sync(&self, n: u64, torn: bool) {
        assert!(n >= 1, "the first sync is number 1");
        self.state().armed = Some((n, torn));
    }

    /// Limits the bytes of all files together (None: unlimited); see `State::capacity`.
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.state().capacity = capacity;
    }

    pub fn capacity(&self) -> Option<u64> {
        self.state().capacity
    }

    /// The bytes of all files together.
    pub fn used(&self) -> u64 {
        self.state().inodes.values().map(|inode| inode.data.len() as u64).sum()
    }

    pub fn disarm(&self) {
        self.state().armed = None;
    }

    /// Flips every bit of the byte at `offset`, durably (bit rot, not a lost write).
    pub fn corrupt(&self, path: &Path, offset: u64) {
        let mut state = self.state();
        let id = *state.names.get(path).unwrap_or_else(|| panic!("corrupt: {} not found", path.display()));
        let inode = state.inodes.get_mut(&id).expect("named inode exists");
        let offset = offset as usize;
        assert!(offset < inode.data.len(), "corrupt: offset {offset} beyond {} bytes", inode.data.len());
        inode.data[offset] = !inode.data[offset];
        // Durably: into whatever a crash would restore, too.
        for change in &mut inode.unsynced {
            match change {
                Change::Write { offset: at, replaced, .. } if (*at..*at + replaced.len()).contains(&offset) => {
                    replaced[offset - *at] = !replaced[offset - *at];
                }
                Change::Resize { len, cut, .. } if (*len..*len + cut.len()).contains(&offset) => {
                    cut[offset - *len] = !cut[offset - *len];
                }
                _ => {}
            }
        }
    }

    /// A file's current contents, synced or not.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        state.names.get(path).map(|id| state.inodes[id].data.clone())
    }

    /// Syncs (file and directory) performed so far.
    pub fn sync_count(&self) -> u64 {
        self.state().syncs
    }
}

impl State {
    fn next_random(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn crash(&mut self, torn: bool) {
        self.generation += 1;
        self.armed = None;
        self.names = self.durable_names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
        let ids: Vec<u64> = self.inodes.keys().copied().collect();
        for id in ids {
            let keep_random = torn.then(|| self.next_random());
            let inode = self.inodes.get_mut(&id).expect("listed");
            let keep = keep_random.map(|random| random % (inode.unsynced_weight() + 1));
            inode.crash(keep);
        }
    }

    /// Counts a sync; true if the armed crash fires instead (and has happened).
    fn crash_instead_of_sync(&mut self) -> bool {
        self.syncs += 1;
        match self.armed {
            Some((1, torn)) => {
                self.crash(torn);
                true
            }
            Some((left, torn)) => {
                self.armed = Some((left - 1, torn));
                false
            }
            None => false,
        }
    }

    fn parent_exists(&self, path: &Path) -> bool {
        path.parent().is_some_and(|parent| self.dirs.contains(parent))
    }

    /// Frees inodes no name refers to, durable or not.
    fn collect(&mut self) {
        let live: BTreeSet<u64> = self.names.values().chain(self.durable_names.values()).copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
    }
}

impl Disk for MemDisk {
    type File = MemFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<MemFile> {
        let mut state = self.state();
        let inode = match state.names.get(path) {
            Some(&id) => id,
            None if create && state.parent_exists(path) => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(id, Inode::default());
                state.names.insert(path.to_path_buf(), id);
                id
            }
            None => return Err(not_found(path)),
        };
        Ok(MemFile { disk: self.clone(), inode, generation: state.generation })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = state.names.keys().filter(|path| path.parent() == Some(dir));
        let subdirs = state.dirs.iter().filter(|path| path.parent() == Some(dir));
        let mut names: Vec<String> = files
            .chain(subdirs)
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.collect();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        if !state.parent_exists(to) {
            return Err(not_found(to));
        }
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), id);
        state.collect();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        if state.crash_instead_of_sync() {
            return Err(crashed());
        }
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        let current: Vec<(PathBuf, u64)> =
            state.names.iter().filter(|(path, _)| in_dir(path)).map(|(path, &id)| (path.clone(), id)).collect();
        state.durable_names.retain(|path, _| !in_dir(path));
        state.durable_names.extend(current);
        state.collect();
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.state();
        Ok(state.names.contains_key(path) || state.dirs.contains(path))
    }
}

impl MemFile {
    /// Runs `f` on this file's inode, unless a crash made the handle stale or the file was freed.
    fn with<T>(&self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut state = self.disk.state();
        if state.generation != self.generation {
            return Err(io::Error::other("stale handle: the disk crashed since it was opened"));
        }
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file was removed"))?;
        Ok(f(inode))
    }
}

impl MemFile {
    /// The bytes the files may still grow by.
    fn room(&self) -> io::Result<u64> {
        let state = self.disk.state();
        let used: u64 = state.inodes.values().map(|inode| inode.data.len() as u64).sum();
        Ok(state.capacity.map_or(u64::MAX, |capacity| capacity.saturating_sub(used)))
    }
}

impl DiskFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|inode| inode.data.len() as u64)
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.with(|inode| inode.data.clone())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|inode| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let end = start.checked_add(buf.len()).filter(|&end| end <= inode.data.len());
            match end {
                Some(end) => {
                    buf.copy_from_slice(&inode.data[start..end]);
                    Ok(())
                }
                None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file")),
            }
        })?
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.len()?;
        self.write_at(end, bytes)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        let room = self.room()?;
        let growth = (offset + bytes.len()).saturating_sub(self.len()? as usize) as u64;
        if growth > room {
            // What fits is written, then the write fails: a short write ending in ENOSPC.
            let fits = bytes.len() - (growth - room) as usize;
            self.with(|inode| inode.write(offset, &bytes[..fits]))?;
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device (simulated)"));
        }
        self.with(|inode| inode.write(offset, bytes))
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        // Growing with zeros, as ftruncate does.
        self.with(|inode| inode.resize(len as usize))
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.disk.state();
        if state.generation != self.generation {
            return Err(io::Error::other("stale handle: the disk crashed since it was opened"));
        }
        if state.crash_instead_of_sync() {
            return Err(crashed());
        }
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file was removed"))?;
        inode.unsynced.clear();
        Ok(())
    }
}
