//! # Odradek's storage engine
//!
//! Every partition is an append-only log of Kafka v2 record batches, stored exactly as the
//! producer sent them (compressed or not) with only the base offset and leader epoch rewritten.
//!
//! ## Threading model
//!
//! Shared-nothing, thread-per-core. A [`shard`] is one glommio executor pinned to one core; each
//! partition log is owned by exactly one shard for its whole life, and only that shard touches
//! its files, indexes and cache. Log types ([`log::PartitionLog`], [`segment::Segment`]) are
//! `!Send` on purpose. Work crosses cores only as typed messages through each shard's one door
//! (the `replication` crate's `ShardRequest`), carrying `Send` data
//! ([`batch::ValidatedBatches`], `bytes::Bytes`), batched per owner.
//!
//! ## Layers
//!
//! - [`batch`]: zero-copy view of the 61-byte v2 header, validation (magic, lengths, CRC-32C,
//!   counts), offset assignment.
//! - [`records`]: varints, the five codecs, record iteration and a batch builder.
//! - [`io`]: the storage seam: glommio `DmaFile` (O_DIRECT over io_uring) in production, an
//!   in-memory store that simulates crashes and injected faults under test.
//! - [`segment`], [`index`]: data files, the aligned write buffer, sparse offset/time indexes,
//!   recovery scans.
//! - [`log`]: a partition log: append with group commit, reads from the tail cache or disk,
//!   timestamp lookup, roll, truncate, delete-before, leader epochs, recovery on open, and the
//!   log cleaner (compaction).
//! - [`commit`]: a shard's group write and group commit across all its logs (what acks wait for).
//! - [`budget`]: a shard's memory budget for write buffers and tail caches.
//! - [`shard`]: executors, the default placement, the per-shard log registry (storage only).
//!
//! ## Invariants
//!
//! - A batch acknowledged as durable (`Durability::Always`, or `sync_to`) survives any crash.
//! - A batch acknowledged through a shard at all (acks=0/1 too) is on the device first, so it
//!   survives a crash of the process ([`commit`]).
//! - A corrupt batch is never served: recovery cuts a bad tail, and reads from disk verify CRCs.
//! - Offsets are increasing across segments and dense but where the log cleaner removed
//!   records (compacted topics); a cleaned segment covers exactly the offsets it replaced.
//!
//! ## Limits
//!
//! Every buffer has a named limit: [`log::LogConfig`] (write buffer, tail cache, in-flight
//! writes), the shard's [`budget::MemoryBudget`] over all its logs,
//! [`commit::COMMIT_LOGS_IN_FLIGHT_MAX`], [`batch::BATCH_BYTES_LIMIT`], [`records::DECOMPRESSED_BYTES_MAX`].
//!
//! The on-disk format is documented byte by byte in `engine/FORMAT.md`.

pub mod batch;
pub mod budget;
pub mod commit;
pub mod epoch;
pub mod fuzzing;
pub mod index;
pub mod io;
pub mod log;
pub mod records;
pub mod segment;
pub mod shard;
pub mod sync;

pub use batch::{BatchError, BatchView, Compression, ValidatedBatches};
pub use log::{AppendInfo, Durability, LogConfig, LogError, PartitionLog, ReadResult, TimestampType};

/// Wall-clock milliseconds since the Unix epoch (Kafka's timestamp unit).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
