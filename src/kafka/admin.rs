//! Topic administration: the topics agents declare are created when missing, and an
//! existing topic whose partition count differs from the settings is reported.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use thiserror::Error;

use crate::settings::Settings;

use super::client::{client_config, ClientKind};

/// A topic the app needs, and the setting that asked for it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    pub config: BTreeMap<String, String>,
    pub declared_by: String,
}

impl TopicSpec {
    pub fn from_settings(settings: &Settings, name: &str, declared_by: String) -> Self {
        Self {
            name: name.to_string(),
            partitions: settings.partitions_for(name),
            replication: settings.replication_for(name),
            config: settings.topic(name).config,
            declared_by,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    Exists {
        partitions: i32,
    },
    /// Exists with another partition count than the settings give.
    PartitionMismatch {
        actual: i32,
        wanted: i32,
    },
}

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("cannot reach the broker at {broker} to manage topics: {message}")]
    Unreachable { broker: String, message: String },
    #[error("cannot create topic {topic} (declared by {declared_by}): {message}")]
    Create {
        topic: String,
        declared_by: String,
        message: String,
    },
}

/// Creates the missing topics of `specs`; returns what was found or done for each.
pub async fn ensure_topics(
    settings: &Settings,
    specs: &[TopicSpec],
) -> Result<Vec<(TopicSpec, TopicOutcome)>, AdminError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings, ClientKind::Admin)
        .create()
        .map_err(|e| AdminError::Unreachable {
            broker: settings.app.broker.clone(),
            message: e.to_string(),
        })?;
    let broker = settings.app.broker.clone();
    let existing = existing_topics(&admin, &broker).await?;

    let mut out = Vec::new();
    let mut to_create = Vec::new();
    for spec in dedup(specs) {
        match existing.get(&spec.name) {
            Some(&actual) if actual != spec.partitions => out.push((
                spec.clone(),
                TopicOutcome::PartitionMismatch {
                    actual,
                    wanted: spec.partitions,
                },
            )),
            Some(&actual) => out.push((spec.clone(), TopicOutcome::Exists { partitions: actual })),
            None => to_create.push(spec.clone()),
        }
    }
    if !to_create.is_empty() {
        let new_topics: Vec<NewTopic<'_>> = to_create
            .iter()
            .map(|s| {
                let mut t = NewTopic::new(
                    &s.name,
                    s.partitions,
                    TopicReplication::Fixed(s.replication),
                );
                for (k, v) in &s.config {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(new_topics.iter(), &opts)
            .await
            .map_err(|e| AdminError::Unreachable {
                broker: broker.clone(),
                message: e.to_string(),
            })?;
        for (spec, result) in to_create.into_iter().zip(results) {
            match result {
                Ok(_) => {
                    tracing::info!(topic = %spec.name, partitions = spec.partitions, replication = spec.replication, "created topic");
                    out.push((spec, TopicOutcome::Created));
                }
                // Another worker created it between our look and our request.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    let partitions = spec.partitions;
                    out.push((spec, TopicOutcome::Exists { partitions }));
                }
                Err((_, code)) => {
                    return Err(AdminError::Create {
                        topic: spec.name.clone(),
                        declared_by: spec.declared_by.clone(),
                        message: code.to_string(),
                    })
                }
            }
        }
    }
    wait_visible(&admin, &broker, &out).await;
    for (spec, outcome) in &out {
        if let TopicOutcome::PartitionMismatch { actual, wanted } = outcome {
            tracing::warn!(
                "topic {} has {actual} partitions on the broker but the settings give {wanted} \
                 (topics.\"{}\".partitions or topic_defaults.partitions, declared by {}); \
                 partitions are never removed: change the setting or recreate the topic",
                spec.name,
                spec.name,
                spec.declared_by
            );
        }
    }
    Ok(out)
}

/// The broker answers a creation before its metadata shows the topic; waits (a little)
/// until every created topic is visible, so that whoever asked can use it at once.
async fn wait_visible(
    admin: &AdminClient<DefaultClientContext>,
    broker: &str,
    out: &[(TopicSpec, TopicOutcome)],
) {
    let created: Vec<&str> = out
        .iter()
        .filter(|(_, o)| *o == TopicOutcome::Created)
        .map(|(s, _)| s.name.as_str())
        .collect();
    if created.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = existing_topics(admin, broker).await.unwrap_or_default();
        let missing = created.iter().filter(|t| !seen.contains_key(**t)).count();
        if missing == 0 {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(
                missing,
                "created topics are not yet in the broker's metadata"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Names and partition counts of the topics on the broker.
pub async fn existing_topics(
    admin: &AdminClient<DefaultClientContext>,
    broker: &str,
) -> Result<BTreeMap<String, i32>, AdminError> {
    let md =
        tokio::task::block_in_place(|| admin.inner().fetch_metadata(None, Duration::from_secs(10)))
            .map_err(|e| AdminError::Unreachable {
                broker: broker.to_string(),
                message: e.to_string(),
            })?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

fn dedup(specs: &[TopicSpec]) -> Vec<&TopicSpec> {
    let mut seen = std::collections::BTreeSet::new();
    specs
        .iter()
        .filter(|s| seen.insert(s.name.clone()))
        .collect()
}

/// Creates topics an agent only knows at run time: through the broker's admin API, or
/// in the test driver's broker.
#[async_trait::async_trait]
pub trait TopicAdmin: Send + Sync {
    async fn ensure(&self, specs: &[TopicSpec]) -> Result<(), AdminError>;
}

/// The broker's admin API, with the worker's settings.
pub struct KafkaTopicAdmin(pub std::sync::Arc<Settings>);

#[async_trait::async_trait]
impl TopicAdmin for KafkaTopicAdmin {
    async fn ensure(&self, specs: &[TopicSpec]) -> Result<(), AdminError> {
        ensure_topics(&self.0, specs).await.map(|_| ())
    }
}
