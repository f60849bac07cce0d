//! Table benchmarks, each beside a bare rdkafka loop over the same data in the same run:
//!
//! - counting: an agent counts records per key into a table (get + insert per event),
//!   at-least-once and exactly-once, against a bare consume loop counting in a HashMap;
//! - recovery: a table of `BENCH_KEYS` keys rebuilt from its changelog alone, against a
//!   bare consume of the same changelog.
//!
//! Run: `scripts/stack up && cargo bench --bench tables`. Environment: `BENCH_MESSAGES`
//! (default 1000000), `BENCH_KEYS` (default 1000000), `CTA_TEST_BROKER`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cta_stream::agent::{AgentContext, AgentFn, AgentRegistry, AgentResult};
use cta_stream::stream::Stream;
use cta_stream::table::{TableDecl, TableManager, TableRegistry};
use cta_stream::{App, Settings};

cta_stream::register_table!(Counts = "counts", String => u64);

mod common;
use common::{broker, create, env_num, fill, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// Reads `topic` from the start to its end; returns (records, seconds from the first
/// record to the last).
fn bare_read(topic: &str, mut each: impl FnMut(&[u8])) -> (u64, f64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("bench-bare-read"))
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut n = 0u64;
    let mut first = None;
    loop {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                each(m.key().unwrap_or_default());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("no end of {topic}"),
        }
    }
    (n, first.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0))
}

/// Seconds between the first and the last record of `topic` (CreateTime).
fn span_secs(topic: &str) -> (u64, f64) {
    let mut first = None;
    let mut last = 0i64;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("bench-span"))
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut n = 0;
    // A transaction still open on the topic holds read_committed readers back until it
    // completes or times out (10 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match c.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                let ts = m.timestamp().to_millis().unwrap();
                first.get_or_insert(ts);
                last = ts;
                n += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => assert!(
                Instant::now() < deadline,
                "no end of {topic} after {n} records"
            ),
        }
    }
    (n, (last - first.unwrap_or(last)) as f64 / 1000.0)
}

async fn count(ctx: AgentContext, mut events: Stream<bytes::Bytes, String>) -> AgentResult {
    let counts = ctx.table::<Counts>()?;
    while let Some(e) = events.next().await? {
        let Some(k) = e.key else { continue };
        let n = counts.get(&k).await?.unwrap_or(0);
        counts.insert(&k, &(n + 1)).await?;
    }
    Ok(())
}

/// Runs the counting agent over `input` until the source group has committed `n`;
/// returns events per second from the changelog's timestamps.
async fn agent_count(input: &str, n: u64, guarantee: &str, state: &std::path::Path) -> f64 {
    let app_id = unique(&format!("bench-count-{guarantee}"));
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
        [tables.counts]
        agent = "count"
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
        .table(TableDecl::of::<Counts>());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(app.run(rx));
    let group = format!("{app_id}-count");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", &group)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(900);
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
    let (records, secs) = span_secs(&format!("{app_id}-counts-changelog"));
    assert!(records >= n, "{records} changelog records for {n} events");
    n as f64 / secs.max(0.001)
}

fn main() {
    let n = env_num("BENCH_MESSAGES", 1_000_000);
    let keys = env_num("BENCH_KEYS", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = tempfile::tempdir().unwrap();

    // Counting.
    let input = unique("bench-count-in");
    rt.block_on(async {
        create(&input, false).await;
        fill(&input, n, |i| {
            (format!("key-{:08}", i % 10_000), "x".into())
        })
        .await;
    });
    let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
    let (bare_n, bare_secs) = bare_read(&input, |k| *seen.entry(k.to_vec()).or_default() += 1);
    assert_eq!(bare_n, n);
    let bare = n as f64 / bare_secs;
    let alo = rt.block_on(agent_count(&input, n, "at_least_once", state.path()));
    let eos = rt.block_on(agent_count(&input, n, "exactly_once", state.path()));
    println!("counting, {n} events over 10000 keys, 1 partition:");
    println!("  bare rdkafka consume + HashMap : {bare:>10.0} events/s");
    println!(
        "  counting agent, at_least_once  : {alo:>10.0} events/s ({:.2} of bare)",
        alo / bare
    );
    println!(
        "  counting agent, exactly_once   : {eos:>10.0} events/s ({:.2} of bare)",
        eos / bare
    );

    // Recovery: a changelog of `keys` distinct keys, as a table would have written it.
    let changelog = unique("bench-recovery-changelog");
    rt.block_on(async {
        create(&changelog, true).await;
        fill(&changelog, keys, |i| (format!("key-{i:08}"), i.to_string())).await;
    });
    let (bare_n, bare_secs) = bare_read(&changelog, |_| {});
    let settings = Arc::new(
        Settings::from_toml_str(&format!(
            r#"
            [app]
            id = "bench-recovery"
            broker = "{}"
            state_dir = "{}"
            [agents.count]
            source.topics = ["unused"]
            [tables.counts]
            agent = "count"
            changelog = "{changelog}"
            "#,
            broker(),
            state.path().join("recovery").display()
        ))
        .unwrap(),
    );
    let mut decls = TableRegistry::default();
    decls.insert(TableDecl::of::<Counts>());
    let manager = TableManager::new(settings, &decls, None).unwrap();
    let table = manager.get("counts").unwrap().clone();
    let t = Instant::now();
    let records = manager.assign_blocking(&table, 0).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let keys_held = table
        .partition(0)
        .unwrap()
        .store()
        .unwrap()
        .count_keys()
        .unwrap();
    assert_eq!(records, keys);
    assert_eq!(keys_held, keys);
    println!("recovery, {keys} keys from the changelog alone (full rebuild), 1 partition:");
    println!(
        "  bare rdkafka consume           : {:>10.0} records/s",
        bare_n as f64 / bare_secs
    );
    println!(
        "  table recovery into RocksDB    : {:>10.0} records/s ({:.2} of bare, {secs:.2} s)",
        records as f64 / secs,
        (records as f64 / secs) / (bare_n as f64 / bare_secs)
    );
    manager.close_all();
}
