//! DescribeLogDirs: the one data directory, with each partition's size from its owner.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::server::{NetRequest, ShardCtx};

pub async fn handle(ctx: &Rc<ShardCtx>, _version: i16, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let mut sizes: BTreeMap<String, BTreeMap<i32, u64>> = BTreeMap::new();
    for owner in 0..ctx.handle.shard_count() {
        if let Ok(list) = ctx.net_call(owner, |reply| NetRequest::LogSizes { reply }).await {
            for (tp, size) in list {
                sizes.entry(tp.topic.to_string()).or_default().insert(tp.partition, size);
            }
        }
    }
    let wanted = |topic: &str, p: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| t.topic.as_str() == topic && t.partitions.contains(&p)),
    };
    let topics = sizes
        .into_iter()
        .filter(|(t, _)| ctx.broker.topics.get(t).is_some())
        .map(|(topic, parts)| {
            let partitions = parts
                .into_iter()
                .filter(|(p, _)| wanted(&topic, *p))
                .map(|(p, size)| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                })
                .collect::<Vec<_>>();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions)
        })
        .filter(|t| !t.partitions.is_empty())
        .collect();
    let dir = std::fs::canonicalize(&ctx.config().data_dir).unwrap_or_else(|_| ctx.config().data_dir.clone());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1);
    DescribeLogDirsResponse::default().with_results(vec![result])
}
