//! Errors of the engine, tagged with who can fix them.
//!
//! The R face turns an [`Error`] into a classed R condition
//! (`streamlyr_error_<kind>`); `arg` names the R argument at fault so the
//! message can point the user at it.

use std::fmt;

/// Who can fix the problem (as in Arroyo's connector errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the user: options, columns, arguments.
    Config,
    /// Kafka itself failed or could not be reached.
    Kafka,
    /// The checkpoint directory is damaged, foreign or unwritable.
    Checkpoint,
    /// A bug in streamlyr (a panic, a broken invariant).
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Kafka => "kafka",
            ErrorKind::Checkpoint => "checkpoint",
            ErrorKind::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// The R argument the error is about (`options`, `x`, `checkpoint`, ...).
    pub arg: Option<String>,
    pub message: String,
    /// What would be right, when we know.
    pub hint: Option<String>,
    /// Kafka may recover by itself (a broker restarting, a timeout): the
    /// engine waits and tries again instead of failing the stream.
    pub retriable: bool,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, arg: None, message: message.into(), hint: None, retriable: false }
    }
    pub fn config(arg: &str, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message).with_arg(arg)
    }
    pub fn kafka(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Kafka, message)
    }
    pub fn checkpoint(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Checkpoint, message).with_arg("checkpoint")
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
    pub fn with_arg(mut self, arg: &str) -> Self {
        self.arg = Some(arg.to_string());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn retriable(mut self) -> Self {
        self.retriable = true;
        self
    }
    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<rdkafka::error::KafkaError> for Error {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        let retriable = is_transient(&e);
        let error = Error::kafka(e.to_string());
        if retriable { error.retriable() } else { error }
    }
}

/// Errors that a broker coming back, or a little patience, can cure.
pub fn is_transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::OperationTimedOut
                | C::RequestTimedOut
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::MessageTimedOut
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::NetworkException
                | C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::CoordinatorLoadInProgress
                | C::BrokerNotAvailable
                | C::UnknownTopicOrPartition
                | C::UnknownPartition
                // librdkafka drops its handle of a broker that left the cluster
                | C::DestroyBroker
                | C::UnknownTopic
        )
    )
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::internal(format!("Arrow: {e}"))
    }
}

/// The text of a caught panic, for the status of a failed stream.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}
