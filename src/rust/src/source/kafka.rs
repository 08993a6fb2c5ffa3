//! The Kafka source, with Spark's semantics.
//!
//! Runtime model: one librdkafka consumer, assigned (never subscribed: the
//! checkpoint, not a consumer group, owns the offsets) to every partition of
//! the subscription; or, with `scaleOut = "group"`, subscribed in a consumer
//! group that shares the partitions between processes and keeps their
//! offsets (see `kafka::group`: then each batch covers the partitions this
//! process owns, from where the group says they stand). It keeps fetching
//! in librdkafka's background threads, so the next batch is usually
//! already in memory. A batch is planned from the
//! partitions' high watermarks (capped by `maxOffsetsPerTrigger`), recorded,
//! then read until every partition reaches its end offset. Records fetched
//! beyond a batch's end are kept for the next one instead of seeking back,
//! which would throw librdkafka's prefetch away.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use super::consume_batch::{Consumed, ConsumedRecord, ConsumerQueue};
use super::{Positions, Scope, Source, CHUNK_ROWS};
use crate::engine::status::{PartitionLag, SharedStatus};
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::kafka::client_log::ClientLog;
use crate::kafka::config::{KafkaSourceOptions, OffsetMap, StartingOffsets, Subscription};
use crate::kafka::errors::{kafka_error, Operation};
use crate::kafka::group::{resolve_starts, GroupLink, Membership, ReaderContext, TopicPartition};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const METADATA_REFRESH: Duration = Duration::from_secs(1);
const POLL_SLICE: Duration = Duration::from_millis(100);
/// Records taken from the consumer per call outside a group (`consume_batch`).
const CONSUME_BATCH: usize = 1024;
/// Records kept while idling between triggers in a group, before the
/// partitions are paused until the next batch.
const IDLE_PENDING_LIMIT: usize = 4 * CHUNK_ROWS;
/// How long librdkafka waits to fetch again once its queue for a partition
/// is full (`queued.min.messages`). Its default, 1 s, stalled every batch
/// that read faster than it converted: P2 (1M records in one batch) took
/// 5.5-8.1 s with it and 1.8-2.3 s with 10-50 ms (bench/README.md). The cost:
/// while a queue stays full (a backlog between triggers), its broker thread
/// looks again every 10 ms, with no extra request or memory. A user's
/// `kafka.fetch.queue.backoff.ms` wins.
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// A poll's error, if it ends the stream; librdkafka retries the rest by
/// itself (and its error callback reported them).
fn consumer_failure(e: &rdkafka::error::KafkaError) -> Option<Error> {
    (!crate::kafka::errors::is_retriable(Operation::Request, e)).then(|| kafka_error(Operation::Request, e).context("the Kafka consumer failed"))
}

/// One poll of the consumer, as every reading loop does it: a record, or
/// none (the timeout passed, a rebalance or a retriable error was served),
/// or the error that ends the stream.
fn poll_record(consumer: &BaseConsumer<ReaderContext>, timeout: Duration) -> Result<Option<BorrowedMessage<'_>>> {
    match consumer.poll(timeout) {
        Some(Ok(m)) => Ok(Some(m)),
        Some(Err(e)) => consumer_failure(&e).map_or(Ok(None), Err),
        None => Ok(None),
    }
}

/// Records `from` up to `until` of `tp` are gone: the error `failOnDataLoss` asks for.
fn data_lost(from: i64, until: i64, tp: &TopicPartition, what: &str) -> Error {
    Error::kafka(format!("records {from} to {} of {}-{} {what}", until - 1, tp.0, tp.1))
        .with_hint("set `failOnDataLoss = \"false\"` to skip them")
}

/// A consumer of the source (shared with a transactional sink in a group).
type Reader = Arc<BaseConsumer<ReaderContext>>;

/// Per-partition state looked up for every record read: hashed with Fx,
/// not SipHash (about 6% of the query thread in P2's profile). The keys are
/// the subscription's own partitions, so a hash-flooding defence buys nothing.
type PartitionMap<V> = HashMap<TopicPartition, V, rustc_hash::FxBuildHasher>;

/// Spark's schema of a Kafka source.
pub fn kafka_schema(include_headers: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())), true),
        Field::new("timestampType", DataType::Int32, false),
    ];
    if include_headers {
        fields.push(Field::new("headers", headers_type(), true));
    }
    Arc::new(Schema::new(fields))
}

pub fn header_fields() -> Fields {
    Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Binary, true)])
}

pub fn headers_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(header_fields()), true)))
}

/// The Kafka offsets in `positions` (a checkpoint of this source holds no other kind).
fn offsets_of(positions: &Positions) -> Result<&OffsetMap> {
    match positions {
        Positions::Kafka(map) => Ok(map),
        other => Err(Error::checkpoint(format!("the checkpoint holds positions of another source ({other:?}), not Kafka offsets"))),
    }
}

