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

/// An async mutex for one core, guarding I/O sequences (flush, roll, truncate) that must not
/// interleave. Fairness is not needed: holders are short and few.
#[derive(Default)]
pub struct LocalMutex {
    locked: Cell<bool>,
    released: Notify,
}

pub struct LocalMutexGuard<'a> {
    mutex: &'a LocalMutex,
}

impl LocalMutex {
    pub async fn lock(&self) -> LocalMutexGuard<'_> {
        loop {
            let listen = self.released.listen();
            if !self.locked.get() {
                self.locked.set(true);
                return LocalMutexGuard { mutex: self };
            }
            listen.await;
        }
    }
    /// Waits for the lock unless `done()` becomes true first (checked at every wake-up, without
    /// the lock). Group commit needs this: a waiter whose data a sync already covered must
    /// leave at once, not queue for the lock behind a task that barges back in.
    pub async fn lock_unless(&self, mut done: impl FnMut() -> bool) -> Option<LocalMutexGuard<'_>> {
        loop {
            let listen = self.released.listen();
            if done() {
                return None;
            }
            if !self.locked.get() {
                self.locked.set(true);
                return Some(LocalMutexGuard { mutex: self });
            }
            listen.await;
        }
    }

    pub fn is_locked(&self) -> bool {
        self.locked.get()
    }
}

impl Drop for LocalMutexGuard<'_> {
    fn drop(&mut self) {
        self.mutex.locked.set(false);
        self.mutex.released.notify_all();
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
