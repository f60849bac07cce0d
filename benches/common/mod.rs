//! Helpers shared by the benchmarks: the broker, unique names, topics and bulk input.

#![allow(dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

pub fn broker() -> String {
    std::env::var("CTA_TEST_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn unique(prefix: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{t}")
}

/// A topic of one partition; compacted when asked.
pub async fn create(topic: &str, compact: bool) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let mut t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    if compact {
        t = t.set("cleanup.policy", "compact");
    }
    for r in admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

/// Writes `n` records; `record(i)` gives the key and value of the i-th.
pub async fn fill(topic: &str, n: u64, record: impl Fn(u64) -> (String, String)) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..n {
        let (key, value) = record(i);
        pending.push(
            p.send_result(FutureRecord::to(topic).key(&key).payload(&value))
                .unwrap(),
        );
        if pending.len() == 10_000 {
            for d in pending.drain(..) {
                d.await.unwrap().unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
}

/// Writes `n` records with their own timestamps; `record(i)` gives the key, value and
/// timestamp (ms since the epoch, the record's CreateTime) of the i-th.
pub async fn fill_timed(topic: &str, n: u64, record: impl Fn(u64) -> (String, String, i64)) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(10_000);
    for i in 0..n {
        let (key, value, ts) = record(i);
        pending.push(
            p.send_result(
                FutureRecord::to(topic)
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts),
            )
            .unwrap(),
        );
        if pending.len() == 10_000 {
            for d in pending.drain(..) {
                d.await.unwrap().unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
}