/// A record read past the end of a batch, kept for the next one.
struct Pending {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    timestamp_type: i32,
    headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

/// This process's part in a consumer group (`scaleOut = "group"`).
struct GroupPart {
    membership: Arc<Membership>,
    link: Arc<GroupLink>,
    /// Where the next batch starts, per owned partition.
    next: BTreeMap<TopicPartition, i64>,
    /// The membership's generation when the batch being read was planned.
    planned: u64,
    /// The last batch failed: ask the group where the owned partitions stand.
    rewind: bool,
    /// Topics the consumer is subscribed to.
    subscribed: Vec<String>,
}

pub(crate) struct KafkaSource {
    options: KafkaSourceOptions,
    query_id: String,
    consumer: Option<Reader>,
    /// The consumer's queue, read in batches when not in a group (see `consume_batch`).
    batch_queue: Option<ConsumerQueue<Reader>>,
    /// Metadata and watermark queries go through a second client, on its own
    /// connections: Kafka answers one request per connection at a time, so
    /// behind the reader's fetch long-poll they would wait up to
    /// `fetch.wait.max.ms` (500 ms) each batch.
    offsets: Option<Reader>,
    log: ClientLog,
    status: Option<SharedStatus>,
    group: Option<GroupPart>,
    partitions: Vec<TopicPartition>,
    partitions_refreshed: Option<Instant>,
    /// Where the consumer will deliver from next, per assigned partition.
    assigned: PartitionMap<i64>,
    pending: VecDeque<Pending>,
    /// Records of the batch being read whose key or value could not be decoded.
    malformed: u64,
}

impl KafkaSource {
    /// `link` is shared with the sink in group mode (see `kafka::group`).
    pub(crate) fn new(options: KafkaSourceOptions, query_id: &str, link: Option<Arc<GroupLink>>) -> Self {
        let group = options.group.as_ref().map(|_| GroupPart {
            membership: Arc::default(),
            link: link.unwrap_or_default(),
            next: BTreeMap::new(),
            planned: 0,
            rewind: false,
            subscribed: Vec::new(),
        });
        KafkaSource {
            options,
            query_id: query_id.to_string(),
            consumer: None,
            batch_queue: None,
            offsets: None,
            log: ClientLog::new("consumer", None),
            status: None,
            group,
            partitions: Vec::new(),
            partitions_refreshed: None,
            assigned: PartitionMap::default(),
            pending: VecDeque::new(),
            malformed: 0,
        }
    }

    /// A chunk of records as the stream's rows: keys and values decoded
    /// where the options give them a format.
    fn rows_of(&mut self, records: RecordBatch) -> Result<RecordBatch> {
        let Some(decoding) = &self.options.decoding else { return Ok(records) };
        let (rows, malformed) = decoding.decode(records, &self.options.schema)?;
        self.malformed += malformed;
        Ok(rows)
    }

    fn consumer(&self) -> Result<&BaseConsumer<ReaderContext>> {
        connected(&self.consumer)
    }

    fn offsets_client(&self) -> Result<&BaseConsumer<ReaderContext>> {
        connected(&self.offsets)
    }

    /// Partitions of the subscription, from the cluster's metadata.
    ///
    /// Outside a group the reading consumer asks, and asks even for
    /// assigned partitions when `force`d (at connect), so that it knows who
    /// leads the partitions it will read. Assigned a partition whose leader
    /// it does not know, librdkafka (2.12) asks at once only if a broker
    /// connection is up, else on its once-a-second scan of topics: a fresh
    /// consumer's first batch waited up to a second for that
    /// (bench/README.md). In a group the group's consumer learns its own
    /// partitions, and the offsets client asks.
    fn refresh_partitions(&mut self, force: bool) -> Result<()> {
        if !force && self.partitions_refreshed.is_some_and(|t| t.elapsed() < METADATA_REFRESH) {
            return Ok(());
        }
        let client = match self.group {
            Some(_) => self.offsets_client()?,
            None => self.consumer()?,
        };
        let ask = |topic: Option<&str>| client.fetch_metadata(topic, METADATA_TIMEOUT).map_err(|e| self.unreachable(&e));
        let mut found = Vec::new();
        match &self.options.subscription {
            Subscription::Assign(map) => {
                for (topic, parts) in map {
                    if force {
                        ask(Some(topic))?;
                    }
                    found.extend(parts.iter().map(|p| (topic.clone(), *p)));
                }
            }
            Subscription::Topics(topics) => {
                for topic in topics {
                    for t in ask(Some(topic))?.topics() {
                        if t.error().is_none() {
                            found.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
                        }
                    }
                }
            }
            Subscription::Pattern(pattern) => {
                for t in ask(None)?.topics() {
                    if t.error().is_none() && !t.name().starts_with("__") && pattern.regex.is_match(t.name()) {
                        found.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
                    }
                }
            }
        }
        found.sort();
        self.partitions = found;
        self.partitions_refreshed = Some(Instant::now());
        Ok(())
    }

    fn unreachable(&self, e: &rdkafka::error::KafkaError) -> Error {
        self.log.unreachable(self.options.client.bootstrap_servers(), METADATA_TIMEOUT.as_secs(), e)
    }

    fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)> {
        self.offsets_client()?
            .fetch_watermarks(&tp.0, tp.1, METADATA_TIMEOUT)
            .map_err(|e| kafka_error(Operation::Request, &e).context(format!("can't read the offsets of {}-{}", tp.0, tp.1)))
    }

    /// Point the consumer at `start` for every partition of the batch,
    /// keeping assignments that are already there (and their prefetch).
    fn position_consumer(&mut self, start: &OffsetMap) -> Result<()> {
        let mut wanted: PartitionMap<i64> = PartitionMap::default();
        for (topic, parts) in start {
            for (p, off) in parts {
                wanted.insert((topic.clone(), *p), *off);
            }
        }
        // The consumer may be ahead of `start` by exactly the records kept in `pending`.
        let next_delivered = |tp: &TopicPartition| {
            let kept = self.pending.iter().filter(|r| r.topic == tp.0 && r.partition == tp.1).map(|r| r.offset).min();
            kept.or_else(|| self.assigned.get(tp).copied())
        };
        if self.group.is_some() {
            // The group assigned the partitions; moving within them is a seek.
            let moved: Vec<(TopicPartition, i64)> =
                wanted.iter().filter(|(tp, off)| next_delivered(tp) != Some(**off)).map(|(tp, off)| (tp.clone(), *off)).collect();
            if moved.is_empty() {
                return Ok(());
            }
            let mut tpl = TopicPartitionList::new();
            for ((topic, p), off) in &moved {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*off)).map_err(|e| kafka_error(Operation::Request, &e))?;
            }
            let sought = self.consumer()?.seek_partitions(tpl, METADATA_TIMEOUT).map_err(|e| kafka_error(Operation::Request, &e))?;
            if let Some(e) = sought.elements().iter().find_map(|el| el.error().err()) {
                return Err(kafka_error(Operation::Request, &e).context("can't move to where the batch starts"));
            }
            for (tp, off) in moved {
                // The consumer delivers these again from `off`.
                self.pending.retain(|r| !(r.topic == tp.0 && r.partition == tp.1));
                self.assigned.insert(tp, off);
            }
            return Ok(());
        }
        let unchanged = wanted.len() == self.assigned.len()
            && wanted.iter().all(|(tp, off)| next_delivered(tp) == Some(*off));
        if unchanged {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), off) in &wanted {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*off)).map_err(|e| kafka_error(Operation::Request, &e))?;
        }
        self.consumer()?.assign(&tpl).map_err(|e| kafka_error(Operation::Request, &e).context("can't assign the partitions to read"))?;
        // The consumer delivers every partition again from `wanted`: what was kept would come twice.
        self.pending.clear();
        self.assigned = wanted;
        Ok(())
    }

}

/// A client of the source, once `connect()` made it (a field borrow, so
/// the other fields stay free while a message borrows the consumer).
fn connected(client: &Option<Reader>) -> Result<&BaseConsumer<ReaderContext>> {
    client.as_deref().ok_or_else(|| Error::internal("Kafka source used before connect()"))
}

fn keep_pending(pending: &mut VecDeque<Pending>, m: &impl ConsumedRecord) {
    let (timestamp, timestamp_type) = m.timestamp();
    pending.push_back(Pending {
        key: m.key().map(<[u8]>::to_vec),
        value: m.value().map(<[u8]>::to_vec),
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp,
        timestamp_type,
        headers: m.headers().map(|h| h.into_iter().map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec))).collect()),
    });
}

/// The consumer delivered `m`: its partition continues after it. `last`
/// becomes `m`'s partition; it is the previous record's, and most records
/// are in the same partition as the record before, so they need no new key.
fn note_delivered(last: &mut TopicPartition, assigned: &mut PartitionMap<i64>, m: &impl ConsumedRecord) {
    if last.1 != m.partition() || last.0 != m.topic() {
        *last = (m.topic().to_string(), m.partition());
    }
    if let Some(next) = assigned.get_mut(last) {
        *next = m.offset() + 1;
    }
}

/// A record met while reading continuously: appended when at or past the
/// position reached in its partition (what is before was read already).
fn take_available(
    m: &impl ConsumedRecord,
    last: &mut TopicPartition,
    assigned: &mut PartitionMap<i64>,
    at: &mut OffsetMap,
    rows: &mut RowBuilder,
) {
    note_delivered(last, assigned, m);
    if let Some(next) = at.get_mut(&last.0).and_then(|ps| ps.get_mut(&last.1)) {
        if m.offset() >= *next {
            rows.append_record(m);
            *next = m.offset() + 1;
        }
    }
}

