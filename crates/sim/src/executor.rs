//! A deterministic, single-threaded async executor running on virtual time.
//!
//! Every timed event (a `Sleep` deadline or a scheduled callback) lives in one `BTreeMap` keyed
//! by `(virtual time, insertion sequence)`, so ties are broken by creation order and never by
//! anything external. Woken tasks go into a FIFO run queue; the executor runs every ready task
//! before it pops the next timed event, and popping an event is the only thing that advances
//! `now()`. With no threads, real clocks or OS randomness, the same program always yields the
//! same event order.
//!
//! `std::task::Waker` must be `Send + Sync`, so task wakers are `Arc`s that push the task id into
//! a shared `Arc<Mutex<VecDeque<_>>>`; everything else is `Rc`/`RefCell`. No executor borrow is
//! held while user code (a task poll, a callback, a destructor) runs, so user code may call any
//! `Sim` method.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

type RunQueue = Arc<Mutex<VecDeque<u64>>>;

/// Locks the run queue; poisoning is ignored because the queue is only a list of ids.
fn lock(queue: &RunQueue) -> MutexGuard<'_, VecDeque<u64>> {
    queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wakes a waker that the caller took out of its `RefCell`, so that no borrow is held meanwhile.
fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

/// The waker of one task. Its `queued` flag makes a task woken twice before it runs poll once.
struct TaskWaker {
    id: u64,
    queued: AtomicBool,
    queue: RunQueue,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Waking a finished task, or one whose Sim is gone, only queues an id nobody looks up.
        if !self.queued.swap(true, Ordering::SeqCst) {
            lock(&self.queue).push_back(self.id);
        }
    }
}

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    waker: Arc<TaskWaker>,
}

enum Event {
    /// A `Sleep` deadline; the `Sleep` updates the waker in place when it is re-polled.
    Timer(Waker),
    Callback(Box<dyn FnOnce()>),
}

#[derive(Default)]
struct Inner {
    now: Cell<Duration>,
    next_seq: Cell<u64>,
    next_task: Cell<u64>,
    events: RefCell<BTreeMap<(Duration, u64), Event>>,
    tasks: RefCell<BTreeMap<u64, Task>>,
    ready: RunQueue,
    processed: Cell<u64>,
    limit: Cell<u64>,
    running: Cell<bool>,
}

/// Cloneable handle to one simulation (an `Rc` inside, so it is neither `Send` nor `Sync`).
/// Virtual time starts at `Duration::ZERO` and only moves when a timed event is processed.
#[derive(Clone)]
pub struct Sim {
    inner: Rc<Inner>,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// Creates an empty simulation at virtual time zero with no event limit.
    pub fn new() -> Sim {
        let sim = Sim {
            inner: Rc::default(),
        };
        sim.set_event_limit(u64::MAX);
        sim
    }

    /// The current virtual time: the time of the last timed event processed.
    pub fn now(&self) -> Duration {
        self.inner.now.get()
    }

