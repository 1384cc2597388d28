//! ListOffsets: earliest, latest, max timestamp, and the first offset at or after a timestamp.

use std::rc::Rc;

use engine::shard::{PartitionError, ShardRequest, TopicPartition};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::errors::{code, partition_error};
use crate::handlers::metadata::LEADER_EPOCH;
use crate::server::{NetRequest, ShardCtx};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

/// `(offset, timestamp)` for one partition.
async fn lookup(ctx: &ShardCtx, tp: TopicPartition, timestamp: i64) -> Result<(i64, i64), PartitionError> {
    let owner = ctx.handle.owner(&tp);
    match timestamp {
        LATEST | EARLIEST | EARLIEST_LOCAL | LATEST_TIERED | EARLIEST_PENDING_UPLOAD => {
            let tps = vec![tp];
            let offsets = ctx.handle.call(owner, |reply| ShardRequest::Offsets { tps, reply }).await?;
            let o = offsets.into_iter().next().ok_or(PartitionError::ShardGone(owner))??;
            Ok(match timestamp {
                LATEST => (o.high_watermark, -1),
                // Nothing is tiered: the earliest local offset is the log start.
                LATEST_TIERED | EARLIEST_PENDING_UPLOAD => (-1, -1),
                _ => (o.log_start_offset, -1),
            })
        }
        MAX_TIMESTAMP => {
            let r = ctx.net_call(owner, |reply| NetRequest::MaxTimestamp { tp, reply }).await??;
            Ok(r.unwrap_or((-1, -1)))
        }
        ts => {
            let r =
                ctx.handle.call(owner, |reply| ShardRequest::OffsetForTimestamp { tp, timestamp: ts, reply }).await??;
            Ok(r.unwrap_or((-1, -1)))
        }
    }
}

pub async fn handle(ctx: &Rc<ShardCtx>, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.broker.topics.get(t.name.as_str());
        let futs: Vec<_> = t
            .partitions
            .iter()
            .map(|p| {
                let meta = meta.clone();
                let (index, timestamp) = (p.partition_index, p.timestamp);
                async move {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(meta) = meta.filter(|m| index >= 0 && index < m.partitions) else {
                        return out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    if timestamp < EARLIEST_PENDING_UPLOAD {
                        return out.with_error_code(code::INVALID_REQUEST);
                    }
                    match lookup(ctx, TopicPartition::new(&meta.name, index), timestamp).await {
                        Ok((offset, ts)) => out
                            .with_offset(offset)
                            .with_timestamp(ts)
                            .with_leader_epoch(if offset >= 0 && version >= 4 { LEADER_EPOCH } else { -1 }),
                        Err(e) => out.with_error_code(partition_error(&e)),
                    }
                }
            })
            .collect();
        let partitions = engine::sync::join_windowed(futs, engine::shard::REQUEST_PARTITIONS_IN_FLIGHT_MAX).await;
        topics.push(ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}
