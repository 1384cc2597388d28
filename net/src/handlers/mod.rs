//! One module per API. [`start`] turns a frame into a started request: the header and body are
//! decoded on the connection's core, then the handler runs as its own task.

pub mod admin;
pub mod api_versions;
pub mod cleaner;
pub mod config_defs;
pub mod configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod fetch;
pub mod find_coordinator;
pub mod groups;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod recompress;
pub mod retention;
pub mod txn;
pub mod write_txn_markers;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Decodable;

use crate::api;
use crate::server::{encode_response, ShardCtx};

/// A started request. `Ok(None)`: no response is due (acks=0); `Err`: the response could not
/// be encoded, and the connection is closed rather than leaving the client waiting.
pub type Started = Pin<Box<dyn Future<Output = Result<Option<Bytes>, ()>>>>;

/// Why a connection is closed instead of answered (what Kafka does for requests it cannot
/// parse: it has no way to know what response the client expects).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unsupported API key {0}")]
    UnknownApi(i16),
    #[error("unsupported version {version} of API key {key}")]
    UnsupportedVersion { key: i16, version: i16 },
    #[error("malformed request (API key {key} v{version}): {reason}")]
    Malformed { key: i16, version: i16, reason: String },
}

/// A decoded request, or the one malformed case Kafka answers instead of closing.
// Built once per request and moved straight into its task: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// An ApiVersions version we do not know: answered in v0 format.
    ApiVersionsUnsupported {
        correlation_id: i32,
    },
    Request {
        spec: &'static api::ApiSpec,
        version: i16,
        header: RequestHeader,
        request: RequestKind,
    },
}

/// Decodes one frame body, as the broker does: a panic in a decoder becomes
/// [`RequestError::Malformed`] (the connection closes, the core goes on).
pub fn decode_request(body: Bytes) -> Result<Decoded, RequestError> {
    let key = body.get(..2).map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]));
    let version = body.get(2..4).map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]));
    std::panic::catch_unwind(AssertUnwindSafe(|| decode_request_unguarded(body)))
        .unwrap_or_else(|_| Err(RequestError::Malformed { key, version, reason: "decoder panicked".into() }))
}

/// [`decode_request`] without the panic guard. Pure: the fuzz targets and property tests call
/// it, so a decoder panic fails them instead of passing as a refused request.
pub fn decode_request_unguarded(mut body: Bytes) -> Result<Decoded, RequestError> {
    let (key, version, correlation_id) = {
        let mut h = &body[..];
        if h.len() < crate::frame::REQUEST_HEADER_BYTES_MIN {
            return Err(RequestError::Malformed { key: -1, version: -1, reason: "short header".into() });
        }
        (h.get_i16(), h.get_i16(), h.get_i32())
    };
    let spec = api::spec(key).ok_or(RequestError::UnknownApi(key))?;
    if spec.key == ApiKey::ApiVersions && !api::decodable(spec, version) {
        // Kafka answers an ApiVersions version it does not know in v0 format with
        // UNSUPPORTED_VERSION, so the client can retry with a version it finds in the list.
        return Ok(Decoded::ApiVersionsUnsupported { correlation_id });
    }
    if !api::decodable(spec, version) {
        return Err(RequestError::UnsupportedVersion { key, version });
    }
    let malformed = |reason: String| RequestError::Malformed { key, version, reason };
    let (header, request) = (|| {
        let header = RequestHeader::decode(&mut body, spec.key.request_header_version(version))?;
        let request = RequestKind::decode(spec.key, &mut body, version)?;
        Ok::<_, anyhow::Error>((header, request))
    })()
    .map_err(|e| malformed(e.to_string()))?;
    if header.correlation_id != correlation_id || header.request_api_key != key {
        return Err(malformed("header mismatch".into()));
    }
    Ok(Decoded::Request { spec, version, header, request })
}

/// Decodes a request and starts its handler. `Ok(None)`: nothing to answer.
/// `peer` is the client's host as Kafka reports it (`/ip`).
///
/// `order` is the connection's: a Produce takes its turn there now, in arrival order, and its
/// appends reach their partitions only after those of the connection's earlier Produce
/// requests, as on Kafka, which serves a connection one request at a time. A client that
/// pipelines without idempotence (librdkafka's default) relies on it for the order of its
/// records.
pub fn start(
    ctx: &Rc<ShardCtx>,
    body: Bytes,
    peer: &Rc<str>,
    order: &engine::sync::Turns,
) -> Result<Option<Started>, RequestError> {
    let (spec, version, header, request) = match decode_request(body)? {
        Decoded::ApiVersionsUnsupported { correlation_id } => {
            let frame = api_versions::unsupported_version_response(correlation_id);
            return Ok(Some(Box::pin(async move { frame.map(Some).ok_or(()) })));
        }
        Decoded::Request { spec, version, header, request } => (spec, version, header, request),
    };
    let ctx = ctx.clone();
    let peer = peer.clone();
    let turn = matches!(&request, RequestKind::Produce(_)).then(|| order.take());
    if matches!(&request, RequestKind::Produce(p) if p.acks == 0) {
        // acks=0: the client expects no response at all. On an error Kafka closes the
        // connection instead, so the client notices and refreshes its metadata.
        return Ok(Some(Box::pin(async move {
            match api::dispatch(&ctx, &header, request, &peer, turn).await {
                Some(ResponseKind::Produce(r))
                    if r.responses.iter().any(|t| t.partition_responses.iter().any(|p| p.error_code != 0)) =>
                {
                    Err(())
                }
                _ => Ok(None),
            }
        })));
    }
    let key = spec.key as i16;
    let correlation_id = header.correlation_id;
    let response_header_version = spec.key.response_header_version(version);
    Ok(Some(Box::pin(async move {
        let Some(response) = api::dispatch(&ctx, &header, request, &peer, turn).await else {
            eprintln!("no handler for API {key} v{version}");
            return Err(());
        };
        encode_response(correlation_id, response_header_version, |buf| {
            response.encode(buf, version).map_err(|e| eprintln!("encoding response to API {key} v{version}: {e}"))
        })
        .map(Some)
        .ok_or(())
    })))
}
