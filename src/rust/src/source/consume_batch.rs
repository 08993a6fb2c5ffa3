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
//! Only outside a consumer group: the batch call serves a rebalance it meets
//! with librdkafka's default (unassign everything), not with the group
//! handler rust-rdkafka's `poll()` calls, so a group member keeps polling
//! record by record. A consumer that is only assigned partitions has no
//! rebalances, and its errors arrive as records with an error code, as
//! `poll()` returns them.

use std::ffi::CStr;
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
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        (!queue.is_null()).then_some(ConsumerQueue { queue, _consumer: consumer })
    }
}

impl<C> ConsumerQueue<C> {
    /// Waits up to `timeout` for a first record, then takes those already
    /// there, `max` in all at most, into `into` (emptied first).
    pub(crate) fn take(&self, into: &mut Consumed, timeout: Duration, max: usize) {
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

// The messages are owned here alone, and librdkafka frees them from any thread.
unsafe impl Send for Consumed {}

impl Consumed {
    fn clear(&mut self) {
        for m in self.messages.drain(..) {
            unsafe { rd::rd_kafka_message_destroy(m) }
        }
    }

    /// Each message: a record, or the consumer error it carries.
    pub(crate) fn records(&self) -> impl Iterator<Item = Result<RawRecord<'_>, KafkaError>> {
        self.messages.iter().map(|&m| {
            // SAFETY: the pointer stays valid until `clear` or drop, which need `&mut self`.
            let m = unsafe { &*m };
            if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                Ok(RawRecord(m))
            } else {
                Err(KafkaError::MessageConsumption(m.err.into()))
            }
        })
    }
}

impl Drop for Consumed {
    fn drop(&mut self) {
        self.clear()
    }
}

/// A record read in place in librdkafka's message.
pub(crate) struct RawRecord<'a>(&'a rd::rd_kafka_message_t);

fn bytes<'a>(data: *mut c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: librdkafka's pointer and length of a key or payload it owns.
    (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data as *const u8, len) })
}

impl ConsumedRecord for RawRecord<'_> {
    fn key(&self) -> Option<&[u8]> {
        bytes(self.0.key, self.0.key_len)
    }
    fn value(&self) -> Option<&[u8]> {
        bytes(self.0.payload, self.0.len)
    }
    fn topic(&self) -> &str {
        // Kafka's topic names are ASCII.
        unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.0.rkt)) }.to_str().unwrap_or_default()
    }
    fn partition(&self) -> i32 {
        self.0.partition
    }
    fn offset(&self) -> i64 {
        self.0.offset
    }
    fn timestamp(&self) -> (Option<i64>, i32) {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        let ms = unsafe { rd::rd_kafka_message_timestamp(self.0, &mut kind) };
        match kind {
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => (None, 0),
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => (Some(ms), 1),
            _ => (Some(ms), 0),
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
