//! The operators that forward events to topics: `echo` (to several topics, the stream
//! goes on), `through` (to a topic, the stream goes on from that topic) and `group_by`
//! (re-keyed through an internal repartition topic, so that state keyed by the new key
//! is co-partitioned with the events that update it, as in Faust and Kafka Streams).
//!
//! A forwarded event is acked once its copy is delivered (under exactly-once, the copy
//! and the event's offset commit in one transaction). `through` and `group_by` stages
//! are declared with the function (`register_agent!(.., group_by = ["line"])`) so that
//! the worker creates their topics and subscribes the agent to them before it starts.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::context::AgentContext;
use super::registry::{AgentRegistry, Stage};
use crate::codec::CodecError;
use crate::kafka::Names;
use crate::settings::{AgentSettings, Settings, SettingsError, StageTopic};
use crate::stream::event::{Event, RawEvent};
use crate::stream::sink::OutRecord;
use crate::stream::{EventStream, Next, Port, Stream, StreamError};

/// Fills in each enabled agent's stage topics from its function's declaration (before
/// the worker creates topics and subscribes agents).
pub fn declare_stages(
    settings: &mut Settings,
    registry: &AgentRegistry,
) -> Result<(), SettingsError> {
    let names = Names::new(settings);
    let mut found: Vec<(String, Vec<StageTopic>)> = Vec::new();
    for (name, a) in settings.enabled_agents() {
        let Some(func) = registry.get(a.function_name(name)) else {
            continue;
        };
        if func.stages.is_empty() {
            continue;
        }
        if a.source.topics.is_none() && a.source.pattern.is_none() {
            return Err(SettingsError::Invalid {
                file: settings.source.to_string(),
                key: format!("agents.{name}.source"),
                env_var: None,
                message: format!(
                    "function {} forwards its stream through topics (group_by/through), which needs a `topics = [..]` or `pattern` source",
                    a.function_name(name)
                ),
            });
        }
        let stages = func
            .stages
            .iter()
            .map(|s| match s {
                Stage::GroupBy(stage) => StageTopic {
                    kind: "group_by",
                    name: stage.clone(),
                    topic: names.repartition_topic(name, stage),
                },
                Stage::Through(topic) => StageTopic {
                    kind: "through",
                    name: topic.clone(),
                    topic: settings.app.topic(topic),
                },
            })
            .collect();
        found.push((name.clone(), stages));
    }
    for (name, stages) in found {
        if let Some(a) = settings.agents.get_mut(&name) {
            a.stages = stages;
        }
    }
    Ok(())
}

fn stage_topic(
    settings: &AgentSettings,
    agent: &str,
    kind: &str,
    name: &str,
) -> Result<Arc<str>, StreamError> {
    settings
        .stages
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .map(|s| Arc::from(s.topic.as_str()))
        .ok_or_else(|| {
            StreamError::Operator(format!(
                "agent {agent} calls {kind}({name:?}) but its function does not declare it: \
                 register it with register_agent!(\"..\", <function>, {kind} = [{name:?}])"
            ))
        })
}

/// A copy of `raw` for `topic`, with `key` in place of its key.
fn forward(raw: &RawEvent, topic: &str, key: Option<Vec<u8>>) -> OutRecord {
    OutRecord {
        topic: topic.to_string(),
        partition: None,
        key,
        value: raw.value.as_ref().map(|v| v.to_vec()),
        headers: raw.headers.clone(),
        // The copy keeps the event's time: windows downstream see event time.
        timestamp: raw.timestamp,
    }
}

async fn send(ctx: &AgentContext, raw: &RawEvent, rec: OutRecord) -> Result<(), StreamError> {
    ctx.send_record(rec)
        .await
        .map_err(|e| StreamError::Forward {
            topic: raw.topic.to_string(),
            partition: raw.partition,
            offset: raw.offset,
            message: e.to_string(),
        })
}

