//! The test driver: run one agent, or a whole app, against in-memory topics and stores
//! with a virtual clock — no broker — and check what it promises, faults included.
//!
//! ```no_run
//! use cta_stream::prelude::*;
//! use cta_stream::testing::TestDriver;
//!
//! async fn shout(ctx: AgentContext, mut s: Stream<String>) -> AgentResult {
//!     while let Some(e) = s.next().await? {
//!         ctx.send(ctx.sink(0)?, None::<&str>, &e.value.to_uppercase()).await?;
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::test]
//! async fn shouts() -> anyhow::Result<()> {
//!     let mut t = TestDriver::with_settings(
//!         "[app]\nid = \"t\"\n[agents.shout]\nsource.topics = [\"in\"]\nsinks = [\"out\"]",
//!     )?
//!     .agent("shout", AgentFn::new(shout))
//!     .start()
//!     .await?;
//!     t.send("in", None::<&str>, &"hi").await?;
//!     t.settle().await?;
//!     assert_eq!(t.values::<String>("out").await?, ["HI"]);
//!     Ok(())
//! }
//! ```
//!
//! The agents run as in a worker — the same streams, ack tokens, error policies,
//! supervisors, tables and exactly-once barrier — only the broker is in memory
//! ([`broker`]). Time is tokio's paused clock: timers fire and restart backoffs end when
//! the test calls [`TestDriver::advance`] (or when [`TestDriver::settle`] waits on them).
//!
//! Faults: [`TestDriver::hold_deliveries`] opens the window between a produce and its ack;
//! [`TestDriver::crash`] kills the worker in it and starts a new one (tables rebuilt from
//! their changelogs, sources from the committed offsets); [`TestDriver::revoke`] takes a
//! partition away mid-event and hands it back; [`TestDriver::fail_deliveries`] makes
//! records fail; [`TestDriver::abort_transaction`] aborts the open transaction.
//!
//! An app whose settings name a REST Proxy gets one: the driver serves the proxy's API
//! (the same handlers as the embedded proxy) over its broker on a local port, and points
//! `services.rest_proxy` at it.

pub mod broker;
mod intake;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{watch, RwLock};

use self::broker::{MemoryBroker, MemoryProducer, ProxyOnBroker, RecordState};
use self::intake::{Intake, Subscription};
use crate::agent::runner::{Intake as IntakeKind, PreparedAgent};
use crate::agent::{
    AgentEnv, AgentFn, AgentRegistry, AgentState, AgentStatus, Coordinator, StatusSnapshot,
    TransactionalSource,
};
use crate::codec::{CodecCache, SchemaRegistryClient};
use crate::kafka::Names;
use crate::services::rest_proxy::EmbeddedRestProxy;
use crate::settings::{ProcessingGuarantee, Settings, Source, StoreBackend};
use crate::stream::event::Headers;
use crate::stream::leadership::{Leadership, SoleLeader};
use crate::stream::sink::{OutRecord, Producer};
use crate::stream::WallClock;
use crate::table::{TableDecl, TableManager, TableRegistry, TableSpec};

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("test driver settings: {0}")]
    Settings(String),
    #[error("the test driver needs a current-thread tokio runtime (#[tokio::test]), for its paused clock")]
    Runtime,
    #[error("agent {agent}: {message}")]
    Agent { agent: String, message: String },
    #[error("table: {0}")]
    Table(#[from] crate::table::TableError),
    #[error("topic {topic}: {message}")]
    Codec { topic: String, message: String },
    #[error("no agent named {0} runs in the driver")]
    UnknownAgent(String),
    #[error("still busy after {0:?} of virtual time: {1}")]
    Stuck(Duration, String),
}

/// A record as a test reads it back.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Headers,
    pub timestamp: Option<i64>,
    pub partition: i32,
    pub offset: i64,
}

/// Sets up a [`TestDriver`]: its settings, agents and tables.
pub struct Builder {
    settings: Settings,
    agents: AgentRegistry,
    tables: TableRegistry,
    wall_clock_ms: Option<i64>,
}

