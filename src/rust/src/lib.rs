//! streamlyr's engine: Kafka in and out of Arrow micro-batches, with a
//! checkpoint that makes a stopped or crashed query resume losing nothing.
//!
//! Data flows one way: `source` -> micro-batch (Arrow `RecordBatch`) ->
//! `transform` -> `sink` -> commit in the [`checkpoint`]; `engine` plans a
//! query once (`engine::plan`) and runs that loop on a trigger in a
//! background thread (`engine::query`, tested with in-memory sources and
//! sinks in `engine::tests`). [`kafka`] holds what the Kafka source and sink
//! share. The R face (`r`, feature `r`) is a thin layer over the engine,
//! and `cargo test` tests the engine without R (the Kafka client code itself
//! only through R's tests against a broker and librdkafka's mock cluster).
//!
//! The public surface is what the R face and the integration tests
//! (`tests/`) use: `engine` (plan a query, start it, watch and stop it),
//! `kafka::config`, `checkpoint`, `error`. Everything else is crate-private,
//! so the compiler reports what nothing uses.

pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod kafka;
pub(crate) mod delta;
pub(crate) mod file;
pub(crate) mod message;
pub(crate) mod sink;
pub(crate) mod socket;
pub(crate) mod source;
pub(crate) mod transform;

#[cfg(feature = "r")]
mod r;
