//! InitProducerId for idempotent (non-transactional) producers.
//!
//! Producer ids come from blocks reserved in the data directory (`producer-ids`), so an id is
//! never handed out twice, across restarts and kill -9 included: the file names the first id
//! not yet reserved, and an id is handed out only once a reservation covering it is durable.
//! Each partition de-duplicates a producer's batches by its id and epoch (see
//! `replication::producer`). A transactional id's producer id comes from its transaction
//! coordinator (`coordinator::txn`), which takes it from the same blocks.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::errors::code;

/// The reservation file, in the data directory: one decimal number, the first unreserved id.
pub const PRODUCER_ID_FILE: &str = "producer-ids";
/// Ids reserved at a time. A new block is reserved when half of the current one is used, so
/// handing out ids never waits for the disk unless a million are asked for at once.
pub const PRODUCER_ID_BLOCK: i64 = 1 << 20;

/// Hands out producer ids for the whole broker (one in [`crate::server::Broker`], shared by the
/// shards).
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    state: Mutex<IdState>,
}

#[derive(Debug)]
struct IdState {
    next: i64,
    /// Ids below this are durably reserved.
    reserved_end: i64,
    /// A shard is writing a larger reservation.
    extending: bool,
}

/// Replaces the reservation file durably. Blocking: through `blocking(...)` on a shard.
fn write_reservation(path: &Path, end: i64) -> std::io::Result<()> {
    engine::io::dma::write_atomically(path, format!("{end}\n").as_bytes())
}

impl ProducerIds {
    /// Reads the reservation and reserves the next block, durably. Blocking file I/O: called at
    /// start-up, before any shard serves. A data directory without the file (new, or written by
    /// an Odradek that seeded ids from the clock) starts above every id that clock-seeded
    /// broker could have handed out.
    pub fn load(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(PRODUCER_ID_FILE);
        let first = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => engine::now_ms().max(1).saturating_mul(1024),
            Err(e) => return Err(e),
        };
        let reserved_end = first.saturating_add(PRODUCER_ID_BLOCK);
        write_reservation(&path, reserved_end)?;
        Ok(Self { path, state: Mutex::new(IdState { next: first, reserved_end, extending: false }) })
    }

    /// The next id, or `None` when the durable reservation is used up (the caller answers a
    /// retriable error). Starts a new reservation, on the shard's blocking thread, when half
    /// of the current block is used.
    pub async fn next(&self) -> Option<i64> {
        let (id, extend_to) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let id = (st.next < st.reserved_end).then(|| {
                st.next += 1;
                st.next - 1
            });
            let low = st.reserved_end - st.next < PRODUCER_ID_BLOCK / 2;
            let extend_to = (low && !st.extending).then(|| {
                st.extending = true;
                st.reserved_end.saturating_add(PRODUCER_ID_BLOCK)
            });
            (id, extend_to)
        };
        if let Some(end) = extend_to {
            let path = self.path.clone();
            let written = engine::io::dma::blocking(move || write_reservation(&path, end)).await;
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.extending = false;
            match written {
                Ok(()) => st.reserved_end = st.reserved_end.max(end),
                Err(e) => eprintln!("reserving producer ids up to {end}: {e}"),
            }
        }
        id
    }
}

fn refused(error_code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(error_code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// InitProducerId without a transactional id (those go to their coordinator,
/// `handlers::txn::init_producer_id`).
pub async fn handle(ids: &ProducerIds, _version: i16, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return refused(code::INVALID_REQUEST);
    }
    // KIP-360: a known producer asks for an epoch bump (its partitions then expect sequence 0
    // of the new epoch); a new one, or one whose epoch is used up, gets a fresh id.
    let (id, epoch) = if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        (req.producer_id.0, req.producer_epoch + 1)
    } else {
        match ids.next().await {
            Some(id) => (id, 0),
            None => return refused(code::COORDINATOR_LOAD_IN_PROGRESS),
        }
    };
    InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ProducerIds::load(dir.path()).expect("load");
        let a = futures_lite::future::block_on(first.next()).expect("id");
        drop(first);
        // A restart (clean or not) reserves past the whole previous block.
        let second = ProducerIds::load(dir.path()).expect("reload");
        let b = futures_lite::future::block_on(second.next()).expect("id");
        assert!(b >= a + PRODUCER_ID_BLOCK, "{b} after {a}");
        std::fs::write(dir.path().join(PRODUCER_ID_FILE), "garbage").expect("write");
        assert!(ProducerIds::load(dir.path()).is_err(), "a damaged reservation must not restart ids");
    }
}
