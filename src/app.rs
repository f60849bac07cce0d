//! The App: settings plus the agent registry, turned into a running worker.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;

use crate::agent::runner::PreparedAgent;
use crate::agent::{AgentFn, AgentRegistry, AgentStatus};
use crate::codec::{CodecCache, SchemaRegistryClient};
use crate::kafka::admin::{ensure_topics, AdminError, TopicSpec};
use crate::kafka::{BrokerHealth, SharedProducer};
use crate::services::rest_proxy::{serve as serve_proxy, EmbeddedRestProxy};
use crate::services::schema_registry::{serve as serve_registry, EmbeddedRegistry};
use crate::settings::ProcessingGuarantee;
use crate::settings::{ErrorPolicy, Settings, SettingsError, Source};
use crate::table::manager::start_global;
use crate::table::{TableDecl, TableManager, TableRegistry};
use crate::transactions::Transactions;
use crate::web;

/// What agents and endpoints share in a running worker.
pub struct AppShared {
    pub settings: Arc<Settings>,
    pub producer: SharedProducer,
    pub codecs: CodecCache,
    pub broker: BrokerHealth,
    pub agents: BTreeMap<String, Arc<AgentStatus>>,
    pub tables: Arc<TableManager>,
    /// The exactly-once coordinator, when `processing_guarantee = "exactly_once"`.
    pub transactions: Option<Arc<Transactions>>,
    pub started: Instant,
    /// The last minute of the agents' counters, for `/performance`.
    pub performance: crate::metrics::window::Window,
    /// What the worker is still doing before it runs its agents (`None`: running).
    pub starting: std::sync::Mutex<Option<String>>,
}

impl AppShared {
    pub fn set_starting(&self, what: Option<String>) {
        *self.starting.lock().unwrap_or_else(|p| p.into_inner()) = what;
    }

