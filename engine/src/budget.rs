//! One memory budget per shard for what its logs hold in memory: write buffers (the aligned
//! buffers holding data not yet on the device, and those of writes in flight) and tail caches.
//!
//! Lives on: one shard; every log of that shard shares it through an `Rc`.
//!
//! Two rules follow from it, whatever the partition count:
//! - **Write buffers** may hold at most [`MemoryBudget::buffer_bytes_max`] (a quarter of the
//!   budget). An append that would pass it waits until the shard's committer has written enough
//!   ([`MemoryBudget::admit`]): produce backpressures instead of the process growing.
//! - **Tail caches** give way: while write buffers plus caches exceed the budget, a log that
//!   caches a new batch first evicts its own oldest written batches; if that is not enough it
//!   raises [`MemoryBudget::needs_trim`], and the shard's tick trims the other logs' caches.
//!
//! A batch that is not yet on the device is never evicted (reads must find it), so the budget
//! can be passed by at most the write buffers' share, which is itself bounded.
//!
//! Not counted: the one-block buffer a partition keeps between appends once everything in it is
//! written (the partial last block, rewritten whole by the next write): 4 KiB per written
//! partition, a fixed cost per partition like its index and file handle. Counting it would let
//! idle partitions use up the write buffers' share and stall every append.

use std::cell::Cell;
use std::rc::Rc;

use crate::sync::Notify;

/// The smallest budget a shard accepts: below this a single large batch could not be admitted
/// next to a reasonable cache.
pub const SHARD_MEMORY_BYTES_MIN: usize = 16 << 20;

#[derive(Default)]
pub struct MemoryBudget {
    bytes_max: usize,
    buffer_bytes_max: usize,
    cache_bytes: Cell<usize>,
    buffer_bytes: Cell<usize>,
    trim: Cell<bool>,
    /// Woken when write buffers shrink (appends waiting in `admit`).
    room: Notify,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("bytes_max", &self.bytes_max)
            .field("cache_bytes", &self.cache_bytes.get())
            .field("buffer_bytes", &self.buffer_bytes.get())
            .finish()
    }
}

impl MemoryBudget {
    /// A budget of `bytes_max` (at least [`SHARD_MEMORY_BYTES_MIN`]).
    pub fn new(bytes_max: usize) -> Rc<Self> {
        let bytes_max = bytes_max.max(SHARD_MEMORY_BYTES_MIN);
        Rc::new(Self { bytes_max, buffer_bytes_max: bytes_max / 4, ..Self::default() })
    }
    /// No limit: a log used on its own (tests, tools) keeps only its per-log limits.
    pub fn unlimited() -> Rc<Self> {
        Rc::new(Self { bytes_max: usize::MAX, buffer_bytes_max: usize::MAX, ..Self::default() })
    }
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }
    pub fn buffer_bytes_max(&self) -> usize {
        self.buffer_bytes_max
    }
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes.get()
    }
    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes.get()
    }
    /// Write buffers plus caches.
    pub fn used_bytes(&self) -> usize {
        self.cache_bytes.get().saturating_add(self.buffer_bytes.get())
    }
    /// Whether caches must give bytes back.
    pub fn over(&self) -> bool {
        self.used_bytes() > self.bytes_max
    }
    /// Whether some log could not evict enough of its own cache (the shard trims the others).
    pub fn needs_trim(&self) -> bool {
        self.trim.get()
    }
    pub(crate) fn request_trim(&self) {
        self.trim.set(true);
    }
    pub(crate) fn trimmed(&self) {
        self.trim.set(false);
    }

    pub(crate) fn cache_added(&self, n: usize) {
        self.cache_bytes.set(self.cache_bytes.get() + n);
    }
    pub(crate) fn cache_removed(&self, n: usize) {
        debug_assert!(n <= self.cache_bytes.get(), "cache accounting went negative");
        self.cache_bytes.set(self.cache_bytes.get().saturating_sub(n));
    }
    pub(crate) fn buffer_added(&self, n: usize) {
        self.buffer_bytes.set(self.buffer_bytes.get() + n);
    }
    pub(crate) fn buffer_removed(&self, n: usize) {
        if n == 0 {
            return;
        }
        debug_assert!(n <= self.buffer_bytes.get(), "write buffer accounting went negative");
        self.buffer_bytes.set(self.buffer_bytes.get().saturating_sub(n));
        self.room.notify_all();
    }

    /// Waits until `bytes` more fit in the write buffers' share. A batch larger than the whole
    /// share is admitted once the buffers are empty, so nothing waits forever.
    pub async fn admit(&self, bytes: usize) {
        loop {
            let room = self.room.listen();
            let buffers = self.buffer_bytes.get();
            if buffers == 0 || buffers.saturating_add(bytes) <= self.buffer_bytes_max {
                return;
            }
            room.await;
        }
    }
}

/// The memory of this machine, for sizing budgets at start-up.
pub fn physical_memory_bytes() -> Option<usize> {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages <= 0 || page <= 0 {
        return None;
    }
    usize::try_from(pages).ok()?.checked_mul(usize::try_from(page).ok()?)
}

/// The default budget of one shard: an eighth of the machine's memory, split over the shards
/// (3 GiB in all on a 24 GiB machine): room for every partition's recent batches without
/// crowding out the rest of the host.
pub fn default_shard_memory_bytes(shard_count: usize) -> usize {
    let total = physical_memory_bytes().unwrap_or(4 << 30);
    (total / 8 / shard_count.max(1)).max(SHARD_MEMORY_BYTES_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admit_waits_for_room_and_lets_a_huge_batch_through_an_empty_buffer() {
        let b = MemoryBudget::new(64 << 20);
        assert_eq!(b.buffer_bytes_max(), 16 << 20);
        futures_lite::future::block_on(b.admit(100 << 20));
        b.buffer_added(10 << 20);
        futures_lite::future::block_on(b.admit(6 << 20));
        let mut waiting = Box::pin(b.admit(7 << 20));
        assert!(futures_lite::future::block_on(futures_lite::future::poll_once(&mut waiting)).is_none());
        b.buffer_removed(1 << 20);
        futures_lite::future::block_on(waiting);
        assert_eq!(b.used_bytes(), 9 << 20);
        b.cache_added(60 << 20);
        assert!(b.over());
    }

    #[test]
    fn defaults_come_from_the_machine() {
        let one = default_shard_memory_bytes(1);
        assert!(one >= SHARD_MEMORY_BYTES_MIN);
        assert!(default_shard_memory_bytes(2) <= one);
    }
}
