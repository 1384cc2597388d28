//! WriteTxnMarkers: COMMIT or ABORT markers written to partitions, each synced before it is
//! answered. The transaction coordinator's way to end a transaction in its partitions, and the
//! admin path Kafka's tools use to abort a hanging transaction
//! (`kafka-transactions.sh abort`, `Admin#abortTransaction`).

use engine::log::AppendInfo;
use engine::shard::TopicPartition;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use replication::{Marker, MarkerItem, PartitionError, ShardId};

use crate::caps::Data;
use crate::coordinator::group::OFFSETS_TOPIC;
use crate::errors::{code, partition_error};
use crate::server::{Call, Request, Router};

/// Where a partition's answer goes: (marker, topic, partition) indexes of the request.
type Slot = (usize, usize, usize);

pub async fn handle(ctx: Data<'_>, _version: i16, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // Every (marker, topic, partition) slot in request order; the valid ones in `items`.
    let mut out: Vec<WritableTxnMarkerResult> = Vec::with_capacity(req.markers.len());
    let mut slots: Vec<Slot> = Vec::new();
    let mut items: Vec<MarkerItem> = Vec::new();
    for (mi, m) in req.markers.into_iter().enumerate() {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            commit: m.transaction_result,
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for (ti, t) in m.topics.into_iter().enumerate() {
            let meta = ctx.view.meta(t.name.as_str());
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for (pi, index) in t.partition_indexes.into_iter().enumerate() {
                let result = WritableTxnMarkerPartitionResult::default().with_partition_index(index);
                match &meta {
                    Some(meta) if index >= 0 && index < meta.partitions && marker.producer_id >= 0 => {
                        slots.push((mi, ti, pi));
                        items.push(MarkerItem { tp: TopicPartition::new(&meta.name, index), marker });
                        partitions.push(result);
                    }
                    Some(_) if marker.producer_id < 0 => partitions.push(result.with_error_code(code::INVALID_REQUEST)),
                    _ => partitions.push(result.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)),
                }
            }
            topics.push(WritableTxnMarkerTopicResult::default().with_name(t.name).with_partitions(partitions));
        }
        out.push(WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics));
    }
    for ((m, t, p), r) in slots.into_iter().zip(write(ctx.router, items).await) {
        if let Err(e) = r {
            out[m].topics[t].partitions[p].error_code = partition_error(&e);
        }
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}

/// Writes markers, one message per owner shard, each synced before its result; the results
/// in the order of `items`. A marker written to `__consumer_offsets` is then applied to the
/// pending transactional offsets there, before this returns, so once a commit is answered its
/// offsets are visible.
pub async fn write(router: &Router, items: Vec<MarkerItem>) -> Vec<Result<AppendInfo, PartitionError>> {
    let n = items.len();
    let mut per_owner: Vec<Vec<(usize, MarkerItem)>> = (0..router.shard_count()).map(|_| Vec::new()).collect();
    let mut offsets_ends: Vec<(usize, i32, Marker)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if &*item.tp.topic == OFFSETS_TOPIC {
            offsets_ends.push((i, item.tp.partition, item.marker));
        }
        per_owner[router.owner(&item.tp).index()].push((i, item));
    }
    let calls: Vec<_> = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, items)| !items.is_empty())
        .map(|(owner, items)| {
            let (slots, items): (Vec<_>, Vec<_>) = items.into_iter().unzip();
            let owner = ShardId(owner);
            async move { (owner, slots, router.call(owner, |reply| Request::WriteMarkers { items, reply }).await) }
        })
        .collect();
    let mut out: Vec<Option<Result<AppendInfo, PartitionError>>> = (0..n).map(|_| None).collect();
    for (owner, slots, results) in engine::sync::join_all(calls).await {
        match results {
            Ok(results) => {
                for (i, r) in slots.into_iter().zip(results) {
                    out[i] = Some(r);
                }
            }
            Err(_) => {
                for i in slots {
                    out[i] = Some(Err(PartitionError::ShardGone(owner)));
                }
            }
        }
    }
    for (i, partition, marker) in offsets_ends {
        if !matches!(out[i], Some(Ok(_))) {
            continue;
        }
        let owner = router.owner(&TopicPartition::new(OFFSETS_TOPIC, partition));
        let (producer_id, commit) = (marker.producer_id, marker.commit);
        let _ = router
            .call(owner, |reply| Request::Coordinator(Call::TxnOffsetsEnded { partition, producer_id, commit, reply }))
            .await;
    }
    out.into_iter().map(|r| r.unwrap_or(Err(PartitionError::ShardGone(ShardId(0))))).collect()
}
