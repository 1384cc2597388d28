//! Single-core async primitives that do not depend on any runtime, so the log can run on glommio
//! or under a plain test executor. Lives on: one core; nothing here is `Send`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakes every waiter registered before `notify_all`. Waiters compare a generation counter, so a
/// notification between "check condition" and "wait" is never lost if the waiter takes its
/// ticket (`listen`) before checking.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
    /// A future that completes at the next `notify_all` after this call.
    pub fn listen(&self) -> Listen<'_> {
        Listen { notify: self, generation: self.generation.get() }
    }
    /// The current generation: pass it to [`listen_since`](Self::listen_since) from another
    /// task, so a notification between taking the ticket and listening is not lost.
    pub fn ticket(&self) -> u64 {
        self.generation.get()
    }
    /// A future that completes at the first `notify_all` after `ticket` was taken.
    pub fn listen_since(&self, ticket: u64) -> Listen<'_> {
        Listen { notify: self, generation: ticket }
    }
    /// Registers `cx`'s waker for the next `notify_all` (for hand-written `poll` loops).
    pub fn register(&self, cx: &Context<'_>) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
    }
}

pub struct Listen<'a> {
    notify: &'a Notify,
    generation: u64,
}

impl Future for Listen<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A fair (first come, first served) async mutex for one core, guarding I/O sequences (flush,
/// roll, truncate, close) that must not interleave.
///
/// Fairness matters: with a barging lock, the task that just synced took the lock straight back
/// and tasks waiting to roll a segment starved behind a stream of syncs. On release the lock is
/// handed to the oldest waiter; every other waiter is woken too, so those waiting "unless done"
/// can leave as soon as their condition holds.
#[derive(Default)]
pub struct LocalMutex {
    state: RefCell<MutexState>,
}

#[derive(Default)]
struct MutexState {
    locked: bool,
    next_id: u64,
    /// Waiters in arrival order, with the waker of their last poll.
    queue: std::collections::VecDeque<(u64, Option<Waker>)>,
    /// The waiter the lock was handed to, until it notices.
    handed_to: Option<u64>,
}

pub struct LocalMutexGuard<'a> {
    mutex: &'a LocalMutex,
}

/// A queued waiter; leaves the queue (or passes the lock on) if dropped while waiting.
struct Waiter<'a> {
    mutex: &'a LocalMutex,
    id: u64,
    finished: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let handed = {
            let mut st = self.mutex.state.borrow_mut();
            st.queue.retain(|(id, _)| *id != self.id);
            if st.handed_to == Some(self.id) {
                st.handed_to = None;
                true
            } else {
                false
            }
        };
        if handed {
            self.mutex.release();
        }
    }
}

