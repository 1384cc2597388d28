//! The one error type of the client: every failure says what was attempted, Kafka's error name
//! when the broker answered with one, and a hint for the person at the terminal.

use kafka_protocol::error::ResponseError;

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a client operation fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No broker of the bootstrap list (or a node from the metadata) could be reached.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// A connection failed or timed out mid-request.
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {name}{}", .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// Kafka's numeric error code.
        code: i16,
        /// Kafka's error name, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
        name: String,
        /// What was being done, e.g. `describing topic "orders"`.
        context: String,
        /// The broker's own error message, if it sent one.
        message: Option<String>,
    },
    /// The broker's bytes could not be decoded, or did not match the request.
    #[error("protocol error{}: {reason}", if .addr.is_empty() { String::new() } else { format!(" from {}", .addr) })]
    Protocol { addr: String, reason: String },
    /// The broker does not serve an API (or any version of it that this client speaks).
    #[error("the broker does not support {api} (versions {ours} wanted, {theirs} offered)")]
    Unsupported { api: String, ours: String, theirs: String },
    /// Bad input from the caller (arguments, files, templates).
    #[error("{0}")]
    Invalid(String),
}

/// Kafka's upper-snake error name for a code (`3` → `UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

impl Error {
    /// `Ok(())` for code 0, else a [`Error::Kafka`] with `context` (built only on error).
    pub fn check(code: i16, message: Option<&str>, context: impl FnOnce() -> String) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(Error::Kafka {
            code,
            name: error_name(code),
            context: context(),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// Kafka's error name, when the broker sent an error code.
    pub fn kafka_name(&self) -> Option<&str> {
        match self {
            Error::Kafka { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Kafka's error code, when the broker sent one.
    pub fn kafka_code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed (Kafka's retriable errors, time-outs).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable()),
            Error::Io { source, .. } => {
                matches!(source.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
            }
            _ => false,
        }
    }

    /// What the user may do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Connect { .. } => {
                Some("check --bootstrap-server (or ODRADEK_BOOTSTRAP_SERVER) and that the broker is running")
            }
            Error::Io { .. } => Some("the broker closed the connection or did not answer in time; check its log"),
            Error::Unsupported { .. } => Some("this broker is too old (or too new) for the operation"),
            Error::Protocol { .. } => Some("is --bootstrap-server a Kafka broker's listener?"),
            Error::Invalid(_) => None,
            Error::Kafka { code, .. } => {
                use ResponseError as E;
                match ResponseError::try_from_code(*code)? {
                    E::UnknownTopicOrPartition | E::UnknownTopicId => {
                        Some("list topics with `odradek topic list`, create one with `odradek topic create`")
                    }
                    E::TopicAlreadyExists => Some("the topic exists already: see it with `odradek topic describe`"),
                    E::InvalidPartitions => Some("the partition count must be at least 1 (and can only grow)"),
                    E::InvalidReplicationFactor => {
                        Some("the replication factor must be between 1 and the number of brokers")
                    }
                    E::InvalidConfig => Some("check the config name and value: `odradek config describe` lists them"),
                    E::OffsetOutOfRange => {
                        Some("the offset is outside the log: see the log start/end with `odradek topic describe`")
                    }
                    E::MessageTooLarge => Some("the record is larger than the topic's max.message.bytes"),
                    E::CoordinatorLoadInProgress | E::CoordinatorNotAvailable | E::NotCoordinator => {
                        Some("the coordinator (of the group or transactional id) is not ready; retry in a moment")
                    }
                    E::TransactionalIdNotFound => Some("list transactions with `odradek txn list`"),
                    E::TransactionCoordinatorFenced => Some(
                        "the partition has a marker of a newer coordinator epoch: give that --coordinator-epoch \
                         (DescribeProducers shows it, e.g. `kafka-transactions.sh describe-producers`)",
                    ),
                    E::InvalidProducerEpoch | E::ProducerFenced => {
                        Some("the producer has a newer epoch in the partition: its older transaction is over")
                    }
                    E::UnknownMemberId | E::IllegalGeneration | E::RebalanceInProgress => {
                        Some("the group is in use by active members; stop them first")
                    }
                    E::NonEmptyGroup => Some("the group still has active members; stop its consumers first"),
                    E::GroupIdNotFound => Some("list groups with `odradek group list`"),
                    E::GroupSubscribedToTopic => {
                        Some("a consumer of the group is subscribed to the topic; stop it first")
                    }
                    E::ReplicaNotAvailable | E::LeaderNotAvailable | E::NotLeaderOrFollower => {
                        Some("the partition has no leader right now; retry in a moment")
                    }
                    E::InvalidRequest => Some("the config resource is not valid for this operation"),
                    E::InvalidRecord => Some("check the record's key, value and headers"),
                    _ => None,
                }
            }
        }
    }
}
