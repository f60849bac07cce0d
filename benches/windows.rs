//! Windowed-table benchmark (issue 14): a tumbling-window count per key, beside a bare
//! rdkafka loop over the same input in the same run.
//!
//! The input: `BENCH_MESSAGES` records (default 1,000,000) over `BENCH_KEYS` keys
//! (default 10,000), their timestamps spread over `BENCH_SPAN_SECS` of event time
//! (default 3600: an hour, so 60 one-minute windows per key), in order but for
//! `BENCH_DISORDER_PERCENT` of them (default 5) which are set back by up to
//! `BENCH_DISORDER_MS` (default 5,000), within the grace of 10 s.
//!
//! - bare: a bare rdkafka consume loop counting into a `HashMap` keyed (key, window);
//! - the agent: `ctx.windowed_table::<T>()` and `update(&key, |n| n + 1)` per event, a
//!   1-minute tumbling window (`BENCH_EXPIRES`, default 24h: nothing expires within the
//!   hour; `10m` also exercises expiry), at-least-once and then exactly-once.
//!
//! The agent's throughput is taken from its changelog records' timestamps, first to
//! last (start-up, group join and the final commit are left out), the bare loop's from
//! its first record to its last. Every run is checked: the table's final content as its
//! changelog holds it (read_committed, last value per key, tombstones applied) equals
//! the bare count, less the windows expired by the final stream time.
//!
//! Run: `scripts/stack up && cargo bench --bench windows`. Also `CTA_TEST_BROKER`,
//! `BENCH_GUARANTEES` (default `at_least_once exactly_once`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cta_stream::agent::{AgentContext, AgentFn, AgentRegistry, AgentResult};
use cta_stream::stream::Stream;
use cta_stream::table::window::{decode_time, split_window_key, STREAM_TIME_KEY};
use cta_stream::table::TableDecl;
use cta_stream::{App, Settings};

cta_stream::register_table!(PerMinute = "per_minute", String => u64);

mod common;
use common::{broker, create, env_num, fill_timed, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const WINDOW_MS: i64 = 60_000;
const GRACE_MS: i64 = 10_000;

/// (key, window start) → count.
type Counts = HashMap<(String, i64), u64>;

/// A fixed pseudo-random number per record (splitmix64), so the input is the same from
/// run to run.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn consumer(group_prefix: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique(group_prefix))
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .unwrap()
}

/// The bare loop: reads `topic` from the start to its end, counting per (key, 1-minute
/// window) with the table's rule for late events (all of an event's windows closed by
/// the stream time); returns the counts, the final stream time, the late events and the
/// seconds from the first record to the last.
fn bare_count(topic: &str) -> (Counts, i64, u64, f64) {
    let c = consumer("bench-windows-bare");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut counts: HashMap<(Vec<u8>, i64), u64> = HashMap::new();
    let mut stream_time = i64::MIN;
    let mut late = 0;
    let mut first = None;
    loop {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                let t = m.timestamp().to_millis().unwrap();
                stream_time = stream_time.max(t);
                let start = t - t.rem_euclid(WINDOW_MS);
                if start + WINDOW_MS + GRACE_MS <= stream_time {
                    late += 1;
                    continue;
                }
                let key = m.key().unwrap_or_default().to_vec();
                *counts.entry((key, start)).or_default() += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("no end of {topic}"),
        }
    }
    let secs = first.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    let counts = counts
        .into_iter()
        .map(|((k, s), n)| ((String::from_utf8(k).unwrap(), s), n))
        .collect();
    (counts, stream_time, late, secs)
}

/// What a windowed table's changelog holds at its end.
struct Changelog {
    records: u64,
    /// From the first record's timestamp to the last's.
    span_secs: f64,
    windows: Counts,
    stream_time: Option<i64>,
    tombstones: u64,
}

fn read_changelog(topic: &str) -> Changelog {
    let c = consumer("bench-windows-changelog");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Changelog {
        records: 0,
        span_secs: 0.0,
        windows: HashMap::new(),
        stream_time: None,
        tombstones: 0,
    };
    let (mut first, mut last) = (None, 0i64);
    // A transaction still open on the topic holds read_committed readers back until it
    // completes or times out.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match c.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                let ts = m.timestamp().to_millis().unwrap();
                first.get_or_insert(ts);
                last = ts;
                out.records += 1;
                let key = m.key().expect("a changelog record without a key");
                if key == STREAM_TIME_KEY {
                    out.stream_time = m.payload().and_then(decode_time);
                    continue;
                }
                let (k, start) = split_window_key(key).expect("a window key");
                let k: String = serde_json::from_slice(k).unwrap();
                match m.payload() {
                    Some(v) => {
                        out.windows
                            .insert((k, start), serde_json::from_slice(v).unwrap());
                    }
                    None => {
                        out.tombstones += 1;
                        out.windows.remove(&(k, start));
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => assert!(
                Instant::now() < deadline,
                "no end of {topic} after {} records",
                out.records
            ),
        }
    }
    out.span_secs = (last - first.unwrap_or(last)) as f64 / 1000.0;
    out
}

async fn count(ctx: AgentContext, mut events: Stream<bytes::Bytes, String>) -> AgentResult {
    let per_minute = ctx.windowed_table::<PerMinute>()?;
    while let Some(e) = events.next().await? {
        let Some(k) = e.key else { continue };
        per_minute.update(&k, |n| n.unwrap_or(0) + 1).await?;
    }
    Ok(())
}

