//! Bringing a store up to its changelog: replay of the tail past the stored offset, or a
//! full rebuild when the store is missing or behind the log start. Driven by explicit
//! offsets and the partition's end-of-log event, never by waiting for "quiet", so it
//! cannot hang on a transaction marker or a compacted tail.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::partition::{RecoveryState, TablePartition};
use super::store::Change;
use super::TableError;
use crate::kafka::client::{client_config, ClientKind};
use crate::kafka::Names;
use crate::settings::{ProcessingGuarantee, Settings};

const BATCH: usize = 5_000;

pub(crate) struct RecoverySpec<'a> {
    pub settings: &'a Settings,
    pub changelog: &'a str,
}

/// Consumer callbacks of recovery and global-table readers: the end of a partition is
/// what they wait for, not an error to log.
pub(crate) struct ReaderContext;

impl rdkafka::client::ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::warn!("table reader: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

pub(crate) type ReaderConsumer = BaseConsumer<ReaderContext>;

fn consumer(settings: &Settings) -> Result<ReaderConsumer, TableError> {
    let mut cfg = client_config(settings, ClientKind::Consumer);
    cfg.remove("partition.assignment.strategy");
    // Needed by librdkafka to assign partitions; never subscribed, never committed.
    cfg.set("group.id", Names::new(settings).restore_group());
    cfg.set("enable.partition.eof", "true");
    // A log start that moved past us is an error to act on, not something to skip.
    cfg.set("auto.offset.reset", "error");
    // Large fetches make recovery fast, but every queued record pins its whole fetch
    // response: 8 MB per fetch keeps the rate (docs/benchmarks.md) and bounds memory.
    cfg.set("fetch.max.bytes", "8388608");
    cfg.set("max.partition.fetch.bytes", "4194304");
    // No lag to report for readers.
    cfg.set("statistics.interval.ms", "0");
    if settings.app.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
        cfg.set("isolation.level", "read_committed");
    }
    cfg.create_with_context(ReaderContext)
        .map_err(|e| TableError::Kafka(format!("recovery consumer: {e}")))
}

/// Recovers `part` from partition `part.partition` of the changelog; returns the number
/// of records read. Returns early (Ok) when the partition is closed meanwhile.
pub(crate) fn recover(spec: &RecoverySpec<'_>, part: &TablePartition) -> Result<u64, TableError> {
    let p = part.partition;
    let c = consumer(spec.settings)?;
    'attempt: loop {
        let (low, high) = watermarks(&c, spec.changelog, p, part)?;
        let store = part.store().ok_or(TableError::Closed)?;
        let stored = store.changelog_offset(p)?;
        let full = match stored {
            Some(o) => o + 1 < low,
            None => true,
        };
        if full && stored.is_some() {
            tracing::warn!(table = %part.table, partition = p, "local store is behind the changelog's start ({low}): rebuilding it");
            store.clear()?;
        }
        let start = if full {
            low
        } else {
            stored.map_or(low, |o| o + 1)
        };
        part.set_progress(|g| {
            g.state = RecoveryState::Recovering;
            g.from_offset = start;
            g.end_offset = high;
            g.records = 0;
            g.full = full && high > low;
            g.error = None;
        });
        if start >= high {
            return Ok(0);
        }
        tracing::info!(
            table = %part.table, partition = p,
            "recovering from {} {}: {} records to read (offsets {start}..{high})",
            spec.changelog, if full { "(full rebuild)" } else { "(tail)" }, high - start
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(spec.changelog, p, Offset::Offset(start))
            .map_err(|e| TableError::Kafka(e.to_string()))?;
        c.assign(&tpl)
            .map_err(|e| TableError::Kafka(e.to_string()))?;

        let mut batch: Vec<Change> = Vec::with_capacity(BATCH);
        let mut last = None;
        let mut records = 0u64;
        let started = Instant::now();
        let mut last_log = Instant::now();
        let mut last_progress = Instant::now();
        loop {
            if part.is_closed() {
                return Ok(records);
            }
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    records += 1;
                    last = Some(m.offset());
                    last_progress = Instant::now();
                    if let Some(k) = m.key() {
                        batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
                    }
                    if batch.len() >= BATCH {
                        store.apply(&batch, p, m.offset())?;
                        batch.clear();
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) if is_out_of_range(&e) => {
                    tracing::warn!(table = %part.table, partition = p, "changelog start moved during recovery ({e}): rebuilding");
                    store.clear()?;
                    continue 'attempt;
                }
                Some(Err(e)) => {
                    tracing::warn!(table = %part.table, partition = p, "recovery read error: {e}");
                }
                None => {
                    // No EOF and no records for a while: look at where the log ends now.
                    if last_progress.elapsed() > Duration::from_secs(10) {
                        let position = c.position().ok().and_then(|t| {
                            match t.find_partition(spec.changelog, p)?.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            }
                        });
                        let (_, now_high) = watermarks(&c, spec.changelog, p, part)?;
                        if position.is_some_and(|pos| pos >= now_high) {
                            break;
                        }
                        tracing::warn!(table = %part.table, partition = p, "recovery stalled at {position:?} of {now_high}; seeking again");
                        let at = last.map_or(start, |o| o + 1);
                        let _ = c.seek(
                            spec.changelog,
                            p,
                            Offset::Offset(at),
                            Duration::from_secs(5),
                        );
                        last_progress = Instant::now();
                    }
                }
            }
            if last_log.elapsed() > Duration::from_secs(2) {
                last_log = Instant::now();
                part.set_progress(|g| g.records = records);
                let g = part.progress();
                tracing::info!(
                    table = %part.table, partition = p,
                    "recovery: {records} of ~{} records, {:.0}/s, ETA {:.1} s",
                    high - start,
                    records as f64 / started.elapsed().as_secs_f64().max(0.001),
                    g.eta_ms.unwrap_or(0) as f64 / 1000.0
                );
            }
        }
        if let Some(o) = last {
            store.apply(&batch, p, o)?;
        }
        part.set_progress(|g| g.records = records);
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            table = %part.table, partition = p,
            "recovered {records} records in {secs:.2} s ({:.0}/s)",
            records as f64 / secs.max(0.001)
        );
        return Ok(records);
    }
}

fn is_out_of_range(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
        )
    )
}

/// Low and high watermarks, retried while the broker is away (recovery waits for it
/// rather than starting the agent on a partial table).
fn watermarks(
    c: &ReaderConsumer,
    topic: &str,
    p: i32,
    part: &TablePartition,
) -> Result<(i64, i64), TableError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match c.fetch_watermarks(topic, p, Duration::from_secs(10)) {
            Ok(w) => return Ok(w),
            Err(e) if part.is_closed() => return Err(TableError::Kafka(e.to_string())),
            Err(e) => {
                tracing::warn!(table = %part.table, partition = p, "cannot read the end of {topic}[{p}] ({e}); retrying");
                part.set_progress(|g| g.error = Some(e.to_string()));
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