/// A record met while reading a batch: appended when in the batch's range,
/// kept for the next batch when past it, dropped when before it (already
/// committed). `last` as in `note_delivered`.
fn take_record(
    m: &impl ConsumedRecord,
    last: &mut TopicPartition,
    assigned: &mut PartitionMap<i64>,
    remaining: &mut PartitionMap<(i64, i64)>,
    end: &OffsetMap,
    rows: &mut RowBuilder,
    pending: &mut VecDeque<Pending>,
) {
    note_delivered(last, assigned, m);
    match remaining.get(last).copied() {
        Some((s, e)) if m.offset() >= s && m.offset() < e => {
            rows.append_record(m);
            if m.offset() >= e - 1 {
                remaining.remove(last);
            }
        }
        Some((_, e)) if m.offset() >= e => keep_pending(pending, m),
        None if end.get(&last.0).and_then(|ps| ps.get(&last.1)).is_some_and(|e| m.offset() >= *e) => keep_pending(pending, m),
        _ => {}
    }
}

/// Arrow builders for the source schema.
struct RowBuilder {
    key: BinaryBuilder,
    value: BinaryBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    timestamp_type: Int32Builder,
    headers: Option<ListBuilder<StructBuilder>>,
    schema: SchemaRef,
    len: usize,
}

impl RowBuilder {
    fn new(schema: SchemaRef, include_headers: bool) -> Self {
        let headers = include_headers.then(|| {
            ListBuilder::new(StructBuilder::from_fields(header_fields(), 0))
                .with_field(Arc::new(Field::new("item", DataType::Struct(header_fields()), true)))
        });
        RowBuilder {
            key: BinaryBuilder::new(),
            value: BinaryBuilder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMillisecondBuilder::new().with_timezone("+00:00"),
            timestamp_type: Int32Builder::new(),
            headers,
            schema,
            len: 0,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn append<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: Option<i64>,
        timestamp_type: i32,
        headers: Option<impl Iterator<Item = (&'h str, Option<&'h [u8]>)>>,
    ) {
        self.key.append_option(key);
        self.value.append_option(value);
        self.topic.append_value(topic);
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.timestamp.append_option(timestamp);
        self.timestamp_type.append_value(timestamp_type);
        if let Some(hb) = self.headers.as_mut() {
            match headers {
                None => hb.append(false),
                Some(hs) => {
                    for (k, v) in hs {
                        let s = hb.values();
                        s.field_builder::<StringBuilder>(0).expect("key").append_value(k);
                        s.field_builder::<BinaryBuilder>(1).expect("value").append_option(v);
                        s.append(true);
                    }
                    hb.append(true);
                }
            }
        }
        self.len += 1;
    }

    fn append_record(&mut self, m: &impl ConsumedRecord) {
        // librdkafka parses a record's headers on demand, allocating: only when asked for.
        let headers = if self.headers.is_some() { m.headers() } else { None };
        let (timestamp, timestamp_type) = m.timestamp();
        self.append(
            m.key(),
            m.value(),
            m.topic(),
            m.partition(),
            m.offset(),
            timestamp,
            timestamp_type,
            headers.map(|h| h.into_iter()),
        );
    }

    fn append_pending(&mut self, r: &Pending) {
        self.append(
            r.key.as_deref(),
            r.value.as_deref(),
            &r.topic,
            r.partition,
            r.offset,
            r.timestamp,
            r.timestamp_type,
            r.headers.as_ref().map(|h| h.iter().map(|(k, v)| (k.as_str(), v.as_deref()))),
        );
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.timestamp_type.finish()),
        ];
        if let Some(h) = self.headers.as_mut() {
            columns.push(Arc::new(h.finish()));
        }
        self.len = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl Source for KafkaSource {
    fn describe(&self) -> String {
        self.identity()
    }

    fn identity(&self) -> String {
        let what = match &self.options.subscription {
            Subscription::Topics(t) => format!("subscribe={}", t.join(",")),
            Subscription::Pattern(p) => format!("subscribePattern={}", p.text),
            Subscription::Assign(a) => format!("assign={}", serde_json::to_string(a).unwrap_or_default()),
        };
        match &self.options.group {
            Some(g) => format!("kafka[{what};group={}]", g.group_id),
            None => format!("kafka[{what}]"),
        }
    }

    fn scope(&self) -> Scope {
        match &self.options.group {
            Some(g) => Scope::Shared { instance: g.instance_id.clone() },
            None => Scope::Whole,
        }
    }

    fn schema(&self) -> SchemaRef {
        self.options.schema.clone()
    }

    fn take_malformed(&mut self) -> u64 {
        std::mem::take(&mut self.malformed)
    }

    fn connect(&mut self, status: &SharedStatus) -> Result<()> {
        self.log = ClientLog::new("consumer", Some(status.clone()));
        self.status = Some(status.clone());
        let own_group = format!("streamlyr-source-{}", self.query_id);
        let mut managed = vec![
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            // Partitions start at offsets the source chose, except in a group
            // when the group's offsets could not be read (see `kafka::group`).
            ("auto.offset.reset", if self.options.starting_offsets == StartingOffsets::Latest { "latest" } else { "earliest" }),
        ];
        match &self.options.group {
            Some(g) => managed.extend(g.managed()),
            // Assigned, never subscribed: the group id only names the client to the broker.
            None => managed.push(("group.id", own_group.as_str())),
        }
        let client = |client_id: &str, context: ReaderContext| -> Result<Reader> {
            self.options
                .client
                .to_rdkafka(&[("client.id", client_id), ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)], &managed)
                .create_with_context(context)
                .map(Arc::new)
                .map_err(|e| Error::config("options", format!("the Kafka consumer settings are not valid: {e}")))
        };
        let context = match &self.group {
            Some(g) => ReaderContext::in_group(self.log.clone(), g.membership.clone(), self.options.starting_offsets.clone()),
            None => ReaderContext::new(self.log.clone()),
        };
        let consumer = client("streamlyr", context)?;
        self.offsets = Some(client("streamlyr-offsets", ReaderContext::new(self.log.clone()))?);
        match &self.group {
            Some(g) => g.link.set_consumer(consumer.clone()),
            None => self.batch_queue = ConsumerQueue::new(consumer.clone()),
        }
        self.consumer = Some(consumer);
        self.refresh_partitions(true)?;
        if self.group.is_some() {
            self.follow_subscription()?;
        }
        Ok(())
    }

