//! The one table of supported APIs and their version ranges. ApiVersions is generated from it,
//! and a request for a key or version outside it is refused before decoding.
//!
//! Ranges follow what Apache Kafka 4.0 advertises, restricted to what the handlers implement.

use kafka_protocol::messages::ApiKey;

#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub version_min: i16,
    pub version_max: i16,
}

const fn api(key: ApiKey, version_min: i16, version_max: i16) -> ApiSpec {
    ApiSpec { key, version_min, version_max }
}

/// Every API the broker serves.
pub const APIS: &[ApiSpec] = &[
    // Kafka 4 removed Produce v0-2 but still advertises v0: librdkafka decides whether the
    // broker supports idempotence and message format v2 from ranges starting at 0 (KIP-896).
    // Requests below v3 are still refused (the decoder does not support them).
    api(ApiKey::Produce, 0, 12),
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 1, 9),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The spec for a key, if served.
pub fn spec(key: i16) -> Option<&'static ApiSpec> {
    APIS.iter().find(|a| a.key as i16 == key)
}

/// The versions the server actually decodes: the advertised range, within the decoder's.
pub fn decodable(spec: &ApiSpec, version: i16) -> bool {
    let crate_range = spec.key.valid_versions();
    version >= spec.version_min.max(crate_range.min) && version <= spec.version_max.min(crate_range.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_what_the_decoder_supports() {
        for a in APIS {
            let r = a.key.valid_versions();
            assert!(a.version_max <= r.max, "{:?}", a.key);
            assert!(a.version_min >= r.min || a.key == ApiKey::Produce, "{:?}", a.key);
        }
        assert!(decodable(spec(0).expect("produce"), 3));
        assert!(!decodable(spec(0).expect("produce"), 2));
        assert!(spec(9999).is_none());
    }
}
