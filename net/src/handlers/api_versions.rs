//! ApiVersions: generated from the API table.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use crate::api::APIS;
use crate::errors::code;

pub fn handle(_: (), _version: i16, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    let api_keys = APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.version_min)
                .with_max_version(a.version_max)
        })
        .collect();
    ApiVersionsResponse::default().with_error_code(code::NONE).with_api_keys(api_keys)
}

/// The whole response frame to an ApiVersions request of a version we do not know: v0 layout
/// (header without tagged fields, error code, the ApiVersions range), as Kafka sends it.
pub fn unsupported_version_response(correlation_id: i32) -> Option<Bytes> {
    let range = APIS.iter().find(|a| a.key == ApiKey::ApiVersions)?;
    let mut buf = BytesMut::with_capacity(20);
    buf.put_i32(4 + 2 + 4 + 6);
    buf.put_i32(correlation_id);
    buf.put_i16(code::UNSUPPORTED_VERSION);
    buf.put_i32(1);
    buf.put_i16(ApiKey::ApiVersions as i16);
    buf.put_i16(range.version_min);
    buf.put_i16(range.version_max);
    Some(buf.freeze())
}
