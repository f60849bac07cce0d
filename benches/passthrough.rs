//! Pass-through throughput: a JSON agent (decode, encode, produce, ack, commit) against
//! a bare rdkafka consume→produce loop, on the same broker, over the same input, in the
//! same run.
//!
//! Run: `scripts/stack up && cargo bench --bench passthrough`. Environment:
//! `BENCH_MESSAGES` (default 200000), `CTA_TEST_BROKER` (default 127.0.0.1:9092).
//!
//! Throughput is measured from the output records' own timestamps (first to last), so
//! group joins and start-up are left out alike for both.

use std::time::{Duration, Instant};

use cta_stream::agent::{AgentContext, AgentFn, AgentRegistry, AgentResult};
use cta_stream::stream::Stream;
use cta_stream::{App, Settings};

mod common;
use common::{broker, create, fill, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn high_watermark(topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    c.fetch_watermarks(topic, 0, Duration::from_secs(5))
        .map(|(_, h)| h)
        .unwrap_or(0)
}

/// Milliseconds between the first and the last record of `topic` (CreateTime).
fn span_ms(topic: &str, n: i64) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("bench-span"))
        .create()
        .unwrap();
    let ts_at = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
            .unwrap();
        c.assign(&tpl).unwrap();
        loop {
            if let Some(Ok(m)) = c.poll(Duration::from_secs(5)) {
                return m.timestamp().to_millis().unwrap();
            }
        }
    };
    ts_at(n - 1) - ts_at(0)
}

async fn wait_for(topic: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while high_watermark(topic) < n {
        assert!(Instant::now() < deadline, "timed out waiting for {topic}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The baseline: consume, produce the same bytes, commit every second.
fn bare_loop(input: &str, output: &str, n: i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let base: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("bench-bare"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    base.subscribe(&[input]).unwrap();
    rt.block_on(async {
        let mut seen = 0;
        let mut last_commit = Instant::now();
        while seen < n {
            let m = base.recv().await.unwrap();
            let mut rec = BaseRecord::<[u8], [u8]>::to(output);
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            if let Some(v) = m.payload() {
                rec = rec.payload(v);
            }
            while let Err((e, r)) = producer.send(rec) {
                assert!(
                    matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ),
                    "{e}"
                );
                rec = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            seen += 1;
            if last_commit.elapsed() > Duration::from_secs(1) {
                producer.flush(Duration::from_secs(30)).unwrap();
                base.commit_message(&m, CommitMode::Async).unwrap();
                last_commit = Instant::now();
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    });
}

async fn forward(ctx: AgentContext, mut events: Stream<serde_json::Value>) -> AgentResult {
    let out = ctx.agent_settings().sinks[0].clone();
    while let Some(e) = events.next().await? {
        ctx.send(&out, e.key.as_ref(), &e.value).await?;
    }
    Ok(())
}

async fn agent_run(input: &str, output: &str, n: i64) {
    let settings = Settings::from_toml_str(&format!(
        r#"
        [app]
        id = "{}"
        broker = "{}"
        commit_interval = "1s"
        [web]
        enabled = false
        [services]
        schema_registry = ""
        [agents.forward]
        source.topics = ["{input}"]
        sinks = ["{output}"]
        "#,
        unique("bench-agent"),
        broker()
    ))
    .unwrap();
    let app = App::with_registry(settings, AgentRegistry::default())
        .agent("forward", AgentFn::new(forward));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(app.run(rx));
    wait_for(output, n).await;
    tx.send(true).unwrap();
    worker.await.unwrap().unwrap();
}

fn main() {
    let n: i64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let input = unique("bench-in");
    rt.block_on(async {
        create(&input, false).await;
        let t = Instant::now();
        fill(&input, n as u64, |i| {
            let body = format!(r#"{{"id":{i:>10},"station":"Clark/Lake","line":"blue","note":"#);
            let value = format!("{body}\"{}\"}}", "x".repeat(100 - body.len() - 3));
            (format!("k{}", i % 64), value)
        })
        .await;
        eprintln!(
            "filled {input} with {n} records of 100 bytes in {:?}",
            t.elapsed()
        );
    });
    let rate = |ms: i64| n as f64 * 1000.0 / ms.max(1) as f64;
    println!("pass-through, {n} JSON records of 100 bytes, 1 partition, at-least-once, commits every 1 s");
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let (out_bare, out_agent) = (
            unique(&format!("bench-out-bare-{round}")),
            unique(&format!("bench-out-agent-{round}")),
        );
        rt.block_on(async {
            create(&out_bare, false).await;
            create(&out_agent, false).await;
        });
        bare_loop(&input, &out_bare, n);
        rt.block_on(wait_for(&out_bare, n));
        let bare = rate(span_ms(&out_bare, n));
        rt.block_on(agent_run(&input, &out_agent, n));
        let agent = rate(span_ms(&out_agent, n));
        ratios.push(agent / bare);
        println!(
            "round {round}: bare rdkafka loop {bare:>9.0} msgs/s | cta-stream agent {agent:>9.0} msgs/s | agent/bare {:.2}",
            agent / bare
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!("median agent/bare: {:.2}", ratios[ratios.len() / 2]);
}
