//! Kafka error codes, and the one place engine errors become them.

use engine::batch::BatchError;
use engine::log::LogError;
use replication::{EpochError, PartitionError, ProducerError};

/// Kafka error codes the broker returns (Kafka's `Errors.java` numbering).
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_FETCH_SIZE: i16 = 4;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const INVALID_CONFIG: i16 = 40;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    // Idempotent and transactional producers.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    // KIP-848 consumer groups.
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
    // Groups (classic and KIP-848).
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// A batch that failed validation on the connection's core.
pub fn batch_error(e: &BatchError) -> i16 {
    match e {
        BatchError::TooLarge { .. } => code::MESSAGE_TOO_LARGE,
        // Kafka 4 stores only v2 batches and answers older formats this way.
        BatchError::BadMagic(_) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        BatchError::UnknownCompression(_) => code::UNSUPPORTED_COMPRESSION_TYPE,
        BatchError::CrcMismatch { .. } | BatchError::Truncated { .. } | BatchError::LengthTooSmall(_) => {
            code::CORRUPT_MESSAGE
        }
        _ => code::INVALID_RECORD,
    }
}

pub fn log_error(e: &LogError) -> i16 {
    match e {
        LogError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        LogError::BatchLargerThanSegment { .. } => code::RECORD_LIST_TOO_LARGE,
        // A closed log is being deleted or the broker is stopping: the client retries.
        LogError::Closed => code::NOT_LEADER_OR_FOLLOWER,
        LogError::Read(_) | LogError::Io(_) | LogError::Poisoned(_) => code::KAFKA_STORAGE_ERROR,
        LogError::OffsetOverflow { .. } => code::UNKNOWN_SERVER_ERROR,
    }
}

pub fn partition_error(e: &PartitionError) -> i16 {
    match e {
        PartitionError::UnknownPartition(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
        PartitionError::AlreadyExists(_) => code::TOPIC_ALREADY_EXISTS,
        PartitionError::Log(l) => log_error(l),
        PartitionError::ShardGone(_) => code::NOT_LEADER_OR_FOLLOWER,
        PartitionError::Epoch(EpochError::Fenced { .. }) => code::FENCED_LEADER_EPOCH,
        PartitionError::Epoch(EpochError::Unknown { .. }) => code::UNKNOWN_LEADER_EPOCH,
        PartitionError::Producer(ProducerError::InvalidEpoch { .. }) => code::INVALID_PRODUCER_EPOCH,
        PartitionError::Producer(ProducerError::OutOfOrder { .. } | ProducerError::NewEpochNotAtZero { .. }) => {
            code::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        PartitionError::Producer(ProducerError::TransactionOpen { .. }) => code::INVALID_TXN_STATE,
        PartitionError::Producer(ProducerError::CoordinatorFenced { .. }) => code::TRANSACTION_COORDINATOR_FENCED,
        PartitionError::Batch(b) => batch_error(b),
    }
}
