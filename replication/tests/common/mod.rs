//! Helpers the partition layer's tests share (each test file uses some of them).

#![allow(dead_code)]

use std::path::PathBuf;

use engine::shard::TopicPartition;
use engine::ValidatedBatches;
use replication::{AppendItem, Offset, ReadItem};

/// A fresh directory for one test: `odradek-{suite}-{name}-{pid}` under the system's temp dir.
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("odradek-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// An append of `batch` (whole record batches, e.g. `engine::records::simple_batch`) to `tp`.
pub fn append_item(tp: &TopicPartition, batch: &[u8], durable: bool) -> AppendItem {
    let batches = ValidatedBatches::new(bytes::BytesMut::from(batch), usize::MAX).expect("valid");
    AppendItem { tp: tp.clone(), batches, durable }
}

/// A read of `tp` from `offset` up to the high watermark, without a leader epoch to check.
pub fn read_item(tp: &TopicPartition, offset: i64, bytes_max: usize) -> ReadItem {
    ReadItem {
        tp: tp.clone(),
        offset: Offset(offset),
        bytes_max,
        end_offset: None,
        current_leader_epoch: -1,
        read_committed: false,
    }
}
