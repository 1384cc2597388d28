//! DescribeLogDirs: the one data directory, with each partition's size from its owner.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::caps::LogDirs;
use crate::server::Request;

pub async fn handle(ctx: LogDirs<'_>, _version: i16, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let mut sizes: BTreeMap<String, BTreeMap<i32, u64>> = BTreeMap::new();
    for owner in ctx.router.shards() {
        if let Ok(list) = ctx.router.call(owner, |reply| Request::LogSizes { reply }).await {
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
        .filter(|(t, _)| ctx.view.meta(t).is_some())
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
    // A path lookup and a statvfs: blocking calls, made on the shard's blocking thread.
    let data_dir = ctx.data_dir.to_path_buf();
    let (dir, space) = engine::io::dma::blocking(move || {
        let dir = std::fs::canonicalize(&data_dir).unwrap_or(data_dir);
        let space = disk_bytes(&dir);
        Ok((dir, space))
    })
    .await
    .unwrap_or_else(|_| (ctx.data_dir.to_path_buf(), None));
    let (total, usable) = space.unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The file system's total and available bytes (DescribeLogDirs v4), from statvfs.
fn disk_bytes(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `st` is writable for one statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    let frsize = i64::try_from(st.f_frsize).ok()?;
    let blocks = i64::try_from(st.f_blocks).ok()?;
    let avail = i64::try_from(st.f_bavail).ok()?;
    Some((blocks.saturating_mul(frsize), avail.saturating_mul(frsize)))
}