impl Builder {
    /// Runs `name` with `f` (its settings come from `[agents.<name>]`).
    pub fn agent(mut self, name: &str, f: AgentFn) -> Self {
        self.agents.insert(name, f);
        self
    }

    /// Every agent function linked in with `register_agent!` (the whole app, as the
    /// settings enable it).
    pub fn registered_agents(mut self) -> Self {
        let all = AgentRegistry::collected();
        for (name, f, _) in all.iter() {
            self.agents.insert(name, f.clone());
        }
        self
    }

    /// Starts the driver's wall clock (what timers read: cron schedules, `Tick.at_ms`) at
    /// `ms` since the Unix epoch; it moves with virtual time. Default: the real time at
    /// the start.
    pub fn wall_clock_at(mut self, ms: i64) -> Self {
        self.wall_clock_ms = Some(ms);
        self
    }

    /// A table declared in code (those declared with `register_table!` are known).
    pub fn table<T: TableSpec>(mut self) -> Self {
        self.tables.insert(TableDecl::of::<T>());
        self
    }

    /// Starts the agents the settings enable. Pauses tokio's clock: from here on, time
    /// passes only through [`TestDriver::advance`] and [`TestDriver::settle`].
    pub async fn start(self) -> Result<TestDriver, DriverError> {
        if tokio::runtime::Handle::current().runtime_flavor()
            != tokio::runtime::RuntimeFlavor::CurrentThread
        {
            return Err(DriverError::Runtime);
        }
        pause_clock();
        let mut settings = self.settings;
        settings.store.backend = StoreBackend::Memory;
        // An app that posts to a REST Proxy gets the proxy's API over the driver's broker,
        // on a port of its own.
        let proxy_listener = if settings.rest_proxy_url().trim().is_empty() {
            None
        } else {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| DriverError::Settings(format!("cannot bind the REST Proxy: {e}")))?;
            let addr = listener
                .local_addr()
                .map_err(|e| DriverError::Settings(e.to_string()))?;
            settings.services.rest_proxy = format!("http://{addr}");
            Some(listener)
        };
        settings
            .validate(&self.agents.names())
            .map_err(|e| DriverError::Settings(e.to_string()))?;
        settings
            .validate_tables(&self.tables.names())
            .map_err(|e| DriverError::Settings(e.to_string()))?;
        crate::agent::declare_stages(&mut settings, &self.agents)
            .map_err(|e| DriverError::Settings(e.to_string()))?;
        let settings = Arc::new(settings);
        let broker = Arc::new(MemoryBroker::default());
        for (name, t) in &settings.topics {
            if let Some(n) = t.partitions {
                broker.set_partitions(name, n);
            }
        }
        for (name, a) in settings.enabled_agents() {
            for s in a.stages.iter().filter(|s| s.kind == "group_by") {
                broker.set_partitions(&s.topic, settings.repartition_partitions(name));
            }
        }
        for name in settings.tables.keys() {
            let changelog = Names::new(&settings).changelog_topic(name);
            broker.set_partitions(&changelog, settings.table_partitions(name));
        }
        let registry = Arc::new(SchemaRegistryClient::in_memory());
        let (services_stop, stop) = watch::channel(false);
        if let Some(listener) = proxy_listener {
            let proxy = EmbeddedRestProxy::with_backend(
                Box::new(ProxyOnBroker(broker.clone())),
                Some(registry.clone()),
                "memory:",
            )
            .await;
            crate::http::server::serve_on(proxy.routes(), listener, stop);
        }
        let mut driver = TestDriver {
            settings,
            broker,
            services_stop,
            registry,
            agents: self.agents,
            tables: self.tables,
            worker: None,
            restarts: 0,
            leader: Arc::new(SoleLeader::default()),
            clock: WallClock::virtual_at(
                self.wall_clock_ms
                    .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            ),
        };
        driver.worker = Some(driver.start_worker()?);
        driver.settle().await?;
        Ok(driver)
    }
}

/// Pauses tokio's clock unless a test already did (`start_paused`).
fn pause_clock() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let _ = std::panic::catch_unwind(tokio::time::pause);
    std::panic::set_hook(hook);
}

