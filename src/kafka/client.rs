//! librdkafka client configuration shared by every client the worker creates.

use rdkafka::config::ClientConfig;

use super::names::{ClientRole, Names};
use crate::settings::Settings;

pub enum ClientKind {
    Consumer,
    Producer,
    Admin,
}

/// Base configuration for a client: the broker, the refresh interval that lets pattern
/// subscriptions see new topics, and the pass-through properties of `[kafka.*]`.
pub fn client_config(settings: &Settings, kind: ClientKind) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.app.broker);
    c.set(
        "client.id",
        Names::new(settings).client_id(ClientRole::Worker),
    );
    c.set(
        "topic.metadata.refresh.interval.ms",
        settings.app.metadata_refresh.as_millis().to_string(),
    );
    match kind {
        ClientKind::Consumer => {
            // Offsets are committed by the runtime from its ack tracking, never by
            // librdkafka behind its back.
            c.set("enable.auto.commit", "false");
            c.set("enable.auto.offset.store", "false");
            // `range` hands equal partition numbers of co-partitioned topics to the
            // same member; librdkafka has no pluggable assignor to do better.
            c.set("partition.assignment.strategy", "range");
            c.set("session.timeout.ms", "10000");
            c.set("heartbeat.interval.ms", "1000");
            // Statistics give each partition's end offset: the consumer lag of /metrics.
            c.set("statistics.interval.ms", "5000");
            // librdkafka pre-fetches up to 64 MB per consumer by default, and the worker
            // has a consumer per agent: 4 MB each still keeps tens of thousands of
            // events ready, and bounds the worker's memory when it lags.
            c.set("queued.max.messages.kbytes", "4096");
            // A full pre-fetch queue pauses fetching for `fetch.queue.backoff.ms`, 1 s by
            // default: with a small queue that idled the worker most of the time.
            c.set("fetch.queue.backoff.ms", "20");
            // Under read_committed a fetch may wait for the last stable offset to move;
            // 100 ms instead of 500 keeps a transactional hop near the commit interval.
            c.set("fetch.wait.max.ms", "100");
        }
        ClientKind::Producer => {
            c.set("enable.idempotence", "true");
            c.set("linger.ms", "5");
            c.set("compression.type", "lz4");
            // Bounded so that a lost broker turns into a delivery error (and a
            // rewind) within minutes, not librdkafka's default of five.
            c.set("message.timeout.ms", "120000");
        }
        ClientKind::Admin => {}
    }
    for (k, v) in &settings.kafka.common {
        c.set(k, v);
    }
    let extra = match kind {
        ClientKind::Consumer => &settings.kafka.consumer,
        ClientKind::Producer => &settings.kafka.producer,
        ClientKind::Admin => &settings.kafka.common,
    };
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}
