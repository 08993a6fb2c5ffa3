//! The Kafka source, with Spark's semantics.
//!
//! Runtime model: one librdkafka consumer, assigned (never subscribed: the
//! checkpoint, not a consumer group, owns the offsets) to every partition of
//! the subscription. It keeps fetching in librdkafka's background threads, so
//! the next batch is usually already in memory. A batch is planned from the
//! partitions' high watermarks (capped by `maxOffsetsPerTrigger`), recorded,
//! then read until every partition reaches its end offset. Records fetched
//! beyond a batch's end are kept for the next one instead of seeking back,
//! which would throw librdkafka's prefetch away.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{Positions, Source, CHUNK_ROWS};
use crate::engine::status::SharedStatus;
use crate::engine::stop::StopSignal;
use crate::error::{Error, Result};
use crate::kafka::client_log::ClientLog;
use crate::kafka::config::{KafkaSourceOptions, OffsetMap, StartingOffsets, Subscription};
use crate::kafka::errors::{kafka_error, Operation};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const METADATA_REFRESH: Duration = Duration::from_secs(1);
const POLL_SLICE: Duration = Duration::from_millis(100);

type TopicPartition = (String, i32);

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

pub(crate) struct KafkaSource {
    options: KafkaSourceOptions,
    query_id: String,
    consumer: Option<BaseConsumer<ClientLog>>,
    /// Metadata and watermark queries go through a second client, on its own
    /// connections: Kafka answers one request per connection at a time, so
    /// behind the reader's fetch long-poll they would wait up to
    /// `fetch.wait.max.ms` (500 ms) each batch.
    offsets: Option<BaseConsumer<ClientLog>>,
    log: ClientLog,
    partitions: Vec<TopicPartition>,
    partitions_refreshed: Option<Instant>,
    /// Where the consumer will deliver from next, per assigned partition.
    assigned: HashMap<TopicPartition, i64>,
    pending: VecDeque<Pending>,
    /// Records of the batch being read whose key or value could not be decoded.
    malformed: u64,
}

