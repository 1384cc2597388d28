//! # Odradek's partition layer
//!
//! Between the protocol handlers (`net`) and the storage engine (`engine`): what a partition
//! is beyond its log, and the only way to reach one.
//!
//! ## Shape
//!
//! - [`Router`]: `Send + Sync`, on every core: the placement table (partition → shard) and every
//!   shard's inbox. Callers send one [`ShardRequest`] per owner per client request.
//! - [`door`]: each shard's one pump. It admits work against named limits ([`DoorLimits`])
//!   before spawning it, so a full shard backpressures its senders.
//! - [`PartitionShard`]: one core's partitions (`!Send`), over the engine's storage shard.
//! - [`Partition`]: a partition's log plus its role, leader epoch and replica set; later its
//!   high watermark rules, producer state and followers.
//! - [`Node`]: starts the shards (the engine's executors), each running its door and the
//!   higher layer's services, and stops them.
//!
//! ## Limits
//!
//! [`door::SHARD_QUEUE_DEPTH`], [`DoorLimits`], [`shard::REQUEST_PARTITIONS_IN_FLIGHT_MAX`].

pub mod door;
pub mod ids;
pub mod node;
pub mod partition;
pub mod producer;
pub mod router;
pub mod shard;

pub use door::{CoordinatorService, DoorLimits, DoorStats};
pub use ids::{LeaderEpoch, NodeId, Offset, ProducerId, ShardId};
pub use node::{Node, NodeConfig, ServiceFactory, ShardServices};
pub use partition::{EpochError, ListedOffset, Partition, PartitionOffsets, Role};
pub use producer::{AbortedTxn, Marker, ProducerError, ProducerState};
pub use router::{Placement, Router};
pub use shard::{
    AppendItem, AppendResults, EpochQuery, MarkerItem, PartitionError, PartitionShard, ReadItem, ShardRequest,
};
