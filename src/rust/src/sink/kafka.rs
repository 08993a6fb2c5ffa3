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
//!
//! Exactly-once (`guarantee = "exactly-once"`): the producer is transactional,
//! with a transactional id derived from the query's id (stable across
//! restarts), and each micro-batch is one transaction. `init_transactions`
//! at start fences any zombie of a killed process and aborts its open
//! transaction. Inside each transaction the sink also commits offsets to the
//! query's consumer group `streamlyr-eos-<query>`, visible if and only if
//! the batch's records are:
//! - reading Kafka, the real positions the batch read up to, one per input
//!   partition, each with the batch id as its metadata (`streamlyr-batch-N`):
//!   `kafka-consumer-groups --describe`, KEDA or Burrow see the stream's lag;
//! - writing a data frame, a *marker*: offset `batch + 1` on partition 0 of
//!   the first topic the batch wrote to.
//! A batch that writes nothing opens no transaction and commits nothing. If
//! the process dies after Kafka committed but before the checkpoint did, the
//! restarted query reads what its group committed and records the batch as
//! committed instead of writing it again. Transaction calls block, so
//! they run on the query's own thread, never on the async workers.
//!
//! Reading Kafka in a consumer group (`scaleOut = "group"`, see
//! `kafka::group`), the offsets go to that group instead, with its
//! consumer's metadata (KIP-447): the group, not the checkpoint, knows
//! which batches committed, so no marker is kept. Every batch that read
//! something commits a transaction, even one that wrote nothing, so the
//! group's offsets always say where the process stands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::batch_produce::{PendingRecords, Produced, TopicHandle};
use super::encode::{ChunkRecords, RecordLayout};
use super::partition::partition_for_key;
use super::Sink;
use crate::checkpoint::CheckpointLog;
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::kafka::client_log::ClientLog;
use crate::kafka::config::{Guarantee, KafkaSinkOptions};
use crate::kafka::errors::{code_of, is_left_behind_by_group, is_retriable, kafka_error, transaction_error, Operation};
use crate::kafka::group::GroupLink;
use crate::message::RegisteredSchema;
use crate::source::Positions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
const FLUSH_SLICE: Duration = Duration::from_millis(100);
/// How long a topic may be reported unknown before it counts as missing.
const MISSING_TOPIC_WAIT: Duration = Duration::from_secs(5);
/// How old a topic's partition count may be: librdkafka's own default
/// (`topic.metadata.refresh.interval.ms`) for noticing partitions added.
const PARTITIONS_RECHECK: Duration = Duration::from_secs(300);
/// How long asking it again may wait: without an answer the old count stands.
const PARTITIONS_ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// Room a writer waits for when librdkafka's queue is full: waking it for
/// every single acknowledgement would cost a context switch per record.
const QUEUE_REFILL: u64 = 4096;

/// Rows of values (JSON, CSV, Avro) made ahead on a second thread while the rows before them are sent.
const JSON_PIPELINE_ROWS: usize = 4096;

/// Counts acknowledgements; wakes a writer waiting for queue room.
pub(crate) struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<(String, bool)>>,
    wake: (Mutex<()>, Condvar),
    /// Settled count a waiting writer wants; `u64::MAX` when none waits.
    wake_at: AtomicU64,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            wake: (Mutex::new(()), Condvar::new()),
            wake_at: AtomicU64::new(u64::MAX),
        }
    }
}

