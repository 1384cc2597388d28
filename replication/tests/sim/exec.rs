//! The simulation's runtime: a seeded PRNG, a manual clock and a single-threaded executor that
//! polls one ready task per step, chosen by the PRNG, so a seed fixes the interleaving.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// splitmix64: tiny, seedable, and every seed (0 included) gives a good stream.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn range(&mut self, lo: i64, hi_inclusive: i64) -> i64 {
        lo + self.below((hi_inclusive - lo + 1).max(1) as u64) as i64
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
    /// Index into weighted choices.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut pick = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        weights.len() - 1
    }
}

thread_local! {
    /// The shards' clock: `Shard::new` takes a plain `fn() -> i64`, so the time it reads must
    /// live outside the simulation value. One simulation runs per thread at a time.
    static NOW_MS: Cell<i64> = const { Cell::new(0) };
}

pub fn clock() -> i64 {
    NOW_MS.with(Cell::get)
}
pub fn set_clock(ms: i64) {
    NOW_MS.with(|c| c.set(ms));
}

/// Who a task belongs to: a crash drops the node's tasks and the clients' requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The shards' own work (committers, pumps, served requests).
    Node,
    /// A client's request; the simulation waits for these to finish.
    Client,
}

struct Task {
    fut: Pin<Box<dyn Future<Output = ()>>>,
    kind: Kind,
    waker: Waker,
}

/// A waker only marks its task ready; the executor decides when it runs. `Arc` + `Mutex`
/// because `Wake` needs `Send + Sync`, though everything runs on one thread.
struct TaskWaker {
    id: u64,
    ready: Arc<Mutex<BTreeSet<u64>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).insert(self.id);
    }
}

/// Tasks in a slab keyed by a never-reused id (a stale wake-up can only hit a dead id).
#[derive(Default)]
pub struct Exec {
    tasks: RefCell<BTreeMap<u64, Task>>,
    next_id: Cell<u64>,
    ready: Arc<Mutex<BTreeSet<u64>>>,
    /// Polls so far (the step budget that detects a livelock).
    polls: Cell<u64>,
}

impl Exec {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    pub fn spawn(&self, kind: Kind, fut: impl Future<Output = ()> + 'static) {
        self.spawn_boxed(kind, Box::pin(fut));
    }

    pub fn spawn_boxed(&self, kind: Kind, fut: Pin<Box<dyn Future<Output = ()>>>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let waker = Waker::from(Arc::new(TaskWaker { id, ready: self.ready.clone() }));
        self.tasks.borrow_mut().insert(id, Task { fut, kind, waker });
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
    }

    /// The engine's spawner: everything the shards spawn is node work.
    pub fn spawner(self: &Rc<Self>) -> engine::shard::Spawner {
        let exec = Rc::downgrade(self);
        Rc::new(move |fut| {
            if let Some(exec) = exec.upgrade() {
                exec.spawn_boxed(Kind::Node, fut);
            }
        })
    }

    /// Polls one ready task picked by `rng`; false when none is ready.
    pub fn step(&self, rng: &mut Rng) -> bool {
        let id = {
            let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            if ready.is_empty() {
                return false;
            }
            let i = rng.below(ready.len() as u64) as usize;
            let Some(&id) = ready.iter().nth(i) else { return false };
            ready.remove(&id);
            id
        };
        // Out of the slab while polled, so the task may spawn (or a drop may wake) freely.
        let Some(mut task) = self.tasks.borrow_mut().remove(&id) else { return true };
        self.polls.set(self.polls.get() + 1);
        let mut cx = Context::from_waker(&task.waker);
        if task.fut.as_mut().poll(&mut cx) == Poll::Pending {
            self.tasks.borrow_mut().insert(id, task);
        }
        true
    }

    pub fn clients(&self) -> usize {
        self.tasks.borrow().values().filter(|t| t.kind == Kind::Client).count()
    }
    pub fn polls(&self) -> u64 {
        self.polls.get()
    }

    /// Drops every task (a crash, or the end of a life), outside any borrow: dropping a future
    /// may wake others.
    pub fn drop_all(&self) {
        let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
        drop(tasks);
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
