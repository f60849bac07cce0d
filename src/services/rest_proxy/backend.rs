//! Where the proxy's records go and where its metadata comes from: a Kafka cluster (the
//! worker's embedded proxy), or the test driver's in-memory broker — the same HTTP API
//! over either.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaRespErr;

use super::errors::ApiError as E;
use super::metadata::{Cluster, PartitionMeta, Replica, TopicMeta};
use super::METADATA_TIMEOUT;

/// A record ready to produce.
#[derive(Debug, Clone)]
pub struct ProxyRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub partition: Option<i32>,
}

/// Why one record was not produced; `retriable` as Kafka's Java client says (50003 vs
/// 50002).
#[derive(Debug, Clone)]
pub struct ProduceFailure {
    pub message: String,
    pub retriable: bool,
}

#[async_trait::async_trait]
pub trait ProxyBackend: Send + Sync {
    /// Brokers and every topic with its partitions.
    async fn cluster(&self) -> Result<Cluster, E>;
    /// A topic's configs.
    async fn topic_configs(&self, name: &str) -> Result<BTreeMap<String, String>, E>;
    /// Whether the cluster creates a topic on first produce.
    async fn auto_creates(&self) -> bool;
    /// Produces `records` to `topic`; each answered with its partition and offset.
    async fn produce(
        &self,
        topic: &str,
        records: &[ProxyRecord],
    ) -> Vec<Result<(i32, i64), ProduceFailure>>;
}

/// A Kafka cluster, through a producer and an admin client.
pub struct KafkaBackend {
    pub producer: FutureProducer,
    pub admin: AdminClient<DefaultClientContext>,
}

#[async_trait::async_trait]
impl ProxyBackend for KafkaBackend {
    async fn cluster(&self) -> Result<Cluster, E> {
        let client = self.producer.client();
        let md = tokio::task::block_in_place(|| client.fetch_metadata(None, METADATA_TIMEOUT))
            .map_err(E::kafka_retriable)?;
        Ok(Cluster {
            brokers: md.brokers().iter().map(|b| b.id()).collect(),
            topics: md
                .topics()
                .iter()
                .map(|t| TopicMeta {
                    name: t.name().to_string(),
                    missing: matches!(
                        t.error(),
                        Some(e) if e == RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                            || e == RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
                    ),
                    partitions: t
                        .partitions()
                        .iter()
                        .map(|p| PartitionMeta {
                            partition: p.id(),
                            leader: p.leader(),
                            replicas: p
                                .replicas()
                                .iter()
                                .map(|&r| Replica {
                                    broker: r,
                                    leader: r == p.leader(),
                                    in_sync: p.isr().contains(&r),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    async fn topic_configs(&self, name: &str) -> Result<BTreeMap<String, String>, E> {
        let spec = ResourceSpecifier::Topic(name);
        let opts = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
        Ok(self
            .admin
            .describe_configs([&spec], &opts)
            .await
            .map_err(E::kafka_retriable)?
            .into_iter()
            .flatten()
            .flat_map(|r| r.entries)
            .filter_map(|e| e.value.map(|v| (e.name, v)))
            .collect())
    }

    async fn auto_creates(&self) -> bool {
        let Ok(meta) = self.cluster().await else {
            return false;
        };
        let Some(&broker) = meta.brokers.first() else {
            return false;
        };
        let spec = ResourceSpecifier::Broker(broker);
        let opts = AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT));
        match self.admin.describe_configs([&spec], &opts).await {
            Ok(results) => results.into_iter().flatten().any(|r| {
                r.get("auto.create.topics.enable")
                    .and_then(|e| e.value.as_deref())
                    == Some("true")
            }),
            Err(_) => false,
        }
    }

    async fn produce(
        &self,
        topic: &str,
        records: &[ProxyRecord],
    ) -> Vec<Result<(i32, i64), ProduceFailure>> {
        let sends = records.iter().map(|r| {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            self.producer.send(rec, Duration::from_secs(10))
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .map(|res| match res {
                Ok(d) => Ok((d.partition, d.offset)),
                Err((e, _)) => Err(ProduceFailure {
                    message: e.to_string(),
                    retriable: retriable(&e),
                }),
            })
            .collect()
    }
}

/// Errors Kafka's Java client calls retriable (they map to 50003).
fn retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | QueueFull
                | LeaderNotAvailable
                | NotLeaderForPartition
                | RequestTimedOut
                | NetworkException
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | BrokerNotAvailable
                | UnknownTopicOrPartition
                | UnknownTopic
                | AllBrokersDown
                | BrokerTransportFailure
        )
    )
}
