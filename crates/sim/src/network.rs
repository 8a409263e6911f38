//! The simulated network: the labrpc model of MIT 6.5840 on virtual time, plus duplication.
//!
//! Servers are registered under a number; each registration is an *incarnation*, so a crashed and
//! restarted server never receives what was meant for its predecessor. Senders hold *ends*: one-way
//! handles from one server to another, created disabled and enabled by the tester; a restarted
//! server gets fresh ends, so its predecessor's messages never arrive anywhere.
//!
//! Raft traffic is messages, and the model maps labrpc's calls onto them: a request travels like a
//! call (unreliable: a 0–26 ms delay and a 10 % drop), a response like its reply (unreliable: a
//! 10 % drop; long reordering: two thirds held back 200–2200 ms). A reply is never delivered to a
//! later incarnation of the caller. Counters follow labrpc: every request sent counts as an RPC and
//! its bytes; a response's bytes count only when delivered; per-server counts are handler dispatches.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use raft::Message;

use crate::executor::Sim;
use crate::rng::SimRng;
use crate::trace::Trace;

pub type EndId = usize;
pub type Handler = Rc<dyn Fn(Message)>;

/// Chance, in unreliable mode, that a message is delivered twice (labrpc never did this; real
/// networks do).
const DUPLICATE_PER_MILLE: u64 = 20;

struct End {
    #[allow(dead_code)] // kept so a trace or a debugger can name both sides
    from: usize,
    to: usize,
    enabled: bool,
}

struct Server {
    incarnation: u64,
    handler: Handler,
}

#[derive(Default)]
struct State {
    reliable: bool,
    long_reordering: bool,
    ends: Vec<End>,
    servers: Vec<Option<Server>>,
    next_incarnation: u64,
    total_rpcs: u64,
    total_bytes: u64,
    /// Handler dispatches per server, reset when the server is registered anew.
    incoming: Vec<u64>,
    /// Once torn down, nothing is delivered any more.
    closed: bool,
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
            ..State::default()
        };
        Network { sim, rng, trace, state: Rc::new(RefCell::new(state)) }
    }

    pub fn set_reliable(&self, reliable: bool) {
        self.state.borrow_mut().reliable = reliable;
        self.trace.record(self.sim.now(), format!("net reliable={reliable}"));
    }

    pub fn set_long_reordering(&self, on: bool) {
        self.state.borrow_mut().long_reordering = on;
        self.trace.record(self.sim.now(), format!("net long-reordering={on}"));
    }

    /// A new, disabled end from server `from` to server `to`.
    pub fn make_end(&self, from: usize, to: usize) -> EndId {
        let mut state = self.state.borrow_mut();
        state.ends.push(End { from, to, enabled: false });
        state.ends.len() - 1
    }

    pub fn enable(&self, end: EndId, enabled: bool) {
        self.state.borrow_mut().ends[end].enabled = enabled;
    }

    /// Registers a new incarnation of `server`; whatever was in flight to the old one is lost.
    pub fn add_server(&self, server: usize, handler: Handler) {
        let mut state = self.state.borrow_mut();
        state.next_incarnation += 1;
        let incarnation = state.next_incarnation;
        state.servers[server] = Some(Server { incarnation, handler });
        state.incoming[server] = 0;
    }

    pub fn delete_server(&self, server: usize) {
        self.state.borrow_mut().servers[server] = None;
    }

    pub fn close(&self) {
        self.state.borrow_mut().closed = true;
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

    /// Sends a Raft message through `end`. Never blocks and never fails visibly: a lost message is
    /// simply not delivered, which is all a message-driven Raft ever sees of a failed RPC.
    pub fn send(&self, end: EndId, message: Message) {
        let mut bytes = Vec::new();
        raft::codec::encode_message(&message, &mut bytes);
        let size = bytes.len() as u64;
        let is_response = message.is_response();
        let mut state = self.state.borrow_mut();
        if !is_response {
            state.total_rpcs += 1;
            state.total_bytes += size;
        }
        let End { to, enabled, .. } = state.ends[end];
        let target = state.servers[to].as_ref().map(|server| server.incarnation);
        let (reliable, long_reordering, closed) = (state.reliable, state.long_reordering, state.closed);
        drop(state);
        let Some(incarnation) = target.filter(|_| enabled && !closed) else {
            self.trace.record(self.sim.now(), format_args!("lost (link down) {message}"));
            return;
        };
        let delay = if is_response {
            if !reliable && self.rng.chance(100, 1000) {
                self.trace.record(self.sim.now(), format_args!("dropped reply {message}"));
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
            if !reliable && self.rng.chance(100, 1000) {
                self.trace.record(self.sim.now(), format_args!("dropped request {message}"));
                return;
            }
            delay
        };
        // The message must decode to itself: nothing is shared between sender and receiver.
        let copy = raft::codec::decode_message(&bytes).expect("the codec round-trips every message");
        if !reliable && self.rng.chance(DUPLICATE_PER_MILLE, 1000) {
            let again = delay + self.rng.millis_below(27);
            self.deliver_later(again, to, incarnation, copy.clone(), is_response, size);
        }
        self.deliver_later(delay, to, incarnation, copy, is_response, size);
    }

    fn deliver_later(
        &self,
        delay: Duration,
        to: usize,
        incarnation: u64,
        message: Message,
        is_response: bool,
        size: u64,
    ) {
        let network = self.clone();
        self.sim.schedule(delay, move || {
            let mut state = network.state.borrow_mut();
            let handler = match &state.servers[to] {
                Some(server) if server.incarnation == incarnation && !state.closed => server.handler.clone(),
                _ => {
                    drop(state);
                    network.trace.record(network.sim.now(), format_args!("lost (server gone) {message}"));
                    return;
                }
            };
            if is_response {
                state.total_bytes += size;
            } else {
                state.incoming[to] += 1;
            }
            drop(state);
            network.trace.record(network.sim.now(), &message);
            handler(message);
        });
    }
}
