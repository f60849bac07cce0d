//! Topic metadata (spec §2.3): `GET /topics`, `GET /topics/{topic}`, its partitions, and
//! `GET /brokers`, read from the broker's metadata and topic configs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::errors::ApiError as E;
use super::EmbeddedRestProxy;

/// What the broker said about the cluster, owned (rdkafka's metadata is tied to its client).
pub struct Cluster {
    pub brokers: Vec<i32>,
    pub topics: Vec<TopicMeta>,
}

pub struct TopicMeta {
    pub name: String,
    /// The topic does not exist (or is not visible).
    pub missing: bool,
    pub partitions: Vec<PartitionMeta>,
}

#[derive(Serialize)]
pub struct PartitionMeta {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<Replica>,
}

#[derive(Serialize)]
pub struct Replica {
    pub broker: i32,
    pub leader: bool,
    pub in_sync: bool,
}

#[derive(Serialize)]
pub struct TopicView {
    pub name: String,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionMeta>,
}

impl EmbeddedRestProxy {
    /// Metadata of every topic.
    pub(super) async fn cluster(&self) -> Result<Cluster, E> {
        self.backend.cluster().await
    }

    /// The topic's metadata; 404/40401 when it does not exist.
    pub(super) async fn topic(&self, name: &str) -> Result<TopicMeta, E> {
        // Asked about one topic, librdkafka keeps an object for that name for as long as
        // the client lives, and every metadata answer then scans them all: a request for
        // each of many made-up names would grow the proxy's memory and CPU without end.
        // (It also cannot be asked about a name that holds a NUL.) So: all topics, then
        // this one, which also makes a name the broker cannot hold (`a b`) a 404.
        self.cluster()
            .await?
            .topics
            .into_iter()
            .find(|t| t.name == name && !t.missing)
            .ok_or_else(E::topic_not_found)
    }
}

pub async fn list_topics(proxy: &Arc<EmbeddedRestProxy>) -> Result<Vec<String>, E> {
    let mut names: Vec<String> = proxy
        .cluster()
        .await?
        .topics
        .into_iter()
        .filter(|t| !t.missing && !t.name.starts_with("__"))
        .map(|t| t.name)
        .collect();
    names.sort();
    Ok(names)
}

pub async fn describe_topic(proxy: &Arc<EmbeddedRestProxy>, name: &str) -> Result<TopicView, E> {
    let meta = proxy.topic(name).await?;
    let configs = proxy.backend.topic_configs(&meta.name).await?;
    Ok(TopicView {
        name: meta.name,
        configs,
        partitions: meta.partitions,
    })
}

pub async fn partitions(
    proxy: &Arc<EmbeddedRestProxy>,
    name: &str,
) -> Result<Vec<PartitionMeta>, E> {
    Ok(proxy.topic(name).await?.partitions)
}

pub async fn partition(
    proxy: &Arc<EmbeddedRestProxy>,
    name: &str,
    partition: i32,
) -> Result<PartitionMeta, E> {
    proxy
        .topic(name)
        .await?
        .partitions
        .into_iter()
        .find(|p| p.partition == partition)
        .ok_or_else(E::partition_not_found)
}

pub async fn brokers(proxy: &Arc<EmbeddedRestProxy>) -> Result<Vec<i32>, E> {
    Ok(proxy.cluster().await?.brokers)
}
