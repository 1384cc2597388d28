//! The tail cache: the newest batches of a log, in memory, so that reads of the tail never
//! touch the device.
//!
//! Invariants: the cache is a suffix of the log (a truncation that leaves it otherwise clears
//! it); it holds at least every batch at or above the log's `flushed_offset`, since eviction
//! takes only batches wholly below it, so reads never need bytes that are only in a write
//! buffer; its bytes count against the shard's [`MemoryBudget`] while held and go back to it
//! when evicted, truncated, cleared or dropped.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use crate::budget::MemoryBudget;

pub(super) struct CachedBatch {
    pub(super) base_offset: i64,
    pub(super) last_offset: i64,
    pub(super) bytes: Bytes,
}

/// The newest batches of a log, in memory. Its bytes count against the shard's budget.
pub(super) struct TailCache {
    batches: VecDeque<CachedBatch>,
    pub(super) bytes: usize,
    pub(super) budget: Rc<MemoryBudget>,
}

impl TailCache {
    pub(super) fn new(budget: Rc<MemoryBudget>) -> Self {
        Self { batches: VecDeque::new(), bytes: 0, budget }
    }
    pub(super) fn covers(&self, offset: i64) -> bool {
        self.batches.front().is_some_and(|b| b.base_offset <= offset)
    }
    pub(super) fn push(&mut self, b: CachedBatch) {
        self.bytes += b.bytes.len();
        self.budget.cache_added(b.bytes.len());
        self.batches.push_back(b);
    }
    /// Evicts the oldest batches already on the device while the log's own limit or the shard's
    /// budget is exceeded. Returns false if the budget is still exceeded (nothing left to give).
    pub(super) fn evict(&mut self, bytes_max: usize, flushed_offset: i64) -> bool {
        while self.bytes > bytes_max || self.budget.over() {
            match self.batches.front() {
                Some(b) if b.last_offset < flushed_offset => {
                    let n = b.bytes.len();
                    self.bytes -= n;
                    self.budget.cache_removed(n);
                    self.batches.pop_front();
                }
                _ => break,
            }
        }
        !self.budget.over()
    }
    pub(super) fn truncate(&mut self, offset: i64) {
        while self.batches.back().is_some_and(|b| b.last_offset >= offset) {
            if let Some(b) = self.batches.pop_back() {
                self.bytes -= b.bytes.len();
                self.budget.cache_removed(b.bytes.len());
            }
        }
    }
    /// Drops the cached batches wholly below `offset` (the cleaner rewrote them on the device).
    pub(super) fn drop_below(&mut self, offset: i64) {
        while let Some(b) = self.batches.front() {
            if b.last_offset >= offset {
                break;
            }
            let n = b.bytes.len();
            self.bytes -= n;
            self.budget.cache_removed(n);
            self.batches.pop_front();
        }
    }
    pub(super) fn clear(&mut self) {
        self.batches.clear();
        self.budget.cache_removed(self.bytes);
        self.bytes = 0;
    }
    pub(super) fn read(&self, offset: i64, bytes_max: usize, end_offset: i64) -> Vec<Bytes> {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0;
        for b in self.batches.iter().skip(start) {
            if b.base_offset >= end_offset {
                break;
            }
            if !out.is_empty() && total + b.bytes.len() > bytes_max {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        out
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.budget.cache_removed(self.bytes);
    }
}
