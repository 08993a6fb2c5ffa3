//! librdkafka reports connection and authentication problems through a
//! callback, not through the call that then fails. [`ClientLog`] keeps the
//! last such report so an error can say *why* Kafka could not be reached,
//! and shows each one in the stream's status while it runs.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

use crate::engine::status::SharedStatus;
use crate::error::Error;

#[derive(Clone, Default)]
pub struct ClientLog {
    last: Arc<Mutex<Option<String>>>,
    status: Option<SharedStatus>,
    who: &'static str,
}

impl ClientLog {
    pub fn new(who: &'static str, status: Option<SharedStatus>) -> Self {
        ClientLog { last: Arc::default(), status, who }
    }

    pub fn record(&self, error: &KafkaError, reason: &str) {
        let text = format!("{reason} ({error})");
        if let Some(status) = &self.status {
            status.warn(format!("Kafka {}: {text}", self.who));
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }

    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The error for a client that could not reach `servers` at start.
    pub fn unreachable(&self, servers: &str, timeout_secs: u64, e: &KafkaError) -> Error {
        let said = self.last();
        let authentication = said.as_deref().is_some_and(|s| s.contains("uthentication"));
        let mut message = format!("can't reach Kafka at `{servers}` within {timeout_secs}s: {e}");
        if let Some(said) = &said {
            message.push_str(&format!("; librdkafka says: {said}"));
        }
        let hint = if authentication {
            "check `kafka.sasl.username`, `kafka.sasl.password` and `kafka.sasl.mechanism`"
        } else {
            "check `kafka.bootstrap.servers` and that the broker is running"
        };
        let mut error = Error::kafka(message).with_arg("options").with_hint(hint);
        // Unreachable at start is the user's to fix; mid-stream the broker may come back.
        error.retriable = !authentication;
        error
    }
}

impl ClientContext for ClientLog {
    fn error(&self, error: KafkaError, reason: &str) {
        self.record(&error, reason);
    }
}

impl ConsumerContext for ClientLog {}
