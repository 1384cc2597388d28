//! ListOffsets: earliest, latest, max timestamp, and the first offset at or after a timestamp.

use engine::shard::TopicPartition;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use replication::partition::spec;
use replication::{ListedOffset, PartitionError};

use crate::caps::Data;
use crate::errors::{code, partition_error};
use crate::server::Request;

/// One partition's answer from its owner, fenced by the client's `current_leader_epoch`.
async fn lookup(
    ctx: Data<'_>,
    tp: TopicPartition,
    timestamp: i64,
    current_leader_epoch: i32,
    read_committed: bool,
) -> Result<Option<ListedOffset>, PartitionError> {
    let owner = ctx.router.owner(&tp);
    let call = |reply| Request::ListOffset { tp, timestamp, current_leader_epoch, read_committed, reply };
    ctx.router.call(owner, call).await?
}

pub async fn handle(ctx: Data<'_>, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    // Kafka's IsolationLevel: 1 is READ_COMMITTED (v2+).
    let read_committed = req.isolation_level == 1;
    for t in req.topics {
        let meta = ctx.view.meta(t.name.as_str());
        let futs: Vec<_> = t
            .partitions
            .iter()
            .map(|p| {
                let meta = meta.clone();
                let (index, timestamp, current) = (p.partition_index, p.timestamp, p.current_leader_epoch);
                async move {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(meta) = meta.filter(|m| index >= 0 && index < m.partitions) else {
                        return out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    if timestamp < spec::EARLIEST_PENDING_UPLOAD {
                        return out.with_error_code(code::INVALID_REQUEST);
                    }
                    // Before v4 the request carries no epoch to check, and the answer none.
                    let current = if version >= 4 { current } else { -1 };
                    match lookup(ctx, TopicPartition::new(&meta.name, index), timestamp, current, read_committed).await
                    {
                        Ok(Some(o)) => out
                            .with_offset(o.offset.get())
                            .with_timestamp(o.timestamp)
                            .with_leader_epoch(if version >= 4 { o.leader_epoch } else { -1 }),
                        Ok(None) => out,
                        Err(e) => out.with_error_code(partition_error(&e)),
                    }
                }
            })
            .collect();
        let partitions = engine::sync::join_windowed(futs, replication::shard::REQUEST_PARTITIONS_IN_FLIGHT_MAX).await;
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