impl KafkaSource {
    pub(crate) fn new(options: KafkaSourceOptions, query_id: &str) -> Self {
        KafkaSource {
            options,
            query_id: query_id.to_string(),
            consumer: None,
            offsets: None,
            log: ClientLog::new("consumer", None),
            partitions: Vec::new(),
            partitions_refreshed: None,
            assigned: HashMap::new(),
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

    fn consumer(&self) -> Result<&BaseConsumer<ClientLog>> {
        connected(&self.consumer)
    }

    fn offsets_client(&self) -> Result<&BaseConsumer<ClientLog>> {
        connected(&self.offsets)
    }

    /// Partitions of the subscription, from the cluster's metadata.
    fn refresh_partitions(&mut self, force: bool) -> Result<()> {
        if !force && self.partitions_refreshed.is_some_and(|t| t.elapsed() < METADATA_REFRESH) {
            return Ok(());
        }
        let consumer = self.offsets_client()?;
        let mut found = Vec::new();
        match &self.options.subscription {
            Subscription::Assign(map) => {
                for (topic, parts) in map {
                    found.extend(parts.iter().map(|p| (topic.clone(), *p)));
                }
            }
            Subscription::Topics(topics) => {
                for topic in topics {
                    let md = consumer
                        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
                        .map_err(|e| self.unreachable(&e))?;
                    for t in md.topics() {
                        if t.error().is_none() {
                            found.extend(t.partitions().iter().map(|p| (t.name().to_string(), p.id())));
                        }
                    }
                }
            }
            Subscription::Pattern(pattern) => {
                let md = consumer.fetch_metadata(None, METADATA_TIMEOUT).map_err(|e| self.unreachable(&e))?;
                for t in md.topics() {
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
        let mut wanted: HashMap<TopicPartition, i64> = HashMap::new();
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
        // Records fetched under the old assignment may not match the new one.
        self.pending.retain(|r| wanted.get(&(r.topic.clone(), r.partition)).is_some_and(|s| r.offset >= *s));
        self.assigned = wanted;
        Ok(())
    }

}

/// A client of the source, once `connect()` made it (a field borrow, so
/// the other fields stay free while a message borrows the consumer).
fn connected(client: &Option<BaseConsumer<ClientLog>>) -> Result<&BaseConsumer<ClientLog>> {
    client.as_ref().ok_or_else(|| Error::internal("Kafka source used before connect()"))
}

fn keep_pending(pending: &mut VecDeque<Pending>, m: &BorrowedMessage<'_>) {
    pending.push_back(Pending {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis(),
        timestamp_type: timestamp_type(&m.timestamp()),
        headers: m.headers().map(|h| h.iter().map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec))).collect()),
    });
}

/// The consumer delivered `m`: its partition continues after it.
fn note_delivered(assigned: &mut HashMap<TopicPartition, i64>, m: &BorrowedMessage<'_>) -> TopicPartition {
    let tp = (m.topic().to_string(), m.partition());
    if let Some(next) = assigned.get_mut(&tp) {
        *next = m.offset() + 1;
    }
    tp
}

fn timestamp_type(ts: &rdkafka::Timestamp) -> i32 {
    match ts {
        rdkafka::Timestamp::LogAppendTime(_) => 1,
        _ => 0,
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

    fn append_message(&mut self, m: &BorrowedMessage<'_>) {
        let headers = m.headers();
        self.append(
            m.key(),
            m.payload(),
            m.topic(),
            m.partition(),
            m.offset(),
            m.timestamp().to_millis(),
            timestamp_type(&m.timestamp()),
            headers.map(|h| h.iter().map(|x| (x.key, x.value))),
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
        match &self.options.subscription {
            Subscription::Topics(t) => format!("kafka[subscribe={}]", t.join(",")),
            Subscription::Pattern(p) => format!("kafka[subscribePattern={}]", p.text),
            Subscription::Assign(a) => format!("kafka[assign={}]", serde_json::to_string(a).unwrap_or_default()),
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
        let group = format!("streamlyr-source-{}", self.query_id);
        let client = |client_id: &str| -> Result<BaseConsumer<ClientLog>> {
            // Assigned, never subscribed: the group id only names the client to the broker.
            self.options
                .client
                .to_rdkafka(
                    &[("client.id", client_id)],
                    &[
                        ("group.id", group.as_str()),
                        ("enable.auto.commit", "false"),
                        ("enable.auto.offset.store", "false"),
                        ("enable.partition.eof", "false"),
                        ("auto.offset.reset", "earliest"),
                    ],
                )
                .create_with_context(self.log.clone())
                .map_err(|e| Error::config("options", format!("the Kafka consumer settings are not valid: {e}")))
        };
        self.consumer = Some(client("streamlyr")?);
        self.offsets = Some(client("streamlyr-offsets")?);
        self.refresh_partitions(true)
    }

    fn initial_positions(&mut self) -> Result<Positions> {
        let mut start = OffsetMap::new();
        for tp in self.partitions.clone() {
            let (low, high) = self.watermarks(&tp)?;
            let wanted = match &self.options.starting_offsets {
                StartingOffsets::Earliest => low,
                StartingOffsets::Latest => high,
                StartingOffsets::Specific(m) => match m.get(&tp.0).and_then(|ps| ps.get(&tp.1)) {
                    Some(-2) => low,
                    Some(-1) | None => high,
                    Some(off) => *off,
                },
            };
            start.entry(tp.0.clone()).or_default().insert(tp.1, wanted);
        }
        Ok(Positions::Kafka(start))
    }

    fn plan(&mut self, start: &Positions) -> Result<Option<(Positions, Positions)>> {
        self.refresh_partitions(false)?;
        let known = offsets_of(start)?.clone();
        let mut from = OffsetMap::new();
        let mut until = OffsetMap::new();
        let mut available: Vec<(TopicPartition, i64, i64)> = Vec::new();
        for tp in self.partitions.clone() {
            let (low, high) = self.watermarks(&tp)?;
            // A partition that appeared after the query started is read from its beginning, as in Spark.
            let mut s = known.get(&tp.0).and_then(|ps| ps.get(&tp.1)).copied().unwrap_or(low);
            if s < low {
                if self.options.fail_on_data_loss {
                    return Err(Error::kafka(format!(
                        "records {s} to {} of {}-{} were deleted before they were read",
                        low - 1,
                        tp.0,
                        tp.1
                    ))
                    .with_hint("set `failOnDataLoss = \"false\"` to skip them"));
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
        // Keep positions of partitions no longer listed (deleted topics) so they are not forgotten.
        for (t, ps) in &known {
            for (p, o) in ps {
                if !available.iter().any(|(tp, _, _)| tp.0 == *t && tp.1 == *p) {
                    from.entry(t.clone()).or_default().insert(*p, *o);
                    until.entry(t.clone()).or_default().insert(*p, *o);
                }
            }
        }
        let total: i64 = available.iter().map(|(_, s, h)| h - s).sum();
        if total == 0 {
            return Ok(None);
        }
        // maxOffsetsPerTrigger is split across partitions in proportion to what they have, as Spark does.
        let cap = self.options.max_offsets_per_trigger.map(|m| m as i64).filter(|m| *m < total);
        for (tp, s, h) in available {
            let take = match cap {
                None => h - s,
                Some(m) => ((h - s) as f64 * m as f64 / total as f64).floor().max(if h > s { 1.0 } else { 0.0 }) as i64,
            };
            from.entry(tp.0.clone()).or_default().insert(tp.1, s);
            until.entry(tp.0).or_default().insert(tp.1, s + take.min(h - s));
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
        let mut remaining: HashMap<TopicPartition, (i64, i64)> = HashMap::new();
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

        let mut last_progress = Instant::now();
        while !remaining.is_empty() {
            stop.check_abort()?;
            match connected(&self.consumer)?.poll(POLL_SLICE) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    let tp = note_delivered(&mut self.assigned, &m);
                    match remaining.get(&tp).copied() {
                        Some((s, e)) if m.offset() >= s && m.offset() < e => {
                            rows.append_message(&m);
                            if m.offset() >= e - 1 {
                                remaining.remove(&tp);
                            }
                        }
                        Some((_, e)) if m.offset() >= e => keep_pending(&mut self.pending, &m),
                        None if end.get(&tp.0).and_then(|ps| ps.get(&tp.1)).is_some_and(|e| m.offset() >= *e) => {
                            keep_pending(&mut self.pending, &m)
                        }
                        _ => {}
                    }
                    drop(m);
                    if rows.len >= CHUNK_ROWS {
                        emit(self.rows_of(rows.finish()?)?)?;
                    }
                }
                Some(Err(e)) => {
                    // Transport errors are retried by librdkafka; only what a wait can't cure ends the batch.
                    if !crate::kafka::errors::is_retriable(Operation::Request, &e) {
                        return Err(kafka_error(Operation::Request, &e).context("the Kafka consumer failed"));
                    }
                }
                None => {
                    // Transaction markers and compacted-away records leave gaps: the
                    // consumer's position says when a partition's range is done.
                    if let Ok(positions) = connected(&self.consumer)?.position() {
                        for el in positions.elements() {
                            if let Offset::Offset(pos) = el.offset() {
                                let tp = (el.topic().to_string(), el.partition());
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
                                    return Err(Error::kafka(format!(
                                        "records {s} to {} of {}-{} are no longer in Kafka",
                                        e - 1,
                                        tp.0,
                                        tp.1
                                    ))
                                    .with_hint("set `failOnDataLoss = \"false\"` to skip them"));
                                }
                                remaining.remove(&tp);
                            }
                        }
                        last_progress = Instant::now();
                    }
                }
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
        while rows.len < CHUNK_ROWS && !stop.is_set() {
            // Wait only for the first record; then take what is already there.
            let timeout = if rows.len == 0 { POLL_SLICE.min(deadline.saturating_duration_since(Instant::now())) } else { Duration::ZERO };
            match connected(&self.consumer)?.poll(timeout) {
                Some(Ok(m)) => {
                    let tp = note_delivered(&mut self.assigned, &m);
                    if let Some(next) = at.get_mut(&tp.0).and_then(|ps| ps.get_mut(&tp.1)) {
                        if m.offset() >= *next {
                            rows.append_message(&m);
                            *next = m.offset() + 1;
                        }
                    }
                }
                Some(Err(_)) => {} // librdkafka reconnects by itself; the error callback reported it
                None => {
                    if rows.len > 0 || Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        if rows.len > 0 {
            emit(self.rows_of(rows.finish()?)?)?;
        }
        Ok(Positions::Kafka(at))
    }

    fn wait_for_data(&mut self, timeout: Duration, stop: &StopSignal) -> Result<()> {
        if !self.pending.is_empty() || self.assigned.is_empty() {
            stop.wait(timeout);
            return Ok(());
        }
        // Wait on the consumer itself, so a record that arrives wakes us at once.
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !stop.is_set() {
            let slice = POLL_SLICE.min(deadline.saturating_duration_since(Instant::now()));
            if let Some(Ok(m)) = connected(&self.consumer)?.poll(slice) {
                note_delivered(&mut self.assigned, &m);
                keep_pending(&mut self.pending, &m);
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::config::Options;

    fn source(pairs: &[(&str, &str)]) -> KafkaSource {
        let mut options: Options = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        options.insert("kafka.bootstrap.servers".into(), "h:1".into());
        KafkaSource::new(KafkaSourceOptions::parse(&options).unwrap(), "q")
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
