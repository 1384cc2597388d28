//! FindCoordinator: on a single node this broker coordinates every group (key type 0) and
//! every transactional id (key type 1). Inside the broker the coordinator is one shard (see
//! [`crate::coordinator::group::coordinator_partition`], [`crate::coordinator::txn::txn_partition`]).
//!
//! As in Kafka, the first lookup creates `__consumer_offsets` (groups) or
//! `__transaction_state` (transactions), so that cost is paid here, once, and not by a
//! consumer's JoinGroup or a producer's InitProducerId.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::caps::Cluster;
use crate::errors::code;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// (error code, message) for one key.
fn lookup(key_type: i8, key: &str) -> (i16, Option<StrBytes>) {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => (code::INVALID_GROUP_ID, Some(StrBytes::from_static_str("empty group id"))),
        KEY_TYPE_TRANSACTION if key.is_empty() => {
            (code::INVALID_REQUEST, Some(StrBytes::from_static_str("empty transactional id")))
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => (code::NONE, None),
        _ => (code::INVALID_REQUEST, Some(StrBytes::from_static_str("unknown coordinator key type"))),
    }
}

pub async fn handle(ctx: Cluster<'_>, version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let offsets_topic = match req.key_type {
        KEY_TYPE_GROUP => ctx.auto_create.offsets_topic().await,
        KEY_TYPE_TRANSACTION => ctx.auto_create.txn_topic().await,
        _ => Ok(()),
    };
    let lookup = |key_type: i8, key: &str| match offsets_topic {
        Err(e) => (e, Some(StrBytes::from_static_str("the coordinator's internal topic cannot be created"))),
        Ok(()) => lookup(key_type, key),
    };
    let node = BrokerId(ctx.config.node_id);
    let host = StrBytes::from_string(ctx.config.advertised_host.clone());
    let port = ctx.config.advertised_port;
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (error, msg) = lookup(req.key_type, key.as_str());
                let c = Coordinator::default().with_key(key).with_error_code(error).with_error_message(msg);
                if error == code::NONE {
                    c.with_node_id(node).with_host(host.clone()).with_port(port)
                } else {
                    c.with_node_id((-1).into()).with_port(-1)
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (error, msg) = lookup(req.key_type, req.key.as_str());
        let r = FindCoordinatorResponse::default().with_error_code(error).with_error_message(msg);
        if error == code::NONE {
            r.with_node_id(node).with_host(host).with_port(port)
        } else {
            r.with_node_id((-1).into()).with_port(-1)
        }
    }
}
