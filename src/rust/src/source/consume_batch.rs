//! Many records from the consumer in one call to librdkafka
//! (`rd_kafka_consume_batch_queue`).
//!
//! rust-rdkafka's `poll()` hands out one record per call: a queue pop with
//! its lock and clock read, an event wrapped in an `Arc`, and its
//! destruction. In P2's profile that was more than half of the query
//! thread (bench/README.md). The batch call pops what the queue holds under
//! one lock and returns librdkafka's own messages, read here in place and
//! destroyed together.
//!
//! The batch call serves the other things on the queue itself, not as
//! rust-rdkafka's events, which decides where it may be used:
//! - Only outside a consumer group: it serves a rebalance with librdkafka's
//!   default (unassign everything), not with the group handler that
//!   rust-rdkafka's `poll()` calls, so a group member keeps polling record by
//!   record. A consumer that is only assigned partitions has no rebalances,
//!   and commits nothing (a commit's reply would reach it as a message and
//!   abort the process in librdkafka's `rd_kafka_message_get`).
//! - Log lines would go to librdkafka's default callback, stderr; through
//!   `poll()` they went to the `log` crate, which has no logger here. The
//!   queue's consumer logs nothing, as before (`ConsumerQueue::new`).
//! - A consumer error arrives as a message, as through `poll()`, but the
//!   batch call moves the partition's position past its offset as if it were
//!   a record. The reader seeks such a partition back to the record it expects
//!   (`KafkaSource::read`), or the position would end its range early.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};

/// What the source's reading loops need of a consumed record, from either API.
pub(crate) trait ConsumedRecord {
    fn key(&self) -> Option<&[u8]>;
    fn value(&self) -> Option<&[u8]>;
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    /// Milliseconds since the epoch (`None` when the record has none), and
    /// Spark's `timestampType` (0 create time, 1 log append time).
    fn timestamp(&self) -> (Option<i64>, i32);
    /// Parsed on demand (librdkafka allocates to parse them).
    fn headers(&self) -> Option<Vec<(&str, Option<&[u8]>)>>;
}

impl ConsumedRecord for BorrowedMessage<'_> {
    fn key(&self) -> Option<&[u8]> {
        Message::key(self)
    }
    fn value(&self) -> Option<&[u8]> {
        self.payload()
    }
    fn topic(&self) -> &str {
        Message::topic(self)
    }
    fn partition(&self) -> i32 {
        Message::partition(self)
    }
    fn offset(&self) -> i64 {
        Message::offset(self)
    }
    fn timestamp(&self) -> (Option<i64>, i32) {
        let ts = Message::timestamp(self);
        (ts.to_millis(), i32::from(matches!(ts, rdkafka::Timestamp::LogAppendTime(_))))
    }
    fn headers(&self) -> Option<Vec<(&str, Option<&[u8]>)>> {
        Message::headers(self).map(|h| h.iter().map(|x| (x.key, x.value)).collect())
    }
}

/// The consumer's queue, kept with the consumer it belongs to (which must
/// outlive it).
pub(crate) struct ConsumerQueue<C> {
    queue: *mut rd::rd_kafka_queue_t,
    _consumer: C,
}

// librdkafka's queues are thread-safe; this one is used by the query's thread.
unsafe impl<C: Send> Send for ConsumerQueue<C> {}

impl<C, X> ConsumerQueue<C>
where
    C: std::ops::Deref<Target = BaseConsumer<X>>,
    X: rdkafka::consumer::ConsumerContext,
{
    /// `None` if librdkafka has no consumer queue for it (no `group.id`).
    pub(crate) fn new(consumer: C) -> Option<Self> {
        let client = consumer.client().native_ptr();
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(client) };
        if queue.is_null() {
            return None;
        }
        // Level 0 (emergency), which librdkafka never logs at: see the module's doc.
        unsafe { rd::rd_kafka_set_log_level(client, 0) };
        Some(ConsumerQueue { queue, _consumer: consumer })
    }
}

