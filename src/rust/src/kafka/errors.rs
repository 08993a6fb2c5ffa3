//! What a failed librdkafka call means for the stream: retriable (the
//! engine waits and tries again, for a bounded time) or permanent (the
//! stream fails now). Decided by the operation that failed and librdkafka's
//! own flags, never by an error's text.
//!
//! - A *fatal* error (librdkafka's `is_fatal`, its `Fatal` code, or a
//!   consumer poll's error marked fatal, whatever its code: a static member
//!   fenced by another with its `group.instance.id`) ends the client for
//!   good: permanent.
//! - Authentication and authorization failures need the user: permanent.
//! - [`Operation::Produce`]: librdkafka refuses a record at once for what a
//!   retry cannot change (unknown topic or partition, a record too large, a
//!   bad argument): permanent. The exception is `State`: a transaction that
//!   hit an abortable error refuses records until it is aborted, which the
//!   batch's retry does. A full queue is backpressure and never reaches here.
//! - [`Operation::Delivery`]: librdkafka has already retried what it could
//!   within `message.timeout.ms`. A failure that is about the record or its
//!   topic is permanent; the rest (timeouts, brokers going away) retriable.
//! - [`Operation::Request`] (metadata, watermarks, offsets, connecting): a
//!   cluster that is restarting answers these with all sorts of codes, so
//!   they are retriable unless the request itself is wrong (a bad argument,
//!   an invalid topic name, a version the broker lacks); the retry bound
//!   (`retryTimeoutMs`) ends a wait that does not end by itself.
//!
//! librdkafka exposes its retriable/fatal flags only on transaction errors
//! (and its client-wide fatal error, and consumer polls); for the rest, the short lists below
//! name what a retry can't change, and everything else is retried within
//! the bound, so a code missing from them costs time, never data.
//! - Transactions: `is_retriable` or `txn_requires_abort` (the batch is
//!   aborted and run again) are retriable; the rest permanent.

use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

use crate::error::Error;

/// The kind of librdkafka call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// A request to the cluster: metadata, watermarks, offsets, connecting.
    Request,
    /// librdkafka refused to queue a record.
    Produce,
    /// A record's delivery failed after librdkafka's own retries.
    Delivery,
}

/// librdkafka's error code, whatever the variant carries it.
pub(crate) fn code_of(e: &KafkaError) -> Option<C> {
    match e {
        KafkaError::Transaction(t) => Some(t.code()),
        other => other.rdkafka_error_code(),
    }
}

/// What to check when Kafka refused the credentials.
pub(crate) const CREDENTIALS_HINT: &str = "check `kafka.sasl.username`, `kafka.sasl.password` and `kafka.sasl.mechanism`";

pub(crate) fn is_authentication(code: C) -> bool {
    matches!(code, C::Authentication | C::SaslAuthenticationFailed)
}

fn is_authorization(code: C) -> bool {
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
    )
}

/// A delivery failure that is about the record or its topic, not the cluster's weather.
fn is_about_the_record(code: C) -> bool {
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::UnknownPartition
            | C::InvalidTopic
            | C::MessageBatchTooLarge
            | C::PolicyViolation
            | C::UnsupportedForMessageFormat
            | C::InvalidTimestamp
            | C::InvalidRequiredAcks
    )
}

/// A request that no answer from the cluster can make right.
fn is_a_wrong_request(code: C) -> bool {
    matches!(
        code,
        C::InvalidArgument | C::InvalidTopic | C::UnsupportedVersion | C::UnsupportedFeature | C::UnknownTopic
    )
}

/// The consumer group moved on without this member's knowing (a rebalance
/// it has not served yet, or its session expired): the coordinator refuses
/// offsets committed with its generation (KIP-447), and its batch is void.
/// (Not `FencedInstanceId`: another process uses this static member's id,
/// which librdkafka makes fatal.)
pub(crate) fn is_left_behind_by_group(code: C) -> bool {
    matches!(code, C::IllegalGeneration | C::UnknownMemberId | C::RebalanceInProgress)
}

pub(crate) fn is_fenced(code: C) -> bool {
    matches!(code, C::ProducerFenced | C::Fenced | C::InvalidProducerEpoch)
}

