//! The coordinators: state machines that live on the shard owning their `__consumer_offsets`
//! partition, reached through that shard's door (`ShardRequest::Coordinator`).
//!
//! - [`group`]: classic consumer groups (JoinGroup/SyncGroup/Heartbeat, committed offsets) and
//!   the per-shard coordinator that holds every group it coordinates;
//! - [`consumer_group`]: KIP-848 groups (ConsumerGroupHeartbeat, server-side assignment);
//! - [`store`]: their persistence in `__consumer_offsets` and recovery at start-up;
//! - [`txn`]: the transaction coordinator, on the shard owning the id's `__transaction_state`
//!   partition.
//!
//! The request handlers that route group APIs to their coordinator shard are in
//! `crate::handlers::groups`, the transaction APIs in `crate::handlers::txn`.

pub mod consumer_group;
pub mod group;
pub mod store;
pub mod txn;
