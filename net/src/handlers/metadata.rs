//! Metadata: this node is the only broker, the controller and every partition's leader.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use std::collections::HashMap;

use engine::shard::TopicPartition;
use replication::ShardId;

use crate::caps::Cluster;
use crate::errors::code;
use crate::server::{Request, Router};
use crate::topics::TopicMeta;

/// Each partition's current leader epoch, asked of the owners (one message per owner).
/// Partitions an owner does not have (yet) are missing from the answer.
pub async fn leader_epochs(router: &Router, tps: Vec<TopicPartition>) -> HashMap<TopicPartition, i32> {
    let mut per_owner: Vec<Vec<TopicPartition>> = (0..router.shard_count()).map(|_| Vec::new()).collect();
    for tp in tps {
        per_owner[router.owner(&tp).index()].push(tp);
    }
    let calls = per_owner.into_iter().enumerate().filter(|(_, tps)| !tps.is_empty()).map(|(owner, tps)| async move {
        let asked = tps.clone();
        let r = router.call(ShardId(owner), |reply| Request::Offsets { tps, reply }).await;
        (asked, r.unwrap_or_default())
    });
    let mut out = HashMap::new();
    for (asked, answers) in engine::sync::join_all(calls.collect()).await {
        for (tp, a) in asked.into_iter().zip(answers) {
            if let Ok(o) = a {
                out.insert(tp, o.leader_epoch.get());
            }
        }
    }
    out
}

/// The epoch of every partition of these topics.
async fn epochs_of(ctx: Cluster<'_>, topics: &[Arc<TopicMeta>]) -> HashMap<TopicPartition, i32> {
    let tps = topics.iter().flat_map(|t| (0..t.partitions).map(|p| TopicPartition::new(&t.name, p))).collect();
    leader_epochs(ctx.router, tps).await
}

pub fn broker(ctx: Cluster<'_>) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(ctx.config.node_id))
        .with_host(StrBytes::from_string(ctx.config.advertised_host.clone()))
        .with_port(ctx.config.advertised_port)
}

/// A topic as Metadata describes it; a partition missing from `epochs` has no leader yet
/// (being created): LEADER_NOT_AVAILABLE, which clients retry.
pub fn topic_response(ctx: Cluster<'_>, t: &TopicMeta, epochs: &HashMap<TopicPartition, i32>) -> MetadataResponseTopic {
    let node = BrokerId(ctx.config.node_id);
    let partitions = (0..t.partitions)
        .map(|p| {
            let out = MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            match epochs.get(&TopicPartition::new(&t.name, p)) {
                Some(&epoch) => out.with_leader_id(node).with_leader_epoch(epoch),
                None => {
                    out.with_leader_id(BrokerId(-1)).with_leader_epoch(-1).with_error_code(code::LEADER_NOT_AVAILABLE)
                }
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.name == crate::coordinator::group::OFFSETS_TOPIC)
        .with_partitions(partitions)
}

fn error_topic(name: Option<TopicName>, id: uuid::Uuid, error: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_name(name).with_topic_id(id).with_error_code(error)
}

pub async fn handle(ctx: Cluster<'_>, version: i16, req: MetadataRequest) -> MetadataResponse {
    // Before v4 there was no flag: brokers auto-created when configured to.
    let allow_auto_create = version < 4 || req.allow_auto_topic_creation;
    let all = match &req.topics {
        None => true,
        // v0 has no null: an empty list meant "all topics".
        Some(t) => t.is_empty() && version == 0,
    };
    // Found topics first (their epochs are asked of the owners in one go), errors in place.
    let mut found: Vec<Result<Arc<TopicMeta>, MetadataResponseTopic>> = Vec::new();
    if all {
        // Internal topics are listed only when asked for by name (Kafka's clients hide them).
        found.extend(
            ctx.view.metas().into_iter().filter(|t| t.name != crate::coordinator::group::OFFSETS_TOPIC).map(Ok),
        );
    } else {
        for t in req.topics.unwrap_or_default() {
            match &t.name {
                Some(name) => {
                    let meta: Result<Arc<TopicMeta>, i16> =
                        ctx.auto_create.topic(name.as_str(), allow_auto_create).await.map(|t| t.meta.clone());
                    found.push(meta.map_err(|e| error_topic(Some(name.clone()), uuid::Uuid::nil(), e)));
                }
                None => match ctx.view.meta_by_id(&t.topic_id) {
                    Some(meta) => found.push(Ok(meta)),
                    None => found.push(Err(error_topic(None, t.topic_id, code::UNKNOWN_TOPIC_ID))),
                },
            }
        }
    }
    let metas: Vec<Arc<TopicMeta>> = found.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let epochs = epochs_of(ctx, &metas).await;
    let topics: Vec<MetadataResponseTopic> = found
        .into_iter()
        .map(|f| match f {
            Ok(meta) => topic_response(ctx, &meta, &epochs),
            Err(e) => e,
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![broker(ctx)])
        .with_cluster_id(Some(StrBytes::from_string(ctx.config.cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.config.node_id))
        .with_topics(topics)
}
