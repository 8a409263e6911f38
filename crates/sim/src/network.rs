//! The simulated network: the labrpc model of MIT 6.5840 on virtual time, plus duplication.
//!
//! Servers are registered under a number; each registration is an *incarnation*, so a crashed and
//! restarted server never receives what was meant for its predecessor. Senders hold *ends*: one-way
//! handles from one server to another, created disabled and enabled by the tester; a restarted
//! server gets fresh ends, so its predecessor's messages never arrive anywhere.
//!
//! Raft traffic is messages, and the model maps labrpc's calls onto them: a request travels like a
//! call (unreliable: a 0–26 ms delay and a 10 % drop), a response like its reply (unreliable: a
//! 10 % drop; long reordering: two thirds held back 200–2200 ms). A message in flight is never
//! delivered to a later incarnation of its addressee. Unlike labrpc, whose reply goes to the calling
//! goroutine, a response sent after its caller restarted and reconnected reaches the new incarnation,
//! as it would on a real network; its stale term makes the core ignore it. Counters follow labrpc: every request sent counts as an RPC and
//! its bytes; a response's bytes count only when delivered; per-server counts are handler dispatches.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use wire::{Frame, Wire};

use crate::executor::Sim;
use crate::rng::SimRng;
use crate::trace::{describe, Event, Fate, MessageId, Trace};

pub type EndId = usize;

/// What a server does with each frame addressed to its current incarnation, and the server it
/// came from.
pub type Handler = Rc<dyn Fn(usize, Frame)>;
/// A service's RPC handler (the KV server's): encoded request in, encoded reply out, maybe much later.
pub type ServiceHandler = Rc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>>>>>;

/// labrpc polls a call in progress this often to notice a disconnect or a crash.
const LIVENESS_POLL: Duration = Duration::from_millis(100);

/// Chance, in unreliable mode, that a message is delivered twice (labrpc never did this; real
/// networks do).
const DUPLICATE_PER_MILLE: u64 = 20;

struct End {
    from: usize,
    to: usize,
    enabled: bool,
}

struct Server {
    incarnation: u64,
    handler: Handler,
    service: Option<ServiceHandler>,
}

#[derive(Default)]
struct State {
    reliable: bool,
    long_reordering: bool,
    /// Failed calls come back after up to 7 s instead of 100 ms (the Raft suite's setting).
    long_delays: bool,
    /// Every hop (request or reply) takes at least this long, plus up to `latency_jitter_micros`.
    /// labrpc adds nothing on a reliable network, but a real run still spends time on each hop;
    /// without it, clients of a simulated service could do unbounded work in zero virtual time.
    latency_min_micros: u64,
    latency_jitter_micros: u64,
    ends: Vec<End>,
    servers: Vec<Option<Server>>,
    next_incarnation: u64,
    total_rpcs: u64,
    total_bytes: u64,
    /// Handler dispatches per server, reset when the server is registered anew.
    incoming: Vec<u64>,
    /// Once torn down, nothing is delivered any more.
    closed: bool,
    /// enabled_ends[i][j]: how many enabled ends lead from server i to server j (clients' ends
    /// aside), so that a change of who can reach whom is seen at once.
    enabled_ends: Vec<Vec<u32>>,
}

#[derive(Clone)]
pub struct Network {
    sim: Sim,
    rng: SimRng,
    trace: Trace,
    state: Rc<RefCell<State>>,
}

impl Network {
    pub fn new(sim: Sim, rng: SimRng, trace: Trace, servers: usize) -> Network {
        let state = State {
            reliable: true,
            servers: (0..servers).map(|_| None).collect(),
            incoming: vec![0; servers],
            enabled_ends: vec![vec![0; servers]; servers],
            ..State::default()
        };
        trace.set_servers(servers);
        let network = Network { sim, rng, trace, state: Rc::new(RefCell::new(state)) };
        network.record_links();
        network.record_mode();
        network
    }

    pub fn set_reliable(&self, reliable: bool) {
        self.state.borrow_mut().reliable = reliable;
        self.trace.record(self.sim.now(), format!("net reliable={reliable}"));
        self.record_mode();
    }

    pub fn set_long_reordering(&self, on: bool) {
        self.state.borrow_mut().long_reordering = on;
        self.trace.record(self.sim.now(), format!("net long-reordering={on}"));
        self.record_mode();
    }

    fn record_mode(&self) {
        let state = self.state.borrow();
        let event = Event::Net { reliable: state.reliable, long_reordering: state.long_reordering, long_delays: state.long_delays };
        self.trace.event(self.sim.now(), event);
    }

    fn record_links(&self) {
        let up = self.state.borrow().enabled_ends.iter().map(|row| row.iter().map(|&count| count > 0).collect()).collect();
        self.trace.event(self.sim.now(), Event::Links(up));
    }

    /// A new, disabled end from server `from` to server `to`.
    pub fn make_end(&self, from: usize, to: usize) -> EndId {
        let mut state = self.state.borrow_mut();
        state.ends.push(End { from, to, enabled: false });
        state.ends.len() - 1
    }

