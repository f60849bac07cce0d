//! The worker's start-up phases, in the order `App::run` calls them, and its shutdown.
//! Each phase either completes or stops the start with an error naming what failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{check_co_partitioning, declared_topics, AppError};
use crate::agent::runner::{Intake, PreparedAgent};
use crate::agent::{AgentEnv, AgentRegistry, AgentStatus, Coordinator};
use crate::codec::{CodecCache, SchemaRegistryClient};
use crate::kafka::admin::ensure_topics;
use crate::kafka::{BrokerHealth, KafkaLeader, SharedProducer};
use crate::services::rest_proxy::{serve as serve_proxy, EmbeddedRestProxy};
use crate::services::schema_registry::{serve as serve_registry, EmbeddedRegistry};
use crate::settings::{ProcessingGuarantee, Settings};
use crate::stream::{Leadership, WallClock};
use crate::table::manager::start_global;
use crate::table::{TableManager, TableRegistry};
use crate::transactions::Transactions;
use crate::web;
use crate::worker::WorkerState;

/// Phase 1: The one producer, and a broker that answers (within `app.startup_timeout`).
pub(super) async fn connect(
    settings: &Settings,
    shutdown: &watch::Receiver<bool>,
) -> Result<(SharedProducer, BrokerHealth), AppError> {
    let producer = SharedProducer::new(settings)
        .map_err(|e| AppError::Startup(format!("cannot create the producer: {e}")))?;
    let broker = BrokerHealth::new(&settings.app.broker);
    wait_for_broker(&producer, &broker, settings, shutdown).await?;
    Ok((producer, broker))
}

/// Phase 2: The topics the settings declare exist, ksqlDB has its statements, and tables are
/// co-partitioned with their agents' sources.
pub(super) async fn prepare_topics(
    settings: &Settings,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), AppError> {
    let topics = ensure_topics(settings, &declared_topics(settings)).await?;
    crate::ksql::submit(settings, shutdown)
        .await
        .map_err(AppError::Startup)?;
    check_co_partitioning(settings, &topics)
}

/// Phase 3: The embedded Schema Registry and REST Proxy, where the settings ask for them.
pub(super) struct EmbeddedServices {
    servers: Vec<JoinHandle<()>>,
}