/// How far `settle` lets virtual time run while work waits on it (restart backoffs).
const MAX_WAIT: Duration = Duration::from_secs(120);
/// The step of virtual time.
const TICK: Duration = Duration::from_millis(10);

/// Exactly-once in the driver: the barrier agents hold while they process an event, and
/// the request to abort; the driver commits and aborts (see `commit_point`).
#[derive(Default)]
struct MemoryTransactions {
    barrier: Arc<RwLock<()>>,
    abort_requested: AtomicBool,
    committed: AtomicU64,
    aborted: AtomicU64,
}

impl Coordinator for MemoryTransactions {
    fn barrier(&self) -> Arc<RwLock<()>> {
        self.barrier.clone()
    }

    fn request_abort(&self, why: &str) {
        if !self.abort_requested.swap(true, Ordering::AcqRel) {
            tracing::info!("test driver: aborting the current transaction: {why}");
        }
    }

    fn register(&self, _source: Box<dyn TransactionalSource>) {
        // The driver commits its intakes itself.
    }
}

/// Topics agents create at run time, in the driver's broker.
struct MemoryTopicAdmin(Arc<MemoryBroker>);

#[async_trait::async_trait]
impl crate::kafka::TopicAdmin for MemoryTopicAdmin {
    async fn ensure(
        &self,
        specs: &[crate::kafka::TopicSpec],
    ) -> Result<(), crate::kafka::admin::AdminError> {
        for s in specs {
            if !self.0.topics().contains(&s.name) {
                self.0.set_partitions(&s.name, s.partitions);
                self.0.partitions(&s.name);
            }
        }
        Ok(())
    }
}

struct RunningAgent {
    name: String,
    status: Arc<AgentStatus>,
    intake: Option<Intake>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One incarnation of the worker: what a crash throws away.
struct Worker {
    env: Arc<AgentEnv>,
    producer: Arc<MemoryProducer>,
    tables: Arc<TableManager>,
    txn: Option<Arc<MemoryTransactions>>,
    agents: Vec<RunningAgent>,
    shutdown: watch::Sender<bool>,
}

/// Runs agents against in-memory topics and stores (see the module's docs).
pub struct TestDriver {
    settings: Arc<Settings>,
    broker: Arc<MemoryBroker>,
    /// Stops the services the driver serves (the REST Proxy).
    services_stop: watch::Sender<bool>,
    registry: Arc<SchemaRegistryClient>,
    agents: AgentRegistry,
    tables: TableRegistry,
    worker: Option<Worker>,
    restarts: u32,
    /// The one worker is the app's leader; the numbers of `on_leader` firings survive
    /// its crashes, as the Kafka election's do.
    leader: Arc<SoleLeader>,
    /// The virtual wall clock of timers, the same across crashes.
    clock: WallClock,
}

impl TestDriver {
    /// A driver for the app of `settings` (TOML, as in `settings.toml`).
    pub fn with_settings(toml: &str) -> Result<Builder, DriverError> {
        let settings =
            Settings::from_toml_str(toml).map_err(|e| DriverError::Settings(e.to_string()))?;
        Ok(Self::builder(settings))
    }

    pub fn builder(settings: Settings) -> Builder {
        Builder {
            settings,
            agents: AgentRegistry::default(),
            tables: TableRegistry::collected(),
            wall_clock_ms: None,
        }
    }

    fn exactly_once(&self) -> bool {
        self.settings.app.processing_guarantee == ProcessingGuarantee::ExactlyOnce
    }

    fn worker(&self) -> &Worker {
        self.worker.as_ref().expect("the driver has a worker")
    }