    fn initial_positions(&mut self) -> Result<Positions> {
        let mut start = OffsetMap::new();
        if self.group.is_none() {
            for tp in self.partitions.clone() {
                let (low, high) = self.watermarks(&tp)?;
                start.entry(tp.0.clone()).or_default().insert(tp.1, self.options.starting_offsets.resolve(&tp, low, high));
            }
        }
        Ok(Positions::Kafka(start))
    }

    fn rewind(&mut self) {
        if let Some(g) = &mut self.group {
            g.rewind = true;
        }
    }

    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        self.refresh_partitions(false)?;
        let (partitions, known) = match self.group.is_some() {
            false => (self.partitions.clone(), offsets_of(start)?.clone()),
            true => {
                let next = self.follow_group()?;
                let mut known = OffsetMap::new();
                for ((t, p), o) in &next {
                    known.entry(t.clone()).or_default().insert(*p, *o);
                }
                (next.into_keys().collect(), known)
            }
        };
        let mut from = OffsetMap::new();
        let mut until = OffsetMap::new();
        let mut available: Vec<(TopicPartition, i64, i64)> = Vec::new();
        for tp in partitions {
            let (low, high) = self.watermarks(&tp)?;
            // A partition that appeared after the query started is read from its beginning, as in Spark.
            let mut s = known.get(&tp.0).and_then(|ps| ps.get(&tp.1)).copied().unwrap_or(low);
            if s < low {
                if self.options.fail_on_data_loss {
                    return Err(data_lost(s, low, &tp, "were deleted before they were read"));
                }
                s = low;
            }
            if high < s {
                if self.options.fail_on_data_loss {
                    return Err(Error::kafka(format!(
                        "the offsets of {}-{} went back from {s} to {high}: the topic was deleted or recreated",
                        tp.0, tp.1
                    ))
                    .with_hint("set `failOnDataLoss = \"false\"` to start over from its current end"));
                }
                s = high;
            }
            available.push((tp, s, high));
        }
        // Keep positions of partitions no longer listed (deleted topics) so
        // they are not forgotten; in a group, the group keeps them.
        for (t, ps) in known.iter().filter(|_| self.group.is_none()) {
            for (p, o) in ps {
                if !available.iter().any(|(tp, _, _)| tp.0 == *t && tp.1 == *p) {
                    from.entry(t.clone()).or_default().insert(*p, *o);
                    until.entry(t.clone()).or_default().insert(*p, *o);
                }
            }
        }
        let total: i64 = available.iter().map(|(_, s, h)| h - s).sum();
        // maxOffsetsPerTrigger is split across partitions in proportion to what they have, as Spark does.
        let cap = self.options.max_offsets_per_trigger.map(|m| m as i64).filter(|m| *m < total);
        let mut lags = Vec::with_capacity(available.len());
        for (tp, s, h) in available {
            let take = match cap {
                None => h - s,
                Some(m) => ((h - s) as f64 * m as f64 / total as f64).floor().max(if h > s { 1.0 } else { 0.0 }) as i64,
            };
            let end = s + take.min(h - s);
            lags.push(PartitionLag { topic: tp.0.clone(), partition: tp.1, offset: end, lag: h - end });
            from.entry(tp.0.clone()).or_default().insert(tp.1, s);
            until.entry(tp.0).or_default().insert(tp.1, end);
        }
        if let Some(status) = &self.status {
            status.set_partitions(lags);
        }
        if total == 0 {
            return Ok(None);
        }
        Ok(Some((Positions::Kafka(from), Positions::Kafka(until))))
    }

    fn read(
        &mut self,
        start: &Positions,
        end: &Positions,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (start, end) = (offsets_of(start)?, offsets_of(end)?);
        self.position_consumer(start)?;
        let mut remaining: PartitionMap<(i64, i64)> = PartitionMap::default();
        for (t, ps) in end {
            for (p, e) in ps {
                let s = start.get(t).and_then(|x| x.get(p)).copied().unwrap_or(*e);
                if s < *e {
                    remaining.insert((t.clone(), *p), (s, *e));
                }
            }
        }
        let mut rows = RowBuilder::new(kafka_schema(self.options.include_headers), self.options.include_headers);

        // Records fetched earlier, past the previous batch's end.
        let mut carried = VecDeque::new();
        std::mem::swap(&mut carried, &mut self.pending);
        for r in carried {
            let tp = (r.topic.clone(), r.partition);
            match remaining.get(&tp).copied() {
                Some((s, e)) if r.offset >= s && r.offset < e => {
                    rows.append_pending(&r);
                    if r.offset >= e - 1 {
                        remaining.remove(&tp);
                    }
                }
                Some((_, e)) if r.offset >= e => self.pending.push_back(r),
                None if end.get(&r.topic).and_then(|ps| ps.get(&r.partition)).is_some_and(|e| r.offset >= *e) => {
                    self.pending.push_back(r)
                }
                _ => {} // already part of a committed batch
            }
            if rows.len >= CHUNK_ROWS {
                emit(self.rows_of(rows.finish()?)?)?;
            }
        }

        // Per record, no clock read and no allocation (the profile in
        // bench/README.md): progress is timed when the consumer goes idle, and
        // the record's partition is compared with the last one's.
        let mut last_progress = Instant::now();
        let mut progressed = false;
        let mut tp: TopicPartition = (String::new(), -1);
        let mut consumed = Consumed::default();
        while !remaining.is_empty() {
            stop.check_abort()?;
            self.check_generation()?;
            let mut took = false;
            if let Some(queue) = &self.batch_queue {
                queue.take(&mut consumed, POLL_SLICE, CONSUME_BATCH);
                let mut errored = Vec::new();
                for m in consumed.records() {
                    if let Some(e) = m.error() {
                        if let Some(failure) = consumer_failure(&e) {
                            return Err(failure);
                        }
                        errored.push((m.topic().to_string(), m.partition()));
                        continue;
                    }
                    took = true;
                    take_record(&m, &mut tp, &mut self.assigned, &mut remaining, end, &mut rows, &mut self.pending);
                    if rows.len >= CHUNK_ROWS {
                        emit(self.rows_of(rows.finish()?)?)?;
                    }
                }
                self.seek_back(errored)?;
            } else if let Some(m) = poll_record(connected(&self.consumer)?, POLL_SLICE)? {
                took = true;
                take_record(&m, &mut tp, &mut self.assigned, &mut remaining, end, &mut rows, &mut self.pending);
                drop(m);
                if rows.len >= CHUNK_ROWS {
                    emit(self.rows_of(rows.finish()?)?)?;
                }
            }
            if took {
                progressed = true;
                continue;
            }
            if std::mem::take(&mut progressed) {
                last_progress = Instant::now();
            }
            // Transaction markers and compacted-away records leave gaps: the
            // consumer's position says when a partition's range is done.
            if let Ok(positions) = connected(&self.consumer)?.position() {
                for el in positions.elements() {
                    if let Offset::Offset(pos) = el.offset() {
                        let tp = (el.topic().to_string(), el.partition());
                        // Past the gap, the consumer delivers from `pos` (the next batch
                        // starting there must not re-assign and lose the prefetch).
                        if let Some(next) = self.assigned.get_mut(&tp) {
                            *next = (*next).max(pos);
                        }
                        if remaining.get(&tp).is_some_and(|(_, e)| pos >= *e) {
                            remaining.remove(&tp);
                        }
                    }
                }
            }
            if last_progress.elapsed() > Duration::from_secs(5) {
                // The records may be gone (retention) while we waited.
                for (tp, (s, e)) in remaining.clone() {
                    let (low, high) = self.watermarks(&tp)?;
                    if low >= e || high < e {
                        if self.options.fail_on_data_loss {
                            return Err(data_lost(s, e, &tp, "are no longer in Kafka"));
                        }
                        remaining.remove(&tp);
                    }
                }
                last_progress = Instant::now();
            }
        }
        if rows.len > 0 {
            emit(self.rows_of(rows.finish()?)?)?;
        }
        Ok(())
    }

    fn read_available(
        &mut self,
        position: &Positions,
        wait: Duration,
        stop: &StopSignal,
        emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<Positions> {
        self.refresh_partitions(false)?;
        let mut at = offsets_of(position)?.clone();
        for tp in self.partitions.clone() {
            if !at.get(&tp.0).is_some_and(|ps| ps.contains_key(&tp.1)) {
                // A partition that appeared while running is read from its beginning, as in Spark.
                let (low, _) = self.watermarks(&tp)?;
                at.entry(tp.0.clone()).or_default().insert(tp.1, low);
            }
        }
        self.position_consumer(&at)?;
        let mut rows = RowBuilder::new(kafka_schema(self.options.include_headers), self.options.include_headers);
        let mut carried = VecDeque::new();
        std::mem::swap(&mut carried, &mut self.pending);
        for r in carried {
            if let Some(next) = at.get_mut(&r.topic).and_then(|ps| ps.get_mut(&r.partition)) {
                if r.offset >= *next {
                    rows.append_pending(&r);
                    *next = r.offset + 1;
                }
            }
        }
        let deadline = Instant::now() + wait;
        let mut last: TopicPartition = (String::new(), -1);
        let mut consumed = Consumed::default();
        while rows.len < CHUNK_ROWS && !stop.is_set() {
            // Wait only for the first record; then take what is already there.
            let timeout = if rows.len == 0 { POLL_SLICE.min(deadline.saturating_duration_since(Instant::now())) } else { Duration::ZERO };
            // Outside a group many records per call, as `read` takes them.
            let took = match &self.batch_queue {
                Some(queue) => {
                    queue.take(&mut consumed, timeout, CHUNK_ROWS - rows.len);
                    let mut errored = Vec::new();
                    let mut took = false;
                    for m in consumed.records() {
                        if let Some(e) = m.error() {
                            if let Some(failure) = consumer_failure(&e) {
                                return Err(failure);
                            }
                            errored.push((m.topic().to_string(), m.partition()));
                            continue;
                        }
                        took = true;
                        take_available(&m, &mut last, &mut self.assigned, &mut at, &mut rows);
                    }
                    self.seek_back(errored)?;
                    took
                }
                None => match poll_record(connected(&self.consumer)?, timeout)? {
                    Some(m) => {
                        take_available(&m, &mut last, &mut self.assigned, &mut at, &mut rows);
                        true
                    }
                    None => false,
                },
            };
            if !took && (rows.len > 0 || Instant::now() >= deadline) {
                break;
            }
        }
        if rows.len > 0 {
            emit(self.rows_of(rows.finish()?)?)?;
        }
        Ok(Positions::Kafka(at))
    }

    fn wait_for_data(&mut self, timeout: Duration, stop: &StopSignal) -> Result<()> {
        if self.group.is_none() && (!self.pending.is_empty() || self.assigned.is_empty()) {
            stop.wait(timeout);
            return Ok(());
        }
        // Wait on the consumer itself, so a record that arrives wakes us at once.
        self.poll_meanwhile(timeout, stop, true)
    }

    fn idle(&mut self, timeout: Duration, stop: &StopSignal) -> Result<()> {
        match self.group {
            Some(_) => self.poll_meanwhile(timeout, stop, false),
            None => {
                stop.wait(timeout);
                Ok(())
            }
        }
    }

    fn committed(&mut self, end: &Positions, status: &SharedStatus) {
        let (Some(g), Positions::Kafka(ends)) = (&mut self.group, end) else { return };
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in ends {
            for (&p, &offset) in partitions {
                let tp = (topic.clone(), p);
                if let Some(next) = g.next.get_mut(&tp) {
                    *next = offset;
                    let _ = tpl.add_partition_offset(topic, p, Offset::Offset(offset));
                }
            }
        }
        if g.link.is_transactional() || tpl.count() == 0 {
            return; // committed with the batch's transaction
        }
        // At-least-once: after the sink acknowledged every record. Not waited
        // for (a synchronous commit waits without end while the group has no
        // coordinator); one that fails means records read again, as promised.
        let committed = connected(&self.consumer).and_then(|c| {
            c.commit(&tpl, CommitMode::Async).map_err(|e| kafka_error(Operation::Request, &e))
        });
        if let Err(e) = committed {
            status.warn(format!("could not commit the batch's offsets to the group (its records may be read again): {e}"));
        }
    }
}

