//! One consumer link: a connection to one partition leader fetching a consumer's partitions of
//! that broker. Lives on: one worker executor, for the whole run.
//!
//! Fetches are pipelined: the link's partitions are dealt into up to `--max-in-flight` groups and
//! each group has its own Fetch request outstanding, re-sent as soon as its response is read, so
//! the connection never waits for one partition's answer to ask for another's (consume runs;
//! end-to-end runs keep one fetch per connection, see `run`). Every fetched
//! batch is checked (CRC-32C and header, `engine::batch`), its records counted exactly from the
//! fetch offset, and in end-to-end runs each value's embedded send time gives the latency.

use std::sync::Arc;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::stats::{Counters, Measured};
use super::wire::{self, FrameReader};
use super::{Kind, Plan, CLIENT_ID};
use crate::client::codec;
use crate::client::error::error_name;

/// How long the broker may hold a fetch with nothing new (short, so stop conditions are checked
/// often; with data flowing, min_bytes=1 answers at once).
const FETCH_WAIT_MS: i32 = 100;
/// Per-partition and per-response byte limits of each fetch.
const PARTITION_FETCH_BYTES_MAX: i32 = 4 << 20;
const FETCH_BYTES_MAX: i32 = 64 << 20;

pub struct ConsumerLink {
    pub addr: String,
    /// Partitions and the offset each starts at.
    pub partitions: Vec<(i32, i64)>,
}

struct Group {
    partitions: Vec<(i32, i64)>,
    correlation_id: i32,
}

fn fetch_request(topic: &TopicName, group: &Group) -> FetchRequest {
    let partitions = group
        .partitions
        .iter()
        .map(|&(p, offset)| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES_MAX)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic.clone()).with_partitions(partitions)])
}

/// Runs one link until the plan's stop condition holds.
pub async fn run(plan: Arc<Plan>, link: ConsumerLink) -> Result<Measured, String> {
    let mut measured = Measured::new(plan.measured_start_ns);
    if link.partitions.is_empty() {
        return Ok(measured);
    }
    let mut stream = TcpStream::connect(link.addr.as_str())
        .await
        .map_err(|e| format!("cannot connect to broker {}: {e}", link.addr))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY on {}: {e}", link.addr))?;
    let topic = TopicName(StrBytes::from_string(plan.topic.clone()));
    let version = plan.fetch_version;
    // Responses on a connection come back in request order, so a long-polling fetch holds up the
    // answers queued behind it: end-to-end runs (latency) keep one fetch per connection, which
    // the broker answers as soon as any of its partitions has data; consume runs (throughput,
    // data always there) pipeline.
    let groups_n = if plan.kind == Kind::E2e { 1 } else { plan.max_in_flight.clamp(1, link.partitions.len()) };
    let mut groups: Vec<Group> = (0..groups_n).map(|_| Group { partitions: Vec::new(), correlation_id: 0 }).collect();
    for (i, p) in link.partitions.iter().enumerate() {
        groups[i % groups_n].partitions.push(*p);
    }
    let mut correlation_id = 0i32;
    for g in &mut groups {
        correlation_id = correlation_id.wrapping_add(1);
        g.correlation_id = correlation_id;
        let frame = codec::encode_request(version, correlation_id, Some(CLIENT_ID), &fetch_request(&topic, g))
            .map_err(|e| format!("encoding a Fetch request: {e}"))?;
        stream.write_all(&frame).await.map_err(|e| format!("writing to {}: {e}", link.addr))?;
    }
    let mut frames = FrameReader::new(codec::FRAME_BYTES_MAX);
    let e2e = plan.kind == Kind::E2e;
    loop {
        if plan.consumers_should_stop() {
            break;
        }
        let frame = frames.next(&mut stream).await.map_err(|e| format!("reading from {}: {e}", link.addr))?;
        let now_ns = plan.clock.now_ns();
        let (id, resp) = codec::decode_response::<FetchResponse>(version, frame)
            .map_err(|e| format!("Fetch response from {}: {e}", link.addr))?;
        if resp.error_code != 0 {
            return Err(format!("Fetch from {} failed: {}", link.addr, error_name(resp.error_code)));
        }
        let g = groups
            .iter_mut()
            .find(|g| g.correlation_id == id)
            .ok_or_else(|| format!("{} answered correlation id {id}, which no fetch in flight has", link.addr))?;
        // All records count in the counters (stop conditions, progress); the measured figures
        // take, in e2e runs, the records whose intended send time is in the measured phase, so
        // they match the producers' (which count by intended time too), and in consume runs
        // those read after the warmup.
        let (mut records, mut bytes, mut measured_records, mut measured_bytes) = (0u64, 0u64, 0u64, 0u64);
        for pd in resp.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(slot) = g.partitions.iter_mut().find(|(p, _)| *p == pd.partition_index) else {
                return Err(format!("{} answered for partition {} it was not asked", link.addr, pd.partition_index));
            };
            if pd.error_code != 0 {
                return Err(format!(
                    "fetching {}-{} at offset {}: {}",
                    plan.topic,
                    slot.0,
                    slot.1,
                    error_name(pd.error_code)
                ));
            }
            let Some(data) = pd.records.as_ref() else { continue };
            let got = wire::walk_fetched(data, slot.1, |stamp, kv_bytes| {
                if !e2e {
                    return;
                }
                if let Some(t) = stamp.map(u64::from_be_bytes).filter(|t| measured.measured(*t)) {
                    measured.e2e(t, now_ns);
                    measured_records += 1;
                    measured_bytes += kv_bytes;
                }
            })
            .map_err(|e| format!("{}-{}: {e}", plan.topic, slot.0))?;
            slot.1 = got.next_offset;
            records += got.records;
            bytes += got.bytes;
        }
        if !e2e {
            (measured_records, measured_bytes) = (records, bytes);
        }
        if records > 0 {
            measured.consumed(now_ns, measured_records, measured_bytes);
            Counters::add(&plan.counters.consumed_records, records);
            Counters::add(&plan.counters.consumed_bytes, bytes);
        }
        if plan.consumers_should_stop() {
            break;
        }
        correlation_id = correlation_id.wrapping_add(1);
        g.correlation_id = correlation_id;
        let frame = codec::encode_request(version, correlation_id, Some(CLIENT_ID), &fetch_request(&topic, g))
            .map_err(|e| format!("encoding a Fetch request: {e}"))?;
        stream.write_all(&frame).await.map_err(|e| format!("writing to {}: {e}", link.addr))?;
    }
    let _ = stream.close().await;
    Ok(measured)
}
