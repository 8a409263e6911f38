//! The node's loop: the one task that owns the `Replica`. It turns the world's events into the
//! replica's inputs — ticks from a monotonic clock, peer frames, client requests, completed saves
//! and snapshots — draining whatever is queued into one batch, then carries out the outputs:
//! frames to the transport, answers to connections, saves to the disk thread, snapshots to a
//! blocking task. It decides nothing itself.

use std::collections::HashMap;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use replica::request::{Answer, Request};
use replica::session::NodeView;
use replica::{ConnId, Output, Replica};
use tokio::sync::{mpsc, watch};
use transport::{Full, Inbound, Transport};

use crate::disk::DiskWork;
use crate::ServerError;

pub enum LoopInput {
    /// A client connection opened; its answers go to `answers`, in order.
    Connected { conn: ConnId, answers: mpsc::UnboundedSender<Answer> },
    Request { conn: ConnId, request: Request },
    Disconnected(ConnId),
    Saved(replica::SaveId),
    SaveFailed(storage::StorageError),
    /// The store copy of `Output::Snapshot` at `index`, encoded, and its file staged (if it could be).
    SnapshotEncoded { index: u64, data: Arc<[u8]>, staged: Option<storage::Staged> },
    /// The snapshot was not taken: its file would not fit on the disk.
    SnapshotSkipped,
    /// The save found the disk full and wrote nothing; the replica hands it again later.
    SaveNoSpace(replica::SaveId, storage::StorageError),
    /// SIGTERM: hand leadership over (if this node leads), then stop.
    Shutdown,
}

#[derive(PartialEq, Eq)]
enum Carried {
    All,
    /// The replica stopped as asked (SIGTERM): the loop ends.
    Stopped,
}

/// Room a snapshot's file must leave on the disk for the log to go on.
const SNAPSHOT_SPACE_MARGIN: u64 = 4 << 20;

pub struct NodeLoop {
    pub replica: Replica,
    pub transport: Transport,
    pub disk: std_mpsc::Sender<DiskWork>,
    pub stager: storage::SnapshotStager<storage::StdDisk>,
    /// Where the loop's own completions come back (snapshots encoded in the background).
    pub inputs: mpsc::UnboundedSender<LoopInput>,
    /// What connections may tell clients (INFO, HELLO); connected clients are filled in by the port.
    pub view: watch::Sender<NodeView>,
    /// Resident memory as last read (refreshed at most once a second), and when.
    pub memory: (u64, Option<Instant>),
    pub started: Instant,
    pub tick: Duration,
    /// Client requests taken into one batch at most (one Ready, one save).
    pub max_batch: usize,
    pub connections: HashMap<ConnId, mpsc::UnboundedSender<Answer>>,
}

