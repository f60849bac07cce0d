//! What an agent reaches the runtime through: its settings and parameters, and sending
//! records whose delivery is tied to the event being processed.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::kafka::admin::TopicSpec;
use crate::settings::{AgentSettings, ServiceSettings, Settings};
use crate::stream::event::Headers;
use crate::stream::sink::{DeliveryTag, EnqueueError, OutRecord};
use crate::stream::{Channel, Port};
use crate::table::{Table, TableError, TableSpec, WindowedTable};

use super::env::AgentEnv;
use super::status::AgentStatus;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot encode a record for topic {topic}: {source}")]
    Encode {
        topic: String,
        source: crate::codec::CodecError,
    },
    #[error("cannot enqueue a record for topic {topic}: {source}")]
    Enqueue { topic: String, source: EnqueueError },
}

/// Handed to each agent instance; cheap to clone.
#[derive(Clone)]
pub struct AgentContext {
    pub(crate) env: Arc<AgentEnv>,
    pub(crate) name: Arc<str>,
    pub(crate) instance: usize,
    pub(crate) settings: Arc<AgentSettings>,
    pub(crate) status: Arc<AgentStatus>,
    pub(crate) port: Arc<Port>,
}

impl AgentContext {
    /// The agent's name in the settings.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which of the agent's `concurrency` instances this is (0-based).
    pub fn instance(&self) -> usize {
        self.instance
    }

    pub fn app_id(&self) -> &str {
        &self.env.settings.app.id
    }

    pub fn app_settings(&self) -> &Settings {
        &self.env.settings
    }

    pub fn agent_settings(&self) -> &AgentSettings {
        &self.settings
    }

    pub fn services(&self) -> &ServiceSettings {
        &self.env.settings.services
    }

    /// The agent's `[agents.<name>.params]` table as a typed value.
    pub fn params<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        T::deserialize(toml::Value::Table(self.settings.params.clone())).map_err(|e| {
            anyhow::anyhow!(
                "bad setting `agents.{}.params` in {}: {e}",
                self.name,
                self.env.settings.source
            )
        })
    }

    /// The broker's name of the app's topic `name`: with `app.topic_prefix` before it,
    /// as every topic name of the settings already has. A name the agent makes up at run
    /// time (one topic per station, a topic from its `params`) goes through here, so that
    /// the agent stays in the app's namespace (Faust's `app.topic(name)`).
    pub fn topic(&self, name: &str) -> String {
        self.env.settings.app.topic(name)
    }

    /// The agent's `index`-th sink from its `sinks` setting, so that topic names live in
    /// the settings rather than in code.
    pub fn sink(&self, index: usize) -> anyhow::Result<&str> {
        self.settings
            .sinks
            .get(index)
            .map(String::as_str)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "agent {} needs at least {} sink(s): set `agents.{}.sinks` in {}",
                    self.name,
                    index + 1,
                    self.name,
                    self.env.settings.source
                )
            })
    }

    /// The table `T` declared in `tables/` (`register_table!`), typed by its declaration.
    /// The agent that writes a table reads and writes it in the partition of the event
    /// in hand; any agent reads a global table.
    pub fn table<T: TableSpec>(&self) -> Result<Table<T::Key, T::Value>, TableError> {
        let rt = self
            .env
            .tables
            .get(T::NAME)
            .ok_or_else(|| TableError::Unknown(T::NAME.to_string()))?
            .clone();
        Table::bind(
            rt,
            &self.name,
            self.env.producer.clone(),
            self.port.clone(),
            self.status.clone(),
        )
    }

    /// The windowed table `T` (a table with `tables.<name>.window` in the settings),
    /// typed by its declaration; only the agent that writes it uses it.
    pub fn windowed_table<T: TableSpec>(
        &self,
    ) -> Result<WindowedTable<T::Key, T::Value>, TableError> {
        let rt = self
            .env
            .tables
            .get(T::NAME)
            .ok_or_else(|| TableError::Unknown(T::NAME.to_string()))?
            .clone();
        WindowedTable::bind(
            rt,
            &self.name,
            self.env.producer.clone(),
            self.port.clone(),
            self.status.clone(),
        )
    }

    /// Creates the topics among `names` that do not exist yet, with their settings (an
    /// agent whose topics are only known at run time, e.g. one per station).
    pub async fn ensure_topics(&self, names: &[String]) -> anyhow::Result<()> {
        let specs: Vec<TopicSpec> = names
            .iter()
            .map(|n| {
                TopicSpec::from_settings(&self.env.settings, n, format!("agent {}", self.name))
            })
            .collect();
        self.env.admin.ensure(&specs).await?;
        Ok(())
    }

    /// Counts an event the agent leaves out on purpose (shown as `filtered` on
    /// `/health`), as opposed to one it could not process.
    pub fn filtered(&self) {
        AgentStatus::incr(&self.status.filtered);
    }

    /// A channel of the worker to send to or `ask` (its reader has
    /// `source.channel = "<name>"`).
    pub fn channel(&self, name: &str) -> Channel {
        self.env.channels.channel(name)
    }

    /// Answers the request in hand (an event a channel's `ask` sent); false when the
    /// event is not a request or was answered already.
    pub fn reply<T: Serialize + ?Sized>(&self, answer: &T) -> Result<bool, serde_json::Error> {
        Ok(self.port.reply(serde_json::to_vec(answer)?.into()))
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.port.shutdown.borrow()
    }

    /// Encodes `key` and `value` with the codecs of `topic`'s settings and produces
    /// them. The event being processed is acked only once this record is delivered.
    pub async fn send<K, V>(&self, topic: &str, key: Option<&K>, value: &V) -> Result<(), SendError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        self.send_with(topic, key, value, Headers::default()).await
    }

    /// [`send`](Self::send) with record headers (facts beside the value's schema, such
    /// as a simulated event time for windows downstream).
    pub async fn send_with<K, V>(
        &self,
        topic: &str,
        key: Option<&K>,
        value: &V,
        headers: Headers,
    ) -> Result<(), SendError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let codecs = self
            .env
            .codecs
            .for_topic(topic)
            .map_err(|source| SendError::Encode {
                topic: topic.to_string(),
                source,
            })?;
        let enc = |source| SendError::Encode {
            topic: topic.to_string(),
            source,
        };
        let key = match key {
            Some(k) => Some(codecs.key.encode(k).await.map_err(enc)?),
            None => None,
        };
        let value = codecs.value.encode(value).await.map_err(enc)?;
        self.send_record(OutRecord {
            topic: topic.to_string(),
            key,
            value: Some(value),
            headers,
            ..OutRecord::default()
        })
        .await
    }

    /// Produces a record as it is (bytes already encoded).
    pub async fn send_record(&self, rec: OutRecord) -> Result<(), SendError> {
        let tag = DeliveryTag {
            token: self.port.delivery_token(),
            observer: Some(self.status.clone()),
            on_delivery: None,
        };
        self.env
            .producer
            .send(&rec, tag)
            .await
            .map_err(|source| SendError::Enqueue {
                topic: rec.topic.clone(),
                source,
            })?;
        AgentStatus::incr(&self.status.events_out);
        Ok(())
    }
}