impl<C> ConsumerQueue<C> {
    /// Waits up to `timeout` for a first record, then takes those already
    /// there, `max` in all at most, into `into` (emptied first).
    pub(crate) fn take(&self, into: &mut Consumed, timeout: Duration, max: usize) {
        let max = max.max(1);
        into.clear();
        into.messages.reserve(max);
        let first = unsafe { rd::rd_kafka_consume_batch_queue(self.queue, timeout.as_millis() as i32, into.messages.as_mut_ptr(), 1) };
        if first < 1 {
            return;
        }
        // SAFETY: librdkafka wrote `first` (1) message pointers; `reserve` made room for `max`.
        unsafe { into.messages.set_len(1) };
        let rest = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue, 0, into.messages.as_mut_ptr().add(1), max.saturating_sub(1))
        };
        if rest > 0 {
            unsafe { into.messages.set_len(1 + rest as usize) };
        }
    }
}

impl<C> Drop for ConsumerQueue<C> {
    fn drop(&mut self) {
        unsafe { rd::rd_kafka_queue_destroy(self.queue) }
    }
}

/// Messages taken from the queue: librdkafka's, destroyed when the next take
/// empties this or when it is dropped.
#[derive(Default)]
pub(crate) struct Consumed {
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

impl Consumed {
    fn clear(&mut self) {
        for m in self.messages.drain(..) {
            unsafe { rd::rd_kafka_message_destroy(m) }
        }
    }

    /// Each message: a record, or a consumer error (`RawRecord::error`).
    pub(crate) fn records(&self) -> impl Iterator<Item = RawRecord<'_>> {
        // The pointers stay valid until `clear` or drop, which need `&mut self`.
        self.messages.iter().map(|&m| RawRecord(m, PhantomData))
    }
}

impl Drop for Consumed {
    fn drop(&mut self) {
        self.clear()
    }
}

/// A record read in place in librdkafka's message (a pointer, as librdkafka
/// caches parsed headers in the message).
pub(crate) struct RawRecord<'a>(*mut rd::rd_kafka_message_t, PhantomData<&'a Consumed>);

impl RawRecord<'_> {
    fn message(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: valid while the `Consumed` it came from is borrowed.
        unsafe { &*self.0 }
    }

    /// The consumer error this message carries instead of a record.
    pub(crate) fn error(&self) -> Option<KafkaError> {
        let code = self.message().err;
        (code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| KafkaError::MessageConsumption(code.into()))
    }
}

fn bytes<'a>(data: *mut c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: librdkafka's pointer and length of a key or payload it owns.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data as *const u8, len) })
}

impl ConsumedRecord for RawRecord<'_> {
    fn key(&self) -> Option<&[u8]> {
        bytes(self.message().key, self.message().key_len)
    }
    fn value(&self) -> Option<&[u8]> {
        bytes(self.message().payload, self.message().len)
    }
    fn topic(&self) -> &str {
        let topic = self.message().rkt;
        if topic.is_null() {
            return ""; // a consumer error about no topic
        }
        // Kafka's topic names are ASCII.
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(topic)) }.to_str().unwrap_or_default()
    }
    fn partition(&self) -> i32 {
        self.message().partition
    }
    fn offset(&self) -> i64 {
        self.message().offset
    }
    fn timestamp(&self) -> (Option<i64>, i32) {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.0, &mut kind) };
        // -1 is "none" too, as rust-rdkafka's `Timestamp::to_millis` reads it.
        let millis = (ms != -1).then_some(ms);
        match kind {
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => (None, 0),
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => (millis, 1),
            _ => (millis, 0),
        }
    }
    fn headers(&self) -> Option<Vec<(&str, Option<&[u8]>)>> {
        let mut headers = ptr::null_mut();
        let found = unsafe { rd::rd_kafka_message_headers(self.0, &mut headers) };
        if found != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return None;
        }
        let count = unsafe { rd::rd_kafka_header_cnt(headers) };
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (mut name, mut value, mut len) = (ptr::null(), ptr::null(), 0);
            let got = unsafe { rd::rd_kafka_header_get_all(headers, i, &mut name, &mut value, &mut len) };
            if got != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                break;
            }
            // SAFETY: owned by the message's headers, which live as long as the message.
            let name = unsafe { CStr::from_ptr(name) }.to_str().unwrap_or_default();
            out.push((name, bytes(value as *mut c_void, len)));
        }
        Some(out)
    }
}
