//! Many records in one call to librdkafka (`rd_kafka_produce_batch`).
//!
//! rust-rdkafka's `send` goes through `rd_kafka_producev` one record at a
//! time: a `CString` of the topic name and a topic lookup under librdkafka's
//! lock per record. A run of records for one topic instead goes in one call
//! on a topic handle kept for the query, with each record's partition (or
//! the partitioner) as `send` would pick it. Payloads are copied by
//! librdkafka (`RD_KAFKA_MSG_F_COPY`), so they only need to live for the
//! call. librdkafka's batch call cannot carry headers: records with headers
//! still go through `send`.
//!
//! Delivery reports come back through the producer's context exactly as for
//! `send` (the opaque is null, which is `()`'s).

use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::{Error, Result};
use crate::kafka::errors::{kafka_error, Operation};

/// librdkafka's `RD_KAFKA_PARTITION_UA` (a C macro): let the partitioner choose.
const PARTITION_UNASSIGNED: i32 = -1;

/// A librdkafka topic handle; destroyed before the producer is (the sink
/// keeps its handles in a field declared before the producer's).
pub(crate) struct TopicHandle(*mut rd::rd_kafka_topic_t);

// librdkafka's topic handles are thread-safe, and this one is only used by
// the query's thread.
unsafe impl Send for TopicHandle {}

impl TopicHandle {
    /// # Safety
    /// `client` must be a live producer that outlives the handle.
    pub unsafe fn new(client: *mut rd::rd_kafka_t, topic: &str) -> Result<Self> {
        let name = CString::new(topic).map_err(|_| Error::config("options", format!("topic `{topic}` contains a NUL byte")))?;
        let handle = rd::rd_kafka_topic_new(client, name.as_ptr(), ptr::null_mut());
        if handle.is_null() {
            let code: RDKafkaErrorCode = rd::rd_kafka_last_error().into();
            return Err(Error::kafka(format!("can't open topic `{topic}` for writing: {code}")));
        }
        Ok(TopicHandle(handle))
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        unsafe { rd::rd_kafka_topic_destroy(self.0) }
    }
}

/// Records waiting to go to one topic, borrowing their bytes.
pub(crate) struct PendingRecords<'a> {
    messages: Vec<rd::rd_kafka_message_t>,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

/// What one call of [`PendingRecords::produce`] did, besides queueing
/// `queued` records.
pub(crate) enum Produced {
    /// All of them are in librdkafka's queue.
    All,
    /// The queue filled up: records from this index on are not in it.
    QueueFull(usize),
    /// A record was refused (see `kafka::errors`: permanent).
    Failed(Error),
}

impl<'a> PendingRecords<'a> {
    pub fn with_capacity(n: usize) -> Self {
        PendingRecords { messages: Vec::with_capacity(n), _bytes: std::marker::PhantomData }
    }

    /// `partition` None: the producer's partitioner decides, as for `send`.
    pub fn push(&mut self, key: Option<&'a [u8]>, value: Option<&'a [u8]>, partition: Option<i32>) {
        let (key, key_len) = key.map_or((ptr::null_mut(), 0), |k| (k.as_ptr() as *mut c_void, k.len()));
        let (payload, len) = value.map_or((ptr::null_mut(), 0), |v| (v.as_ptr() as *mut c_void, v.len()));
        self.messages.push(rd::rd_kafka_message_t {
            err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            rkt: ptr::null_mut(),
            partition: partition.unwrap_or(PARTITION_UNASSIGNED),
            payload,
            len,
            key,
            key_len,
            offset: 0,
            _private: ptr::null_mut(),
        });
    }

    /// Hands the records from `from` on to librdkafka, in order; returns
    /// how many it queued, and what happened.
    pub fn produce(&mut self, topic: &TopicHandle, from: usize, topic_name: &str) -> (usize, Produced) {
        let messages = &mut self.messages[from..];
        if messages.is_empty() {
            return (0, Produced::All);
        }
        let flags = rd::RD_KAFKA_MSG_F_COPY | rd::RD_KAFKA_MSG_F_PARTITION;
        // SAFETY: the handle is live, and every pointer in `messages` borrows
        // bytes that outlive this call (librdkafka copies them).
        let queued = unsafe {
            rd::rd_kafka_produce_batch(topic.0, PARTITION_UNASSIGNED, flags, messages.as_mut_ptr(), messages.len() as i32)
        }
        .max(0) as usize;
        if queued == messages.len() {
            return (queued, Produced::All);
        }
        // After a full queue, librdkafka marks every later record full too.
        let outcome = match messages.iter().position(|m| m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR) {
            Some(i) if messages[i].err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL && queued == i => {
                Produced::QueueFull(from + i)
            }
            Some(i) => {
                let code: RDKafkaErrorCode = messages[i].err.into();
                let refused = KafkaError::MessageProduction(code);
                Produced::Failed(kafka_error(Operation::Produce, &refused).context(format!("can't send a record to topic `{topic_name}`")))
            }
            None => Produced::Failed(Error::internal(format!(
                "librdkafka queued {queued} of {} records without saying why",
                messages.len()
            ))),
        };
        (queued, outcome)
    }

    pub fn clear(&mut self) {
        self.messages.clear();
    }
}
