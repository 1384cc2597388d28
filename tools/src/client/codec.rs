//! Sans-IO Kafka framing: request frames out, response frames in, and API version negotiation.
//! Nothing here touches a socket, so a pipelined I/O loop (many requests in flight, responses
//! matched by correlation id) can use it as well as the blocking [`super::Connection`].

use std::collections::BTreeMap;
use std::io::Read;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::error::{Error, Result};

/// The largest response frame accepted by default (a fetch of many partitions stays far below).
pub const FRAME_BYTES_MAX: usize = 256 << 20;

fn protocol(reason: impl std::fmt::Display) -> Error {
    Error::Protocol { addr: String::new(), reason: reason.to_string() }
}

/// Encodes one request as a whole frame: the 4-byte size, the request header (v1 or v2, as
/// the API and version require) and the body at `version`.
pub fn encode_request<R: Request>(
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    req: &R,
) -> Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_string())));
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version).map_err(protocol)? + req.compute_size(version).map_err(protocol)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(i32::try_from(size).map_err(|_| Error::Invalid(format!("request of {size} bytes is too large")))?);
    header.encode(&mut buf, header_version).map_err(protocol)?;
    req.encode(&mut buf, version)
        .map_err(|e| Error::Invalid(format!("cannot encode {:?} v{version}: {e}", api_name(R::KEY))))?;
    Ok(buf.freeze())
}

/// The correlation id of a response frame (without its size prefix), to match it to its
/// request before decoding the rest.
pub fn response_correlation_id(frame: &[u8]) -> Result<i32> {
    match frame {
        [a, b, c, d, ..] => Ok(i32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(protocol("response frame shorter than its header")),
    }
}

/// Decodes a response frame (without its size prefix) as `R` at `version`: returns the
/// correlation id and the body. Trailing bytes are an error.
pub fn decode_response<R: Decodable + HeaderVersion>(version: i16, frame: Bytes) -> Result<(i32, R)> {
    let mut body = frame;
    let header = ResponseHeader::decode(&mut body, R::header_version(version)).map_err(protocol)?;
    let resp = R::decode(&mut body, version).map_err(protocol)?;
    if body.has_remaining() {
        return Err(protocol(format!("{} trailing bytes after the response", body.remaining())));
    }
    Ok((header.correlation_id, resp))
}

/// Reads one frame (size prefix, then that many bytes) and returns its body. A size that is
/// negative or above `bytes_max` is refused before anything is allocated for it.
pub fn read_frame(reader: &mut impl Read, bytes_max: usize) -> std::io::Result<Bytes> {
    let mut size = [0u8; 4];
    reader.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size).ok().filter(|s| *s <= bytes_max).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response frame size {size}"))
    })?;
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// The name of an API key (`Produce`, `Fetch`, ...), or its number.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map(|k| format!("{k:?}")).unwrap_or_else(|_| format!("api key {key}"))
}

/// The versions this client speaks per API (inclusive), capped where a newer version changes
/// the request's shape in a way the client does not use (Fetch v13+ names topics by id only).
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::FindCoordinator, 1, 6),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 1),
];

/// The version chosen for each API: `min(our max, broker max)`, when the ranges overlap.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    chosen: BTreeMap<i16, i16>,
    /// What the broker offered per key (min, max), for error messages.
    offered: BTreeMap<i16, (i16, i16)>,
}

impl Versions {
    /// Negotiates from the broker's ApiVersions response against [`CLIENT_VERSIONS`].
    pub fn negotiate(broker: &ApiVersionsResponse) -> Self {
        Self::negotiate_with(CLIENT_VERSIONS, broker)
    }

    /// Negotiates against any table of `(key, our min, our max)`.
    pub fn negotiate_with(ours: &[(ApiKey, i16, i16)], broker: &ApiVersionsResponse) -> Self {
        let offered: BTreeMap<i16, (i16, i16)> =
            broker.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        let mut chosen = BTreeMap::new();
        for &(key, min, max) in ours {
            if let Some(&(their_min, their_max)) = offered.get(&(key as i16)) {
                let v = max.min(their_max);
                if v >= min.max(their_min) {
                    chosen.insert(key as i16, v);
                }
            }
        }
        Self { chosen, offered }
    }

