//! Persistence in the `_schemas` topic: creating it, replaying it, writing to it.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::errors::RegistryServiceError;
use super::store::{Record, Store};

const TIMEOUT: Duration = Duration::from_secs(30);

fn kafka_err(bootstrap: &str, e: impl std::fmt::Display) -> RegistryServiceError {
    RegistryServiceError::Kafka {
        bootstrap: bootstrap.to_string(),
        message: e.to_string(),
    }
}

fn topic_err(topic: &str, e: impl std::fmt::Display) -> RegistryServiceError {
    RegistryServiceError::Topic {
        topic: topic.to_string(),
        message: e.to_string(),
    }
}

/// Creates `topic` (1 partition, replication 1, compacted) unless it exists.
pub async fn ensure_topic(bootstrap: &str, topic: &str) -> Result<(), RegistryServiceError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| kafka_err(bootstrap, e))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| kafka_err(bootstrap, e))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, "schema registry: created its topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(topic_err(topic, code)),
        }
    }
    Ok(())
}

/// Reads `topic` partition 0 from the beginning up to its current end into a new [`Store`].
pub fn replay(bootstrap: &str, topic: &str) -> Result<Store, RegistryServiceError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            crate::kafka::names::schema_registry_reader_group(std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| kafka_err(bootstrap, e))?;
    let started = Instant::now();
    // A freshly created topic may take a moment to have a leader.
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Ok(w) => break w,
            Err(e) if started.elapsed() < TIMEOUT => {
                tracing::debug!(topic, error = %e, "schema registry: waiting for the topic");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(topic_err(topic, e)),
        }
    };
    let mut store = Store::default();
    if high <= low {
        return Ok(store);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| topic_err(topic, e))?;
    consumer.assign(&tpl).map_err(|e| topic_err(topic, e))?;
    let mut records = 0u64;
    loop {
        if started.elapsed() > TIMEOUT {
            return Err(topic_err(
                topic,
                format!("replay did not reach offset {high} within {TIMEOUT:?}"),
            ));
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(e)) => return Err(topic_err(topic, e)),
            Some(Ok(m)) => {
                if let Some(key) = m.key() {
                    store.apply(key, m.payload());
                    records += 1;
                }
                if m.offset() >= high - 1 {
                    break;
                }
            }
        }
    }
    tracing::info!(
        topic,
        records,
        next_id = store.next_id(),
        "schema registry: replayed its topic"
    );
    Ok(store)
}

/// Writes records to the topic and waits for each delivery.
pub struct Log {
    producer: FutureProducer,
    topic: String,
}

impl Log {
    pub fn new(bootstrap: &str, topic: &str) -> Result<Self, RegistryServiceError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "15000")
            .create()
            .map_err(|e| kafka_err(bootstrap, e))?;
        Ok(Log {
            producer,
            topic: topic.to_string(),
        })
    }

    pub async fn write(&self, record: &Record) -> Result<(), RegistryServiceError> {
        let mut fr = FutureRecord::<str, str>::to(&self.topic)
            .partition(0)
            .key(record.key.as_str());
        if let Some(v) = &record.value {
            fr = fr.payload(v.as_str());
        }
        self.producer
            .send(fr, Duration::from_secs(15))
            .await
            .map(|_| ())
            .map_err(|(e, _)| RegistryServiceError::Write {
                topic: self.topic.clone(),
                message: e.to_string(),
            })
    }
}