impl KafkaSource {
    /// Partitions that a consumer error moved past a record not delivered
    /// yet (`consume_batch`'s module doc) continue from the record expected.
    fn seek_back(&mut self, errored: Vec<TopicPartition>) -> Result<()> {
        for tp in errored {
            if let Some(&next) = self.assigned.get(&tp) {
                self.consumer()?
                    .seek(&tp.0, tp.1, Offset::Offset(next), METADATA_TIMEOUT)
                    .map_err(|e| kafka_error(Operation::Request, &e).context(format!("can't read {}-{} again from {next}", tp.0, tp.1)))?;
            }
        }
        Ok(())
    }

    /// A batch planned before the group took partitions away is void.
    fn check_generation(&self) -> Result<()> {
        match &self.group {
            Some(g) if g.membership.generation() != g.planned => Err(Error::rebalanced()),
            _ => Ok(()),
        }
    }

    /// Poll up to `timeout`, serving the group's rebalances and keeping
    /// what arrives for the next batch; a record ends the wait when
    /// `wake_on_record`, a rebalance always does. Past
    /// `IDLE_PENDING_LIMIT` records the partitions pause until the wait ends.
    fn poll_meanwhile(&mut self, timeout: Duration, stop: &StopSignal, wake_on_record: bool) -> Result<()> {
        let generation = self.group.as_ref().map(|g| g.membership.generation());
        let deadline = Instant::now() + timeout;
        let mut paused: Option<TopicPartitionList> = None;
        let mut last: TopicPartition = (String::new(), -1);
        while Instant::now() < deadline && !stop.is_set() {
            let slice = POLL_SLICE.min(deadline.saturating_duration_since(Instant::now()));
            let consumer = connected(&self.consumer)?;
            if let Some(m) = poll_record(consumer, slice)? {
                note_delivered(&mut last, &mut self.assigned, &m);
                keep_pending(&mut self.pending, &m);
                if wake_on_record {
                    break;
                }
                if paused.is_none() && self.pending.len() >= IDLE_PENDING_LIMIT {
                    let assignment = consumer.assignment().map_err(|e| kafka_error(Operation::Request, &e))?;
                    consumer.pause(&assignment).map_err(|e| kafka_error(Operation::Request, &e))?;
                    paused = Some(assignment);
                }
            }
            if generation.is_some_and(|g| self.group.as_ref().is_some_and(|now| now.membership.generation() != g)) {
                break;
            }
        }
        if let Some(assignment) = paused {
            // Partitions the group took away meanwhile are no longer ours to resume.
            let _ = connected(&self.consumer)?.resume(&assignment);
        }
        Ok(())
    }