impl Deliveries {
    /// Records whose delivery report has come back, acknowledged or not.
    fn settled(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    /// Wait (at most `timeout`) until a good part of the `in_flight`
    /// records have settled (up to `QUEUE_REFILL` of them).
    fn wait_for_room(&self, in_flight: u64, timeout: Duration) {
        self.wait_until_settled(self.settled() + (in_flight / 2).clamp(1, QUEUE_REFILL), timeout);
    }

    /// Wait (at most `timeout`) until `target` records have settled.
    fn wait_until_settled(&self, target: u64, timeout: Duration) {
        let guard = self.wake.0.lock().unwrap_or_else(|p| p.into_inner());
        self.wake_at.store(target, Ordering::SeqCst);
        if self.settled() < target {
            let _ = self.wake.1.wait_timeout(guard, timeout);
        }
        self.wake_at.store(u64::MAX, Ordering::SeqCst);
    }

    /// Send what lingers now, then sleep (one slice at most) until `target`
    /// records have settled: librdkafka's own flush wakes late when another
    /// thread serves the delivery reports.
    fn flush_slice(&self, producer: &ThreadedProducer<DeliveryCounter>, target: u64) {
        let _ = producer.flush(Duration::ZERO);
        self.wait_until_settled(target, FLUSH_SLICE);
    }

    fn on_settled(&self) {
        if self.settled() >= self.wake_at.load(Ordering::SeqCst) {
            let _guard = self.wake.0.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.1.notify_all();
        }
    }
}

pub(crate) struct DeliveryCounter {
    deliveries: Arc<Deliveries>,
    log: ClientLog,
}

impl ClientContext for DeliveryCounter {
    fn error(&self, error: KafkaError, reason: &str) {
        // Transport errors are retried by librdkafka; show them in the status meanwhile.
        self.log.record(&error, reason);
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
                first.get_or_insert_with(|| (e.to_string(), is_retriable(Operation::Delivery, e)));
            }
        }
        self.deliveries.on_settled();
    }
}

pub(crate) struct KafkaSink {
    options: KafkaSinkOptions,
    linger_ms: &'static str,
    client_id: String,
    /// How rows become records, built (and checked) when the query was planned.
    layout: RecordLayout,
    /// Declared before `producer`: topic handles must go before their producer does.
    topics: HashMap<String, OpenTopic>,
    producer: Option<ThreadedProducer<DeliveryCounter>>,
    deliveries: Arc<Deliveries>,
    enqueued: u64,
    /// Rows of the current micro-batch so far, to number rows in errors.
    rows_in_batch: u64,
    /// Exactly-once only: the consumer group whose offsets mark committed batches.
    marker_group: Option<BaseConsumer>,
    in_transaction: bool,
    status: Option<SharedStatus>,
    /// The first topic the current batch wrote to (where its marker goes).
    batch_topic: Option<String>,
    /// The source's consumer group, when it reads in one.
    group: Option<Arc<GroupLink>>,
}

/// A topic the sink writes to: librdkafka's handle, and how many partitions
/// the topic had when last asked (never 0: see `KafkaSink::open_topic`).
struct OpenTopic {
    handle: TopicHandle,
    partitions: i32,
    asked: Instant,
}

/// Where the marker of a batch lives, recorded before the transaction commits.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    topic: String,
    partition: i32,
    offset: i64,
    /// An input partition whose committed offset carries the batch id in its
    /// metadata (else an output partition where offset `batch + 1` is the sign).
    #[serde(default)]
    input: bool,
}

/// The metadata of the offsets batch `batch` commits.
fn batch_metadata(batch: u64) -> String {
    format!("streamlyr-batch-{batch}")
}

/// The batch id in a committed offset's metadata, if it is ours.
fn metadata_batch(metadata: &str) -> Option<u64> {
    metadata.strip_prefix("streamlyr-batch-")?.parse().ok()
}

impl KafkaSink {
    /// What batch `batch`'s transaction commits to the query's group, and
    /// the one entry that later tells whether it did (see the module docs).
    fn transaction_offsets(&self, batch: u64, read: &Positions) -> Result<(Marker, TopicPartitionList)> {
        let mut tpl = TopicPartitionList::new();
        let fail = |e: KafkaError| kafka_error(Operation::Request, &e);
        if let Positions::Kafka(ends) = read {
            let metadata = batch_metadata(batch);
            let mut marker = None;
            for (topic, partitions) in ends {
                for (&partition, &offset) in partitions {
                    tpl.add_partition_offset(topic, partition, Offset::Offset(offset)).map_err(fail)?;
                    if let Some(mut entry) = tpl.find_partition(topic, partition) {
                        entry.set_metadata(metadata.clone());
                    }
                    marker.get_or_insert_with(|| Marker { topic: topic.clone(), partition, offset, input: true });
                }
            }
            if let Some(marker) = marker {
                return Ok((marker, tpl));
            }
        }
        // A transaction opens with a record, which set the batch's topic.
        let topic = self.batch_topic.clone().ok_or_else(|| Error::internal("a transaction without a topic"))?;
        let marker = Marker { topic, partition: 0, offset: batch as i64 + 1, input: false };
        tpl.add_partition_offset(&marker.topic, marker.partition, Offset::Offset(marker.offset)).map_err(fail)?;
        Ok((marker, tpl))
    }