/// Whether waiting can cure `e`, a failure of `op`.
pub(crate) fn is_retriable(op: Operation, e: &KafkaError) -> bool {
    if let KafkaError::Transaction(t) = e {
        return !t.is_fatal() && (t.is_retriable() || t.txn_requires_abort());
    }
    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
        // The code is the cause (FENCED_INSTANCE_ID, say); the consumer is dead.
        return false;
    }
    let Some(code) = code_of(e) else {
        // No code: a client-side problem (bad config, no memory); waiting won't help.
        return false;
    };
    if code == C::Fatal || is_authentication(code) || is_authorization(code) {
        return false;
    }
    match op {
        Operation::Produce => code == C::State,
        Operation::Delivery => !is_about_the_record(code),
        Operation::Request => !is_a_wrong_request(code),
    }
}

/// A Kafka [`Error`] for `e`, a failure of `op`, classified as above.
pub(crate) fn kafka_error(op: Operation, e: &KafkaError) -> Error {
    let mut error = Error::kafka(e.to_string());
    error.retriable = is_retriable(op, e);
    if let Some(code) = code_of(e) {
        if is_authentication(code) {
            error = error.with_hint(CREDENTIALS_HINT);
        } else if is_authorization(code) {
            error = error.with_hint("the Kafka user lacks an ACL for this; ask the cluster's administrator");
        } else if code == C::FencedInstanceId {
            error = error.with_hint("another process of the group runs with the same `kafka.group.instance.id`");
        }
    }
    error
}

/// A transaction call (`what`: begin, commit, ...) that failed.
pub(crate) fn transaction_error(what: &str, e: &KafkaError) -> Error {
    let mut error = kafka_error(Operation::Request, e).context(format!("Kafka transaction failed at {what}"));
    if code_of(e).is_some_and(is_fenced) {
        error.retriable = false;
        error = error.with_hint("another instance of this query (same checkpoint) is running and took over");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_consumer_is_permanent_whatever_its_cause() {
        let fenced = KafkaError::MessageConsumptionFatal(C::FencedInstanceId);
        assert!(!is_retriable(Operation::Request, &fenced));
        let error = kafka_error(Operation::Request, &fenced);
        assert!(!error.retriable);
        assert!(error.hint.as_deref().is_some_and(|h| h.contains("kafka.group.instance.id")));
        // Only the fatal mark makes it so: the same transport failure, unmarked, is weather.
        assert!(is_retriable(Operation::Request, &KafkaError::MessageConsumption(C::BrokerTransportFailure)));
        assert!(!is_retriable(Operation::Request, &KafkaError::MessageConsumptionFatal(C::BrokerTransportFailure)));
    }

    #[test]
    fn produce_refusals_are_permanent_and_cluster_weather_is_not() {
        let unknown = KafkaError::MessageProduction(C::UnknownTopic);
        assert!(!is_retriable(Operation::Produce, &unknown));
        assert!(!is_retriable(Operation::Delivery, &unknown));
        assert!(!is_retriable(Operation::Delivery, &KafkaError::MessageProduction(C::UnknownTopicOrPartition)));
        assert!(is_retriable(Operation::Delivery, &KafkaError::MessageProduction(C::MessageTimedOut)));
        assert!(is_retriable(Operation::Delivery, &KafkaError::MessageProduction(C::DestroyBroker)));
        assert!(is_retriable(Operation::Request, &KafkaError::MetadataFetch(C::OperationTimedOut)));
        assert!(is_retriable(Operation::Request, &KafkaError::MetadataFetch(C::UnknownTopicOrPartition)));
        assert!(!is_retriable(Operation::Request, &KafkaError::MetadataFetch(C::InvalidArgument)));
        // A transaction in an abortable state refuses records until the batch's retry aborts it.
        assert!(is_retriable(Operation::Produce, &KafkaError::MessageProduction(C::State)));
    }

    #[test]
    fn fatal_and_credential_errors_are_permanent_everywhere() {
        for op in [Operation::Request, Operation::Produce, Operation::Delivery] {
            for code in [C::Fatal, C::SaslAuthenticationFailed, C::TopicAuthorizationFailed] {
                assert!(!is_retriable(op, &KafkaError::MessageProduction(code)), "{op:?} {code:?}");
            }
        }
        let e = kafka_error(Operation::Request, &KafkaError::MetadataFetch(C::SaslAuthenticationFailed));
        assert!(e.hint.unwrap().contains("kafka.sasl.username"));
    }

    #[test]
    fn errors_without_a_code_are_permanent() {
        assert!(!is_retriable(Operation::Request, &KafkaError::ClientCreation("bad".into())));
    }
}
