//! Group write and group commit across all the logs of one shard.
//!
//! Lives on: one shard. One [`Committer`] per shard, one task ([`Committer::run`]) doing its
//! I/O; nothing here is `Send`.
//!
//! An append is acknowledged only once its batch is on the device: written for acks=0/1 (it
//! then outlives a crash of the process, as Kafka's page-cache write does) and also synced for
//! acks=all under `Durability::Always`. Instead of every request writing and syncing each
//! partition it touched, appends ask the committer ([`Committer::request`]) and wait
//! ([`Committer::wait`]) on one notification, whatever the partition count:
//!
//! - the committer keeps a queue of logs with something to write; a log is queued once however
//!   many requests ask for it, and its turn writes everything appended so far (many batches of
//!   many producers in one write: group write), then syncs if anyone asked (group commit);
//! - at most [`COMMIT_LOGS_IN_FLIGHT_MAX`] logs have their turn at once, each with at most
//!   `writes_in_flight_max` writes, so the task never waits on more than a bounded number of
//!   I/O operations (glommio counts a task's references in 16 bits: one task awaiting thousands
//!   of fsyncs at once aborts the process), and the device gets enough depth;
//! - turns start as soon as one finishes (no rounds, no timer): a log appended to while its
//!   turn runs is queued again and written right after.
//!
//! Under `Durability::Always` every turn also syncs, whoever asked: a log's high watermark
//! covers only synced offsets (see [`crate::log`]), so acks=1 data becomes readable one sync
//! after it is written. The turn wakes write-only waiters before it syncs.
//!
//! Nothing acknowledged waits in memory: the longest a byte stays unwritten is the time the
//! device takes for the turns queued before it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use crate::io::Storage;
use crate::log::{LogError, PartitionLog};
use crate::sync::Notify;

/// Logs one shard writes or syncs at the same time.
pub const COMMIT_LOGS_IN_FLIGHT_MAX: usize = 32;

/// What one append waits for.
pub struct CommitWait<S: Storage> {
    pub log: Rc<PartitionLog<S>>,
    /// Offsets below this must be on the device.
    pub offset: i64,
    /// And synced.
    pub sync: bool,
}

/// See the module docs.
pub struct Committer<S: Storage> {
    queue: RefCell<VecDeque<Rc<PartitionLog<S>>>>,
    /// Woken when a log joins the queue.
    work: Notify,
    /// Woken whenever turns finish.
    progress: Notify,
    clock: fn() -> i64,
}

impl<S: Storage> Committer<S> {
    pub fn new(clock: fn() -> i64) -> Rc<Self> {
        Rc::new(Self { queue: RefCell::new(VecDeque::new()), work: Notify::new(), progress: Notify::new(), clock })
    }

    /// Asks for `log`'s offsets below `offset` to be written, and with `sync` synced.
    pub fn request(&self, log: &Rc<PartitionLog<S>>, offset: i64, sync: bool) {
        if log.want_commit(offset, sync) {
            self.queue.borrow_mut().push_back(log.clone());
            self.work.notify_all();
        }
    }

    /// Waits until every item is done; returns each one's outcome in order. One waker per
    /// call, whatever the item count: items are checked again after each batch of turns, and
    /// only from the first one not yet done.
    pub async fn wait(&self, items: &[CommitWait<S>]) -> Vec<Result<(), LogError>> {
        let mut out: Vec<Result<(), LogError>> = Vec::with_capacity(items.len());
        loop {
            let progress = self.progress.listen();
            while let Some(item) = items.get(out.len()) {
                match item.log.commit_status(item.offset, item.sync) {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() == items.len() {
                return out;
            }
            progress.await;
        }
    }

    /// The committer task: the shard spawns it once and it runs for the shard's life.
    pub async fn run(self: Rc<Self>) {
        let mut turns: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::with_capacity(COMMIT_LOGS_IN_FLIGHT_MAX);
        std::future::poll_fn(|cx| loop {
            while turns.len() < COMMIT_LOGS_IN_FLIGHT_MAX {
                let Some(log) = self.queue.borrow_mut().pop_front() else { break };
                let now = (self.clock)();
                let me = self.clone();
                // A failed turn poisons its log; waiters see that in `commit_status`.
                turns.push(Box::pin(async move {
                    let _ = log.commit_once(now, &me.progress).await;
                }));
            }
            let mut finished = false;
            let mut i = 0;
            while i < turns.len() {
                if turns[i].as_mut().poll(cx).is_ready() {
                    drop(turns.swap_remove(i));
                    finished = true;
                } else {
                    i += 1;
                }
            }
            if finished {
                self.progress.notify_all();
                continue;
            }
            // The window is full or the queue empty: woken by a turn's I/O or a log joining.
            self.work.register(cx);
            return Poll::<()>::Pending;
        })
        .await
    }
}
