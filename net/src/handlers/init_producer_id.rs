//! InitProducerId for idempotent (non-transactional) producers.
//!
//! Producer ids are handed out unique per broker lifetime and across restarts (seeded from the
//! clock). Known gap: the broker does not yet keep per-producer sequence state, so a retried
//! batch is not de-duplicated; transactions (a transactional id) come with a later issue.

use std::sync::atomic::{AtomicI64, Ordering};

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::errors::code;

/// Hands out producer ids, unique per broker and across its restarts. Shared by the shards
/// (one per broker, in [`crate::server::Broker`]).
#[derive(Debug)]
pub struct ProducerIds {
    next: AtomicI64,
}

impl ProducerIds {
    /// Milliseconds since the epoch times 1024 leaves room for 1024 producers per millisecond
    /// of uptime before ids could collide with those of a later restart.
    pub fn seeded_from_clock() -> Self {
        Self { next: AtomicI64::new(engine::now_ms().max(1).saturating_mul(1024)) }
    }

    pub fn next(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

pub fn handle(ids: &ProducerIds, _version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // KIP-360: a known producer asks for an epoch bump; a new one gets a fresh id.
    let (id, epoch) = if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        (req.producer_id.0, req.producer_epoch + 1)
    } else {
        (ids.next(), 0)
    };
    InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
}
