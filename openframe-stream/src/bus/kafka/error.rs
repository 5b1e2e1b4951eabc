//! Sorting librdkafka errors into the kinds callers branch on.
//!
//! - **Transient** (broker down, timeouts, leader moves, full queues): `Unavailable`; retrying
//!   the same call may succeed.
//! - **Fatal for the record** (too large, malformed): `InvalidInput`.
//! - **Missing topic**: `NotFound` (`topic`).
//! - **Fatal for the client** (authentication, authorization, invalid configuration, fenced
//!   producer, unsupported broker): `Backend`, with the driver error as the source for logs.

use openframe_core::Error;
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};

pub(super) const BACKEND: &str = "kafka";

/// Whether `code` is a passing condition that retrying fixes.
pub(super) fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::BrokerTransportFailure
            | Code::Resolve
            | Code::MessageTimedOut
            | Code::AllBrokersDown
            | Code::OperationTimedOut
            | Code::TimedOutQueue
            | Code::QueueFull
            | Code::WaitingForCoordinator
            | Code::InProgress
            | Code::PreviousInProgress
            | Code::Retry
            | Code::PurgeInflight
            | Code::PurgeQueue
            | Code::LeaderNotAvailable
            | Code::NotLeaderForPartition
            | Code::RequestTimedOut
            | Code::BrokerNotAvailable
            | Code::ReplicaNotAvailable
            | Code::NetworkException
            | Code::CoordinatorLoadInProgress
            | Code::CoordinatorNotAvailable
            | Code::NotCoordinator
            | Code::NotEnoughReplicas
            | Code::NotEnoughReplicasAfterAppend
            | Code::NotController
            | Code::KafkaStorageError
            | Code::FencedLeaderEpoch
            | Code::UnknownLeaderEpoch
            | Code::BrokerDestroy
    )
}

/// Whether `code` says the topic or partition does not exist.
pub(super) fn is_unknown_topic(code: Code) -> bool {
    matches!(
        code,
        Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::UnknownPartition
    )
}

/// Whether `code` says the group moved on without this member (a rebalance).
pub(super) fn is_rebalance(code: Code) -> bool {
    matches!(
        code,
        Code::IllegalGeneration
            | Code::UnknownMemberId
            | Code::RebalanceInProgress
            | Code::AssignmentLost
            | Code::State
    )
}

/// Maps a librdkafka error; `what` names the operation in the `Unavailable` reason.
pub(super) fn map_error(what: &'static str, error: KafkaError) -> Error {
    match error.rdkafka_error_code() {
        Some(code) if is_transient(code) => Error::Unavailable {
            reason: format!("kafka {what} failed: {code}").into(),
        },
        Some(code) if is_unknown_topic(code) => Error::not_found("topic"),
        Some(Code::MessageSizeTooLarge | Code::InvalidMessageSize | Code::MessageBatchTooLarge) => {
            Error::invalid("payload", "the record exceeds the broker's size limit")
        }
        Some(Code::InvalidTopic) => Error::invalid("topic", "the broker rejected the topic name"),
        Some(Code::InvalidPartitions) => {
            Error::invalid("partitions", "the broker rejected the partition count")
        }
        _ => Error::backend(BACKEND, error),
    }
}

/// Maps a failed commit: a rebalance is `Conflict`, the rest as [`map_error`].
pub(super) fn map_commit_error(error: KafkaError) -> Error {
    match error.rdkafka_error_code() {
        Some(code) if is_rebalance(code) => {
            Error::conflict("the partition is no longer assigned to this consumer (rebalanced)")
        }
        _ => map_error("commit", error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_errors_into_kinds() {
        let produce = |code| map_error("publish", KafkaError::MessageProduction(code));
        assert!(matches!(
            produce(Code::MessageTimedOut),
            Error::Unavailable { .. }
        ));
        assert!(matches!(
            produce(Code::AllBrokersDown),
            Error::Unavailable { .. }
        ));
        assert!(matches!(
            produce(Code::UnknownTopicOrPartition),
            Error::NotFound { entity: "topic" }
        ));
        assert!(matches!(
            produce(Code::MessageSizeTooLarge),
            Error::InvalidInput { .. }
        ));
        assert!(matches!(
            produce(Code::TopicAuthorizationFailed),
            Error::Backend { .. }
        ));
        assert!(matches!(
            produce(Code::SaslAuthenticationFailed),
            Error::Backend { .. }
        ));
        assert!(matches!(
            map_commit_error(KafkaError::ConsumerCommit(Code::IllegalGeneration)),
            Error::Conflict { .. }
        ));
        assert!(produce(Code::QueueFull).is_retryable());
    }
}