    /// Spawns a task at the back of the run queue, so new tasks first run in spawn order. It only
    /// runs while `block_on` drives the simulation; dropping the handle detaches the task.
    pub fn spawn<T: 'static>(&self, f: impl Future<Output = T> + 'static) -> JoinHandle<T> {
        let state = Rc::new(RefCell::new(JoinState {
            output: None,
            finished: false,
            waker: None,
        }));
        let st = state.clone();
        let future = Box::pin(async move {
            let value = f.await;
            let mut s = st.borrow_mut();
            (s.output, s.finished) = (Some(value), true);
            let waker = s.waker.take();
            drop(s);
            wake(waker);
        });
        let id = self.inner.next_task.get();
        self.inner.next_task.set(id + 1);
        let queue = self.inner.ready.clone();
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(true),
            queue,
        });
        self.inner
            .tasks
            .borrow_mut()
            .insert(id, Task { future, waker });
        lock(&self.inner.ready).push_back(id);
        JoinHandle { state }
    }

    /// Returns a future that completes at `now() + d`. A zero duration still yields once: the task
    /// resumes only after every task that is ready at this instant has run.
    pub fn sleep(&self, d: Duration) -> Sleep {
        let deadline = self.now().saturating_add(d);
        Sleep {
            sim: self.clone(),
            zero: d.is_zero(),
            deadline,
            key: None,
        }
    }

    /// Yields to every other ready task; the same as `sleep(Duration::ZERO)`.
    pub fn yield_now(&self) -> Sleep {
        self.sleep(Duration::ZERO)
    }

    /// Run `callback` at virtual time `now() + delay`. Callbacks are plain events (network message
    /// deliveries, timer ticks); at equal times they run in the order they were scheduled.
    pub fn schedule(&self, delay: Duration, callback: impl FnOnce() + 'static) {
        let at = self.now().saturating_add(delay);
        self.push_event(at, Event::Callback(Box::new(callback)));
    }

    fn push_event(&self, at: Duration, event: Event) -> (Duration, u64) {
        let seq = self.inner.next_seq.get();
        self.inner.next_seq.set(seq + 1);
        self.inner.events.borrow_mut().insert((at, seq), event);
        (at, seq)
    }

    /// Drive the simulation until `f` completes and return its output.
    ///
    /// Panics with "simulation deadlocked at t=..." if nothing is left to run (no ready task, no
    /// timer, no callback) while `f` is unfinished, and with "simulation exceeded its event
    /// limit" once more than `set_event_limit` events were processed, which catches busy loops.
    /// Also panics if called from inside the simulation (a task or callback), because the outer
    /// call owns the run.
    ///
    /// When `block_on` returns (or unwinds), unfinished tasks and pending events are dropped
    /// without a panic. Tasks usually hold `Sim` clones, so keeping them would form an `Rc` cycle
    /// that never frees them; dropping them here is what lets them go away with the Sim. Virtual
    /// time and the event count carry over to a later `block_on` on the same `Sim`.
    pub fn block_on<T: 'static>(&self, f: impl Future<Output = T> + 'static) -> T {
        let reentrant = self.inner.running.replace(true);
        assert!(
            !reentrant,
            "Sim::block_on called from inside the simulation"
        );
        let _guard = RunGuard(self);
        let main = self.spawn(f);
        loop {
            if let Some(value) = main.try_take() {
                return value;
            }
            let next = lock(&self.inner.ready).pop_front();
            if let Some(id) = next {
                self.poll_task(id);
                continue;
            }
            let event = self.inner.events.borrow_mut().pop_first();
            let Some(((at, _), event)) = event else {
                panic!(
                    "simulation deadlocked at t={:?}: no task, timer or callback is left to run",
                    self.now()
                );
            };
            self.count_event();
            self.inner.now.set(at.max(self.now()));
            match event {
                Event::Timer(waker) => waker.wake(),
                Event::Callback(callback) => callback(),
            }
        }
    }

    /// Polls one task with no executor borrow held: the task is taken out of its slot and put back.
    fn poll_task(&self, id: u64) {
        // A stale id (a finished task, or one dropped by an earlier run) is simply skipped.
        let Some(mut task) = self.inner.tasks.borrow_mut().remove(&id) else {
            return;
        };
        self.count_event();
        task.waker.queued.store(false, Ordering::SeqCst);
        let waker = Waker::from(task.waker.clone());
        let cx = &mut Context::from_waker(&waker);
        if task.future.as_mut().poll(cx).is_pending() {
            self.inner.tasks.borrow_mut().insert(id, task);
        }
    }

    fn count_event(&self) {
        let (n, limit) = (self.inner.processed.get() + 1, self.inner.limit.get());
        self.inner.processed.set(n);
        assert!(
            n <= limit,
            "simulation exceeded its event limit of {limit} at t={:?}",
            self.now()
        );
    }

    /// Sets the maximum total number of events (timed events plus task polls, counted since `new`)
    /// that may be processed before `block_on` panics.
    pub fn set_event_limit(&self, limit: u64) {
        self.inner.limit.set(limit);
    }

    /// Total number of timed events processed plus task polls since the `Sim` was created.
    pub fn events_processed(&self) -> u64 {
        self.inner.processed.get()
    }
}