    fn start_worker(&self) -> Result<Worker, DriverError> {
        let eos = self.exactly_once();
        let settings = self.settings.clone();
        let producer = Arc::new(MemoryProducer::new(self.broker.clone(), eos));
        let codecs = Arc::new(CodecCache::new(
            settings.clone(),
            Some(self.registry.clone()),
        ));
        let tables = Arc::new(TableManager::new(
            settings.clone(),
            &self.tables,
            Some(&self.registry),
        )?);
        let txn = eos.then(|| Arc::new(MemoryTransactions::default()));
        let env = Arc::new(AgentEnv {
            settings: settings.clone(),
            producer: producer.clone() as Producer,
            codecs,
            tables: tables.clone(),
            admin: Arc::new(MemoryTopicAdmin(self.broker.clone())),
            coordinator: txn.clone().map(|t| t as Arc<dyn Coordinator>),
            channels: Default::default(),
            leader: Some(self.leader.clone() as Arc<dyn Leadership>),
            clock: self.clock,
        });
        let (shutdown, stop) = watch::channel(false);
        let mut agents = Vec::new();
        for (name, a) in settings.enabled_agents() {
            let err = |message: String| DriverError::Agent {
                agent: name.clone(),
                message,
            };
            let func = self
                .agents
                .get(a.function_name(name))
                .ok_or_else(|| err("no function registered for it".into()))?
                .clone();
            let status = Arc::new(AgentStatus::new(name, true));
            let mut prepared = PreparedAgent::prepare(
                &env,
                name,
                Arc::new(a.clone()),
                func,
                status.clone(),
                &stop,
                IntakeKind::External,
            )
            .map_err(|e| err(format!("{e:#}")))?;
            let queues = prepared.take_queues();
            let intake = match a.source() {
                Source::Timer(_) | Source::Channel(_) => None,
                source => {
                    let subscription = match source {
                        Source::Pattern(p) => Subscription::Pattern(
                            regex::Regex::new(p.trim_start_matches('^'))
                                .map_err(|e| err(format!("pattern {p}: {e}")))?,
                            a.stages.iter().map(|s| s.topic.clone()).collect(),
                        ),
                        Source::Topics(t) => Subscription::Topics(t),
                        Source::Timer(_) | Source::Channel(_) => unreachable!(),
                    };
                    let mut intake = Intake::new(
                        name,
                        Names::new(&settings).agent_group(name),
                        subscription,
                        a.from_beginning,
                        eos,
                        queues,
                        status.clone(),
                        tables.of_agent(name),
                    );
                    intake.table_topics = a.table_topics();
                    Some(intake)
                }
            };
            let tasks = prepared.start_instances(&env);
            agents.push(RunningAgent {
                name: name.clone(),
                status,
                intake,
                tasks,
            });
        }
        Ok(Worker {
            env,
            producer,
            tables,
            txn,
            agents,
            shutdown,
        })
    }

    // ---- feeding -------------------------------------------------------------------

    /// Writes a record to `topic`, encoded with the codecs the settings give the topic,
    /// as another application would.
    pub async fn send<K, V>(
        &self,
        topic: &str,
        key: Option<&K>,
        value: &V,
    ) -> Result<(), DriverError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let (key, value) = self.encode(topic, key, value).await?;
        self.send_raw(topic, key.as_deref(), Some(&value))
    }

