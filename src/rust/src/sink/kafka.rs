//! The Kafka sink.
//!
//! Runtime model (see rust-rdkafka's docs): a `ThreadedProducer` polls
//! librdkafka on its own thread, which runs [`DeliveryCounter::delivery`] for
//! every record once the broker has acknowledged it (acks=all, idempotent:
//! librdkafka retries without reordering or duplicating). `write` enqueues
//! records; when librdkafka's queue is full it waits for deliveries to make
//! room, which is the backpressure. `flush` waits until every record
//! enqueued is acknowledged, and fails the batch if any delivery failed, so
//! the engine never commits a batch that is not durable in Kafka.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::encode::{for_each_record, RecordLayout};
use super::Sink;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::options::KafkaSinkOptions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FLUSH_SLICE: Duration = Duration::from_millis(100);

/// Counts acknowledgements; wakes a writer waiting for queue room.
#[derive(Default)]
pub struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    wake: (Mutex<()>, Condvar),
}

impl Deliveries {
    fn wait_for_progress(&self, timeout: Duration) {
        let guard = self.wake.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.wake.1.wait_timeout(guard, timeout);
    }
}

pub struct DeliveryCounter {
    deliveries: Arc<Deliveries>,
    status: SharedStatus,
}

impl ClientContext for DeliveryCounter {
    fn error(&self, error: KafkaError, reason: &str) {
        // Transport errors are retried by librdkafka; show them in the status meanwhile.
        self.status.warn(format!("Kafka producer: {reason} ({error})"));
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.deliveries.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.deliveries.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.deliveries.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
        self.deliveries.wake.1.notify_all();
    }
}

pub struct KafkaSink {
    options: KafkaSinkOptions,
    client_id: String,
    layout: Option<RecordLayout>,
    producer: Option<ThreadedProducer<DeliveryCounter>>,
    deliveries: Arc<Deliveries>,
    enqueued: u64,
    /// Rows of the current micro-batch so far, to number rows in errors.
    rows_in_batch: u64,
}

impl KafkaSink {
    pub fn new(options: KafkaSinkOptions, query_name: &str) -> Self {
        KafkaSink {
            options,
            client_id: format!("streamlyr-{query_name}"),
            layout: None,
            producer: None,
            deliveries: Arc::new(Deliveries::default()),
            enqueued: 0,
            rows_in_batch: 0,
        }
    }

    fn unreachable(&self, e: KafkaError) -> Error {
        Error::kafka(format!(
            "can't reach Kafka at `{}` within {}s: {e}",
            self.options.client.bootstrap_servers(),
            CONNECT_TIMEOUT.as_secs()
        ))
        .with_arg("options")
        .with_hint("check `kafka.bootstrap.servers` and that the broker is running")
    }
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        match &self.options.topic {
            Some(t) => format!("kafka[topic={t}]"),
            None => "kafka[topic column]".to_string(),
        }
    }

    fn connect(&mut self, schema: &Schema, status: &SharedStatus) -> Result<()> {
        let layout = RecordLayout::new(schema, self.options.topic.clone())?;
        let context = DeliveryCounter { deliveries: self.deliveries.clone(), status: status.clone() };
        let producer: ThreadedProducer<DeliveryCounter> = self
            .options
            .client
            .to_rdkafka(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("client.id", self.client_id.as_str()),
                ("linger.ms", "5"),
                ("compression.type", "none"),
            ])
            .create_with_context(context)
            .map_err(|e| Error::config("options", format!("the Kafka producer settings are not valid: {e}")))?;
        producer
            .client()
            .fetch_metadata(self.options.topic.as_deref(), CONNECT_TIMEOUT)
            .map_err(|e| self.unreachable(e))?;
        self.layout = Some(layout);
        self.producer = Some(producer);
        Ok(())
    }

    fn write(&mut self, chunk: &RecordBatch, stop: &StopSignal) -> Result<u64> {
        let layout = self.layout.as_ref().ok_or_else(|| Error::internal("Kafka sink used before connect()"))?;
        let producer = self.producer.as_ref().expect("connected with the layout");
        let deliveries = &self.deliveries;
        let include_headers = self.options.include_headers;
        let mut sent = 0u64;
        for_each_record(layout, chunk, self.rows_in_batch, &mut |r| {
            let mut record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(r.topic);
            if let Some(k) = r.key {
                record = record.key(k);
            }
            if let Some(v) = r.value {
                record = record.payload(v);
            }
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            if include_headers {
                if let Some(hs) = &r.headers {
                    let mut headers = OwnedHeaders::new_with_capacity(hs.len());
                    for (k, v) in hs {
                        headers = headers.insert(Header { key: k.as_str(), value: v.as_deref() });
                    }
                    record = record.headers(headers);
                }
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // Backpressure: wait for acknowledgements to free room.
                        stop.check_abort()?;
                        record = back;
                        deliveries.wait_for_progress(Duration::from_millis(50));
                    }
                    Err((e, back)) => {
                        return Err(Error::kafka(format!("can't send a record to topic `{}`: {e}", back.topic)))
                    }
                }
            }
            sent += 1;
            Ok(())
        })?;
        self.enqueued += sent;
        self.rows_in_batch += chunk.num_rows() as u64;
        Ok(sent)
    }

    fn flush(&mut self, stop: &StopSignal, status: &SharedStatus) -> Result<()> {
        let producer = match self.producer.as_ref() {
            Some(p) => p,
            None => return Ok(()),
        };
        let started = Instant::now();
        loop {
            let done = self.deliveries.delivered.load(Ordering::Relaxed) + self.deliveries.failed.load(Ordering::Relaxed);
            if done >= self.enqueued {
                break;
            }
            if let Some((code, reason)) = producer.client().fatal_error() {
                return Err(Error::kafka(format!("the Kafka producer failed for good ({code:?}): {reason}")));
            }
            stop.check_abort()?;
            if started.elapsed() > Duration::from_secs(2) {
                status.set_message(format!(
                    "Waiting for Kafka to acknowledge {} records",
                    self.enqueued.saturating_sub(done)
                ));
            }
            let _ = producer.flush(FLUSH_SLICE);
        }
        self.rows_in_batch = 0;
        let failed = self.deliveries.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let first = self.deliveries.first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
            // Keep the totals consistent for the next batch.
            self.enqueued -= failed;
            return Err(Error::kafka(format!(
                "Kafka did not accept {failed} record(s) of the batch: {}",
                first.unwrap_or_default()
            )));
        }
        Ok(())
    }
}