    /// In a group: subscribe to the topics of the subscription (a pattern's
    /// as they appear: Java's regular expressions are matched here, not by
    /// librdkafka).
    fn follow_subscription(&mut self) -> Result<()> {
        let mut topics: Vec<String> = match &self.options.subscription {
            Subscription::Topics(t) => t.clone(),
            _ => self.partitions.iter().map(|(t, _)| t.clone()).collect(),
        };
        topics.dedup();
        let Some(g) = &mut self.group else { return Ok(()) };
        if topics == g.subscribed || topics.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        connected(&self.consumer)?
            .subscribe(&names)
            .map_err(|e| kafka_error(Operation::Request, &e).context("can't join the consumer group"))?;
        g.subscribed = topics;
        Ok(())
    }

    /// In a group: take in what the last rebalance changed, and where each
    /// owned partition's next batch starts.
    fn follow_group(&mut self) -> Result<BTreeMap<TopicPartition, i64>> {
        self.follow_subscription()?;
        let offsets = self.offsets.clone().ok_or_else(|| Error::internal("Kafka source used before connect()"))?;
        let starting = self.options.starting_offsets.clone();
        let g = self.group.as_mut().ok_or_else(|| Error::internal("not in a group"))?;
        if let Some(e) = g.membership.take_failure() {
            return Err(e);
        }
        // A fatal error (this static member fenced by another) is reported
        // once, by a poll; the client keeps it, so look here too.
        if let Some((code, _)) = connected(&self.consumer)?.client().fatal_error() {
            let fatal = rdkafka::error::KafkaError::MessageConsumptionFatal(code);
            return Err(consumer_failure(&fatal).unwrap_or_else(|| Error::internal("a fatal consumer error classed as retriable")));
        }
        g.planned = g.membership.generation();
        let owned = g.membership.owned();
        if g.membership.take_assigned() {
            // The consumer starts each assigned partition where the assignment said.
            self.pending.clear();
            self.assigned = owned.iter().filter_map(|(tp, s)| s.map(|s| (tp.clone(), s))).collect();
            g.next = self.assigned.iter().map(|(tp, s)| (tp.clone(), *s)).collect();
        }
        g.next.retain(|tp, _| owned.contains_key(tp));
        self.assigned.retain(|tp, _| owned.contains_key(tp));
        self.pending.retain(|r| owned.contains_key(&(r.topic.clone(), r.partition)));
        // After a failed batch, all owned partitions; else those the assignment could not place.
        let ask: BTreeMap<TopicPartition, Option<i64>> =
            owned.iter().filter(|(tp, s)| g.rewind || s.is_none() || !g.next.contains_key(*tp)).map(|(tp, s)| (tp.clone(), *s)).collect();
        if !ask.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in ask.keys() {
                tpl.add_partition(t, *p);
            }
            for (tp, start) in resolve_starts(&offsets, &tpl, &starting, &ask)?.0 {
                if owned.get(&tp).is_some_and(Option::is_none) {
                    g.membership.resolved(&tp, start);
                }
                g.next.insert(tp, start);
            }
        }
        g.rewind = false;
        Ok(g.next.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::config::Options;

    fn source(pairs: &[(&str, &str)]) -> KafkaSource {
        let mut options: Options = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        options.insert("kafka.bootstrap.servers".into(), "h:1".into());
        KafkaSource::new(KafkaSourceOptions::parse(&options).unwrap(), "q", None)
    }

    #[test]
    fn identities_keep_the_format_that_checkpoints_hold() {
        // Checkpoints written by earlier versions hold exactly these strings.
        assert_eq!(source(&[("subscribe", "a, b")]).identity(), "kafka[subscribe=a,b]");
        assert_eq!(source(&[("subscribePattern", "t.*")]).identity(), "kafka[subscribePattern=t.*]");
        assert_eq!(source(&[("assign", r#"{"t":[0,1]}"#)]).identity(), r#"kafka[assign={"t":[0,1]}]"#);
    }

    #[test]
    fn positions_of_another_source_are_a_checkpoint_error() {
        let e = offsets_of(&Positions::Rows { rows: 3 }).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Checkpoint);
    }
}
