//! DescribeTopicPartitions (KIP-966): Metadata's partition view, paginated by a cursor.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use engine::shard::TopicPartition;

use crate::caps::Cluster;
use crate::errors::code;
use crate::handlers::metadata::leader_epochs;

/// Kafka's cap on partitions in one response (`max.request.partition.size.limit`).
const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

pub async fn handle(
    ctx: Cluster<'_>,
    _version: i16,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let node = BrokerId(ctx.config.node_id);
    let mut budget = req.response_partition_limit.clamp(1, PARTITIONS_PER_RESPONSE_MAX);
    let mut names: Vec<String> = if req.topics.is_empty() {
        ctx.view.metas().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    let (cursor_topic, cursor_partition) =
        req.cursor.as_ref().map(|c| (c.topic_name.to_string(), c.partition_index)).unwrap_or_default();
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= cursor_topic) {
        let tn = TopicName(StrBytes::from_string(name.clone()));
        let Some(meta) = ctx.view.meta(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(tn))
                    .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
            );
            continue;
        };
        let first = if name == cursor_topic { cursor_partition.max(0) } else { 0 };
        let last = meta.partitions.min(first.saturating_add(budget));
        if last < meta.partitions {
            next_cursor = Some(Cursor::default().with_topic_name(tn.clone()).with_partition_index(last.max(first)));
        }
        let epochs =
            leader_epochs(ctx.router, (first..last).map(|p| TopicPartition::new(&meta.name, p)).collect()).await;
        let mut partitions = Vec::new();
        for p in first..last {
            budget -= 1;
            let out = DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()));
            partitions.push(match epochs.get(&TopicPartition::new(&meta.name, p)) {
                Some(&epoch) => out.with_leader_id(node).with_leader_epoch(epoch),
                None => {
                    out.with_leader_id(BrokerId(-1)).with_leader_epoch(-1).with_error_code(code::LEADER_NOT_AVAILABLE)
                }
            });
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(tn))
                .with_topic_id(meta.id)
                .with_partitions(partitions),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(next_cursor)
}
