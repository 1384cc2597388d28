//! The one table of supported APIs: their version ranges and handlers. ApiVersions is
//! generated from it, a request for a key or version outside it is refused before decoding, and
//! the handler of every decoded request is found in it.
//!
//! Ranges follow what Apache Kafka 4.0 advertises, restricted to what the handlers implement.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use crate::handlers;
use crate::server::ShardCtx;

#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub version_min: i16,
    pub version_max: i16,
}

const fn api(key: ApiKey, version_min: i16, version_max: i16) -> ApiSpec {
    ApiSpec { key, version_min, version_max }
}

/// The one table of every API the broker serves: its key, version range, handler and the
/// capability the handler receives ([`crate::caps`]). It makes [`APIS`] (which ApiVersions
/// answers from and requests are checked against before decoding) and [`dispatch`] (which
/// builds the capability from the shard's context and runs the handler), so the two cannot
/// disagree and no handler is given more than its row says.
///
/// Each row: `Key min..=max => kind handler (capability)`, where `capability` is the
/// [`ShardCtx`] method that builds it. Handler kinds: `sync` and `async` take
/// `(capability, version, request)` (capabilities are `Copy` borrows) and return the response;
/// `ordered` handlers also take the request's turn on its connection (Produce: a connection's
/// appends reach their partitions in request order); `group` APIs go to their coordinator
/// shard through `handlers::groups::route`.
macro_rules! api_table {
    ($( $key:ident $min:literal ..= $max:literal => $kind:ident $($handler:ident)::* ($cap:ident) ;)*) => {
        /// Every API the broker serves.
        pub const APIS: &[ApiSpec] = &[$( api(ApiKey::$key, $min, $max), )*];

        /// Runs a decoded request's handler; `None`: no handler for it.
        pub async fn dispatch(
            ctx: &Rc<ShardCtx>,
            header: &RequestHeader,
            request: RequestKind,
            peer: &str,
            turn: Option<engine::sync::Turn>,
        ) -> Option<ResponseKind> {
            let v = header.request_api_version;
            match request {
                $( RequestKind::$key(r) => api_table!(@call $kind $key $($handler)::*, ctx.$cap(), header, v, r, peer, turn), )*
                _ => None,
            }
        }
    };
    (@call sync $key:ident $($h:ident)::*, $cap:expr, $header:ident, $v:ident, $r:ident, $peer:ident, $turn:ident) => {
        Some(ResponseKind::$key(handlers::$($h)::*($cap, $v, $r)))
    };
    (@call async $key:ident $($h:ident)::*, $cap:expr, $header:ident, $v:ident, $r:ident, $peer:ident, $turn:ident) => {
        Some(ResponseKind::$key(handlers::$($h)::*($cap, $v, $r).await))
    };
    (@call ordered $key:ident $($h:ident)::*, $cap:expr, $header:ident, $v:ident, $r:ident, $peer:ident, $turn:ident) => {
        Some(ResponseKind::$key(handlers::$($h)::*($cap, $v, $r, $turn).await))
    };
    (@call group $key:ident $($h:ident)::*, $cap:expr, $header:ident, $v:ident, $r:ident, $peer:ident, $turn:ident) => {{
        let caller = handlers::groups::Caller { client_id: $header.client_id.as_deref().unwrap_or(""), host: $peer };
        handlers::$($h)::*($cap, $v, caller, RequestKind::$key($r)).await
    }};
}

// Kafka 4 removed Produce v0-2 but still advertises v0: librdkafka decides whether the broker
// supports idempotence and message format v2 from ranges starting at 0 (KIP-896). Requests
// below v3 are still refused (the decoder does not support them).
api_table! {
    Produce 0..=12 => ordered produce::handle (produce);
    Fetch 4..=17 => async fetch::handle (fetch);
    ListOffsets 1..=9 => async list_offsets::handle (data);
    Metadata 0..=12 => async metadata::handle (cluster);
    FindCoordinator 0..=6 => async find_coordinator::handle (cluster);
    ApiVersions 0..=4 => sync api_versions::handle (nothing);
    CreateTopics 2..=7 => async create_topics::handle (admin);
    DeleteTopics 1..=6 => async delete_topics::handle (admin);
    DeleteRecords 0..=2 => async delete_records::handle (data);
    InitProducerId 0..=5 => async txn::init_producer_id (producer_init);
    AddPartitionsToTxn 0..=4 => async txn::add_partitions (group_router);
    AddOffsetsToTxn 0..=3 => async txn::add_offsets (group_router);
    EndTxn 0..=3 => async txn::end_txn (group_router);
    DescribeTransactions 0..=0 => async txn::describe (group_router);
    ListTransactions 0..=1 => async txn::list (group_router);
    TxnOffsetCommit 0..=3 => group groups::route (group_router);
    OffsetForLeaderEpoch 2..=4 => async offset_for_leader_epoch::handle (data);
    DescribeConfigs 1..=4 => sync configs::describe (admin);
    AlterConfigs 0..=2 => async configs::alter (admin);
    DescribeLogDirs 1..=4 => async describe_log_dirs::handle (log_dirs);
    CreatePartitions 0..=3 => async create_partitions::handle (admin);
    IncrementalAlterConfigs 0..=1 => async configs::incremental_alter (admin);
    DescribeCluster 0..=1 => sync describe_cluster::handle (cluster);
    DescribeTopicPartitions 0..=0 => async describe_topic_partitions::handle (cluster);
    DescribeProducers 0..=0 => async describe_producers::handle (data);
    WriteTxnMarkers 1..=1 => async write_txn_markers::handle (data);
    OffsetCommit 2..=9 => group groups::route (group_router);
    OffsetFetch 1..=9 => group groups::route (group_router);
    JoinGroup 0..=9 => group groups::route (group_router);
    Heartbeat 0..=4 => group groups::route (group_router);
    LeaveGroup 0..=5 => group groups::route (group_router);
    SyncGroup 0..=5 => group groups::route (group_router);
    DescribeGroups 0..=5 => group groups::route (group_router);
    ListGroups 0..=5 => group groups::route (group_router);
    DeleteGroups 0..=2 => group groups::route (group_router);
    OffsetDelete 0..=0 => group groups::route (group_router);
    ConsumerGroupHeartbeat 0..=1 => group groups::route (group_router);
    ConsumerGroupDescribe 0..=1 => group groups::route (group_router);
}

/// The spec for a key, if served.
pub fn spec(key: i16) -> Option<&'static ApiSpec> {
    APIS.iter().find(|a| a.key as i16 == key)
}

/// The versions the server actually decodes: the advertised range, within the decoder's.
pub fn decodable(spec: &ApiSpec, version: i16) -> bool {
    let crate_range = spec.key.valid_versions();
    version >= spec.version_min.max(crate_range.min) && version <= spec.version_max.min(crate_range.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_what_the_decoder_supports() {
        for a in APIS {
            let r = a.key.valid_versions();
            assert!(a.version_max <= r.max, "{:?}", a.key);
            assert!(a.version_min >= r.min || a.key == ApiKey::Produce, "{:?}", a.key);
        }
        assert!(decodable(spec(0).expect("produce"), 3));
        assert!(!decodable(spec(0).expect("produce"), 2));
        assert!(spec(9999).is_none());
    }
}
