//! DeleteRecords: moves the log start offset forward (-1: to the high watermark).

use crate::server::Request;
use engine::shard::TopicPartition;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use replication::{Offset, PartitionError};

use crate::caps::Data;
use crate::errors::{code, partition_error};

/// `offset` -1: up to the high watermark.
async fn delete_before(ctx: Data<'_>, tp: TopicPartition, offset: i64) -> Result<Offset, PartitionError> {
    let owner = ctx.router.owner(&tp);
    let offset = if offset == -1 {
        let tps = vec![tp.clone()];
        let o = ctx.router.call(owner, |reply| Request::Offsets { tps, reply }).await?;
        o.into_iter().next().ok_or(PartitionError::ShardGone(owner))??.high_watermark
    } else {
        Offset(offset)
    };
    ctx.router.call(owner, |reply| Request::DeleteBefore { tp, offset, reply }).await?
}

pub async fn handle(ctx: Data<'_>, _version: i16, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.view.meta(t.name.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let out =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
            let Some(meta) = meta.as_ref().filter(|m| p.partition_index >= 0 && p.partition_index < m.partitions)
            else {
                partitions.push(out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if p.offset < -1 {
                partitions.push(out.with_error_code(code::OFFSET_OUT_OF_RANGE));
                continue;
            }
            let tp = TopicPartition::new(&meta.name, p.partition_index);
            partitions.push(match delete_before(ctx, tp, p.offset).await {
                Ok(low) => out.with_low_watermark(low.get()),
                Err(e) => out.with_error_code(partition_error(&e)),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