/// Runs the counting agent over `input` until its group has committed `n`; returns the
/// table's changelog as it stands after the worker stopped.
async fn agent_count(
    input: &str,
    n: u64,
    guarantee: &str,
    expires: &str,
    state: &std::path::Path,
) -> Changelog {
    let app_id = unique(&format!("bench-windows-{guarantee}"));
    let settings = Settings::from_toml_str(&format!(
        r#"
        [app]
        id = "{app_id}"
        broker = "{}"
        state_dir = "{}"
        processing_guarantee = "{guarantee}"
        commit_interval = "{}"
        [web]
        enabled = false
        [services]
        schema_registry = ""
        [agents.count]
        source.topics = ["{input}"]
        codec = "raw"
        [tables.per_minute]
        agent = "count"
        window = {{ kind = "tumbling", size = "1m", grace = "{GRACE_MS}ms", expires = "{expires}" }}
        "#,
        broker(),
        state.display(),
        if guarantee == "exactly_once" {
            "100ms"
        } else {
            "1s"
        },
    ))
    .unwrap();
    let app = App::with_registry(settings, AgentRegistry::default())
        .agent("count", AgentFn::new(count))
        .table(TableDecl::of::<PerMinute>());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(app.run(rx));
    let group = format!("{app_id}-count");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", &group)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(input, 0);
        let done = c
            .committed_offsets(tpl, Duration::from_secs(5))
            .ok()
            .and_then(|t| t.find_partition(input, 0).map(|e| e.offset()));
        if done == Some(Offset::Offset(n as i64)) {
            break;
        }
        assert!(Instant::now() < deadline, "counting did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tx.send(true).unwrap();
    worker.await.unwrap().unwrap();
    read_changelog(&format!("{app_id}-per_minute-changelog"))
}

/// The table's final content must be the bare count less the windows expired by the
/// final stream time.
fn check(name: &str, log: &Changelog, bare: &Counts, stream_time: i64, expires_ms: i64) {
    assert_eq!(log.stream_time, Some(stream_time), "{name}: stream time");
    let expected: Counts = bare
        .iter()
        .filter(|((_, s), _)| s + WINDOW_MS + expires_ms > stream_time)
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    if log.windows != expected {
        let missing = expected
            .iter()
            .filter(|(k, n)| log.windows.get(*k) != Some(*n))
            .take(5)
            .collect::<Vec<_>>();
        panic!(
            "{name}: the table holds {} windows, the bare count {} (differing, e.g.: {missing:?})",
            log.windows.len(),
            expected.len()
        );
    }
}

fn main() {
    let n = env_num("BENCH_MESSAGES", 1_000_000);
    let keys = env_num("BENCH_KEYS", 10_000);
    let span_ms = env_num("BENCH_SPAN_SECS", 3600) as i64 * 1000;
    let disorder_percent = env_num("BENCH_DISORDER_PERCENT", 5);
    let disorder_ms = env_num("BENCH_DISORDER_MS", 5_000).max(1);
    let expires = std::env::var("BENCH_EXPIRES").unwrap_or_else(|_| "24h".into());
    let expires_ms = humantime::parse_duration(&expires).unwrap().as_millis() as i64;
    let guarantees =
        std::env::var("BENCH_GUARANTEES").unwrap_or_else(|_| "at_least_once exactly_once".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();

    // Event time starts two hours back, on a minute: well within the topics' retention.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base = now - 2 * 3_600_000 - now.rem_euclid(WINDOW_MS);
    let input = unique("bench-windows-in");
    rt.block_on(async {
        create(&input, false).await;
        fill_timed(&input, n, |i| {
            let r = mix(i);
            let mut t = base + (i as i128 * span_ms as i128 / n.max(1) as i128) as i64;
            if r % 100 < disorder_percent {
                t -= ((r >> 8) % disorder_ms) as i64;
            }
            (format!("key-{:08}", (r >> 32) % keys), "x".into(), t)
        })
        .await;
    });

    let (bare, stream_time, late, bare_secs) = bare_count(&input);
    let bare_rate = n as f64 / bare_secs;
    println!(
        "windowed count, {n} events over {keys} keys and {} s of event time, 1-minute \
         tumbling windows (grace {GRACE_MS} ms, expires {expires}), {disorder_percent}% \
         out of order by up to {disorder_ms} ms, 1 partition:",
        span_ms / 1000
    );
    println!(
        "  bare rdkafka consume + HashMap (key, window) : {bare_rate:>10.0} events/s \
         ({} windows, {late} late)",
        bare.len()
    );
    for guarantee in guarantees.split_whitespace() {
        // A state directory per run: a store directory is named by its table alone, so a
        // second app with the same table in the same directory would open the first
        // one's store (its windows and stream time) — see the notes of issue 14.
        let dir = state.path().join(guarantee);
        let log = rt.block_on(agent_count(&input, n, guarantee, &expires, &dir));
        check(guarantee, &log, &bare, stream_time, expires_ms);
        let rate = n as f64 / log.span_secs.max(0.001);
        println!(
            "  windowed agent, {guarantee:<14}                 : {rate:>10.0} events/s \
             ({:.2} of bare; {} changelog records, {} windows held, {} expired; checked)",
            rate / bare_rate,
            log.records,
            log.windows.len(),
            log.tombstones,
        );
    }
}
