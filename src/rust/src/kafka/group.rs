//! Scaling out over a Kafka consumer group (`scaleOut = "group"`).
//!
//! Runtime model: N processes run the same query, each with a consumer
//! *subscribed* in the group `kafka.group.id`. Kafka's group coordinator
//! splits the input's partitions between them (classic protocol, eager
//! `range` assignment, pinned: cooperative assignment is not proven safe
//! with transactions here), and Kafka, not the local checkpoint, keeps
//! where each partition stands: its committed offset in the group.
//!
//! - Exactly-once: each batch's output and the input offsets it read up to
//!   commit in one transaction, with the consumer's group metadata
//!   (KIP-447). A process that lost its partitions (paused past the
//!   session timeout, say) carries an old generation, so the coordinator
//!   refuses its offsets and its transaction aborts: nothing is written
//!   twice. The new owner reads committed offsets with `require_stable`
//!   (librdkafka asks for it under `read_committed`), so it waits for a
//!   transaction in flight to end.
//! - At-least-once: the offsets are committed after the sink acknowledged
//!   the batch.
//!
//! librdkafka hands assignments and revocations to [`ReaderContext`]'s
//! `rebalance`, inside `poll()` on the query's thread. On assign it
//! resolves where each partition starts (its committed offset, else
//! `startingOffsets`) and assigns with those offsets, checking the call's
//! result (rust-rdkafka's default handler drops it). On revoke or loss it
//! lets the partitions go at once and bumps the [`Membership`] generation:
//! the source sees that a batch it planned under an older generation is
//! void, the engine aborts it, and plans again with what the process owns
//! now. Correctness never depends on finishing that batch: its transaction
//! is aborted, and its offsets were never sent.
//!
//! [`GroupLink`] is what the source shares with a transactional sink: the
//! consumer, whose group metadata the sink sends with each transaction.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::client_log::ClientLog;
use super::config::StartingOffsets;
use super::errors::{kafka_error, Operation};
use crate::error::{Error, Result};

/// A topic and one of its partitions.
pub(crate) type TopicPartition = (String, i32);

/// How long the assignment may wait for the group's committed offsets: a
/// member killed with a transaction open holds them unstable for up to its
/// `transaction.timeout.ms` (60 s unless set lower; Kafka Streams uses 10 s).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(70);

/// `scaleOut = "group"`: the group, and this process's static membership.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOptions {
    pub group_id: String,
    /// `kafka.group.instance.id` (KIP-345): also names this process's part
    /// of the checkpoint.
    pub instance_id: Option<String>,
}

impl GroupOptions {
    /// Consumer settings the group mode needs, which no user option replaces.
    pub(crate) fn managed(&self) -> [(&str, &str); 5] {
        [
            ("group.id", self.group_id.as_str()),
            ("group.protocol", "classic"),
            ("partition.assignment.strategy", "range"),
            // Committed offsets are read as stable: after any transaction holding them ends.
            ("isolation.level", "read_committed"),
            ("enable.auto.commit", "false"),
        ]
    }
}

/// What this process owns in the group, written by the rebalance callback.
#[derive(Default)]
pub(crate) struct Membership {
    state: Mutex<MembershipState>,
}

#[derive(Default)]
struct MembershipState {
    /// Bumped whenever partitions are taken away: a batch planned under an
    /// older generation is void.
    generation: u64,
    /// Owned partitions and where each started when it was assigned
    /// (`None`: not resolved, see `Membership::unresolved`).
    owned: BTreeMap<TopicPartition, Option<i64>>,
    /// Set by an assignment, taken by the source: it must (re)position.
    assigned: bool,
    /// A rebalance call that failed: the stream's next batch fails with it.
    failure: Option<Error>,
}

impl Membership {
    fn lock(&self) -> std::sync::MutexGuard<'_, MembershipState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The partitions this process owns, with their start when assigned.
    pub(crate) fn owned(&self) -> BTreeMap<TopicPartition, Option<i64>> {
        self.lock().owned.clone()
    }

    /// Whether partitions were assigned since the last call.
    pub(crate) fn take_assigned(&self) -> bool {
        std::mem::take(&mut self.lock().assigned)
    }

    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.lock().failure.take()
    }

    /// A partition's start, resolved after its assignment could not.
    pub(crate) fn resolved(&self, tp: &TopicPartition, start: i64) {
        if let Some(slot) = self.lock().owned.get_mut(tp) {
            *slot = Some(start);
        }
    }

    fn revoke(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.owned.clear();
    }

    fn assign(&self, starts: BTreeMap<TopicPartition, Option<i64>>) {
        let mut state = self.lock();
        state.generation += 1;
        state.owned = starts;
        state.assigned = true;
    }

    fn fail(&self, e: Error) {
        self.lock().failure.get_or_insert(e);
    }
}

/// The source consumer's librdkafka context: connection reports, and in
/// group mode the rebalances.
pub(crate) struct ReaderContext {
    log: ClientLog,
    group: Option<(Arc<Membership>, StartingOffsets)>,
}

impl ReaderContext {
    pub(crate) fn new(log: ClientLog) -> Self {
        ReaderContext { log, group: None }
    }

    pub(crate) fn in_group(log: ClientLog, membership: Arc<Membership>, starting: StartingOffsets) -> Self {
        ReaderContext { log, group: Some((membership, starting)) }
    }
}

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.log.record(&error, reason);
    }
}