    /// `low_latency` sends each record at once (no linger), for continuous processing.
    /// `group`: the source's consumer group, when it reads in one.
    pub(crate) fn new(
        options: KafkaSinkOptions,
        layout: RecordLayout,
        query_name: &str,
        low_latency: bool,
        group: Option<Arc<GroupLink>>,
    ) -> Self {
        KafkaSink {
            linger_ms: if low_latency { "0" } else { "5" },
            options,
            client_id: format!("streamlyr-{query_name}"),
            layout,
            topics: HashMap::new(),
            producer: None,
            deliveries: Arc::new(Deliveries::default()),
            enqueued: 0,
            rows_in_batch: 0,
            marker_group: None,
            in_transaction: false,
            status: None,
            batch_topic: None,
            group,
        }
    }

    fn exactly_once(&self) -> bool {
        self.options.guarantee == Guarantee::ExactlyOnce
    }

    fn producer(&self) -> Result<&ThreadedProducer<DeliveryCounter>> {
        self.producer.as_ref().ok_or_else(|| Error::internal("Kafka sink used before connect()"))
    }

    /// Opens `topic` for writing once it exists and has partitions: librdkafka
    /// would hold records for a missing topic until
    /// `topic.metadata.propagation.max.ms`, then refuse them one by one.
    /// A broker that creates topics on first use answers "unknown", or
    /// "no leader yet", while it creates one, so such answers count only
    /// after `MISSING_TOPIC_WAIT`. The answer also gives the topic's
    /// partition count, which `partitions_of` keeps up to date.
    fn open_topic(&mut self, topic: &str) -> Result<()> {
        let producer = self.producer()?;
        let asked = Instant::now();
        let partitions = loop {
            let metadata = producer
                .client()
                .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
                .map_err(|e| kafka_error(Operation::Request, &e).context(format!("can't look up topic `{topic}`")))?;
            let answer = metadata.topics().first();
            let partitions = answer.map_or(0, |t| t.partitions().len() as i32);
            let code = answer.and_then(|t| t.error()).map(RDKafkaErrorCode::from);
            if partitions > 0 {
                break partitions;
            }
            let being_created = matches!(code, None | Some(RDKafkaErrorCode::LeaderNotAvailable));
            let missing = code == Some(RDKafkaErrorCode::UnknownTopicOrPartition);
            if !(missing || being_created) || asked.elapsed() >= MISSING_TOPIC_WAIT {
                return Err(match code {
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Error::kafka(format!("can't write to topic `{topic}`: it does not exist"))
                        .with_hint("create it first: topics are created on first use only when the broker allows it (`auto.create.topics.enable`) and so does the producer (`kafka.allow.auto.create.topics`)"),
                    Some(code) => kafka_error(Operation::Request, &KafkaError::MetadataFetch(code)).context(format!("can't write to topic `{topic}`")),
                    None => Error::kafka(format!("topic `{topic}` has no partitions yet")).retriable(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // SAFETY: the producer outlives its topic handles (see the field order of `KafkaSink`).
        let handle = unsafe { TopicHandle::new(producer.client().native_ptr(), topic)? };
        self.topics.insert(topic.to_string(), OpenTopic { handle, partitions, asked: Instant::now() });
        Ok(())
    }

    /// Partitions of `topic`, opening it first. Asked again after
    /// `PARTITIONS_RECHECK`, waiting at most `PARTITIONS_ASK_TIMEOUT`:
    /// without an answer the count it had stands, so a broker that is down
    /// costs at most a second per topic every 5 minutes.
    fn partitions_of(&mut self, topic: &str, stop: &StopSignal) -> Result<i32> {
        if !self.topics.contains_key(topic) {
            self.open_topic(topic)?;
        }
        let open = self.topics.get_mut(topic).expect("opened above");
        if open.asked.elapsed() >= PARTITIONS_RECHECK {
            stop.check_abort()?;
            let client = self.producer.as_ref().ok_or_else(|| Error::internal("Kafka sink used before connect()"))?.client();
            if let Ok(metadata) = client.fetch_metadata(Some(topic), PARTITIONS_ASK_TIMEOUT) {
                if let Some(t) = metadata.topics().first().filter(|t| t.error().is_none() && !t.partitions().is_empty()) {
                    open.partitions = t.partitions().len() as i32;
                }
            }
            open.asked = Instant::now();
        }
        Ok(open.partitions)
    }

    /// Backpressure: librdkafka's queue is full, so wait until acknowledgements free room.
    fn wait_for_room(&self, stop: &StopSignal) -> Result<()> {
        stop.check_abort()?;
        let waited = Instant::now();
        let in_flight = self.enqueued.saturating_sub(self.deliveries.settled());
        self.deliveries.wait_for_room(in_flight, Duration::from_millis(50));
        if waited.elapsed() >= Duration::from_millis(50) {
            if let Some(status) = &self.status {
                status.set_message(format!(
                    "Kafka is not keeping up: the producer queue is full ({in_flight} records waiting for acknowledgement)"
                ));
            }
        }
        Ok(())
    }

    /// Sends `records` in order: runs of records for one topic go to librdkafka in one call.
    fn send_records(&mut self, records: &ChunkRecords<'_>, stop: &StopSignal) -> Result<()> {
        let mut pending = PendingRecords::with_capacity(records.len());
        let mut pending_topic: Option<&str> = None;
        // The last topic whose partitions were looked up, and their count.
        let mut looked_up: Option<(&str, i32)> = None;
        let mut partitions = |sink: &mut Self, topic| match looked_up {
            Some((t, n)) if t == topic => Ok(n),
            _ => sink.partitions_of(topic, stop).inspect(|n| looked_up = Some((topic, *n))),
        };
        for row in 0..records.len() {
            let r = records.record(row)?;
            if self.batch_topic.is_none() {
                self.batch_topic = Some(r.topic.to_string());
            }
            let partition = match (r.partition_key, r.partition) {
                (Some(key), _) => Some(partition_for_key(key, partitions(self, r.topic)?)),
                (None, Some(p)) => Some(p),
                // A record without a key for a topic of one partition: where any partitioner
                // puts it, without librdkafka's partitioner per record (its locks and clock
                // reads were a sixth of the pipeline's query thread: bench/README.md). Keyed
                // records keep it: they must follow murmur2 once partitions are added.
                (None, None) if r.key.is_none() => (partitions(self, r.topic)? == 1).then_some(0),
                (None, None) => None,
            };
            let headers = if self.options.include_headers { r.headers } else { None };
            if pending_topic.is_some_and(|t| t != r.topic || headers.is_some()) {
                self.produce(&mut pending, pending_topic.take().expect("checked"), stop)?;
            }
            match headers {
                Some(headers) => self.send_with_headers(r.topic, r.key, r.value, partition, &headers, stop)?,
                None => {
                    pending.push(r.key, r.value, partition);
                    pending_topic = Some(r.topic);
                }
            }
        }
        match pending_topic {
            Some(topic) => self.produce(&mut pending, topic, stop),
            None => Ok(()),
        }
    }

    /// Exactly-once: the batch's transaction, begun before its first record.
    fn open_transaction(&mut self) -> Result<()> {
        if self.exactly_once() && !self.in_transaction {
            self.producer()?.begin_transaction().map_err(|e| transaction_error("begin", &e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Queues `pending` (all for `topic`) in librdkafka, waiting for room when it is full; empties it.
    fn produce(&mut self, pending: &mut PendingRecords<'_>, topic: &str, stop: &StopSignal) -> Result<()> {
        self.open_transaction()?;
        if !self.topics.contains_key(topic) {
            self.open_topic(topic)?;
        }
        let mut from = 0;
        let result = loop {
            let (queued, outcome) = pending.produce(&self.topics[topic].handle, from, topic);
            self.enqueued += queued as u64;
            match outcome {
                Produced::All => break Ok(()),
                Produced::QueueFull(next) => {
                    from = next;
                    if let Err(e) = self.wait_for_room(stop) {
                        break Err(e);
                    }
                }
                Produced::Failed(e) => break Err(e),
            }
        };
        pending.clear();
        result
    }

    /// One record with headers (librdkafka's batch call can't carry them).
    fn send_with_headers(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        partition: Option<i32>,
        headers: &[(String, Option<Vec<u8>>)],
        stop: &StopSignal,
    ) -> Result<()> {
        self.open_transaction()?;
        let mut record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic);
        record.key = key;
        record.payload = value;
        record.partition = partition;
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            owned = owned.insert(Header { key: k.as_str(), value: v.as_deref() });
        }
        record = record.headers(owned);
        loop {
            match self.producer()?.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.wait_for_room(stop)?;
                }
                Err((e, _)) => return Err(kafka_error(Operation::Produce, &e).context(format!("can't send a record to topic `{topic}`"))),
            }
        }
        self.enqueued += 1;
        Ok(())
    }
}

/// What a Kafka sink keeps in its checkpoint's `sinks/0`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KafkaSinkSettings {
    /// The `avro-confluent` schema and its id.
    #[serde(rename = "valueSchema", default, skip_serializing_if = "Option::is_none")]
    value_schema: Option<RegisteredSchema>,
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        self.identity()
    }

    fn identity(&self) -> String {
        match &self.options.topic {
            Some(t) => format!("kafka[topic={t}]"),
            None => "kafka[topic column]".to_string(),
        }
    }

    fn settle(&mut self, log: &CheckpointLog) -> Result<()> {
        let saved = log.sink_settings::<KafkaSinkSettings>()?.unwrap_or_default();
        let Some(value_schema) = self.layout.value_encoding().settle(saved.value_schema.clone())? else { return Ok(()) };
        if saved.value_schema.as_ref() != Some(&value_schema) {
            log.write_sink_settings(&KafkaSinkSettings { value_schema: Some(value_schema) })?;
        }
        Ok(())
    }

    fn connect(&mut self, status: &SharedStatus, query_id: &str) -> Result<()> {
        let log = ClientLog::new("producer", Some(status.clone()));
        let context = DeliveryCounter { deliveries: self.deliveries.clone(), log: log.clone() };
        let transactional_id = format!("streamlyr-{query_id}");
        let mut defaults = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("client.id", self.client_id.as_str()),
            ("linger.ms", self.linger_ms),
            ("compression.type", "none"),
            // Java's default: a key lands where any Kafka client would put it.
            ("partitioner", "murmur2_random"),
        ];
        let mut manages = vec![];
        if self.exactly_once() {
            // The options parser refused any other value of these from the user.
            manages.extend([("enable.idempotence", "true"), ("acks", "all"), ("transactional.id", transactional_id.as_str())]);
            // In a group, a dead member's open transaction also holds its
            // partitions' offsets until this ends (Kafka Streams sets 10 s; a
            // batch must commit within it, so we keep 60 s unless told).
            defaults.push(("transaction.timeout.ms", "60000"));
        }
        let producer: ThreadedProducer<DeliveryCounter> = self
            .options
            .client
            .to_rdkafka(&defaults, &manages)
            .create_with_context(context)
            .map_err(|e| Error::config("options", format!("the Kafka producer settings are not valid: {e}")))?;
        producer
            .client()
            .fetch_metadata(self.options.topic.as_deref(), CONNECT_TIMEOUT)
            .map_err(|e| log.unreachable(self.options.client.bootstrap_servers(), CONNECT_TIMEOUT.as_secs(), &e))?;
        if self.exactly_once() {
            // Fences producers of an earlier run of this query and aborts their open transaction.
            producer.init_transactions(TRANSACTION_TIMEOUT).map_err(|e| transaction_error("start", &e))?;
            match &self.group {
                Some(link) => link.set_transactional(),
                None => {
                    let group = format!("streamlyr-eos-{query_id}");
                    let consumer: BaseConsumer = self
                        .options
                        .client
                        .to_rdkafka(
                            &[],
                            &[("group.id", group.as_str()), ("enable.auto.commit", "false"), ("isolation.level", "read_committed")],
                        )
                        .create()
                        .map_err(|e| Error::config("options", format!("the Kafka consumer settings are not valid: {e}")))?;
                    self.marker_group = Some(consumer);
                }
            }
        }
        self.topics.clear();
        self.producer = Some(producer);
        self.status = Some(status.clone());
        if let Some(topic) = self.options.topic.clone() {
            // A missing topic fails the stream at start, in the R call that started it.
            self.open_topic(&topic)?;
        }
        Ok(())
    }

    fn begin(&mut self, _batch: u64) -> Result<()> {
        // With exactly-once the transaction begins with the first record
        // (`open_transaction`): an epoch or batch that writes nothing costs
        // Kafka nothing.
        self.batch_topic = self.options.topic.clone();
        // Still open here only if its abort failed: end it before this batch writes.
        self.abort()?;
        Ok(())
    }

    fn write(&mut self, chunk: &RecordBatch, stop: &StopSignal) -> Result<u64> {
        // A copy, so records can borrow it while the sink sends them.
        let layout = self.layout.clone();
        let before = self.enqueued;
        if !layout.encodes_values() || chunk.num_rows() <= JSON_PIPELINE_ROWS {
            let records = ChunkRecords::new(&layout, chunk, self.rows_in_batch)?;
            self.send_records(&records, stop)?;
        } else {
            // Values are made on a second thread, a slice ahead of the records being sent.
            std::thread::scope(|scope| {
                let (ready, slices) = std::sync::mpsc::sync_channel(1);
                let layout = &layout;
                scope.spawn(move || {
                    for start in (0..chunk.num_rows()).step_by(JSON_PIPELINE_ROWS) {
                        let slice = chunk.slice(start, JSON_PIPELINE_ROWS.min(chunk.num_rows() - start));
                        let values = layout.encoded_values(&slice);
                        if ready.send((slice, values)).is_err() {
                            return; // the sender stopped on an error
                        }
                    }
                });
                let mut first_row = self.rows_in_batch;
                for (slice, values) in slices {
                    let records = ChunkRecords::with_values(layout, &slice, first_row, values?)?;
                    self.send_records(&records, stop)?;
                    first_row += slice.num_rows() as u64;
                }
                Ok::<_, Error>(())
            })?;
        }
        self.rows_in_batch += chunk.num_rows() as u64;
        Ok(self.enqueued - before)
    }

    fn flush(&mut self, stop: &StopSignal, status: &SharedStatus) -> Result<()> {
        let producer = match self.producer.as_ref() {
            Some(p) => p,
            None => return Ok(()),
        };
        let started = Instant::now();
        loop {
            let done = self.deliveries.settled();
            if done >= self.enqueued {
                break;
            }
            if let Some((code, reason)) = producer.client().fatal_error() {
                // librdkafka's fatal errors end the producer: permanent.
                return Err(Error::kafka(format!("the Kafka producer failed for good ({code:?}): {reason}")));
            }
            stop.check_abort()?;
            if started.elapsed() > Duration::from_secs(2) {
                status.set_message(format!(
                    "Waiting for Kafka to acknowledge {} records",
                    self.enqueued.saturating_sub(done)
                ));
            }
            self.deliveries.flush_slice(producer, self.enqueued);
        }
        self.rows_in_batch = 0;
        let failed = self.deliveries.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let first = self.deliveries.first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
            // Keep the totals consistent for the next batch.
            self.enqueued -= failed;
            let (reason, transient) = first.unwrap_or_else(|| ("unknown error".into(), false));
            let error = Error::kafka(format!("Kafka did not accept {failed} record(s) of the batch: {reason}"));
            return Err(if transient { error.retriable() } else { error });
        }
        Ok(())
    }

    fn commit(&mut self, batch: u64, read: &Positions, log: &CheckpointLog) -> Result<()> {
        let read_something = matches!(read, Positions::Kafka(ends) if ends.values().any(|ps| !ps.is_empty()));
        if self.group.is_some() && self.exactly_once() && read_something {
            self.open_transaction()?;
        }
        if !self.in_transaction {
            return Ok(());
        }
        let (marker, tpl) = self.transaction_offsets(batch, read)?;
        let metadata = match &self.group {
            // Fresh at each commit: a rebalance since the last one changed it.
            Some(link) => link.group_metadata()?,
            None => self
                .marker_group
                .as_ref()
                .and_then(|c| c.group_metadata())
                .ok_or_else(|| Error::internal("exactly-once sink without its marker group"))?,
        };
        let producer = self.producer()?;
        producer.send_offsets_to_transaction(&tpl, &metadata, TRANSACTION_TIMEOUT).map_err(|e| {
            match code_of(&e).filter(|_| self.group.is_some()) {
                // The engine aborts the transaction and plans again with what the group gives it now.
                Some(code) if is_left_behind_by_group(code) => Error::rebalanced(),
                _ => transaction_error("recording the batch", &e),
            }
        })?;
        if self.group.is_none() {
            log.write_pending(batch, &marker)?;
        }
        let mut tries = 0;
        loop {
            match producer.commit_transaction(TRANSACTION_TIMEOUT) {
                Ok(()) => break,
                // librdkafka: a retriable commit error may still commit in the background;
                // calling commit again finishes it (an abort instead would race it).
                Err(KafkaError::Transaction(t)) if t.is_retriable() && !t.txn_requires_abort() && tries < 3 => tries += 1,
                Err(e) => return Err(transaction_error("commit", &e)),
            }
        }
        self.in_transaction = false;
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        // Still in a transaction until the abort succeeds: a failed abort is tried again.
        self.producer()?.abort_transaction(TRANSACTION_TIMEOUT).map_err(|e| transaction_error("abort", &e))?;
        self.in_transaction = false;
        let producer = self.producer()?;
        // The aborted records' delivery reports are errors that belong to no batch: wait for them, forget them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.deliveries.settled() < self.enqueued
            && Instant::now() < deadline
        {
            self.deliveries.flush_slice(producer, self.enqueued);
        }
        let failed = self.deliveries.failed.swap(0, Ordering::Relaxed);
        self.enqueued = self.enqueued.saturating_sub(failed);
        *self.deliveries.first_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.rows_in_batch = 0;
        Ok(())
    }

    fn was_committed(&mut self, batch: u64, log: &CheckpointLog) -> Result<bool> {
        let consumer = match self.marker_group.as_ref() {
            Some(c) => c,
            None => return Ok(false),
        };
        let marker: Marker = match log.pending(batch)? {
            Some(m) => m,
            None => return Ok(false),
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&marker.topic, marker.partition);
        let committed = consumer
            .committed_offsets(tpl, TRANSACTION_TIMEOUT)
            .map_err(|e| kafka_error(Operation::Request, &e).context("can't read which batches Kafka committed"))?;
        let Some(entry) = committed.find_partition(&marker.topic, marker.partition) else { return Ok(false) };
        if marker.input {
            return Ok(metadata_batch(entry.metadata()).is_some_and(|b| b >= batch));
        }
        Ok(matches!(entry.offset(), Offset::Offset(o) if o >= marker.offset))
    }
}