    pub fn enable(&self, end: EndId, enabled: bool) {
        let mut state = self.state.borrow_mut();
        let End { from, to, enabled: was } = state.ends[end];
        state.ends[end].enabled = enabled;
        if was == enabled || from >= state.enabled_ends.len() {
            return;
        }
        let count = &mut state.enabled_ends[from][to];
        let reach_changed = if enabled {
            *count += 1;
            *count == 1
        } else {
            *count -= 1;
            *count == 0
        };
        drop(state);
        if reach_changed {
            self.record_links();
        }
    }

    /// Registers a new incarnation of `server`; whatever was in flight to the old one is lost.
    pub fn add_server(&self, server: usize, handler: Handler) {
        let mut state = self.state.borrow_mut();
        state.next_incarnation += 1;
        let incarnation = state.next_incarnation;
        state.servers[server] = Some(Server { incarnation, handler, service: None });
        state.incoming[server] = 0;
    }

    /// Registers a service (RPCs from clients) on the current incarnation of `server`.
    pub fn add_service(&self, server: usize, service: ServiceHandler) {
        if let Some(registered) = self.state.borrow_mut().servers[server].as_mut() {
            registered.service = Some(service);
        }
    }

    /// Gives every hop a latency in [min, max).
    pub fn set_latency(&self, min: Duration, max: Duration) {
        let mut state = self.state.borrow_mut();
        state.latency_min_micros = min.as_micros() as u64;
        state.latency_jitter_micros = max.saturating_sub(min).as_micros() as u64;
    }

    fn hop_latency(&self) -> Duration {
        let (min, jitter) = {
            let state = self.state.borrow();
            (state.latency_min_micros, state.latency_jitter_micros)
        };
        Duration::from_micros(min + self.rng.below(jitter))
    }

    pub fn set_long_delays(&self, on: bool) {
        self.state.borrow_mut().long_delays = on;
        self.record_mode();
    }

    pub fn delete_server(&self, server: usize) {
        self.state.borrow_mut().servers[server] = None;
    }

    /// Tears the network down: nothing is delivered any more, and the handlers are dropped, so
    /// that the servers they hold (which hold this network) are freed with the run.
    pub fn close(&self) {
        let mut state = self.state.borrow_mut();
        state.closed = true;
        let servers: Vec<Option<Server>> = state.servers.iter_mut().map(Option::take).collect();
        drop(state);
        drop(servers);
    }

    pub fn total_rpcs(&self) -> u64 {
        self.state.borrow().total_rpcs
    }

    pub fn total_bytes(&self) -> u64 {
        self.state.borrow().total_bytes
    }

    /// Handler dispatches on `server` since its current incarnation was registered.
    pub fn incoming(&self, server: usize) -> u64 {
        self.state.borrow().incoming[server]
    }

