//! The App: settings plus the agent registry, turned into a running worker.

mod phases;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;

use crate::agent::{AgentFn, AgentRegistry};
use crate::kafka::admin::{AdminError, TopicSpec};
use crate::kafka::Names;
use crate::settings::{ErrorPolicy, Settings, SettingsError, Source};
use crate::table::{TableDecl, TableRegistry};

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("the broker at {broker} did not answer within {:.1} s: {message} (is Kafka running? `scripts/stack up` starts one)", .waited.as_secs_f64())]
    BrokerUnreachable {
        broker: String,
        waited: Duration,
        message: String,
    },
    #[error(transparent)]
    Topics(#[from] AdminError),
    #[error(transparent)]
    WebBind(#[from] crate::web::BindError),
    #[error("{0}")]
    Startup(String),
}

pub struct App {
    settings: Settings,
    registry: AgentRegistry,
    tables: TableRegistry,
}

impl App {
    /// An app with every agent function linked into the binary (`register_agent!`).
    pub fn new(settings: Settings) -> Self {
        Self::with_registry(settings, AgentRegistry::collected())
    }

    pub fn with_registry(settings: Settings, registry: AgentRegistry) -> Self {
        Self {
            settings,
            registry,
            tables: TableRegistry::collected(),
        }
    }

    /// Declares a table in code (tests, embedding).
    pub fn table(mut self, decl: TableDecl) -> Self {
        self.tables.insert(decl);
        self
    }

    /// Registers a function in code (tests, embedding).
    pub fn agent(mut self, name: &str, f: AgentFn) -> Self {
        self.registry.insert(name, f);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn registry(&self) -> &AgentRegistry {
        &self.registry
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.settings.validate(&self.registry.names())?;
        self.settings.validate_tables(&self.tables.names())?;
        let known = crate::web::views::known();
        for v in &self.settings.web.views {
            if !known.contains(&v.as_str()) {
                return Err(SettingsError::Invalid {
                    file: self.settings.source.to_string(),
                    key: "web.views".into(),
                    env_var: None,
                    message: format!(
                        "no view named {v} is linked in (known: {})",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The start-up banner, Faust style.
    pub fn banner(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let line = "─".repeat(64);
        let _ = writeln!(out, "┌{line}");
        let _ = writeln!(out, "│ cta-stream {} worker", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "├{line}");
        let rows = [
            ("id", s.app.id.clone()),
            ("broker", s.app.broker.clone()),
            ("state dir", s.state_dir().display().to_string()),
            (
                "web",
                if s.web.enabled {
                    format!("http://{}", s.web.bind)
                } else {
                    "disabled".into()
                },
            ),
            ("guarantee", s.app.processing_guarantee.to_string()),
            ("settings", s.source.to_string()),
            (
                "registry",
                match s.embedded_registry_addr() {
                    Ok(Some(a)) => format!("embedded, http://{a}"),
                    _ => s.schema_registry_url(),
                },
            ),
            (
                "rest proxy",
                match s.embedded_rest_proxy_addr() {
                    Ok(Some(a)) => format!("embedded, http://{a}"),
                    _ => s.rest_proxy_url(),
                },
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(out, "│ {k:<10} │ {v}");
        }
        let _ = writeln!(out, "├{line}");
        if s.agents.is_empty() {
            let _ = writeln!(out, "│ agents     │ none");
        }
        for (name, a) in &s.agents {
            let state = if a.enabled { "" } else { " (disabled)" };
            let _ = writeln!(out, "│ agent      │ {name}{state} ← {}", a.source());
        }
        for (name, t) in &s.tables {
            let kind = if t.global {
                format!(
                    "global, follows {}",
                    Names::new(s).global_source_topic(name)
                )
            } else {
                format!(
                    "{} partition(s), changelog {}, written by {}",
                    s.table_partitions(name),
                    Names::new(s).changelog_topic(name),
                    t.agent.as_deref().unwrap_or("-")
                )
            };
            let _ = writeln!(out, "│ table      │ {name} ({kind})");
        }
        let _ = write!(out, "└{line}");
        out
    }

    /// Runs the worker until `shutdown` turns true, then stops cleanly. Each start-up
    /// phase is a function of `phases`, in this order.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        self.validate()?;
        let App {
            mut settings,
            registry,
            tables,
        } = self;
        crate::agent::declare_stages(&mut settings, &registry)?;
        let settings = Arc::new(settings);
        let (producer, broker) = phases::connect(&settings, &shutdown).await?;
        phases::prepare_topics(&settings, &shutdown).await?;
        let services = phases::EmbeddedServices::start(&settings, &shutdown).await?;
        let shared = phases::build_state(&settings, &tables, producer, broker).await?;
        let web = phases::serve_web(&shared, &shutdown).await?;
        let followers = phases::catch_up_global_tables(&shared, &shutdown).await?;
        let running = phases::start_agents(&shared, &registry, &shutdown)?;
        let mut stop = shutdown.clone();
        let _ = stop.wait_for(|s| *s).await;
        phases::shut_down(&shared, running, followers, web, services).await;
        Ok(())
    }
}

/// The topics the enabled agents read or write, with the setting that declares each.
pub fn declared_topics(settings: &Settings) -> Vec<TopicSpec> {
    let mut specs = Vec::new();
    for (name, a) in settings.enabled_agents() {
        // A pattern's topics are found by the broker; its stages' topics are ours.
        let topics: Vec<String> = match a.source() {
            Source::Topics(t) => t,
            Source::Pattern(_) => a.stages.iter().map(|s| s.topic.clone()).collect(),
            _ => Vec::new(),
        };
        {
            for t in topics {
                let stage = a.stages.iter().find(|s| s.topic == t);
                let mut spec = TopicSpec::from_settings(
                    settings,
                    &t,
                    match stage {
                        Some(s) => format!("agents.{name}: {}({:?})", s.kind, s.name),
                        None => format!("agents.{name}.source.topics"),
                    },
                );
                // A repartition topic has the partitions of the table written from it.
                if stage.is_some_and(|s| s.kind == "group_by") {
                    spec.partitions = settings.repartition_partitions(name);
                }
                specs.push(spec);
            }
        }
        for t in &a.sinks {
            specs.push(TopicSpec::from_settings(
                settings,
                t,
                format!("agents.{name}.sinks"),
            ));
        }
        if a.on_error == ErrorPolicy::DeadLetter {
            let dlq = Names::new(settings).dead_letter_topic(name);
            specs.push(TopicSpec::from_settings(
                settings,
                &dlq,
                format!("agents.{name}.on_error"),
            ));
        }
    }
    if settings.enabled_agents().any(|(_, a)| a.on_leader()) {
        // The leader election's topic: one partition, whatever the defaults say (its one
        // holder is the leader); nothing is written to it.
        let topic = Names::new(settings).leader_topic();
        let mut spec = TopicSpec::from_settings(settings, &topic, "on_leader timers".into());
        spec.partitions = 1;
        specs.push(spec);
    }
    for (name, t) in &settings.tables {
        if t.global {
            // The topic a global table follows may be written later (by another app,
            // ksqlDB, Connect): create it so the table starts empty rather than failing.
            if t.mirrors.is_none() {
                let topic = Names::new(settings).global_source_topic(name);
                specs.push(TopicSpec::from_settings(
                    settings,
                    &topic,
                    format!("tables.{name}"),
                ));
            }
            continue;
        }
        let changelog = Names::new(settings).changelog_topic(name);
        let mut spec = TopicSpec::from_settings(settings, &changelog, format!("tables.{name}"));
        spec.partitions = settings.table_partitions(name);
        match &t.window {
            None => {
                spec.config
                    .entry("cleanup.policy".into())
                    .or_insert_with(|| "compact".into());
            }
            Some(w) => {
                // Expiry tombstones the windows it removes; `delete` also drops what
                // compaction would keep of windows older than any window kept (a day
                // past `expires`, as Kafka Streams' windowed changelogs do).
                spec.config
                    .entry("cleanup.policy".into())
                    .or_insert_with(|| "compact,delete".into());
                let keep = w.size + w.expires + std::time::Duration::from_secs(24 * 3600);
                spec.config
                    .entry("retention.ms".into())
                    .or_insert_with(|| keep.as_millis().to_string());
            }
        }
        specs.push(spec);
    }
    specs
}

/// A table, its changelog and its agent's source topics must have as many partitions
/// each, or writes would land in partitions this worker does not hold.
fn check_co_partitioning(
    settings: &Settings,
    topics: &[(TopicSpec, crate::kafka::admin::TopicOutcome)],
) -> Result<(), AppError> {
    use crate::kafka::admin::TopicOutcome;
    let actual: BTreeMap<&str, i32> = topics
        .iter()
        .map(|(s, o)| {
            let n = match o {
                TopicOutcome::Created => s.partitions,
                TopicOutcome::Exists { partitions } => *partitions,
                TopicOutcome::PartitionMismatch { actual, .. } => *actual,
            };
            (s.name.as_str(), n)
        })
        .collect();
    for (name, t) in &settings.tables {
        let Some(agent) = t.agent.as_deref().filter(|_| !t.global) else {
            continue;
        };
        let wanted = settings.table_partitions(name);
        let mut co = vec![Names::new(settings).changelog_topic(name)];
        if let Some(a) = settings.agents.get(agent).filter(|a| a.enabled) {
            // A table of an agent that re-keys its stream is co-partitioned with the
            // repartition topic, not with the sources it re-keys.
            match a.table_topics() {
                Some(regrouped) => co.extend(regrouped),
                None => co.extend(a.source.topics.clone().unwrap_or_default()),
            }
        }
        for topic in co {
            if let Some(&n) = actual.get(topic.as_str()) {
                if n != wanted {
                    return Err(AppError::Startup(format!(
                        "table {name} has {wanted} partition(s) (tables.{name}.partitions) but topic {topic} \
                         has {n}: a table, its changelog and the sources of its agent {agent} must have \
                         equal partition counts"
                    )));
                }
            }
        }
    }
    Ok(())
}