    pub fn starting(&self) -> Option<String> {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

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
    #[error("cannot serve the web endpoints on {addr}: {message} (set web.bind, or web.enabled = false)")]
    WebBind { addr: String, message: String },
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
                format!("global, follows {}", s.global_source_topic(name))
            } else {
                format!(
                    "{} partition(s), changelog {}, written by {}",
                    s.table_partitions(name),
                    s.changelog_topic(name),
                    t.agent.as_deref().unwrap_or("-")
                )
            };
            let _ = writeln!(out, "│ table      │ {name} ({kind})");
        }
        let _ = write!(out, "└{line}");
        out
    }

    /// Runs the worker until `shutdown` turns true, then stops cleanly.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), AppError> {
        self.validate()?;
        let registry = self.registry;
        let settings = Arc::new(self.settings);
        let producer = SharedProducer::new(&settings)
            .map_err(|e| AppError::Startup(format!("cannot create the producer: {e}")))?;
        let broker = BrokerHealth::new(&settings.app.broker);
        wait_for_broker(
            &producer,
            &broker,
            &settings.app.broker,
            settings.app.startup_timeout,
            &shutdown,
        )
        .await?;

        let topics = ensure_topics(&settings, &declared_topics(&settings)).await?;
        crate::ksql::submit(&settings, &shutdown)
            .await
            .map_err(AppError::Startup)?;
        check_co_partitioning(&settings, &topics)?;

        let embedded_registry = match settings.embedded_registry_addr() {
            Ok(Some(addr)) => {
                let registry =
                    EmbeddedRegistry::start(&settings.app.broker, &settings.embedded.schemas_topic)
                        .await
                        .map_err(|e| AppError::Startup(format!("embedded schema registry: {e}")))?;
                let handle = serve_registry(registry, addr, shutdown.clone())
                    .await
                    .map_err(|e| AppError::Startup(format!("embedded schema registry: {e}")))?;
                tracing::info!("embedded schema registry on http://{addr}");
                Some(handle)
            }
            _ => None,
        };
        let registry_url = settings.schema_registry_url();
        let embedded_proxy = match settings.embedded_rest_proxy_addr() {
            Ok(Some(addr)) => {
                let proxy = EmbeddedRestProxy::start(&settings, &registry_url)
                    .await
                    .map_err(|e| AppError::Startup(format!("embedded rest proxy: {e}")))?;
                let handle = serve_proxy(proxy, addr, shutdown.clone())
                    .await
                    .map_err(|e| AppError::Startup(format!("embedded rest proxy: {e}")))?;
                tracing::info!("embedded rest proxy on http://{addr}");
                Some(handle)
            }
            _ => None,
        };
        let schema_registry = match registry_url.trim() {
            "" => None,
            url => Some(Arc::new(SchemaRegistryClient::new(url).map_err(|e| {
                AppError::Startup(format!("services.schema_registry: {e}"))
            })?)),
        };
        let agents = settings
            .agents
            .iter()
            .map(|(n, a)| (n.clone(), Arc::new(AgentStatus::new(n, a.enabled))))
            .collect::<BTreeMap<_, _>>();
        let tables = Arc::new(
            TableManager::new(settings.clone(), &self.tables, schema_registry.as_ref())
                .map_err(|e| AppError::Startup(e.to_string()))?,
        );
        let transactions = if settings.app.processing_guarantee == ProcessingGuarantee::ExactlyOnce
        {
            Some(
                Transactions::start(producer.clone(), tables.clone())
                    .await
                    .map_err(AppError::Startup)?,
            )
        } else {
            None
        };
        let shared = Arc::new(AppShared {
            transactions,
            tables,
            codecs: CodecCache::new(settings.clone(), schema_registry),
            settings: settings.clone(),
            producer,
            broker,
            agents,
            started: Instant::now(),
            performance: crate::metrics::window::Window::new(Duration::from_secs(60)),
            starting: std::sync::Mutex::new(Some("starting".into())),
        });

        let web = if settings.web.enabled {
            let ctx = web::views::ViewContext {
                shared: shared.clone(),
                shutdown: shutdown.clone(),
            };
            let views = web::views::build(&ctx).map_err(|e| AppError::Startup(format!("{e:#}")))?;
            Some(web::serve(shared.clone(), views, settings.web.bind, shutdown.clone()).await?)
        } else {
            None
        };

        // Global tables catch up before any agent starts (agents read them whole); the
        // web server already answers meanwhile, /health with 503 and what is awaited.
        let mut followers = Vec::new();
        for t in shared.tables.all().filter(|t| t.is_global()) {
            shared.set_starting(Some(format!("global table {} catching up", t.name)));
            followers.push(
                start_global(shared.tables.clone(), t.clone(), shutdown.clone())
                    .await
                    .map_err(|e| AppError::Startup(format!("global table {}: {e}", t.name)))?,
            );
        }
        shared.set_starting(Some("starting the agents".into()));

        let mut prepared = Vec::new();
        for (name, a) in settings.enabled_agents() {
            let func = registry
                .get(a.function_name(name))
                .expect("validated: every enabled agent has a function")
                .clone();
            let status = shared.agents[name].clone();
            prepared.push(
                PreparedAgent::prepare(&shared, name, Arc::new(a.clone()), func, status, &shutdown)
                    .map_err(|e| AppError::Startup(format!("{e:#}")))?,
            );
        }

        let probe = tokio::spawn(probe_broker(shared.clone(), shutdown.clone()));
        let monitor = tokio::spawn(crate::liveness::monitor(shared.clone(), shutdown.clone()));
        let connectors = tokio::spawn(crate::connectors::declare_all(
            settings.clone(),
            shutdown.clone(),
        ));
        let flusher = tokio::spawn(flush_stores(shared.clone(), shutdown.clone()));
        let coordinator = shared
            .transactions
            .clone()
            .map(|t| tokio::spawn(t.run(settings.app.commit_interval, shutdown.clone())));
        let runners: Vec<_> = prepared
            .into_iter()
            .map(|p| tokio::spawn(p.run(shared.clone(), shutdown.clone())))
            .collect();
        shared.set_starting(None);
        tracing::info!(
            agents = runners.len(),
            "worker started{}",
            if settings.web.enabled {
                format!(" — http://{}", settings.web.bind)
            } else {
                String::new()
            }
        );

        let mut stop = shutdown.clone();
        let _ = stop.wait_for(|s| *s).await;
        tracing::info!("shutting down: no new events are fetched");
        for r in runners {
            let _ = r.await;
        }
        if let Some(c) = coordinator {
            let _ = c.await;
        }
        if let Some(t) = &shared.transactions {
            t.finish().await;
        }
        for f in followers {
            let _ = f.await;
        }
        shared.tables.close_all();
        if let Err(e) = shared.producer.flush(settings.app.shutdown_timeout).await {
            tracing::error!("producer flush at shutdown failed: {e}");
        }
        probe.abort();
        monitor.abort();
        flusher.abort();
        connectors.abort();
        if let Some(w) = web {
            let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
        }
        for service in [embedded_registry, embedded_proxy].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(5), service).await;
        }
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// The topics the enabled agents read or write, with the setting that declares each.
pub fn declared_topics(settings: &Settings) -> Vec<TopicSpec> {
    let mut specs = Vec::new();
    for (name, a) in settings.enabled_agents() {
        if let Source::Topics(topics) = a.source() {
            for t in topics {
                specs.push(TopicSpec::from_settings(
                    settings,
                    &t,
                    format!("agents.{name}.source.topics"),
                ));
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
            let dlq = settings.dead_letter_topic(name);
            specs.push(TopicSpec::from_settings(
                settings,
                &dlq,
                format!("agents.{name}.on_error"),
            ));
        }
    }
    for (name, t) in &settings.tables {
        if t.global {
            // The topic a global table follows may be written later (by another app,
            // ksqlDB, Connect): create it so the table starts empty rather than failing.
            if t.mirrors.is_none() {
                let topic = settings.global_source_topic(name);
                specs.push(TopicSpec::from_settings(
                    settings,
                    &topic,
                    format!("tables.{name}"),
                ));
            }
            continue;
        }
        let changelog = settings.changelog_topic(name);
        let mut spec = TopicSpec::from_settings(settings, &changelog, format!("tables.{name}"));
        spec.partitions = settings.table_partitions(name);
        spec.config
            .entry("cleanup.policy".into())
            .or_insert_with(|| "compact".into());
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
        let mut co = vec![settings.changelog_topic(name)];
        if let Some(a) = settings.agents.get(agent).filter(|a| a.enabled) {
            co.extend(a.source.topics.clone().unwrap_or_default());
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

async fn wait_for_broker(
    producer: &SharedProducer,
    health: &BrokerHealth,
    broker: &str,
    timeout: Duration,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), AppError> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        let client = producer.clone();
        let h = health.clone();
        let ok =
            tokio::task::spawn_blocking(move || h.probe(client.client(), Duration::from_secs(3)))
                .await
                .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if started.elapsed() >= timeout || *shutdown.borrow() {
            return Err(AppError::BrokerUnreachable {
                broker: broker.to_string(),
                waited: started.elapsed(),
                message: health.snapshot().last_error.unwrap_or_default(),
            });
        }
        if !warned {
            tracing::warn!(
                broker,
                "waiting for the broker (up to {})",
                humantime::format_duration(timeout)
            );
            warned = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn flush_stores(shared: Arc<AppShared>, mut shutdown: watch::Receiver<bool>) {
    let every = shared.settings.store.flush_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.tables.flush_all()).await;
    }
}

async fn probe_broker(shared: Arc<AppShared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.broker.probe(s.producer.client(), Duration::from_secs(3))
        })
        .await;
    }
}