    /// Writes a record with timestamp `timestamp_ms` (its event time, for windowed
    /// tables), encoded like [`Self::send`].
    pub async fn send_at<K, V>(
        &self,
        topic: &str,
        key: Option<&K>,
        value: &V,
        timestamp_ms: i64,
    ) -> Result<(), DriverError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let (key, value) = self.encode(topic, key, value).await?;
        self.append(
            topic,
            key.as_deref(),
            Some(&value),
            Some(timestamp_ms),
            Headers::default(),
        )
    }

    /// [`send`](Self::send) with record headers.
    pub async fn send_with_headers<K, V>(
        &self,
        topic: &str,
        key: Option<&K>,
        value: &V,
        headers: Headers,
    ) -> Result<(), DriverError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let (key, value) = self.encode(topic, key, value).await?;
        self.append(topic, key.as_deref(), Some(&value), None, headers)
    }

    /// Key and value encoded with the codecs the settings give `topic`.
    async fn encode<K, V>(
        &self,
        topic: &str,
        key: Option<&K>,
        value: &V,
    ) -> Result<(Option<Vec<u8>>, Vec<u8>), DriverError>
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let codec_err = |e| codec_error(topic, e);
        let codecs = self.codecs(topic)?;
        let key = match key {
            Some(k) => Some(codecs.key.encode(k).await.map_err(codec_err)?),
            None => None,
        };
        let value = codecs.value.encode(value).await.map_err(codec_err)?;
        Ok((key, value))
    }

    /// Writes a record of bytes as they are (malformed input, other producers' formats).
    pub fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), DriverError> {
        self.append(topic, key, value, None, Headers::default())
    }

    fn append(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: Option<i64>,
        headers: Headers,
    ) -> Result<(), DriverError> {
        let rec = OutRecord {
            topic: topic.to_string(),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers,
            ..OutRecord::default()
        };
        self.broker
            .append(&rec, RecordState::Committed)
            .map(|_| ())
            .map_err(|message| DriverError::Codec {
                topic: topic.to_string(),
                message,
            })
    }

    /// Gives `topic` `n` partitions (before anything is written to it).
    pub fn set_partitions(&self, topic: &str, n: i32) {
        self.broker.set_partitions(topic, n);
    }

    // ---- running -------------------------------------------------------------------

    /// Runs until nothing more happens: every record handed to its agents, every
    /// delivery reported (unless held), offsets committed — under exactly-once, the open
    /// transaction committed (or aborted, when something asked for it). Virtual time
    /// passes only while work waits on it (an agent's restart backoff).
    pub async fn settle(&mut self) -> Result<(), DriverError> {
        let mut waited = Duration::ZERO;
        loop {
            self.quiet_down(&mut waited).await?;
            self.commit_point().await;
            // What the commit made visible reaches the global tables that follow it.
            let w = self.worker();
            follow_globals(
                &self.broker,
                &w.tables,
                self.settings.app.processing_guarantee,
            )?;
            // Under exactly-once a commit makes records visible that agents of this
            // worker read (a `group_by`'s repartition topic): they are work too.
            let backlog = w.agents.iter().any(|a| {
                a.intake
                    .as_ref()
                    .is_some_and(|i| i.has_backlog(&self.broker))
            });
            if !backlog {
                return Ok(());
            }
        }
    }

    /// Runs rounds until nothing changes and nothing waits on time.
    async fn quiet_down(&mut self, waited: &mut Duration) -> Result<(), DriverError> {
        let mut quiet = 0;
        loop {
            let before = self.mark();
            self.round().await?;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            if self.mark() != before {
                quiet = 0;
                continue;
            }
            quiet += 1;
            if quiet < 8 {
                continue;
            }
            match self.waiting_on() {
                None => return Ok(()),
                Some(what) if *waited >= MAX_WAIT => return Err(DriverError::Stuck(*waited, what)),
                Some(_) => {
                    tokio::time::advance(TICK).await;
                    *waited += TICK;
                    quiet = 0;
                }
            }
        }
    }

    /// Lets `d` of virtual time pass (timers fire, backoffs end), settling at each step.
    /// Tokio's timers have a resolution of a millisecond: a timer due exactly at the end
    /// of `d` may fire only in the next millisecond.
    pub async fn advance(&mut self, d: Duration) -> Result<(), DriverError> {
        let mut left = d;
        while !left.is_zero() {
            let step = left.min(TICK);
            tokio::time::advance(step).await;
            left -= step;
            self.settle().await?;
        }
        Ok(())
    }

    /// One round: deliveries reported, partitions assigned, records dispatched, global
    /// tables caught up, a requested abort carried out.
    async fn round(&mut self) -> Result<(), DriverError> {
        let w = self.worker.as_mut().expect("the driver has a worker");
        w.producer.deliver();
        let broker = &self.broker;
        for a in &mut w.agents {
            if let Some(intake) = &mut a.intake {
                intake.assign(broker, &w.tables)?;
                intake.dispatch(broker);
            }
        }
        follow_globals(broker, &w.tables, self.settings.app.processing_guarantee)?;
        if w.txn
            .as_ref()
            .is_some_and(|t| t.abort_requested.load(Ordering::Acquire))
        {
            self.abort_now().await;
        }
        Ok(())
    }

    /// What changes when anything happens.
    fn mark(&self) -> [u64; 6] {
        let w = self.worker();
        let mut m = [self.broker.appended(), w.producer.delivered(), 0, 0, 0, 0];
        for a in &w.agents {
            let s = &a.status;
            m[2] += s.events_in.load(Ordering::Relaxed);
            m[3] += s.restarts.load(Ordering::Relaxed) + s.failures.load(Ordering::Relaxed);
            m[4] += s.rewinds.load(Ordering::Relaxed);
            m[5] += a.intake.as_ref().map_or(0, |i| i.in_flight() as u64);
        }
        m
    }

    /// What work waits on time, if any.
    fn waiting_on(&self) -> Option<String> {
        let w = self.worker();
        let held = w.producer.is_held();
        for a in &w.agents {
            if a.status.state() == AgentState::Failing {
                let why = a
                    .status
                    .snapshot()
                    .last_failure
                    .map(|f| format!(" after: {}", f.error))
                    .unwrap_or_default();
                return Some(format!("agent {} waits to restart{why}", a.name));
            }
            if let Some(i) = &a.intake {
                if i.has_backlog(&self.broker) {
                    return Some(format!("agent {} has records to read", a.name));
                }
                if !held && i.in_flight() > 0 {
                    return Some(format!(
                        "agent {} has {} events in hand",
                        a.name,
                        i.in_flight()
                    ));
                }
            }
        }
        None
    }

    /// Commits what is done: offsets (at-least-once), or the transaction with them.
    async fn commit_point(&mut self) {
        let w = self.worker.as_mut().expect("the driver has a worker");
        w.producer.deliver();
        let Some(txn) = w.txn.clone() else {
            for a in &w.agents {
                if let Some(i) = &a.intake {
                    i.commit(&self.broker);
                }
            }
            return;
        };
        if w.producer.undelivered() > 0 {
            // Held deliveries: the transaction cannot commit before its records are in.
            return;
        }
        let Ok(_paused) = txn.barrier.clone().try_write_owned() else {
            return;
        };
        if txn.abort_requested.load(Ordering::Acquire) {
            drop(_paused);
            self.abort_now().await;
            return;
        }
        let mut offsets = Vec::new();
        for a in &w.agents {
            if let Some(i) = &a.intake {
                for ((topic, p), tracker, o) in i.committable() {
                    offsets.push((i.group.clone(), topic, p, tracker, o));
                }
            }
        }
        self.broker.end_transaction(true);
        for (group, topic, p, tracker, o) in offsets {
            self.broker.commit(&group, &topic, p, o);
            tracker.set_committed(o);
        }
        w.tables.commit_staged();
        txn.committed.fetch_add(1, Ordering::Relaxed);
    }

    /// Aborts the open transaction: its records are skipped for good, staged table
    /// writes dropped, sources back to their last commit.
    async fn abort_now(&mut self) {
        let w = self.worker.as_mut().expect("the driver has a worker");
        let Some(txn) = w.txn.clone() else {
            return;
        };
        let _paused = txn.barrier.clone().write_owned().await;
        txn.abort_requested.store(false, Ordering::Release);
        w.producer.deliver();
        self.broker.end_transaction(false);
        w.tables.discard_staged();
        for a in &mut w.agents {
            if let Some(i) = &mut a.intake {
                i.reset_to_committed();
            }
        }
        txn.aborted.fetch_add(1, Ordering::Relaxed);
    }

    // ---- faults --------------------------------------------------------------------

    /// Holds delivery reports: records reach their topics, but the events that produced
    /// them stay unacked — the window a crash or a rebalance can fall into.
    pub fn hold_deliveries(&self) {
        self.worker().producer.hold(true);
    }

    pub fn release_deliveries(&self) {
        self.worker().producer.hold(false);
    }

    /// The next `n` records sent to `topic` fail to be delivered.
    pub fn fail_deliveries(&self, topic: &str, n: usize) {
        self.worker().producer.fail_next(topic, n);
    }

    /// Kills the worker where it stands (events in hand, reports not delivered, the open
    /// transaction) and starts a new one, as a restarted process: tables rebuilt from their
    /// changelogs, sources from their committed offsets. Then settles.
    pub async fn crash(&mut self) -> Result<(), DriverError> {
        if let Some(mut w) = self.worker.take() {
            // Dead: it neither commits nor writes any more.
            for a in &mut w.agents {
                if let Some(i) = &mut a.intake {
                    i.die();
                }
                for t in &a.tasks {
                    t.abort();
                }
            }
            w.producer.fence();
            w.producer.lose_reports();
            let _ = w.shutdown.send(true);
            w.tables.close_all();
            if w.txn.is_some() {
                // The new instance's producer fences the old one, which aborts its
                // transaction.
                self.broker.end_transaction(false);
            }
            for a in w.agents {
                for t in a.tasks {
                    let _ = t.await;
                }
            }
        }
        self.restarts += 1;
        self.worker = Some(self.start_worker()?);
        self.settle().await
    }

    /// Takes `topic[partition]` from the agents reading it, as a rebalance does while
    /// they are in the middle of its events, and hands it back (their acks no longer
    /// count; tables reopened from the changelog; under exactly-once the open transaction
    /// is aborted). Does not settle: release or settle next.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        let eos = self.exactly_once();
        let w = self.worker.as_mut().expect("the driver has a worker");
        for a in &mut w.agents {
            if let Some(i) = &mut a.intake {
                if i.reads(topic) {
                    i.revoke(&self.broker, topic, partition, eos);
                    i.rejoin();
                }
            }
        }
        if let Some(t) = &w.txn {
            t.request_abort(&format!("{topic}[{partition}] revoked"));
        }
    }

    /// Aborts the open transaction (exactly-once), as a failed commit would.
    pub async fn abort_transaction(&mut self) {
        self.abort_now().await;
    }

    // ---- reading back --------------------------------------------------------------

    /// The topics of the broker, in name order.
    pub fn topics(&self) -> Vec<String> {
        self.broker.topics()
    }

    /// Every record of `topic` a `read_committed` consumer sees, partition by partition.
    pub fn records(&self, topic: &str) -> Vec<Record> {
        let mut out = Vec::new();
        for p in 0..self.broker.partitions(topic) {
            for (offset, r) in self.broker.read(topic, p, 0, true) {
                out.push(Record {
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    timestamp: r.timestamp,
                    partition: p,
                    offset,
                });
            }
        }
        out
    }

    /// The values of `topic`'s records, decoded with the topic's codec.
    pub async fn values<V: DeserializeOwned>(&self, topic: &str) -> Result<Vec<V>, DriverError> {
        let codecs = self.codecs(topic)?;
        let mut out = Vec::new();
        for r in self.records(topic) {
            let value = codecs.value.decode(r.value.as_deref()).await;
            out.push(value.map_err(|e| codec_error(topic, e))?);
        }
        Ok(out)
    }

    /// Keys and values of `topic`'s records, decoded with the topic's codecs.
    pub async fn keyed<K: DeserializeOwned, V: DeserializeOwned>(
        &self,
        topic: &str,
    ) -> Result<Vec<(Option<K>, V)>, DriverError> {
        let codecs = self.codecs(topic)?;
        let mut out = Vec::new();
        for r in self.records(topic) {
            let key = match &r.key {
                Some(k) => Some(codecs.key.decode(Some(k)).await),
                None => None,
            };
            let key = key.transpose().map_err(|e| codec_error(topic, e))?;
            let value = codecs.value.decode(r.value.as_deref()).await;
            out.push((key, value.map_err(|e| codec_error(topic, e))?));
        }
        Ok(out)
    }

    fn codecs(&self, topic: &str) -> Result<crate::codec::TopicCodecs, DriverError> {
        let codecs = self.worker().env.codecs.for_topic(topic);
        codecs.map_err(|e| codec_error(topic, e))
    }

    /// What agent `agent` dead-lettered.
    pub fn dead_letters(&self, agent: &str) -> Vec<Record> {
        self.records(&Names::new(&self.settings).dead_letter_topic(agent))
    }

    /// Every entry of table `T` this worker holds (all partitions), in key-byte order.
    pub async fn table<T: TableSpec>(&self) -> Result<Vec<(T::Key, T::Value)>, DriverError> {
        let w = self.worker();
        let rt = w
            .tables
            .get(T::NAME)
            .ok_or_else(|| crate::table::TableError::Unknown(T::NAME.to_string()))?;
        let mut entries = Vec::new();
        for part in rt.held() {
            entries.extend(
                part.scan(None, usize::MAX)
                    .map_err(crate::table::TableError::from)?,
            );
        }
        entries.sort();
        let mut out = Vec::new();
        for (k, v) in entries {
            let codec =
                |e: crate::codec::CodecError| crate::table::TableError::Codec(e.to_string());
            let key = rt.key_codec.decode(Some(&k)).await.map_err(codec)?;
            let value = rt.value_codec.decode(Some(&v)).await.map_err(codec)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The windowed table `T` as this worker holds it (all partitions).
    pub fn windowed<T: TableSpec>(
        &self,
    ) -> Result<crate::table::WindowedView<T::Key, T::Value>, DriverError> {
        let rt = self
            .worker()
            .tables
            .get(T::NAME)
            .ok_or_else(|| crate::table::TableError::Unknown(T::NAME.to_string()))?;
        Ok(crate::table::WindowedView::bind(rt.clone())?)
    }

    /// The name of table `name`'s changelog topic.
    pub fn changelog_topic(&self, name: &str) -> String {
        Names::new(&self.settings).changelog_topic(name)
    }

    /// The counters of agent `name` (as `/agents` shows them).
    pub fn status(&self, name: &str) -> Result<StatusSnapshot, DriverError> {
        self.worker()
            .agents
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.status.snapshot())
            .ok_or_else(|| DriverError::UnknownAgent(name.to_string()))
    }

    /// Transactions committed and aborted by the current worker (exactly-once).
    pub fn transactions(&self) -> (u64, u64) {
        self.worker().txn.as_ref().map_or((0, 0), |t| {
            (
                t.committed.load(Ordering::Relaxed),
                t.aborted.load(Ordering::Relaxed),
            )
        })
    }

    /// Workers started after a crash.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

impl Drop for TestDriver {
    fn drop(&mut self) {
        let _ = self.services_stop.send(true);
        if let Some(w) = &self.worker {
            let _ = w.shutdown.send(true);
            for a in &w.agents {
                for t in &a.tasks {
                    t.abort();
                }
            }
        }
    }
}

fn codec_error(topic: &str, e: crate::codec::CodecError) -> DriverError {
    DriverError::Codec {
        topic: topic.to_string(),
        message: e.to_string(),
    }
}

/// Brings every global table up to the end of the topic it follows.
fn follow_globals(
    broker: &MemoryBroker,
    tables: &TableManager,
    guarantee: ProcessingGuarantee,
) -> Result<(), DriverError> {
    let read_committed = guarantee == ProcessingGuarantee::ExactlyOnce;
    for t in tables.all().filter(|t| t.is_global()) {
        if t.partition(-1).is_none() {
            let part = t.open(&tables.stores, -1)?;
            part.set_progress(|g| g.state = crate::table::RecoveryState::Ready);
        }
        let Some(store) = t.partition(-1).and_then(|p| p.store()) else {
            continue;
        };
        for q in 0..broker.partitions(&t.source_topic) {
            let from = store
                .changelog_offset(q)
                .map_err(crate::table::TableError::from)?
                .map_or(0, |o| o + 1);
            let mut changes = Vec::new();
            let mut last = None;
            for (offset, r) in broker.read(&t.source_topic, q, from, read_committed) {
                let Some(k) = r.key else { continue };
                changes.push((k.to_vec(), r.value.map(|v| v.to_vec())));
                last = Some(offset);
            }
            if let Some(o) = last {
                store
                    .apply(&changes, q, o)
                    .map_err(crate::table::TableError::from)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod operator_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod window_tests;
