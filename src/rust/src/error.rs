//! Errors of the engine, tagged with who can fix them and whether waiting
//! can.
//!
//! The R face turns an [`Error`] into a classed R condition
//! (`streamlyr_error_<kind>`); `arg` names the R argument at fault (and
//! `option` the option inside it) so the message can point the user at it.
//! Errors are told apart by their [`ErrorKind`] and `retriable` flag, never
//! by their text: Kafka's are classified in `kafka::errors`, DataFusion's in
//! `transform`.

use std::fmt;

/// Who can fix the problem (as in Arroyo's connector errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the user: arguments, options, columns, a pipeline.
    Config,
    /// Kafka itself failed or could not be reached.
    Kafka,
    /// The checkpoint directory is damaged, foreign or unwritable.
    Checkpoint,
    /// The pipeline failed on the data of a running stream (a cast that
    /// does not fit, memory exhausted): not a mistake in the query itself.
    Execution,
    /// `stream_stop()` gave up on the batch in flight. Never a failure: the
    /// query loop ends quietly when it sees one.
    Aborted,
    /// A consumer group moved the input's partitions while a batch read
    /// them (a rebalance): the batch is void and planned again with what
    /// this process owns now. Never a failure.
    Rebalanced,
    /// A bug in streamlyr (a panic, a broken invariant).
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Kafka => "kafka",
            ErrorKind::Checkpoint => "checkpoint",
            ErrorKind::Execution => "execution",
            ErrorKind::Aborted => "aborted",
            ErrorKind::Rebalanced => "rebalanced",
            ErrorKind::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// The R argument the error is about (`options`, `x`, `checkpoint`, ...).
    pub arg: Option<String>,
    /// The option inside `arg` (`kafka.group.id`), when there is one.
    pub option: Option<String>,
    pub message: String,
    /// What would be right, when we know.
    pub hint: Option<String>,
    /// Waiting may cure it (a broker restarting, a timeout): the engine
    /// tries again, for a bounded time, instead of failing the stream.
    pub retriable: bool,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, arg: None, option: None, message: message.into(), hint: None, retriable: false }
    }
    pub fn config(arg: &str, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message).with_arg(arg)
    }
    /// A bad value of option `option` in the `options` argument.
    pub fn option(option: &str, message: impl Into<String>) -> Self {
        let mut e = Error::config("options", message);
        e.option = Some(option.to_string());
        e
    }
    pub fn kafka(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Kafka, message)
    }
    pub fn checkpoint(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Checkpoint, message).with_arg("checkpoint")
    }
    pub fn execution(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Execution, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
    /// The error that unwinds a batch given up on by `stream_stop()`.
    pub fn aborted() -> Self {
        Error::new(ErrorKind::Aborted, "the batch in flight was aborted by stream_stop()")
    }
    pub fn is_aborted(&self) -> bool {
        self.kind == ErrorKind::Aborted
    }
    pub fn rebalanced() -> Self {
        Error::new(ErrorKind::Rebalanced, "the consumer group moved partitions this batch was reading")
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
    /// Prefix the message with what was being done (kind and flags stay).
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
