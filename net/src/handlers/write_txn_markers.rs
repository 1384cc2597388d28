//! WriteTxnMarkers: COMMIT or ABORT markers written to partitions, each synced before it is
//! answered. The transaction coordinator's way to end a transaction in its partitions, and the
//! admin path Kafka's tools use to abort a hanging transaction
//! (`kafka-transactions.sh abort`, `Admin#abortTransaction`).

use engine::shard::TopicPartition;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use replication::{Marker, MarkerItem, ShardId};

use crate::caps::Data;
use crate::errors::{code, partition_error};
use crate::server::Request;

/// Where a partition's answer goes: (marker, topic, partition) indexes of the request.
type Slot = (usize, usize, usize);

pub async fn handle(ctx: Data<'_>, _version: i16, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    // Every (marker, topic, partition) slot in request order; the valid ones grouped by owner.
    let mut out: Vec<WritableTxnMarkerResult> = Vec::with_capacity(req.markers.len());
    let mut per_owner: Vec<Vec<(Slot, MarkerItem)>> = (0..ctx.router.shard_count()).map(|_| Vec::new()).collect();
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
                        let tp = TopicPartition::new(&meta.name, index);
                        per_owner[ctx.router.owner(&tp).index()].push(((mi, ti, pi), MarkerItem { tp, marker }));
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
    let calls: Vec<_> = per_owner
        .into_iter()
        .enumerate()
        .filter(|(_, items)| !items.is_empty())
        .map(|(owner, items)| {
            let (slots, items): (Vec<_>, Vec<_>) = items.into_iter().unzip();
            async move { (slots, ctx.router.call(ShardId(owner), |reply| Request::WriteMarkers { items, reply }).await) }
        })
        .collect();
    for (slots, results) in engine::sync::join_all(calls).await {
        match results {
            Ok(results) => {
                for ((m, t, p), r) in slots.into_iter().zip(results) {
                    if let Err(e) = r {
                        out[m].topics[t].partitions[p].error_code = partition_error(&e);
                    }
                }
            }
            Err(e) => {
                for (m, t, p) in slots {
                    out[m].topics[t].partitions[p].error_code = partition_error(&e);
                }
            }
        }
    }
    WriteTxnMarkersResponse::default().with_markers(out)
}
