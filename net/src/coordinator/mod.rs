//! The coordinators: state machines that live on the shard owning their `__consumer_offsets`
//! partition, reached through that shard's door (`ShardRequest::Coordinator`).
//!
//! - [`group`]: classic consumer groups (JoinGroup/SyncGroup/Heartbeat, committed offsets) and
//!   the per-shard coordinator that holds every group it coordinates;
//! - [`consumer_group`]: KIP-848 groups (ConsumerGroupHeartbeat, server-side assignment);
//! - [`store`]: their persistence in `__consumer_offsets` and recovery at start-up.
//!
//! The transaction coordinator (issue 11) goes here too. The request handlers that route group
//! APIs to their coordinator shard are in `crate::handlers::groups`.

pub mod consumer_group;
pub mod group;
pub mod store;