impl EmbeddedServices {
    pub(super) async fn start(
        settings: &Settings,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Self, AppError> {
        let startup =
            |what: &str, e: &dyn std::fmt::Display| AppError::Startup(format!("{what}: {e}"));
        let mut servers = Vec::new();
        if let Ok(Some(addr)) = settings.embedded_registry_addr() {
            let what = "embedded schema registry";
            let registry =
                EmbeddedRegistry::start(&settings.app.broker, &settings.embedded.schemas_topic)
                    .await
                    .map_err(|e| startup(what, &e))?;
            servers.push(
                serve_registry(registry, addr, shutdown.clone())
                    .await
                    .map_err(|e| startup(what, &e))?,
            );
            tracing::info!("embedded schema registry on http://{addr}");
        }
        if let Ok(Some(addr)) = settings.embedded_rest_proxy_addr() {
            let what = "embedded rest proxy";
            let proxy = EmbeddedRestProxy::start(settings, &settings.schema_registry_url())
                .await
                .map_err(|e| startup(what, &e))?;
            servers.push(
                serve_proxy(proxy, addr, shutdown.clone())
                    .await
                    .map_err(|e| startup(what, &e))?,
            );
            tracing::info!("embedded rest proxy on http://{addr}");
        }
        Ok(Self { servers })
    }
}

/// Phase 4: The worker's state: codecs, tables, the exactly-once coordinator, each agent's
/// status, and what the agents share of it.
pub(super) async fn build_state(
    settings: &Arc<Settings>,
    declared: &TableRegistry,
    producer: SharedProducer,
    broker: BrokerHealth,
) -> Result<Arc<WorkerState>, AppError> {
    let schema_registry = match settings.schema_registry_url().trim() {
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
        TableManager::new(settings.clone(), declared, schema_registry.as_ref())
            .map_err(|e| AppError::Startup(e.to_string()))?,
    );
    let transactions = if settings.app.processing_guarantee == ProcessingGuarantee::ExactlyOnce {
        Some(
            Transactions::start(producer.clone(), tables.clone())
                .await
                .map_err(AppError::Startup)?,
        )
    } else {
        None
    };
    let codecs = Arc::new(CodecCache::new(settings.clone(), schema_registry));
    let leader = if settings.enabled_agents().any(|(_, a)| a.on_leader()) {
        let l =
            KafkaLeader::start(settings, Arc::new(producer.clone())).map_err(AppError::Startup)?;
        Some(l as Arc<dyn Leadership>)
    } else {
        None
    };
    let env = Arc::new(AgentEnv {
        settings: settings.clone(),
        producer: Arc::new(producer.clone()),
        codecs: codecs.clone(),
        tables: tables.clone(),
        admin: Arc::new(crate::kafka::KafkaTopicAdmin(settings.clone())),
        coordinator: transactions.clone().map(|t| t as Arc<dyn Coordinator>),
        channels: Default::default(),
        leader,
        clock: WallClock::System,
    });
    Ok(Arc::new(WorkerState {
        transactions,
        tables,
        codecs,
        settings: settings.clone(),
        producer,
        broker,
        agents,
        started: Instant::now(),
        env,
        performance: crate::metrics::window::Window::new(Duration::from_secs(60)),
        starting: std::sync::Mutex::new(Some("starting".into())),
    }))
}

/// Phase 5: The HTTP server with the app's views: it answers from here on, `/health` with 503
/// and what the worker is still waiting for.
pub(super) async fn serve_web(
    shared: &Arc<WorkerState>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<JoinHandle<()>>, AppError> {
    if !shared.settings.web.enabled {
        return Ok(None);
    }
    let ctx = web::views::ViewContext {
        shared: shared.clone(),
        shutdown: shutdown.clone(),
    };
    let views = web::views::build(&ctx).map_err(|e| AppError::Startup(format!("{e:#}")))?;
    let bind = shared.settings.web.bind;
    Ok(Some(
        web::serve(shared.clone(), views, bind, shutdown.clone()).await?,
    ))
}

/// Phase 6: Global tables catch up before any agent starts (agents read them whole); they
/// keep following their topics afterwards.
pub(super) async fn catch_up_global_tables(
    shared: &Arc<WorkerState>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, AppError> {
    let mut followers = Vec::new();
    for t in shared.tables.all().filter(|t| t.is_global()) {
        shared.set_starting(Some(format!("global table {} catching up", t.name)));
        followers.push(
            start_global(shared.tables.clone(), t.clone(), shutdown.clone())
                .await
                .map_err(|e| AppError::Startup(format!("global table {}: {e}", t.name)))?,
        );
    }
    Ok(followers)
}

/// What runs once the worker has started: the agents and the worker's own tasks.
pub(super) struct Running {
    agents: Vec<JoinHandle<()>>,
    coordinator: Option<JoinHandle<()>>,
    /// Broker probe, liveness monitor, connector declaration, store flushes: stopped
    /// (not awaited) at shutdown.
    background: Vec<JoinHandle<()>>,
}

/// Phase 7: Every enabled agent, the exactly-once coordinator, and the worker's background
/// tasks.
pub(super) fn start_agents(
    shared: &Arc<WorkerState>,
    registry: &AgentRegistry,
    shutdown: &watch::Receiver<bool>,
) -> Result<Running, AppError> {
    shared.set_starting(Some("starting the agents".into()));
    let settings = &shared.settings;
    let mut prepared = Vec::new();
    for (name, a) in settings.enabled_agents() {
        let func = registry
            .get(a.function_name(name))
            .expect("validated: every enabled agent has a function")
            .clone();
        let status = shared.agents[name].clone();
        prepared.push(
            PreparedAgent::prepare(
                &shared.env,
                name,
                Arc::new(a.clone()),
                func,
                status,
                shutdown,
                Intake::Kafka,
            )
            .map_err(|e| AppError::Startup(format!("{e:#}")))?,
        );
    }
    let background = vec![
        tokio::spawn(probe_broker(shared.clone(), shutdown.clone())),
        tokio::spawn(crate::liveness::monitor(shared.clone(), shutdown.clone())),
        tokio::spawn(crate::connectors::declare_all(
            settings.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(flush_stores(shared.clone(), shutdown.clone())),
    ];
    let coordinator = shared
        .transactions
        .clone()
        .map(|t| tokio::spawn(t.run(settings.app.commit_interval, shutdown.clone())));
    let agents: Vec<_> = prepared
        .into_iter()
        .map(|p| tokio::spawn(p.run(shared.env.clone(), shutdown.clone())))
        .collect();
    shared.set_starting(None);
    tracing::info!(
        agents = agents.len(),
        "worker started{}",
        if settings.web.enabled {
            format!(" — http://{}", settings.web.bind)
        } else {
            String::new()
        }
    );
    Ok(Running {
        agents,
        coordinator,
        background,
    })
}

/// Phase 8: Shutdown, once asked: the agents finish the events in hand, the last transaction
/// commits, global tables stop following, stores close, the producer flushes; then the
/// background tasks, the web server and the embedded services stop.
pub(super) async fn shut_down(
    shared: &Arc<WorkerState>,
    running: Running,
    followers: Vec<JoinHandle<()>>,
    web: Option<JoinHandle<()>>,
    services: EmbeddedServices,
) {
    tracing::info!("shutting down: no new events are fetched");
    for a in running.agents {
        let _ = a.await;
    }
    if let Some(l) = &shared.env.leader {
        // The timers stopped: the next leader may start at once.
        l.resign().await;
    }
    if let Some(c) = running.coordinator {
        let _ = c.await;
    }
    if let Some(t) = &shared.transactions {
        t.finish().await;
    }
    for f in followers {
        let _ = f.await;
    }
    shared.tables.close_all();
    if let Err(e) = shared
        .producer
        .flush_all(shared.settings.app.shutdown_timeout)
        .await
    {
        tracing::error!("producer flush at shutdown failed: {e}");
    }
    for task in running.background {
        task.abort();
    }
    for server in web.into_iter().chain(services.servers) {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    tracing::info!("worker stopped");
}

async fn wait_for_broker(
    producer: &SharedProducer,
    health: &BrokerHealth,
    settings: &Settings,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), AppError> {
    let (broker, timeout) = (&settings.app.broker, settings.app.startup_timeout);
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
                broker = %broker,
                "waiting for the broker (up to {})",
                humantime::format_duration(timeout)
            );
            warned = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn flush_stores(shared: Arc<WorkerState>, mut shutdown: watch::Receiver<bool>) {
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

async fn probe_broker(shared: Arc<WorkerState>, mut shutdown: watch::Receiver<bool>) {
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