/// Ends a `block_on` run, also on unwind: drops leftover tasks and events (outside any borrow,
/// repeatedly, because destructors may spawn or schedule more) and allows the next `block_on`.
struct RunGuard<'a>(&'a Sim);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        loop {
            let tasks = std::mem::take(&mut *inner.tasks.borrow_mut());
            let events = std::mem::take(&mut *inner.events.borrow_mut());
            lock(&inner.ready).clear();
            if tasks.is_empty() && events.is_empty() {
                break;
            }
        }
        inner.running.set(false);
    }
}

struct JoinState<T> {
    output: Option<T>,
    finished: bool,
    waker: Option<Waker>,
}

/// Awaits the output of a spawned task. It can also be inspected without awaiting, which lets
/// plain test code check on a task after `block_on` returns.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> JoinHandle<T> {
    /// True once the task has completed (even if its output was already taken).
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }

    /// Takes the output if the task has finished and the output was not taken before.
    pub fn try_take(&self) -> Option<T> {
        self.state.borrow_mut().output.take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    /// Panics if the output was already taken by `try_take`, since it cannot be produced twice.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.state.borrow_mut();
        if let Some(value) = s.output.take() {
            return Poll::Ready(value);
        }
        assert!(!s.finished, "JoinHandle polled after its output was taken");
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A virtual-time delay. The deadline is fixed at creation and the timed event is registered on
/// the first poll; dropping an unfired `Sleep` cancels the event, so it cannot keep a run alive.
pub struct Sleep {
    sim: Sim,
    zero: bool,
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(key) = self.key {
            // Still queued: refresh the waker in place, keeping the event's position. Gone: fired.
            return match self.sim.inner.events.borrow_mut().get_mut(&key) {
                Some(Event::Timer(waker)) => {
                    waker.clone_from(cx.waker());
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            };
        }
        // A non-zero sleep first polled after its deadline is over; a zero sleep must yield.
        let now = self.sim.now();
        if !self.zero && now >= self.deadline {
            return Poll::Ready(());
        }
        let at = self.deadline.max(now);
        self.key = Some(self.sim.push_event(at, Event::Timer(cx.waker().clone())));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let cancelled = self.sim.inner.events.borrow_mut().remove(&key);
            drop(cancelled); // A waker's destructor runs after the borrow ends.
        }
    }
}

struct Chan<T> {
    queue: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
    waker: Option<Waker>,
}

/// Unbounded multi-producer single-consumer channel for the simulation (Rc-based, not Send).
/// Sending never blocks, so a send is instantaneous and cannot itself reorder anything.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (queue, senders, receiver_alive, waker) = (VecDeque::new(), 1, true, None);
    let chan = Rc::new(RefCell::new(Chan {
        queue,
        senders,
        receiver_alive,
        waker,
    }));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// Sending half of a `channel`; clone it for more producers.
pub struct Sender<T> {
    chan: Rc<RefCell<Chan<T>>>,
}

impl<T> Sender<T> {
    /// Queues `value` and wakes the receiver. If the receiver was dropped, the value is dropped
    /// silently, as a message to a crashed node would be.
    pub fn send(&self, value: T) {
        let mut c = self.chan.borrow_mut();
        if c.receiver_alive {
            c.queue.push_back(value);
            let waker = c.waker.take();
            drop(c);
            wake(waker);
        } // Otherwise `value` is dropped after `c`, with no borrow held.
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.borrow_mut().senders += 1;
        let chan = self.chan.clone();
        Sender { chan }
    }
}

impl<T> Drop for Sender<T> {
    /// The last sender going away wakes the receiver so that `recv` can return `None`.
    fn drop(&mut self) {
        let mut c = self.chan.borrow_mut();
        c.senders -= 1;
        let waker = if c.senders == 0 { c.waker.take() } else { None };
        drop(c);
        wake(waker);
    }
}

