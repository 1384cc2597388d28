//! Metadata: this node is the only broker, the controller and every partition's leader.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::errors::code;
use crate::handlers::admin;
use crate::server::ShardCtx;
use crate::topics::TopicMeta;

/// The leader epoch every partition reports: a single node never changes leaders.
pub const LEADER_EPOCH: i32 = 0;

pub fn broker(ctx: &ShardCtx) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(ctx.config().node_id))
        .with_host(StrBytes::from_string(ctx.config().advertised_host.clone()))
        .with_port(ctx.config().advertised_port)
}

pub fn topic_response(ctx: &ShardCtx, t: &TopicMeta) -> MetadataResponseTopic {
    let node = BrokerId(ctx.config().node_id);
    let partitions = (0..t.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

fn error_topic(name: Option<TopicName>, id: uuid::Uuid, error: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_name(name).with_topic_id(id).with_error_code(error)
}

pub async fn handle(ctx: &Rc<ShardCtx>, version: i16, req: MetadataRequest) -> MetadataResponse {
    // Before v4 there was no flag: brokers auto-created when configured to.
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;
    let all = match &req.topics {
        None => true,
        // v0 has no null: an empty list meant "all topics".
        Some(t) => t.is_empty() && version == 0,
    };
    let topics: Vec<MetadataResponseTopic> = if all {
        // Internal topics are listed only when asked for by name (Kafka's clients hide them).
        ctx.broker
            .topics
            .list()
            .iter()
            .filter(|t| t.name != crate::group::OFFSETS_TOPIC)
            .map(|t| topic_response(ctx, t))
            .collect()
    } else {
        let mut out = Vec::new();
        for t in req.topics.unwrap_or_default() {
            match &t.name {
                Some(name) => {
                    let found: Result<Arc<TopicMeta>, i16> =
                        admin::get_or_auto_create(ctx, name.as_str(), allow_auto_create).await;
                    match found {
                        Ok(meta) => out.push(topic_response(ctx, &meta)),
                        Err(e) => out.push(error_topic(Some(name.clone()), uuid::Uuid::nil(), e)),
                    }
                }
                None => match ctx.broker.topics.name_for_id(&t.topic_id).and_then(|n| ctx.broker.topics.get(&n)) {
                    Some(meta) => out.push(topic_response(ctx, &meta)),
                    None => out.push(error_topic(None, t.topic_id, code::UNKNOWN_TOPIC_ID)),
                },
            }
        }
        out
    };
    MetadataResponse::default()
        .with_brokers(vec![broker(ctx)])
        .with_cluster_id(Some(StrBytes::from_string(ctx.config().cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.config().node_id))
        .with_topics(topics)
}