impl<V, K> Stream<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    /// Each event also goes, as it is, to every topic of `topics` (declare them in
    /// `sinks` so they exist); the stream goes on with the event, acked once every copy
    /// is delivered.
    pub fn echo(self, ctx: &AgentContext, topics: &[&str]) -> Echo<V, K> {
        Echo {
            inner: self,
            ctx: ctx.clone(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// The events go to `topic` (declared: `through = ["topic"]`), and the stream goes
    /// on with what that topic holds — the events of this agent and of anyone else who
    /// writes there.
    pub fn through(self, ctx: &AgentContext, topic: &str) -> Result<Through<V, K>, StreamError> {
        let topic = stage_topic(&ctx.settings, ctx.name(), "through", topic)?;
        Ok(Through {
            inner: self,
            ctx: ctx.clone(),
            topic,
        })
    }

    /// Re-keys the stream by `key(event)` through the internal topic of stage `name`
    /// (declared: `group_by = ["name"]`). The stream goes on with the re-keyed events,
    /// each in the partition of its new key, so a table written from them is
    /// co-partitioned with them. Keys are JSON on the repartition topic; values keep
    /// their bytes (and the event its timestamp).
    pub fn group_by<K2, F>(
        self,
        ctx: &AgentContext,
        name: &str,
        key: F,
    ) -> Result<GroupBy<V, K, K2, F>, StreamError>
    where
        K2: Serialize + DeserializeOwned + Send + 'static,
        F: FnMut(&Event<V, K>) -> K2 + Send + 'static,
    {
        let topic = stage_topic(&ctx.settings, ctx.name(), "group_by", name)?;
        Ok(GroupBy {
            inner: self,
            ctx: ctx.clone(),
            topic,
            key,
            _key: PhantomData,
        })
    }
}

impl<V, K> Stream<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    /// Like [`Stream::group_by`], but each event gives any number of (key, value)
    /// pairs — none to leave it out, several to split it (a sentence into its words) —
    /// each forwarded as its own record, JSON-encoded, through stage `name`'s
    /// repartition topic (Kafka Streams' `flatMap` + `groupByKey`). The source event is
    /// acked once all its records are delivered.
    pub fn group_by_many<K2, V2, I, F>(
        self,
        ctx: &AgentContext,
        name: &str,
        split: F,
    ) -> Result<GroupByMany<V, K, K2, V2, F>, StreamError>
    where
        K2: Serialize + DeserializeOwned + Send + 'static,
        V2: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = (K2, V2)>,
        F: FnMut(&Event<V, K>) -> I + Send + 'static,
    {
        let topic = stage_topic(&ctx.settings, ctx.name(), "group_by", name)?;
        Ok(GroupByMany {
            inner: self,
            ctx: ctx.clone(),
            topic,
            split,
            _types: PhantomData,
        })
    }
}

pub struct GroupByMany<V, K, K2, V2, F> {
    inner: Stream<V, K>,
    ctx: AgentContext,
    topic: Arc<str>,
    split: F,
    _types: PhantomData<fn() -> (K2, V2)>,
}

impl<V, K, K2, V2, I, F> EventStream for GroupByMany<V, K, K2, V2, F>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
    K2: Serialize + DeserializeOwned + Send + 'static,
    V2: Serialize + DeserializeOwned + Send + 'static,
    I: IntoIterator<Item = (K2, V2)>,
    F: FnMut(&Event<V, K>) -> I + Send + 'static,
{
    type Item = Event<V2, K2>;

    async fn next(&mut self) -> Next<Event<V2, K2>> {
        loop {
            let Some(raw) = self.inner.next_raw().await else {
                return Ok(None);
            };
            if raw.topic == self.topic {
                match decode_json_event(&raw) {
                    Ok(event) => return Ok(Some(event)),
                    Err(e) => {
                        self.inner.reject(&raw, e).await?;
                        continue;
                    }
                }
            }
            let event = match self.inner.decode(&raw).await {
                Ok(event) => event,
                Err(e) => {
                    self.inner.reject(&raw, e).await?;
                    continue;
                }
            };
            let records: Vec<OutRecord> = (self.split)(&event)
                .into_iter()
                .map(|(k, v)| {
                    let mut rec = forward(&raw, &self.topic, Some(serde_json::to_vec(&k)?));
                    rec.value = Some(serde_json::to_vec(&v)?);
                    Ok(rec)
                })
                .collect::<Result<_, serde_json::Error>>()
                .map_err(|e| StreamError::Forward {
                    topic: raw.topic.to_string(),
                    partition: raw.partition,
                    offset: raw.offset,
                    message: format!("cannot encode a record as JSON: {e}"),
                })?;
            if records.is_empty() {
                self.inner.port().owner.filtered();
            }
            for rec in records {
                send(&self.ctx, &raw, rec).await?;
            }
        }
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

/// A record of a `group_by_many` repartition topic: JSON key and value.
fn decode_json_event<K2: DeserializeOwned, V2: DeserializeOwned>(
    raw: &RawEvent,
) -> Result<Event<V2, K2>, CodecError> {
    let key = raw
        .key
        .as_deref()
        .map(serde_json::from_slice::<K2>)
        .transpose()?;
    let value = serde_json::from_slice::<V2>(raw.value.as_deref().unwrap_or(b"null"))?;
    Ok(Event {
        key,
        value,
        topic: raw.topic.clone(),
        partition: raw.partition,
        offset: raw.offset,
        timestamp: raw.timestamp,
        headers: raw.headers.clone(),
    })
}

pub struct Echo<V, K> {
    inner: Stream<V, K>,
    ctx: AgentContext,
    topics: Vec<String>,
}

impl<V, K> EventStream for Echo<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    type Item = Event<V, K>;

    async fn next(&mut self) -> Next<Event<V, K>> {
        let Some(event) = self.inner.next().await? else {
            return Ok(None);
        };
        if let Some(raw) = self.inner.port().current_raw() {
            for t in &self.topics {
                send(
                    &self.ctx,
                    &raw,
                    forward(&raw, t, raw.key.as_ref().map(|k| k.to_vec())),
                )
                .await?;
            }
        }
        Ok(Some(event))
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

pub struct Through<V, K> {
    inner: Stream<V, K>,
    ctx: AgentContext,
    topic: Arc<str>,
}

impl<V, K> EventStream for Through<V, K>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
{
    type Item = Event<V, K>;

    async fn next(&mut self) -> Next<Event<V, K>> {
        loop {
            let Some(raw) = self.inner.next_raw().await else {
                return Ok(None);
            };
            if raw.topic == self.topic {
                match self.inner.decode(&raw).await {
                    Ok(event) => return Ok(Some(event)),
                    Err(e) => {
                        self.inner.reject(&raw, e).await?;
                        continue;
                    }
                }
            }
            let rec = forward(&raw, &self.topic, raw.key.as_ref().map(|k| k.to_vec()));
            send(&self.ctx, &raw, rec).await?;
        }
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}

pub struct GroupBy<V, K, K2, F> {
    inner: Stream<V, K>,
    ctx: AgentContext,
    topic: Arc<str>,
    key: F,
    _key: PhantomData<fn() -> K2>,
}

impl<V, K, K2, F> EventStream for GroupBy<V, K, K2, F>
where
    V: DeserializeOwned + Send + 'static,
    K: DeserializeOwned + Send + 'static,
    K2: Serialize + DeserializeOwned + Send + 'static,
    F: FnMut(&Event<V, K>) -> K2 + Send + 'static,
{
    type Item = Event<V, K2>;

    async fn next(&mut self) -> Next<Event<V, K2>> {
        loop {
            let Some(raw) = self.inner.next_raw().await else {
                return Ok(None);
            };
            if raw.topic == self.topic {
                let key = match raw.key.as_deref().map(serde_json::from_slice::<K2>) {
                    None => Ok(None),
                    Some(Ok(k)) => Ok(Some(k)),
                    Some(Err(e)) => Err(CodecError::Json(e)),
                };
                let event = match key {
                    Ok(key) => self.inner.decode_with_key(&raw, key).await,
                    Err(e) => Err(e),
                };
                match event {
                    Ok(event) => return Ok(Some(event)),
                    Err(e) => {
                        self.inner.reject(&raw, e).await?;
                        continue;
                    }
                }
            }
            let event = match self.inner.decode(&raw).await {
                Ok(event) => event,
                Err(e) => {
                    self.inner.reject(&raw, e).await?;
                    continue;
                }
            };
            let new_key = (self.key)(&event);
            let key = serde_json::to_vec(&new_key).map_err(|e| StreamError::Forward {
                topic: raw.topic.to_string(),
                partition: raw.partition,
                offset: raw.offset,
                message: format!("cannot encode the new key as JSON: {e}"),
            })?;
            send(&self.ctx, &raw, forward(&raw, &self.topic, Some(key))).await?;
        }
    }

    fn port(&self) -> &Arc<Port> {
        self.inner.port()
    }
}
