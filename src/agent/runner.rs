//! Starting an agent: its codecs, error handler, instances with their supervisors and,
//! for topic sources, its consumer. Everything that can fail on bad settings fails in
//! `prepare`, before the worker starts anything.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::{mpsc, watch};

use super::context::AgentContext;
use super::env::AgentEnv;
use super::policy::ErrorHandler;
use super::registry::AgentFn;
use super::source::{SourceContext, SourceHandle, SourceLoop, TrackerMap};
use super::status::AgentStatus;
use super::supervisor::supervise;
use crate::codec::{codec_for, Codec, Part};
use crate::kafka::client::{client_config, ClientKind};
use crate::kafka::Names;
use crate::settings::{AgentSettings, ProcessingGuarantee, Source};
use crate::stream::typed::{Dispatched, Feed};
use crate::stream::Port;

/// Events buffered per instance between the consumer and the agent.
const INSTANCE_QUEUE: usize = 1024;

pub(crate) struct PreparedAgent {
    name: String,
    settings: Arc<AgentSettings>,
    func: AgentFn,
    status: Arc<AgentStatus>,
    /// The error policy the instances share (its log summaries are flushed at the end).
    handler: Arc<ErrorHandler>,
    ports: Vec<Arc<Port>>,
    kafka: Option<KafkaSide>,
    /// With [`Intake::External`]: the instances' queues, fed by the caller.
    external: Vec<mpsc::Sender<Dispatched>>,
}

/// Who reads an agent's source topics and hands their events to its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intake {
    /// The agent's own Kafka consumer (a worker).
    Kafka,
    /// The caller, through [`PreparedAgent::take_queues`] (the test driver).
    External,
}

struct KafkaSide {
    consumer: Arc<StreamConsumer<SourceContext>>,
    trackers: Arc<TrackerMap>,
    senders: Vec<mpsc::Sender<Dispatched>>,
    tables: Vec<Arc<crate::table::TableRuntime>>,
    assignments: mpsc::UnboundedReceiver<crate::agent::source::Assignment>,
}

impl PreparedAgent {
    pub fn prepare(
        env: &Arc<AgentEnv>,
        name: &str,
        settings: Arc<AgentSettings>,
        func: AgentFn,
        status: Arc<AgentStatus>,
        shutdown: &watch::Receiver<bool>,
        intake: Intake,
    ) -> anyhow::Result<Self> {
        let source = settings.source();
        let registry = env.codecs.registry();
        let source_name = format!("agents.{name}.source");
        let (value_codec, key_codec) = match &source {
            Source::Timer(_) => (Codec::Json, Codec::Raw),
            Source::Channel(_) => (Codec::Json, Codec::Json),
            _ => (
                codec_for(settings.codec, &source_name, Part::Value, None, registry)
                    .map_err(|e| anyhow::anyhow!("agents.{name}.codec: {e}"))?,
                codec_for(settings.key_codec, &source_name, Part::Key, None, registry)
                    .map_err(|e| anyhow::anyhow!("agents.{name}.key_codec: {e}"))?,
            ),
        };
        let handler = Arc::new(ErrorHandler::new(
            settings.on_error,
            name,
            Names::new(&env.settings).dead_letter_topic(name),
            env.producer.clone(),
            status.clone(),
            env.coordinator.is_some(),
        ));
        let mut feeds = Vec::new();
        let mut kafka = None;
        let mut external = Vec::new();
        match &source {
            Source::Topics(_) | Source::Pattern(_) if intake == Intake::External => {
                for _ in 0..settings.concurrency {
                    let (tx, rx) = mpsc::channel(INSTANCE_QUEUE);
                    external.push(tx);
                    feeds.push(Feed::kafka(rx));
                }
            }
            Source::Timer(spec) => {
                let leader = if spec.on_leader {
                    env.leader.clone()
                } else {
                    None
                };
                if let Some(l) = &leader {
                    status.follow_leadership(l.watch());
                }
                for _ in 0..settings.concurrency {
                    feeds.push(
                        Feed::timer(name, spec, env.clock, leader.clone())
                            .map_err(|e| anyhow::anyhow!("agents.{name}.source: {e}"))?,
                    );
                }
            }
            Source::Channel(channel) => {
                for rx in env.channels.open(channel, settings.concurrency) {
                    feeds.push(Feed::Channel(rx));
                }
            }
            Source::Topics(_) | Source::Pattern(_) => {
                let trackers = Arc::new(TrackerMap::with_latency(status.latency.clone()));
                let tables = env.tables.of_agent(name);
                let (assign_tx, assign_rx) = mpsc::unbounded_channel();
                let mut cfg = client_config(&env.settings, ClientKind::Consumer);
                cfg.set("group.id", Names::new(&env.settings).agent_group(name));
                cfg.set(
                    "auto.offset.reset",
                    if settings.from_beginning {
                        "earliest"
                    } else {
                        "latest"
                    },
                );
                let read_committed =
                    env.settings.app.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
                if read_committed {
                    cfg.set("isolation.level", "read_committed");
                }
                let consumer: StreamConsumer<SourceContext> = cfg
                    .create_with_context(SourceContext {
                        agent: name.to_string(),
                        trackers: trackers.clone(),
                        tables: tables.clone(),
                        assignments: assign_tx,
                        coordinator: env.coordinator.clone(),
                        status: status.clone(),
                        read_committed,
                        table_topics: settings.table_topics(),
                    })
                    .map_err(|e| {
                        anyhow::anyhow!("cannot create the consumer of agent {name}: {e}")
                    })?;
                let subscription: Vec<String> = match &source {
                    Source::Topics(t) => t.clone(),
                    // librdkafka takes regexes and names in one subscription.
                    Source::Pattern(p) => std::iter::once(p.clone())
                        .chain(settings.stages.iter().map(|s| s.topic.clone()))
                        .collect(),
                    Source::Timer(_) | Source::Channel(_) => unreachable!(),
                };
                let refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
                consumer.subscribe(&refs).map_err(|e| {
                    anyhow::anyhow!("agent {name} cannot subscribe to {refs:?}: {e}")
                })?;
                let mut senders = Vec::new();
                for _ in 0..settings.concurrency {
                    let (tx, rx) = mpsc::channel(INSTANCE_QUEUE);
                    senders.push(tx);
                    feeds.push(Feed::kafka(rx));
                }
                kafka = Some(KafkaSide {
                    consumer: Arc::new(consumer),
                    trackers,
                    senders,
                    tables,
                    assignments: assign_rx,
                });
            }
        }
        let ports = feeds
            .into_iter()
            .map(|feed| {
                Arc::new(Port::new(
                    feed,
                    shutdown.clone(),
                    value_codec.clone(),
                    key_codec.clone(),
                    handler.clone(),
                    env.coordinator.as_ref().map(|c| c.barrier()),
                ))
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            settings,
            func,
            status,
            handler,
            ports,
            kafka,
            external,
        })
    }