impl LocalMutex {
    pub async fn lock(&self) -> LocalMutexGuard<'_> {
        match self.lock_unless(|| false).await {
            Some(g) => g,
            None => unreachable!("lock_unless(false) always locks"),
        }
    }

    /// Waits for the lock unless `done()` becomes true first (checked at every wake-up, without
    /// the lock). Group commit needs this: a waiter whose data a sync already covered leaves at
    /// once instead of taking its turn with the lock.
    pub async fn lock_unless(&self, mut done: impl FnMut() -> bool) -> Option<LocalMutexGuard<'_>> {
        let id = {
            let mut st = self.state.borrow_mut();
            if !st.locked && st.queue.is_empty() {
                drop(st);
                if done() {
                    return None;
                }
                self.state.borrow_mut().locked = true;
                return Some(LocalMutexGuard { mutex: self });
            }
            let id = st.next_id;
            st.next_id += 1;
            st.queue.push_back((id, None));
            id
        };
        let mut waiter = Waiter { mutex: self, id, finished: false };
        let acquired = std::future::poll_fn(|cx| {
            if done() {
                let handed = {
                    let mut st = self.state.borrow_mut();
                    st.queue.retain(|(w, _)| *w != id);
                    let handed = st.handed_to == Some(id);
                    if handed {
                        st.handed_to = None;
                    }
                    handed
                };
                if handed {
                    // Not needed any more: pass it on.
                    self.release();
                }
                return Poll::Ready(false);
            }
            let mut st = self.state.borrow_mut();
            if st.handed_to == Some(id) {
                st.handed_to = None;
                return Poll::Ready(true);
            }
            if let Some(entry) = st.queue.iter_mut().find(|(w, _)| *w == id) {
                entry.1 = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
        waiter.finished = true;
        drop(waiter);
        // Not `then_some`: that would build (and drop, releasing!) a guard we do not own.
        if acquired {
            Some(LocalMutexGuard { mutex: self })
        } else {
            None
        }
    }

    /// Hands the lock to the oldest waiter (waking all, so conditional waiters can re-check), or
    /// unlocks it.
    fn release(&self) {
        let wakers: Vec<Waker> = {
            let mut st = self.state.borrow_mut();
            match st.queue.pop_front() {
                Some((id, w)) => {
                    st.handed_to = Some(id);
                    w.into_iter().chain(st.queue.iter().filter_map(|(_, w)| w.clone())).collect()
                }
                None => {
                    st.locked = false;
                    Vec::new()
                }
            }
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether some task is waiting for the lock (a long holder should let it in).
    pub fn has_waiters(&self) -> bool {
        !self.state.borrow().queue.is_empty()
    }

    pub fn is_locked(&self) -> bool {
        self.state.borrow().locked
    }
}

impl Drop for LocalMutexGuard<'_> {
    fn drop(&mut self) {
        self.mutex.release();
    }
}

/// Polls all futures concurrently on the current task and returns their outputs in order.
pub async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(outs.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(outs.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

/// Runs the futures with at most `window` polled at a time, starting the next as soon as one
/// finishes, and returns every output in input order.
///
/// Use it instead of [`join_all`] wherever the count comes from a client (the partitions of a
/// request): each pending I/O holds a reference to the polling task, and glommio keeps a task's
/// references in 16 bits, so one task awaiting tens of thousands of operations at once aborts
/// the process. A window also keeps each wake-up from re-polling every future.
pub async fn join_windowed<F: Future>(futs: Vec<F>, window: usize) -> Vec<F::Output> {
    let window = window.max(1);
    let total = futs.len();
    let mut pending = futs.into_iter().enumerate();
    let mut active: Vec<(usize, Pin<Box<F>>)> = Vec::with_capacity(window.min(total));
    let mut outs: Vec<Option<F::Output>> = (0..total).map(|_| None).collect();
    let mut done = 0;
    std::future::poll_fn(move |cx| loop {
        while active.len() < window {
            match pending.next() {
                Some((i, f)) => active.push((i, Box::pin(f))),
                None => break,
            }
        }
        let mut progressed = false;
        let mut k = 0;
        while k < active.len() {
            match active[k].1.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    let (i, _) = active.swap_remove(k);
                    outs[i] = Some(v);
                    done += 1;
                    progressed = true;
                }
                Poll::Pending => k += 1,
            }
        }
        if done == total {
            return Poll::Ready(outs.iter_mut().filter_map(Option::take).collect());
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await
}

/// Runs the futures with at most `window` in flight, starting the next as soon as one finishes;
/// stops at the first error (the rest are dropped, i.e. cancelled).
pub async fn try_join_windowed<E, F: Future<Output = Result<(), E>>>(
    futs: impl IntoIterator<Item = F>,
    window: usize,
) -> Result<(), E> {
    let mut pending = futs.into_iter();
    let mut active: Vec<Pin<Box<F>>> = Vec::with_capacity(window);
    std::future::poll_fn(move |cx| loop {
        while active.len() < window {
            match pending.next() {
                Some(f) => active.push(Box::pin(f)),
                None => break,
            }
        }
        if active.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let mut progressed = false;
        let mut i = 0;
        while i < active.len() {
            match active[i].as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    drop(active.swap_remove(i));
                    progressed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => i += 1,
            }
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await
}

/// Gives other ready tasks of this core one turn before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Shared handle to a [`Notify`], for waiters that outlive a borrow (long polls).
pub type SharedNotify = Rc<Notify>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_listeners_taken_before_it() {
        let n = Notify::new();
        let l = n.listen();
        n.notify_all();
        futures_lite::future::block_on(l);
    }

    #[test]
    fn turns_pass_in_the_order_taken_even_when_dropped_early() {
        use futures_lite::future::poll_once;
        let turns = Turns::default();
        futures_lite::future::block_on(async {
            let a = turns.take();
            let b = turns.take();
            let c = turns.take();
            let d = turns.take();
            // The first turn needs no one.
            assert!(poll_once(Box::pin(a.wait())).await.is_some());
            // c waits for a and b; b dropped early does not let c pass while a holds.
            let mut c_wait = Box::pin(c.wait());
            assert!(poll_once(&mut c_wait).await.is_none());
            drop(b);
            assert!(poll_once(&mut c_wait).await.is_none());
            let mut d_wait = Box::pin(d.wait());
            assert!(poll_once(&mut d_wait).await.is_none());
            drop(a);
            assert!(poll_once(&mut c_wait).await.is_some());
            // d still waits for c; a cancelled wait of c does not pass it.
            drop(c_wait);
            assert!(poll_once(&mut d_wait).await.is_none());
            drop(c);
            assert!(poll_once(&mut d_wait).await.is_some());
            drop(d_wait);
            drop(d);
            // A turn taken after all were passed waits for nothing.
            let e = turns.take();
            assert!(poll_once(Box::pin(e.wait())).await.is_some());
        });
    }

    #[test]
    fn mutex_hands_off_in_arrival_order_and_survives_cancelled_waiters() {
        use std::cell::RefCell;
        let m = LocalMutex::default();
        let order = RefCell::new(Vec::new());
        futures_lite::future::block_on(async {
            let g = m.lock().await;
            let mut first = Box::pin(async {
                let _g = m.lock().await;
                order.borrow_mut().push(1);
            });
            let mut cancelled = Box::pin(m.lock());
            let mut second = Box::pin(async {
                let _g = m.lock().await;
                order.borrow_mut().push(2);
            });
            // Queue all three.
            let noop = futures_lite::future::poll_once(&mut first).await;
            assert!(noop.is_none());
            assert!(futures_lite::future::poll_once(&mut cancelled).await.is_none());
            assert!(futures_lite::future::poll_once(&mut second).await.is_none());
            assert!(m.has_waiters());
            drop(cancelled);
            drop(g);
            // A new arrival does not barge ahead of the queue.
            let mut late = Box::pin(async {
                let _g = m.lock().await;
                order.borrow_mut().push(3);
            });
            assert!(futures_lite::future::poll_once(&mut late).await.is_none());
            futures_lite::future::zip(futures_lite::future::zip(second, first), late).await;
        });
        assert_eq!(*order.borrow(), vec![1, 2, 3]);
        assert!(!m.is_locked());
    }

    #[test]
    fn lock_unless_leaves_when_done() {
        use std::cell::Cell;
        let m = LocalMutex::default();
        let done = Cell::new(false);
        futures_lite::future::block_on(async {
            let g = m.lock().await;
            let mut w = Box::pin(m.lock_unless(|| done.get()));
            assert!(futures_lite::future::poll_once(&mut w).await.is_none());
            done.set(true);
            drop(g);
            assert!(w.await.is_none(), "left without the lock");
            assert!(!m.is_locked());
        });
    }

    #[test]
    fn mutex_never_has_two_holders_under_contention() {
        use std::cell::Cell;
        let m = LocalMutex::default();
        let inside = Cell::new(0u32);
        let progress = Cell::new(0u64);
        futures_lite::future::block_on(async {
            let tasks: Vec<_> = (0..8u64)
                .map(|t| {
                    let (m, inside, progress) = (&m, &inside, &progress);
                    async move {
                        for i in 0..50u64 {
                            let want = progress.get() + (t + i) % 3;
                            let g = if (t + i) % 2 == 0 {
                                Some(m.lock().await)
                            } else {
                                m.lock_unless(|| progress.get() >= want).await
                            };
                            if let Some(g) = g {
                                inside.set(inside.get() + 1);
                                assert_eq!(inside.get(), 1, "two holders at once");
                                yield_now().await;
                                progress.set(progress.get() + 1);
                                inside.set(inside.get() - 1);
                                drop(g);
                            }
                            yield_now().await;
                        }
                    }
                })
                .collect();
            join_all(tasks).await;
        });
        assert!(!m.is_locked());
    }

    #[test]
    fn join_windowed_keeps_order_and_bounds_concurrency() {
        use std::cell::Cell;
        let running = Cell::new(0usize);
        let peak = Cell::new(0usize);
        let futs: Vec<_> = (0..100usize)
            .map(|i| {
                let (running, peak) = (&running, &peak);
                async move {
                    running.set(running.get() + 1);
                    peak.set(peak.get().max(running.get()));
                    for _ in 0..=(i % 5) {
                        yield_now().await;
                    }
                    running.set(running.get() - 1);
                    i * 2
                }
            })
            .collect();
        let out = futures_lite::future::block_on(join_windowed(futs, 7));
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.get(), 7);
        let empty: Vec<std::future::Ready<u8>> = Vec::new();
        assert!(futures_lite::future::block_on(join_windowed(empty, 3)).is_empty());
    }

    #[test]
    fn listen_since_sees_a_notification_after_the_ticket() {
        let n = Notify::new();
        let t = n.ticket();
        n.notify_all();
        futures_lite::future::block_on(n.listen_since(t));
        let l = n.listen_since(n.ticket());
        let mut l = Box::pin(l);
        assert!(futures_lite::future::block_on(futures_lite::future::poll_once(&mut l)).is_none());
    }

    #[test]
    fn mutex_excludes() {
        let m = LocalMutex::default();
        futures_lite::future::block_on(async {
            let g = m.lock().await;
            assert!(m.is_locked());
            drop(g);
            assert!(!m.is_locked());
            let _g = m.lock().await;
        });
    }
}

/// Hands out turns in the order they are taken: a turn's holder may wait until every earlier
/// turn has been passed (dropped). Taking a turn is synchronous, so the order is fixed at the
/// moment the work arrives, not when its task is first polled or when it finds room.
///
/// A turn dropped before its own turn came (its work failed early, or was cancelled) still
/// counts as passed only once every earlier one has: later holders keep waiting for those.
#[derive(Default)]
pub struct Turns {
    last: RefCell<Option<Rc<TurnState>>>,
}

struct TurnState {
    passed: Cell<bool>,
    /// The turn taken just before this one, until it is seen passed.
    prev: RefCell<Option<Rc<TurnState>>>,
    notify: Notify,
}

/// One place in a [`Turns`] queue; passed when dropped.
pub struct Turn {
    state: Rc<TurnState>,
}

impl Turns {
    /// The next turn: after every turn taken so far.
    pub fn take(&self) -> Turn {
        let mut last = self.last.borrow_mut();
        let prev = last.take().filter(|p| !p.passed.get() || p.prev.borrow().is_some());
        let state = Rc::new(TurnState { passed: Cell::new(false), prev: RefCell::new(prev), notify: Notify::new() });
        *last = Some(state.clone());
        Turn { state }
    }
}

impl Turn {
    /// Returns once every earlier turn has been passed.
    pub async fn wait(&self) {
        loop {
            // The earliest predecessor not yet passed. Passed ones are unlinked on the way
            // (only their successor ever walks through them) and this turn then points
            // straight at the one it waits for.
            let blocking = {
                let mut cur = self.state.prev.borrow_mut().take();
                loop {
                    match cur {
                        None => break None,
                        Some(p) if !p.passed.get() => break Some(p),
                        Some(p) => cur = p.prev.borrow_mut().take(),
                    }
                }
            };
            let Some(p) = blocking else { return };
            *self.state.prev.borrow_mut() = Some(p.clone());
            let listen = p.notify.listen();
            if p.passed.get() {
                continue;
            }
            listen.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.state.passed.set(true);
        self.state.notify.notify_all();
    }
}