    /// Sends a frame through `end`: a Raft message, or a forwarded client request or its answer.
    /// Never blocks and never fails visibly: a lost frame is simply not delivered, which is all a
    /// message-driven node ever sees of a failed RPC. Frames travel encoded with the real codec and
    /// frame limit; one over the limit is lost (the transport refuses to send it).
    pub fn send(&self, end: EndId, frame: Frame) {
        let mut bytes = Vec::new();
        let encoded = wire::encode(&Wire::Frame(frame.clone()), wire::DEFAULT_MAX_FRAME_BYTES, &mut bytes);
        // Byte counts are the lab's: the message or payload, not the frame's header.
        let (size, is_response) = match &frame {
            Frame::Raft(message) => ((bytes.len().saturating_sub(wire::LENGTH_BYTES + wire::HEADER_BYTES)) as u64, message.is_response()),
            Frame::Forward { payload, .. } => (payload.len() as u64, false),
            Frame::ForwardReply { payload, .. } => (payload.len() as u64, true),
        };
        let mut state = self.state.borrow_mut();
        if !is_response {
            state.total_rpcs += 1;
            state.total_bytes += size;
        }
        let End { from, to, enabled } = state.ends[end];
        let target = state.servers[to].as_ref().map(|server| server.incarnation);
        let (reliable, long_reordering, closed) = (state.reliable, state.long_reordering, state.closed);
        drop(state);
        let now = self.sim.now();
        // A forward and its answer are lost only with their link (a partition, a crash), never
        // alone: they ride a TCP stream in the server, which loses no frame while it is up, and
        // the node answers a forward cut off that way with an error at once. Raft's own messages
        // stay lossy (they are retried).
        let lossy = !reliable && matches!(frame, Frame::Raft(_));
        let Some(incarnation) = target.filter(|_| enabled && !closed && encoded.is_ok()) else {
            self.trace.record(now, format_args!("lost (link down) {from}->{to} {}", describe(&frame)));
            self.trace.message(from, to, now, &frame, Fate::LinkDown, None);
            return;
        };
        let delay = if is_response {
            if lossy && self.rng.chance(100, 1000) {
                self.trace.record(now, format_args!("dropped reply {}", describe(&frame)));
                self.trace.message(from, to, now, &frame, Fate::Dropped, None);
                return;
            }
            if long_reordering && self.rng.chance(600, 900) {
                let extra = self.rng.below(1 + self.rng.below(2000));
                Duration::from_millis(200 + extra)
            } else {
                Duration::ZERO
            }
        } else {
            let delay = if reliable { Duration::ZERO } else { self.rng.millis_below(27) };
            if lossy && self.rng.chance(100, 1000) {
                self.trace.record(now, format_args!("dropped request {}", describe(&frame)));
                self.trace.message(from, to, now, &frame, Fate::Dropped, None);
                return;
            }
            delay
        };
        let delay = delay + self.hop_latency();
        // The frame must decode to itself: nothing is shared between sender and receiver.
        let copy = match wire::decode(&bytes, wire::DEFAULT_MAX_FRAME_BYTES) {
            Ok(Some((Wire::Frame(copy), used))) if used == bytes.len() => copy,
            other => panic!("a frame did not decode to itself: {other:?}"),
        };
        if !reliable && self.rng.chance(DUPLICATE_PER_MILLE, 1000) {
            let again = delay + self.rng.millis_below(27);
            let id = self.trace.message(from, to, now, &copy, Fate::Delivered, Some(now + again));
            self.deliver_later(again, (from, to), incarnation, copy.clone(), is_response, size, id);
        }
        let id = self.trace.message(from, to, now, &copy, Fate::Delivered, Some(now + delay));
        self.deliver_later(delay, (from, to), incarnation, copy, is_response, size, id);
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_later(&self, delay: Duration, (from, to): (usize, usize), incarnation: u64, frame: Frame, is_response: bool, size: u64, id: MessageId) {
        let network = self.clone();
        self.sim.schedule(delay, move || {
            let mut state = network.state.borrow_mut();
            let handler = match &state.servers[to] {
                Some(server) if server.incarnation == incarnation && !state.closed => server.handler.clone(),
                _ => {
                    drop(state);
                    network.trace.record(network.sim.now(), format_args!("lost (server gone) {}", describe(&frame)));
                    network.trace.message_lost(id, network.sim.now());
                    return;
                }
            };
            if is_response {
                state.total_bytes += size;
            } else {
                state.incoming[to] += 1;
            }
            drop(state);
            network.trace.record(network.sim.now(), describe(&frame));
            handler(from, frame);
        });
    }

    /// A client's RPC through `end`, with labrpc's semantics: None is "failed" (the request or reply
    /// was lost, the link is down, or the server crashed or was cut off while handling it). A call to
    /// a healthy server has no timeout: it waits for the handler, however long that takes.
    pub async fn call(&self, end: EndId, request: Vec<u8>) -> Option<Vec<u8>> {
        let (to, enabled, target, reliable, long_reordering, long_delays) = {
            let mut state = self.state.borrow_mut();
            state.total_rpcs += 1;
            state.total_bytes += request.len() as u64;
            let End { to, enabled, .. } = state.ends[end];
            let target = state.servers[to].as_ref().filter(|_| !state.closed).and_then(|server| {
                server.service.clone().map(|service| (server.incarnation, service))
            });
            (to, enabled, target, state.reliable, state.long_reordering, state.long_delays)
        };
        let Some((incarnation, service)) = target.filter(|_| enabled) else {
            let bound = if long_delays { 7000 } else { 100 };
            self.sim.sleep(self.rng.millis_below(bound)).await;
            return None;
        };
        self.sim.sleep(self.hop_latency()).await;
        if !reliable {
            self.sim.sleep(self.rng.millis_below(27)).await;
            if self.rng.chance(100, 1000) {
                return None;
            }
        }
        self.state.borrow_mut().incoming[to] += 1;
        let mut handling = self.sim.spawn(service(request));
        let still_there = || {
            let state = self.state.borrow();
            state.ends[end].enabled
                && !state.closed
                && state.servers[to].as_ref().is_some_and(|server| server.incarnation == incarnation)
        };
        let reply = loop {
            let mut poll = self.sim.sleep(LIVENESS_POLL);
            let finished = poll_fn(|context| match Pin::new(&mut handling).poll(context) {
                Poll::Ready(reply) => Poll::Ready(Some(reply)),
                Poll::Pending => Pin::new(&mut poll).poll(context).map(|()| None),
            })
            .await;
            if let Some(reply) = finished {
                break reply;
            }
            if !still_there() {
                return None;
            }
        };
        if !still_there() || (!reliable && self.rng.chance(100, 1000)) {
            return None;
        }
        if long_reordering && self.rng.chance(600, 900) {
            let extra = self.rng.below(1 + self.rng.below(2000));
            self.sim.sleep(Duration::from_millis(200 + extra)).await;
        }
        self.sim.sleep(self.hop_latency()).await;
        self.state.borrow_mut().total_bytes += reply.len() as u64;
        Some(reply)
    }
}

