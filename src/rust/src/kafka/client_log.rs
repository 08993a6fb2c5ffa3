//! librdkafka reports connection and authentication problems through a
//! callback, not through the call that then fails. [`ClientLog`] keeps the
//! last such report so an error can say *why* Kafka could not be reached,
//! and shows each one in the stream's status while it runs. The clients'
//! contexts (`kafka::group::ReaderContext`, the sink's `DeliveryCounter`)
//! hand their reports to it.

use std::sync::{Arc, Mutex};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::errors::{code_of, is_authentication, is_retriable, Operation, CREDENTIALS_HINT};
use crate::engine::status::SharedStatus;
use crate::error::Error;

#[derive(Clone, Default)]
pub(crate) struct ClientLog {
    /// librdkafka's last report: its code and its words.
    last: Arc<Mutex<Option<(Option<RDKafkaErrorCode>, String)>>>,
    status: Option<SharedStatus>,
    who: &'static str,
}

impl ClientLog {
    pub(crate) fn new(who: &'static str, status: Option<SharedStatus>) -> Self {
        ClientLog { last: Arc::default(), status, who }
    }

    pub(crate) fn record(&self, error: &KafkaError, reason: &str) {
        if let Some(status) = &self.status {
            status.warn(format!("Kafka {}: {reason} ({error})", self.who));
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((code_of(error), reason.to_string()));
    }

    /// Something that went wrong and is recovered from, for the stream's status.
    pub(crate) fn warn(&self, what: &str) {
        if let Some(status) = &self.status {
            status.warn(format!("Kafka {}: {what}", self.who));
        }
    }

    /// The error for a client that could not reach `servers` at start.
    pub(crate) fn unreachable(&self, servers: &str, timeout_secs: u64, e: &KafkaError) -> Error {
        let said = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let authentication = said.as_ref().and_then(|(code, _)| *code).is_some_and(is_authentication);
        let mut message = format!("can't reach Kafka at `{servers}` within {timeout_secs}s: {e}");
        if let Some((_, said)) = &said {
            message.push_str(&format!("; librdkafka says: {said}"));
        }
        let hint = if authentication {
            CREDENTIALS_HINT
        } else {
            "check `kafka.bootstrap.servers` and that the broker is running"
        };
        let mut error = Error::kafka(message).with_arg("options").with_hint(hint);
        if !authentication {
            error.option = Some("kafka.bootstrap.servers".to_string());
        }
        // Unreachable at start is the user's to fix; mid-stream the broker may come back.
        error.retriable = !authentication && is_retriable(Operation::Request, e);
        error
    }
}