impl NodeLoop {
    pub async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<LoopInput>, mut peers: mpsc::Receiver<Inbound>) -> Result<(), ServerError> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clock = TickClock::new(self.tick);
        loop {
            let event = tokio::select! {
                _ = ticker.tick() => None,
                input = inputs.recv() => match input {
                    Some(input) => Some(Ok(input)),
                    None => return Ok(()),
                },
                Some(inbound) = peers.recv() => Some(Err(inbound)),
            };
            // Time first: after a pause (a stopped process, a stalled thread) the node must see how
            // much time really passed before it acts on anything, or it would act on a stale view
            // of its leadership (this is what makes lease reads safe across pauses).
            // The wall clock only stamps a leader's clock entries (keys expire by the log's time).
            let unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
            self.replica.set_clock(unix_ms);
            for _ in 0..clock.due() {
                self.replica.tick();
            }
            match event {
                Some(Ok(input)) => self.on_input(input)?,
                Some(Err(inbound)) => self.on_peer(inbound),
                None => {}
            }
            // Everything already queued goes into this batch: one Ready, one save, one append per peer.
            for _ in 1..self.max_batch {
                match inputs.try_recv() {
                    Ok(input) => self.on_input(input)?,
                    Err(_) => break,
                }
            }
            for _ in 0..4096 {
                match peers.try_recv() {
                    Ok(inbound) => self.on_peer(inbound),
                    Err(_) => break,
                }
            }
            if self.carry_out()? == Carried::Stopped {
                tracing::info!(leader = ?self.replica.status().leader.map(|id| id.0), "stopping");
                return Ok(());
            }
            self.publish();
        }
    }

    fn on_peer(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Hello { from, address, cluster } => self.replica.peer_hello(from, address, cluster),
            Inbound::Frame { from, frame } => self.replica.peer_frame(from, frame),
        }
    }

    fn on_input(&mut self, input: LoopInput) -> Result<(), ServerError> {
        match input {
            LoopInput::Connected { conn, answers } => {
                self.connections.insert(conn, answers);
            }
            LoopInput::Request { conn, request } => self.replica.client(conn, request),
            LoopInput::Disconnected(conn) => {
                self.connections.remove(&conn);
                self.replica.disconnected(conn);
            }
            LoopInput::Saved(id) => self.replica.persisted(id),
            LoopInput::SaveFailed(error) => return Err(ServerError::Storage(error)),
            LoopInput::SaveNoSpace(id, error) => {
                if !self.replica.disk_full() {
                    tracing::error!(%error, "the disk is full: writes are refused and leadership given up until a save succeeds again; retrying");
                }
                self.replica.save_failed_no_space(id);
            }
            LoopInput::SnapshotSkipped => self.replica.snapshot_skipped(),
            LoopInput::Shutdown => match self.replica.shut_down() {
                Some(target) => tracing::info!(target = target.0, "SIGTERM: handing leadership over before stopping"),
                None => tracing::info!("SIGTERM: stopping"),
            },
            LoopInput::SnapshotEncoded { index, data, staged } => {
                if let Some(staged) = staged {
                    // Before the save that records the snapshot: that save then renames the file.
                    let _ = self.disk.send(DiskWork::Adopt(staged));
                }
                self.replica.snapshot_taken(index, data);
            }
        }
        Ok(())
    }

    /// Carries out the replica's outputs until it has none (a frame that cannot be queued is
    /// given back to it, which may produce more).
    fn carry_out(&mut self) -> Result<Carried, ServerError> {
        loop {
            let outputs = self.replica.take_outputs();
            if outputs.is_empty() {
                return Ok(Carried::All);
            }
            for output in outputs {
                match output {
                    Output::Send { to, frame } => {
                        if let Err(Full(frame)) = self.transport.send(to, frame) {
                            self.replica.undeliverable(to, frame);
                        }
                    }
                    Output::Reply { conn, answer } => {
                        if let Some(answers) = self.connections.get(&conn) {
                            // A connection that went away meanwhile needs nothing more.
                            let _ = answers.send(answer);
                        }
                    }
                    Output::Save { id, persist } => {
                        if self.disk.send(DiskWork::Save { id, persist }).is_err() {
                            return Err(ServerError::DiskThreadGone);
                        }
                    }
                    Output::Snapshot { index, term, store } => self.encode_snapshot(index, term, store),
                    Output::Refused(reason) => tracing::warn!("{reason}"),
                    Output::Warning(text) => tracing::warn!("{text}"),
                    Output::Peers(links) => {
                        tracing::info!(peers = ?links.peers, advertise = %links.advertise, joining = links.joining, "peer links");
                        if self.transport.set_cluster_id(links.cluster) != links.cluster {
                            tracing::info!(cluster = %format!("{:#018x}", links.cluster), "the cluster is named; peers of other clusters are refused from now on");
                        }
                        self.transport.set_peers(links.peers, &links.advertise, links.joining);
                    }
                    Output::Fatal(reason) => return Err(ServerError::Fatal(reason)),
                    Output::Stopped => return Ok(Carried::Stopped),
                }
            }
        }
    }

    /// Encodes the store copy and writes its file on a blocking thread, so that neither the loop
    /// nor the disk thread waits for a large snapshot; the loop then only hands it to the core.
    fn encode_snapshot(&self, index: u64, term: u64, store: kv::Store) {
        let (stager, inputs) = (self.stager.clone(), self.inputs.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let data: Arc<[u8]> = store.encode_snapshot().into();
            let encode_ms = started.elapsed().as_millis() as u64;
            let needed = data.len() as u64 + SNAPSHOT_SPACE_MARGIN;
            if let Some(free) = crate::disk::free_bytes(stager.dir()).filter(|&free| free < needed) {
                tracing::warn!(index, bytes = data.len(), free, "snapshot not taken: its file would not fit on the disk; the log is kept");
                let _ = inputs.send(LoopInput::SnapshotSkipped);
                return;
            }
            let meta = raft::SnapshotMeta { index: raft::LogIndex(index), term: raft::Term(term) };
            let staged = stager.stage(meta, &data).map_err(|error| tracing::warn!(%error, "snapshot not staged; the disk thread will write it")).ok();
            tracing::info!(index, bytes = data.len(), encode_ms, encode_and_stage_ms = started.elapsed().as_millis() as u64, "snapshot encoded");
            // If the loop is gone, the node is stopping: the snapshot is simply not taken.
            let _ = inputs.send(LoopInput::SnapshotEncoded { index, data, staged });
        });
    }

    fn publish(&mut self) {
        let view = self.replica.view();
        let (status, last) = (view.status, self.view.borrow().status);
        if (status.role, status.term, status.leader) != (last.role, last.term, last.leader) {
            tracing::info!(role = %status.role, term = status.term.0, leader = ?status.leader.map(|id| id.0), "raft state changed");
        }
        if self.view.borrow().disk_full && !view.disk_full {
            tracing::warn!("the disk has room again: writes are accepted");
        }
        let now = Instant::now();
        if self.memory.1.is_none_or(|read| now.duration_since(read) >= Duration::from_secs(1)) {
            self.memory = (resident_bytes().unwrap_or(0), Some(now));
        }
        self.view.send_replace(NodeView { used_memory: self.memory.0, uptime_seconds: now.duration_since(self.started).as_secs(), ..view });
    }
}

/// The process's resident memory, from /proc (Linux); None elsewhere or on an error.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Ticks owed to the node by a monotonic clock. Unlike an interval timer, it counts the time a
/// paused process did not see (`Instant` keeps running while the process is stopped).
struct TickClock {
    started: Instant,
    tick: Duration,
    ticked: u64,
}

impl TickClock {
    fn new(tick: Duration) -> TickClock {
        TickClock { started: Instant::now(), tick, ticked: 0 }
    }

    /// Ticks that became due since the last call.
    fn due(&mut self) -> u64 {
        let now = (self.started.elapsed().as_nanos() / self.tick.as_nanos().max(1)) as u64;
        let due = now.saturating_sub(self.ticked);
        self.ticked = now.max(self.ticked);
        due
    }
}