impl ConsumerContext for ReaderContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let Some((membership, starting)) = &self.group else { return };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let (starts, chosen): (BTreeMap<TopicPartition, Option<i64>>, Option<TopicPartitionList>) =
                    match resolve_starts(consumer, tpl, starting, &BTreeMap::new()) {
                        Ok((starts, chosen)) => (starts.into_iter().map(|(tp, s)| (tp, Some(s))).collect(), Some(chosen)),
                        Err(e) => {
                            // librdkafka then starts them itself; the source resolves them before reading.
                            self.log.warn(&format!("can't tell where the assigned partitions start yet: {e}"));
                            (tpl.elements().iter().map(|el| ((el.topic().to_string(), el.partition()), None)).collect(), None)
                        }
                    };
                let mut assignment = TopicPartitionList::new();
                for ((topic, partition), start) in &starts {
                    let offset = start.map_or(Offset::Invalid, Offset::Offset);
                    if let Err(e) = assignment.add_partition_offset(topic, *partition, offset) {
                        membership.fail(kafka_error(Operation::Request, &e));
                    }
                }
                match consumer.assign(&assignment) {
                    Ok(()) => {
                        membership.assign(starts);
                        // Where `startingOffsets` put a partition is the group's from now on: an
                        // eager rebalance before the first commit must not resolve "latest" again.
                        if let Some(chosen) = chosen.filter(|c| c.count() > 0) {
                            if let Err(e) = consumer.commit(&chosen, CommitMode::Async) {
                                self.log.warn(&format!("can't record where the new partitions start: {e}"));
                            }
                        }
                    }
                    Err(e) => {
                        membership.revoke();
                        membership.fail(kafka_error(Operation::Request, &e).context("can't take the partitions the group assigned"));
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Lost (the session expired) or revoked: either way the batch in flight is void.
                membership.revoke();
                if let Err(e) = consumer.unassign() {
                    membership.fail(kafka_error(Operation::Request, &e).context("can't let go of the revoked partitions"));
                }
            }
            other => {
                membership.revoke();
                let _ = consumer.unassign();
                membership.fail(Error::kafka(format!("the consumer group's rebalance failed: {other:?}")).retriable());
            }
        }
    }
}

/// Where each partition of `tpl` starts: the group's committed offset
/// (stable), else where it started when assigned (`assigned_at`), else
/// `startingOffsets`, resolved to a number; and those `startingOffsets`
/// chose, as a list to commit.
pub(crate) fn resolve_starts<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tpl: &TopicPartitionList,
    starting: &StartingOffsets,
    assigned_at: &BTreeMap<TopicPartition, Option<i64>>,
) -> Result<(BTreeMap<TopicPartition, i64>, TopicPartitionList)> {
    let committed = consumer
        .committed_offsets(tpl.clone(), RESOLVE_TIMEOUT)
        .map_err(|e| kafka_error(Operation::Request, &e).context("can't read the group's committed offsets"))?;
    let mut starts = BTreeMap::new();
    let mut chosen = TopicPartitionList::new();
    for el in committed.elements() {
        let tp = (el.topic().to_string(), el.partition());
        if let Err(e) = el.error() {
            // Not "no offset": falling back to `startingOffsets` here would skip or repeat records.
            return Err(kafka_error(Operation::Request, &e).context(format!("can't read the group's offset of {}-{}", tp.0, tp.1)));
        }
        let start = match (el.offset(), assigned_at.get(&tp).copied().flatten()) {
            (Offset::Offset(o), _) => o,
            (_, Some(start)) => start,
            _ => {
                let (low, high) = consumer
                    .fetch_watermarks(&tp.0, tp.1, RESOLVE_TIMEOUT)
                    .map_err(|e| kafka_error(Operation::Request, &e).context(format!("can't read the offsets of {}-{}", tp.0, tp.1)))?;
                let start = starting.resolve(&tp, low, high);
                chosen.add_partition_offset(&tp.0, tp.1, Offset::Offset(start)).map_err(|e| kafka_error(Operation::Request, &e))?;
                start
            }
        };
        starts.insert(tp, start);
    }
    Ok((starts, chosen))
}

/// What the source shares with a sink that commits the group's offsets in
/// its transactions (KIP-447).
#[derive(Default)]
pub(crate) struct GroupLink {
    consumer: OnceLock<Arc<BaseConsumer<ReaderContext>>>,
    /// The sink commits the offsets (in its transactions); else the source does.
    transactional: AtomicBool,
}

impl GroupLink {
    pub(crate) fn set_consumer(&self, consumer: Arc<BaseConsumer<ReaderContext>>) {
        let _ = self.consumer.set(consumer);
    }

    /// The group's metadata as of now (fresh at each commit: a rebalance changes it).
    pub(crate) fn group_metadata(&self) -> Result<ConsumerGroupMetadata> {
        self.consumer
            .get()
            .and_then(|c| c.group_metadata())
            .ok_or_else(|| Error::internal("the group's consumer has no group metadata"))
    }

    pub(crate) fn set_transactional(&self) {
        self.transactional.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_transactional(&self) -> bool {
        self.transactional.load(Ordering::SeqCst)
    }
}