    /// The instances' queues (an external intake's); instance `i` gets the events of the
    /// partitions that hash to it, as the Kafka intake does.
    pub fn take_queues(&mut self) -> Vec<mpsc::Sender<Dispatched>> {
        std::mem::take(&mut self.external)
    }

    /// Spawns the supervised instances.
    pub fn start_instances(&self, env: &Arc<AgentEnv>) -> Vec<tokio::task::JoinHandle<()>> {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let ctx = AgentContext {
                    env: env.clone(),
                    name: Arc::from(self.name.as_str()),
                    instance: i,
                    settings: self.settings.clone(),
                    status: self.status.clone(),
                    port: port.clone(),
                };
                tokio::spawn(supervise(self.func.clone(), ctx, port.clone()))
            })
            .collect()
    }

    /// Runs until shutdown, then stops cleanly: instances finish their event, records
    /// are delivered, offsets committed.
    pub async fn run(self, env: Arc<AgentEnv>, shutdown: watch::Receiver<bool>) {
        let instances = self.start_instances(&env);
        let timeout = env.settings.app.shutdown_timeout;
        let Some(kafka) = self.kafka else {
            // A timer agent: its stream ends at shutdown; only then is it waited for.
            let mut stop = shutdown.clone();
            let _ = stop.wait_for(|s| *s).await;
            wait_all(&self.name, instances, timeout).await;
            self.handler.flush_log();
            if let Err(e) = env.producer.flush(timeout).await {
                tracing::error!(agent = %self.name, "records still undelivered at shutdown ({e})");
            }
            tracing::info!(agent = %self.name, "stopped");
            return;
        };
        let mut lp = SourceLoop::new(
            self.name.clone(),
            kafka.consumer.clone(),
            kafka.trackers.clone(),
            kafka.senders,
            self.status.clone(),
            env.settings.app.commit_interval,
        );
        if !kafka.tables.is_empty() {
            lp.tables = kafka.tables.clone();
            lp.manager = Some(env.tables.clone());
            lp.assignments = Some(kafka.assignments);
        }
        if let Some(c) = &env.coordinator {
            let (tx, rx) = mpsc::unbounded_channel();
            c.register(Box::new(SourceHandle {
                consumer: kafka.consumer.clone(),
                trackers: kafka.trackers.clone(),
                control: tx,
            }));
            lp.control = Some(rx);
            lp.transactional = true;
        }
        lp.run(shutdown).await;
        tracing::info!(agent = %self.name, "stopping: finishing in-flight events");
        wait_all(&self.name, instances, timeout).await;
        self.handler.flush_log();
        if let Err(e) = env.producer.flush(timeout).await {
            tracing::error!(agent = %self.name, "records still undelivered at shutdown ({e}); their events stay uncommitted");
        }
        if env.coordinator.is_some() {
            // The coordinator's final transaction commits these offsets; it still needs
            // the consumer (its group metadata), which it holds.
            drop(lp);
            tracing::info!(agent = %self.name, "stopped");
            return;
        }
        lp.commit(CommitMode::Sync);
        for t in kafka.trackers.all() {
            t.retire();
        }
        for t in &kafka.tables {
            t.close_all();
        }
        drop(lp);
        let consumer = kafka.consumer;
        // Closing leaves the group at once, so partitions move without a session timeout.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        tracing::info!(agent = %self.name, "stopped");
    }
}

async fn wait_all(agent: &str, instances: Vec<tokio::task::JoinHandle<()>>, timeout: Duration) {
    let all = futures::future::join_all(instances);
    if tokio::time::timeout(timeout, all).await.is_err() {
        tracing::error!(
            agent,
            "instances did not finish within {}; their events stay uncommitted",
            humantime::format_duration(timeout)
        );
    }
}