/// Receiving half of a `channel`.
pub struct Receiver<T> {
    chan: Rc<RefCell<Chan<T>>>,
}

impl<T> Receiver<T> {
    /// Waits for the next value; `None` once all senders are dropped and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let mut c = self.chan.borrow_mut();
            match c.queue.pop_front() {
                Some(value) => Poll::Ready(Some(value)),
                None if c.senders == 0 => Poll::Ready(None),
                None => {
                    c.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Takes the next queued value without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.chan.borrow_mut().queue.pop_front()
    }

    /// Number of values queued and not yet received.
    pub fn len(&self) -> usize {
        self.chan.borrow().queue.len()
    }

    /// True if no value is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut c = self.chan.borrow_mut();
        c.receiver_alive = false;
        let queued = std::mem::take(&mut c.queue);
        drop(c); // Queued values are dropped (at the end) with no borrow held.
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Trace = Rc<RefCell<Vec<(Duration, String)>>>;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn record(sim: &Sim, trace: &Trace, label: impl Into<String>) {
        trace.borrow_mut().push((sim.now(), label.into()));
    }

    fn labels(trace: &Trace) -> Vec<String> {
        trace.borrow().iter().map(|(_, l)| l.clone()).collect()
    }

    #[test]
    fn sleeps_complete_in_virtual_time_order() {
        let (sim, trace) = (Sim::new(), Trace::default());
        for d in [30, 10, 20] {
            let (s, t) = (sim.clone(), trace.clone());
            sim.spawn(async move {
                s.sleep(ms(d)).await;
                assert_eq!(s.now(), ms(d));
                record(&s, &t, d.to_string());
            });
        }
        let s = sim.clone();
        sim.block_on(async move { s.sleep(ms(100)).await });
        let want: Vec<_> = [10, 20, 30].map(|d| (ms(d), d.to_string())).into();
        assert_eq!(*trace.borrow(), want);
        assert_eq!(sim.now(), ms(100));
    }

    #[test]
    fn equal_sleeps_complete_in_spawn_order() {
        let (sim, trace) = (Sim::new(), Trace::default());
        let handles: Vec<_> = ["a", "b", "c"]
            .map(|name| {
                let (s, t) = (sim.clone(), trace.clone());
                sim.spawn(async move {
                    s.sleep(ms(5)).await;
                    record(&s, &t, name);
                })
            })
            .into();
        sim.block_on(async move {
            for h in handles {
                h.await;
            }
        });
        assert_eq!(labels(&trace), ["a", "b", "c"]);
    }

    #[test]
    fn callbacks_interleave_with_sleeps_by_time_then_insertion() {
        let (sim, trace) = (Sim::new(), Trace::default());
        let (s, t) = (sim.clone(), trace.clone());
        sim.block_on(async move {
            for (delay, label) in [(10, "cb10"), (5, "cb5"), (10, "cb10b")] {
                let (s2, t2) = (s.clone(), t.clone());
                s.schedule(ms(delay), move || record(&s2, &t2, label));
            }
            s.sleep(ms(10)).await; // registered after the callbacks at t=10
            record(&s, &t, "sleep10");
            s.sleep(ms(1)).await;
        });
        assert_eq!(labels(&trace), ["cb5", "cb10", "cb10b", "sleep10"]);
        assert_eq!(trace.borrow()[3].0, ms(10));
    }

    #[test]
    fn join_handle_returns_value() {
        let sim = Sim::new();
        let detached = sim.spawn(async { "done" });
        let s = sim.clone();
        let h = sim.spawn(async move {
            s.sleep(ms(3)).await;
            42
        });
        assert_eq!(sim.block_on(h), 42);
        assert!(detached.is_finished());
        assert_eq!(detached.try_take(), Some("done"));
        assert_eq!(detached.try_take(), None);
        assert!(detached.is_finished());
    }

    #[test]
    fn channel_recv_waits_for_scheduled_send() {
        let sim = Sim::new();
        let (tx, mut rx) = channel::<u32>();
        sim.schedule(ms(7), move || {
            tx.send(1);
            tx.send(2);
        });
        let s = sim.clone();
        let got = sim.block_on(async move {
            let first = (rx.recv().await, s.now());
            assert_eq!(rx.len(), 1);
            let rest = (rx.try_recv(), rx.recv().await);
            (first, rest)
        });
        assert_eq!(got, ((Some(1), ms(7)), (Some(2), None)));
    }

    #[test]
    #[should_panic(expected = "simulation deadlocked at t=2ms")]
    fn deadlock_is_detected() {
        let sim = Sim::new();
        let (tx, mut rx) = channel::<()>();
        let s = sim.clone();
        sim.block_on(async move {
            s.sleep(ms(2)).await;
            rx.recv().await
        });
        drop(tx);
    }

    #[test]
    #[should_panic(expected = "event limit")]
    fn event_limit_catches_busy_loops() {
        let sim = Sim::new();
        sim.set_event_limit(1000);
        let s = sim.clone();
        sim.block_on(async move {
            loop {
                s.yield_now().await;
            }
        });
    }

    #[test]
    fn zero_sleep_lets_other_ready_tasks_run_first() {
        let (sim, trace) = (Sim::new(), Trace::default());
        let (s, t) = (sim.clone(), trace.clone());
        sim.spawn(async move {
            record(&s, &t, "a1");
            s.yield_now().await;
            record(&s, &t, "a2");
        });
        let (s, t) = (sim.clone(), trace.clone());
        sim.spawn(async move { record(&s, &t, "b") });
        let s = sim.clone();
        sim.block_on(async move { s.sleep(ms(1)).await });
        assert_eq!(labels(&trace), ["a1", "b", "a2"]);
        assert_eq!(trace.borrow()[2].0, Duration::ZERO);
    }

    #[test]
    fn dropped_sleep_is_cancelled_and_leftover_tasks_are_dropped() {
        let sim = Sim::new();
        let (tx, mut rx) = channel::<()>();
        let s = sim.clone();
        sim.spawn(async move {
            let _keep = tx; // dropped with the task when block_on ends
            s.sleep(ms(1000)).await;
        });
        let s = sim.clone();
        sim.block_on(async move {
            let mut long = s.sleep(ms(500));
            let cx = &mut Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut long).poll(cx).is_pending());
            drop(long);
            s.sleep(ms(1)).await;
        });
        assert_eq!(sim.now(), ms(1));
        assert_eq!(sim.block_on(async move { rx.recv().await }), None);
        assert_eq!(sim.now(), ms(1));
    }

    /// A small seeded scenario mixing tasks, sleeps, callbacks and a channel.
    fn scenario(seed: u64) -> (Vec<(Duration, String)>, u64) {
        let (sim, trace) = (Sim::new(), Trace::default());
        let (tx, mut rx) = channel::<String>();
        for node in 0..4u64 {
            let (s, t, tx) = (sim.clone(), trace.clone(), tx.clone());
            let mut x = seed ^ (node + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            sim.spawn(async move {
                for i in 0..6 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    s.sleep(ms((x >> 60) % 4)).await;
                    record(&s, &t, format!("n{node} step{i}"));
                    let (tx2, msg) = (tx.clone(), format!("n{node} msg{i}"));
                    s.schedule(ms((x >> 56) % 5), move || tx2.send(msg));
                }
            });
        }
        drop(tx);
        let (s, t) = (sim.clone(), trace.clone());
        sim.block_on(async move {
            while let Some(msg) = rx.recv().await {
                record(&s, &t, format!("recv {msg}"));
            }
        });
        let events = sim.events_processed();
        (trace.take(), events)
    }

    #[test]
    fn same_scenario_gives_identical_trace() {
        let first = scenario(7);
        assert_eq!(first.0.len(), 48);
        assert_eq!(first, scenario(7));
        assert_ne!(first.0, scenario(8).0);
    }
}