    /// The version to use for `key`, or [`Error::Unsupported`].
    pub fn get(&self, key: i16) -> Result<i16> {
        if let Some(v) = self.chosen.get(&key) {
            return Ok(*v);
        }
        let ours = CLIENT_VERSIONS
            .iter()
            .find(|(k, ..)| *k as i16 == key)
            .map_or("none".to_string(), |(_, a, b)| format!("{a}..{b}"));
        let theirs = self.offered.get(&key).map_or("none".to_string(), |(a, b)| format!("{a}..{b}"));
        Err(Error::Unsupported { api: api_name(key), ours, theirs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    #[test]
    fn frames_round_trip_with_the_right_header_version() {
        let req = MetadataRequest::default().with_topics(None);
        for version in [1i16, 9, 12] {
            let frame = encode_request(version, 42, Some("cli"), &req).expect("encode");
            let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            assert_eq!(size, frame.len() - 4);
            assert_eq!(&frame[4..6], &3i16.to_be_bytes());
            assert_eq!(&frame[6..8], &version.to_be_bytes());
            assert_eq!(&frame[8..12], &42i32.to_be_bytes());
            let mut body = frame.slice(4..);
            let header =
                RequestHeader::decode(&mut body, ApiKey::Metadata.request_header_version(version)).expect("header");
            assert_eq!(header.client_id.as_deref(), Some("cli"));
            let decoded = MetadataRequest::decode(&mut body, version).expect("body");
            assert_eq!(decoded, req);
        }
        // A response: header v1 (tagged fields) for flexible Metadata.
        let resp = MetadataResponse::default().with_controller_id(kafka_protocol::messages::BrokerId(3));
        let mut buf = BytesMut::new();
        ResponseHeader::default().with_correlation_id(7).encode(&mut buf, 1).expect("header");
        resp.encode(&mut buf, 12).expect("body");
        let frame = buf.freeze();
        assert_eq!(response_correlation_id(&frame).expect("id"), 7);
        let (id, back) = decode_response::<MetadataResponse>(12, frame.clone()).expect("decode");
        assert_eq!((id, back.controller_id.0), (7, 3));
        let mut longer = BytesMut::from(&frame[..]);
        longer.put_u8(0);
        assert!(decode_response::<MetadataResponse>(12, longer.freeze()).is_err());
        assert!(decode_response::<MetadataResponse>(12, frame.slice(..6)).is_err());
    }

    #[test]
    fn read_frame_refuses_bad_sizes() {
        let mut ok: &[u8] = &[0, 0, 0, 2, 9, 8, 7];
        assert_eq!(&read_frame(&mut ok, 10).expect("frame")[..], &[9, 8]);
        assert!(read_frame(&mut &[0xff, 0xff, 0xff, 0xff][..], 10).is_err());
        assert!(read_frame(&mut &[0, 0, 1, 0][..], 10).is_err());
        assert!(read_frame(&mut &[0, 0, 0, 4, 1][..], 10).is_err());
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        let broker = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default().with_api_key(1).with_min_version(4).with_max_version(17),
            ApiVersion::default().with_api_key(3).with_min_version(0).with_max_version(5),
            ApiVersion::default().with_api_key(0).with_min_version(9).with_max_version(13),
        ]);
        let ours =
            [(ApiKey::Fetch, 4, 12), (ApiKey::Metadata, 1, 12), (ApiKey::Produce, 3, 8), (ApiKey::OffsetDelete, 0, 0)];
        let v = Versions::negotiate_with(&ours, &broker);
        assert_eq!(v.get(1).expect("fetch"), 12);
        assert_eq!(v.get(3).expect("metadata"), 5);
        let e = v.get(0).expect_err("produce: no overlap");
        assert!(e.to_string().contains("Produce") && e.to_string().contains("9..13"), "{e}");
        assert!(matches!(v.get(47), Err(Error::Unsupported { .. })));
    }
}
