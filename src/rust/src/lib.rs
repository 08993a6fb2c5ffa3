//! streamlyr's engine: Kafka in and out of Arrow micro-batches, with a
//! checkpoint that makes a stopped or crashed query resume losing nothing.
//!
//! Data flows one way: [`source`] -> micro-batch (Arrow `RecordBatch`) ->
//! [`sink`] -> commit in the [`checkpoint`]; [`engine`] runs that loop on a
//! trigger in a background thread. The R face (`r`, feature `r`) is a thin
//! layer over it; everything else is tested by `cargo test` without R.

pub mod checkpoint;
pub mod client_log;
pub mod engine;
pub mod error;
pub mod options;
pub mod sink;
pub mod transform;
pub mod source;

#[cfg(feature = "r")]
mod r;
