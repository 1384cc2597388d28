//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the owner's epoch checkpoint.

use engine::shard::TopicPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::caps::Data;
use crate::errors::{code, partition_error};
use crate::server::Request;
use replication::{EpochQuery, LeaderEpoch};

pub async fn handle(ctx: Data<'_>, _version: i16, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let meta = ctx.view.meta(t.topic.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let out = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
            let Some(meta) = meta.as_ref().filter(|m| p.partition >= 0 && p.partition < m.partitions) else {
                partitions.push(out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            let tp = TopicPartition::new(&meta.name, p.partition);
            let owner = ctx.router.owner(&tp);
            // The owner fences by `current_leader_epoch` (FENCED_ / UNKNOWN_LEADER_EPOCH).
            let q = EpochQuery {
                tp,
                current_leader_epoch: p.current_leader_epoch,
                leader_epoch: LeaderEpoch(p.leader_epoch),
            };
            let items = vec![q];
            let r = ctx.router.call(owner, |reply| Request::EndOffsetForEpoch { items, reply }).await;
            partitions.push(match r.map(|v| v.into_iter().next()) {
                Ok(Some(Ok((epoch, end)))) => out.with_leader_epoch(epoch.get()).with_end_offset(end.get()),
                Ok(Some(Err(e))) | Err(e) => out.with_error_code(partition_error(&e)),
                Ok(None) => out.with_error_code(code::UNKNOWN_SERVER_ERROR),
            });
        }
        topics.push(OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions));
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
