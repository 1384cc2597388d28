//! A partition as the rest of the broker sees it: its log plus what replication and
//! exactly-once keep beside it.
//!
//! Lives on: its owning shard (`!Send`). Handlers never reach the log; they send a
//! [`crate::ShardRequest`] to the owner, whose [`crate::PartitionShard`] calls these methods.

use std::cell::Cell;
use std::rc::Rc;

use engine::batch::ValidatedBatches;
use engine::io::Storage;
use engine::log::{AppendInfo, LogConfig, LogError, PartitionLog, ReadResult};
use engine::shard::TopicPartition;
use engine::sync::Notify;

use crate::ids::{LeaderEpoch, NodeId, Offset};

/// What this node is for the partition. A single node leads every partition it has; followers
/// come with partition replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
}

/// Offsets of one partition, and the epoch of its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    pub log_end_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

/// ListOffsets' special timestamps (Kafka's `ListOffsetsRequest` constants).
pub mod spec {
    pub const LATEST: i64 = -1;
    pub const EARLIEST: i64 = -2;
    pub const MAX_TIMESTAMP: i64 = -3;
    pub const EARLIEST_LOCAL: i64 = -4;
    pub const LATEST_TIERED: i64 = -5;
    pub const EARLIEST_PENDING_UPLOAD: i64 = -6;
}

/// One ListOffsets answer: the offset, the record's timestamp (-1 where none applies) and the
/// epoch it was written in (-1 where unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: Offset,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

/// Why a request naming a leader epoch is refused (Kafka's fencing, KIP-320).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The client's epoch is older than the leader's: it must refresh its metadata.
    #[error("leader epoch {client} is older than the leader's {leader}")]
    Fenced { client: i32, leader: i32 },
    /// The client knows a newer epoch than this broker (this broker is behind).
    #[error("leader epoch {client} is newer than the leader's {leader}")]
    Unknown { client: i32, leader: i32 },
}

/// See the module docs.
pub struct Partition<S: Storage> {
    tp: TopicPartition,
    log: Rc<PartitionLog<S>>,
    role: Cell<Role>,
    leader_epoch: Cell<LeaderEpoch>,
    replicas: Vec<NodeId>,
}

impl<S: Storage> Partition<S> {
    /// This node becomes the leader of `tp` over `log`, in a new epoch: `generation` (this
    /// node's start count, so every restart is a leadership change, as with Kafka) or one past
    /// the log's latest epoch, whichever is higher, so a partition's epochs only grow. The new
    /// epoch starts at the log end.
    pub fn lead(tp: TopicPartition, log: Rc<PartitionLog<S>>, node: NodeId, generation: LeaderEpoch) -> Self {
        let next = log.latest_epoch().map_or(0, |e| e.saturating_add(1));
        let epoch = LeaderEpoch(generation.get().max(next).max(0));
        log.begin_epoch(epoch.get());
        Self { tp, log, role: Cell::new(Role::Leader), leader_epoch: Cell::new(epoch), replicas: vec![node] }
    }

    /// Kafka's check of a request's `current_leader_epoch` (-1: the client does not say).
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), EpochError> {
        let leader = self.leader_epoch.get().get();
        match current_leader_epoch {
            -1 => Ok(()),
            c if c < leader => Err(EpochError::Fenced { client: c, leader }),
            c if c > leader => Err(EpochError::Unknown { client: c, leader }),
            _ => Ok(()),
        }
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn role(&self) -> Role {
        self.role.get()
    }
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch.get()
    }
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }
    pub fn config(&self) -> LogConfig {
        self.log.config()
    }
    /// A topic config change on the open log (see `PartitionLog::set_roll_limits`).
    pub fn set_roll_limits(&self, segment_bytes: u64, segment_ms: i64) {
        self.log.set_roll_limits(segment_bytes, segment_ms);
    }

    pub fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets {
            log_start_offset: Offset(self.log.log_start_offset()),
            high_watermark: Offset(self.log.high_watermark()),
            log_end_offset: Offset(self.log.log_end_offset()),
            leader_epoch: self.leader_epoch.get(),
        }
    }
    pub fn high_watermark(&self) -> Offset {
        Offset(self.log.high_watermark())
    }
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }
    /// Notified on every append; long polls wait on it.
    pub fn append_notify(&self) -> Rc<Notify> {
        self.log.append_notify()
    }

    /// Appends as the leader: offsets assigned, batches stamped with the current leader epoch,
    /// buffered for the shard's committer (the caller waits for the commit it needs).
    pub async fn append(&self, batches: ValidatedBatches, now_ms: i64) -> Result<AppendInfo, LogError> {
        self.log.append_buffered(batches, self.leader_epoch.get().get(), now_ms).await
    }

    /// The log, for the shard's commit wait only.
    pub(crate) fn log(&self) -> &Rc<PartitionLog<S>> {
        &self.log
    }

    pub async fn read(
        &self,
        offset: Offset,
        bytes_max: usize,
        end_offset: Option<Offset>,
    ) -> Result<ReadResult, LogError> {
        self.log.read(offset.get(), bytes_max, end_offset.map(Offset::get)).await
    }
    /// ListOffsets for one partition: `timestamp` is a record timestamp (the first record at or
    /// after it) or one of [`spec`]'s special values. `None`: no such record.
    pub async fn list_offset(&self, timestamp: i64) -> Result<Option<ListedOffset>, LogError> {
        let epoch_of = |offset: i64| self.log.epoch_at(offset).unwrap_or(-1);
        let found = match timestamp {
            spec::LATEST => {
                // As Kafka: the end a consumer may read to, in the current leader epoch.
                let hw = self.log.high_watermark();
                return Ok(Some(ListedOffset {
                    offset: Offset(hw),
                    timestamp: -1,
                    leader_epoch: self.leader_epoch.get().get(),
                }));
            }
            spec::EARLIEST | spec::EARLIEST_LOCAL => {
                let start = self.log.log_start_offset();
                return Ok(Some(ListedOffset { offset: Offset(start), timestamp: -1, leader_epoch: epoch_of(start) }));
            }
            // Nothing is tiered.
            spec::LATEST_TIERED | spec::EARLIEST_PENDING_UPLOAD => return Ok(None),
            spec::MAX_TIMESTAMP => self.log.max_timestamp().await?,
            ts => self.log.offset_for_timestamp(ts).await?,
        };
        Ok(found.map(|(offset, timestamp)| ListedOffset {
            offset: Offset(offset),
            timestamp,
            leader_epoch: epoch_of(offset),
        }))
    }
    /// DeleteRecords: the new log start offset.
    pub async fn delete_before(&self, offset: Offset, now_ms: i64) -> Result<Offset, LogError> {
        self.log.delete_before(offset.get(), now_ms).await.map(Offset)
    }
    pub async fn truncate_to(&self, offset: Offset, now_ms: i64) -> Result<(), LogError> {
        self.log.truncate_to(offset.get(), now_ms).await
    }
    /// OffsetForLeaderEpoch: `(epoch, end offset)`.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let (e, end) = self.log.end_offset_for_epoch(epoch.get());
        (LeaderEpoch(e), Offset(end))
    }
    /// Applies time and size retention (the topic's `retention.ms` / `retention.bytes`).
    pub async fn apply_retention(
        &self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
    ) -> Result<(), LogError> {
        if let Some(cut) = self.log.retention_offset(now_ms, retention_ms, retention_bytes) {
            self.log.delete_before(cut, now_ms).await?;
        }
        Ok(())
    }
}
