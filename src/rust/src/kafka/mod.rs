//! What the Kafka source and sink share: the user's options and the client
//! settings streamlyr manages ([`config`]), what a failed librdkafka call
//! means for the stream ([`errors`]), and the client context that keeps
//! librdkafka's connection reports ([`client_log`]), and the consumer group
//! that N processes of one query share ([`group`]). The source
//! (`source::kafka`) and the sink (`sink::kafka`) both depend on this
//! module, never on each other.

pub(crate) mod client_log;
pub mod config;
pub(crate) mod errors;
pub(crate) mod group;
