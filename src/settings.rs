//! Typed settings: one TOML file, overridable by environment variables.
//!
//! Every error names the key it is about and where that key came from (the file, or the
//! environment variable that overrode it), because a worker that refuses to start should
//! say exactly what to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

pub mod namespace;
pub mod reference;

/// Prefix of the environment variables that override settings.
/// `CTA_STREAM_APP__BROKER=host:9092` sets `app.broker`; `__` separates levels.
pub const ENV_PREFIX: &str = "CTA_STREAM";
/// Environment variable naming the settings file when `--settings` is not given.
pub const ENV_SETTINGS_FILE: &str = "CTA_STREAM_SETTINGS";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub app: AppSettings,
    #[serde(default)]
    pub web: WebSettings,
    #[serde(default)]
    pub services: ServiceSettings,
    #[serde(default)]
    pub embedded: EmbeddedSettings,
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub topic_defaults: TopicDefaults,
    #[serde(default)]
    pub topics: BTreeMap<String, TopicSettings>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentSettings>,
    #[serde(default)]
    pub tables: BTreeMap<String, TableSettings>,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub health: HealthSettings,
    /// Statements the worker submits to ksqlDB at start when `services.ksqldb` is set.
    #[serde(default)]
    pub ksql: KsqlSettings,
    /// Kafka Connect connectors the worker declares at start (`services.kafka_connect`).
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorSettings>,
    /// Where the settings were read from; filled by the loader, used in messages.
    #[serde(skip)]
    pub source: SettingsSource,
}

#[derive(Debug, Clone, Default)]
pub struct SettingsSource {
    pub file: Option<PathBuf>,
}

impl fmt::Display for SettingsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "<built-in settings>"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Application id: prefix of group ids, changelog and dead-letter topics.
    pub id: String,
    /// Put before every topic the app reads or writes (see `namespace`); empty: none.
    #[serde(default)]
    pub topic_prefix: String,
    /// Kafka bootstrap servers (`host:port[,host:port]`).
    #[serde(default = "default_broker")]
    pub broker: String,
    /// Directory of local state (table stores). Relative paths are taken from the
    /// directory of the settings file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub processing_guarantee: ProcessingGuarantee,
    /// How often acked offsets are committed.
    #[serde(default = "default_commit_interval", deserialize_with = "de_duration")]
    pub commit_interval: Duration,
    /// How long shutdown waits for in-flight events and deliveries.
    #[serde(default = "default_shutdown_timeout", deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
    /// How often librdkafka refreshes topic metadata; short so that pattern sources see
    /// new topics quickly (librdkafka's default is five minutes).
    #[serde(default = "default_metadata_refresh", deserialize_with = "de_duration")]
    pub metadata_refresh: Duration,
    /// Transactional id of this worker under exactly-once (default
    /// `<app-id>-<host>-<web port>`): a restarted worker with the same id fences its
    /// predecessor's open transaction at once.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// How long the worker waits for the broker at start before giving up.
    #[serde(default = "default_startup_timeout", deserialize_with = "de_duration")]
    pub startup_timeout: Duration,
    /// Session timeout of the leader election (`on_leader` timers): a leader that dies
    /// without leaving is replaced within about this long.
    #[serde(
        default = "default_leader_session_timeout",
        deserialize_with = "de_duration"
    )]
    pub leader_session_timeout: Duration,
}

impl AppSettings {
    /// The broker's name of the app's topic `name`: with the namespace's prefix.
    pub fn topic(&self, name: &str) -> String {
        namespace::topic(&self.topic_prefix, name)
    }
}

fn default_broker() -> String {
    "127.0.0.1:9092".into()
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}
fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_startup_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_metadata_refresh() -> Duration {
    Duration::from_secs(10)
}
fn default_leader_session_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    #[default]
    AtLeastOnce,
    ExactlyOnce,
}

impl fmt::Display for ProcessingGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtLeastOnce => "at_least_once",
            Self::ExactlyOnce => "exactly_once",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_web_bind")]
    pub bind: SocketAddr,
    /// Views (pages, APIs) of the app to serve, by their `register_view!` name.
    #[serde(default)]
    pub views: Vec<String>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: default_web_bind(),
            views: Vec::new(),
        }
    }
}

fn default_web_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8888))
}

/// URLs of the services around the worker. An empty string disables a service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    #[serde(default = "default_schema_registry")]
    pub schema_registry: String,
    #[serde(default = "default_rest_proxy")]
    pub rest_proxy: String,
    #[serde(default = "default_kafka_connect")]
    pub kafka_connect: String,
    #[serde(default)]
    pub ksqldb: String,
    #[serde(default = "default_postgres")]
    pub postgres: String,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            schema_registry: default_schema_registry(),
            rest_proxy: default_rest_proxy(),
            kafka_connect: default_kafka_connect(),
            ksqldb: String::new(),
            postgres: default_postgres(),
        }
    }
}

fn default_schema_registry() -> String {
    "http://127.0.0.1:8081".into()
}
fn default_rest_proxy() -> String {
    "http://127.0.0.1:8082".into()
}
fn default_kafka_connect() -> String {
    "http://127.0.0.1:8083".into()
}
fn default_postgres() -> String {
    "postgresql://cta_admin:chicago@127.0.0.1:5432/cta".into()
}

/// Services the worker runs itself. An empty address leaves a service out (then the URL
/// in `[services]` points at an external one, e.g. Confluent's from docker-compose).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSettings {
    /// Address of the embedded Schema Registry, e.g. "127.0.0.1:8081".
    #[serde(default)]
    pub schema_registry: String,
    /// Topic holding the embedded registry's schemas.
    #[serde(default = "default_schemas_topic")]
    pub schemas_topic: String,
    /// Address of the embedded REST Proxy, e.g. "127.0.0.1:8082".
    #[serde(default)]
    pub rest_proxy: String,
}

fn default_schemas_topic() -> String {
    "_schemas".into()
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut tail) = name.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty();
    };
    for part in middle {
        match tail.find(part) {
            Some(i) => tail = &tail[i + part.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last)
}

/// An optional `host:port` ("" = none); `example` shows the expected form in the error.
fn parse_addr(raw: &str, example: &str) -> Result<Option<SocketAddr>, String> {
    match raw.trim() {
        "" => Ok(None),
        a => a
            .parse()
            .map(Some)
            .map_err(|e| format!("\"{a}\" is not an address like {example}: {e}")),
    }
}

/// librdkafka properties passed through as they are, for tuning without a rebuild.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    #[serde(default)]
    pub common: BTreeMap<String, String>,
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDefaults {
    #[serde(default = "default_one")]
    pub partitions: i32,
    #[serde(default = "default_one")]
    pub replication: i32,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        Self {
            partitions: 1,
            replication: 1,
        }
    }
}

fn default_one() -> i32 {
    1
}

/// Settings of one topic: how it is created and how its records are encoded.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub partitions: Option<i32>,
    pub replication: Option<i32>,
    /// Topic configs given at creation (`cleanup.policy`, `retention.ms`, ...).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    pub key_codec: Option<CodecKind>,
    pub value_codec: Option<CodecKind>,
    /// Avro schema files (relative to the settings file) used to encode records.
    pub key_schema: Option<PathBuf>,
    pub value_schema: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodecKind {
    Json,
    Avro,
    Raw,
}

impl fmt::Display for CodecKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Avro => "avro",
            Self::Raw => "raw",
        })
    }
}

impl std::str::FromStr for CodecKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "avro" => Ok(Self::Avro),
            "raw" => Ok(Self::Raw),
            other => Err(format!(
                "unknown codec '{other}' (expected json, avro or raw)"
            )),
        }
    }
}

/// A table: RocksDB per partition plus a compacted changelog topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSettings {
    /// The agent that writes the table; the table is co-partitioned with its sources.
    pub agent: Option<String>,
    /// Partitions (default: topic_defaults.partitions); must equal the agent's sources'.
    pub partitions: Option<i32>,
    /// Changelog topic (default `<app-id>-<table>-changelog`).
    pub changelog: Option<String>,
    #[serde(default = "default_table_codec")]
    pub key_codec: CodecKind,
    #[serde(default = "default_table_codec")]
    pub value_codec: CodecKind,
    /// Every worker holds the whole table, read-only, following `source_topic`.
    #[serde(default)]
    pub global: bool,
    /// Topic a global table follows (default: its changelog topic).
    pub source_topic: Option<String>,
    /// A global table that mirrors another table of the settings follows its changelog.
    pub mirrors: Option<String>,
    /// Makes the table windowed: its values are kept per key and time window
    /// (`ctx.windowed_table::<T>()`).
    pub window: Option<WindowSettings>,
}

/// The windows of a windowed table (`[tables.<name>] window = { kind = "tumbling", ... }`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    pub kind: WindowKind,
    /// The length of a window.
    #[serde(deserialize_with = "de_duration")]
    pub size: Duration,
    /// Hopping: how far apart windows start. Sliding: the resolution (bucket length).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub step: Option<Duration>,
    /// How long after its end a window still takes late events.
    #[serde(default, deserialize_with = "de_duration")]
    pub grace: Duration,
    /// How long after its end a window is kept (then removed from store and changelog).
    #[serde(default = "default_window_expires", deserialize_with = "de_duration")]
    pub expires: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Tumbling,
    Hopping,
    Sliding,
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowKind::Tumbling => "tumbling",
            WindowKind::Hopping => "hopping",
            WindowKind::Sliding => "sliding",
        })
    }
}

impl WindowSettings {
    /// The checks types cannot make; the error names the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ms = |d: Duration| d.as_millis();
        if ms(self.size) == 0 {
            return Err(("size", "must be at least 1ms".into()));
        }
        match (self.kind, self.step) {
            (WindowKind::Tumbling, Some(s)) if s != self.size => {
                return Err((
                    "step",
                    "a tumbling window has no step (its windows follow each other); use kind = \"hopping\""
                        .into(),
                ))
            }
            (WindowKind::Hopping | WindowKind::Sliding, None) => {
                return Err((
                    "step",
                    format!(
                        "a {} window needs a step ({})",
                        self.kind,
                        if self.kind == WindowKind::Hopping {
                            "how far apart windows start"
                        } else {
                            "its resolution: \"1ms\" for exact windows"
                        }
                    ),
                ))
            }
            (_, Some(s)) if ms(s) == 0 => return Err(("step", "must be at least 1ms".into())),
            (_, Some(s)) if s > self.size => {
                return Err((
                    "step",
                    format!(
                        "must not exceed the size ({:?} > {:?})",
                        s, self.size
                    ),
                ))
            }
            (WindowKind::Sliding, Some(s)) if ms(self.size) % ms(s) != 0 => {
                return Err((
                    "step",
                    format!(
                        "a sliding window's size must be a whole number of steps ({:?} is not a multiple of {:?})",
                        self.size, s
                    ),
                ))
            }
            _ => {}
        }
        if self.expires < self.grace {
            return Err((
                "expires",
                format!(
                    "must be at least the grace ({:?} < {:?}): a window cannot go while it still takes events",
                    self.expires, self.grace
                ),
            ));
        }
        let max = Duration::from_secs(100 * 365 * 24 * 3600);
        for (field, d) in [
            ("size", self.size),
            ("grace", self.grace),
            ("expires", self.expires),
        ] {
            if d > max {
                return Err((field, "must be under 100 years".into()));
            }
        }
        Ok(())
    }
}

fn default_window_expires() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_table_codec() -> CodecKind {
    CodecKind::Json
}

/// ksqlDB as an alternative to some agents: with `services.ksqldb` set, the worker runs
/// the statements of `statements` (skipping streams and tables that exist) and disables
/// the agents of `replaces`, whose work the statements do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KsqlSettings {
    /// A file of ksqlDB statements (relative to the settings file).
    pub statements: Option<PathBuf>,
    #[serde(default)]
    pub replaces: Vec<String>,
}

/// A Kafka Connect connector: created, or updated when its config differs, at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// Its name in Kafka Connect (default: the key in `[connectors]`); two entries may
    /// describe the same connector for different deployments, one of them enabled.
    pub name: Option<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long registration waits for the connector's tasks to run.
    #[serde(default = "default_connector_wait", deserialize_with = "de_duration")]
    pub wait: Duration,
    /// The connector's configuration (values are sent as strings, as Connect keeps them).
    pub config: toml::Table,
}

fn default_connector_wait() -> Duration {
    Duration::from_secs(120)
}

impl ConnectorSettings {
    pub fn connect_name<'a>(&'a self, key: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(key)
    }

    /// The config as Connect's string map (validated: scalars only).
    pub fn config_strings(&self) -> BTreeMap<String, String> {
        self.config
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// Which backend holds table state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// On disk, bounded in memory by one shared block cache; survives restarts (recovery
    /// replays only the changelog written since the last flush).
    #[default]
    Rocksdb,
    /// In the process only: rebuilt from the changelog at every start (Faust's
    /// `memory://`); also the test driver's.
    Memory,
}

/// The table stores: their backend and layers, and memory bounds shared by all of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Where table state lives: RocksDB on disk, or memory (rebuilt from the changelog
    /// at every start).
    #[serde(default)]
    pub backend: StoreBackend,
    /// Entries of the read cache in front of each table partition's store; 0: none.
    #[serde(default)]
    pub cache_entries: usize,
    #[serde(default = "default_block_cache_mb")]
    pub block_cache_mb: usize,
    #[serde(default = "default_write_buffer_mb")]
    pub write_buffer_mb: usize,
    /// How often stores are flushed to disk: after a crash, recovery replays only the
    /// changelog written since.
    #[serde(default = "default_flush_interval", deserialize_with = "de_duration")]
    pub flush_interval: Duration,
}

fn default_flush_interval() -> Duration {
    Duration::from_secs(10)
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            backend: Default::default(),
            cache_entries: 0,
            block_cache_mb: default_block_cache_mb(),
            write_buffer_mb: default_write_buffer_mb(),
            flush_interval: default_flush_interval(),
        }
    }
}

/// When `/health` turns 503 for a worker that is alive but not doing its job, and what
/// the worker does then.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// The broker unreachable for this long makes the worker unhealthy (shorter outages
    /// are ridden out: librdkafka reconnects by itself).
    #[serde(default = "default_broker_timeout", deserialize_with = "de_duration")]
    pub broker_timeout: Duration,
    /// An agent with events waiting (lag) or in flight that has made no progress for
    /// this long is stalled, and the worker unhealthy. Idle agents are never stalled.
    #[serde(default = "default_stall_timeout", deserialize_with = "de_duration")]
    pub stall_timeout: Duration,
    /// Exit (code 3) once unhealthy for either reason, so that a supervisor (systemd,
    /// Kubernetes) starts a fresh worker. Off by default: the worker waits it out.
    #[serde(default)]
    pub exit_when_unhealthy: bool,
}

fn default_broker_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_stall_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            broker_timeout: default_broker_timeout(),
            stall_timeout: default_stall_timeout(),
            exit_when_unhealthy: false,
        }
    }
}

fn default_block_cache_mb() -> usize {
    32
}
fn default_write_buffer_mb() -> usize {
    16
}

/// What happens to an event that cannot be decoded or processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPolicy {
    /// The agent fails and is restarted; the event is delivered again.
    #[default]
    Fail,
    /// The event is logged, counted and skipped.
    Skip,
    /// The event goes to `<app-id>-<agent>-dlq` with headers naming the error.
    DeadLetter,
}

impl fmt::Display for ErrorPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::DeadLetter => "dead-letter",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Registered function this agent runs; defaults to the agent's name.
    pub function: Option<String>,
    pub source: SourceSettings,
    /// Topics the agent writes to; created at start when missing.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Codec of the source's values.
    #[serde(default = "default_codec")]
    pub codec: CodecKind,
    /// Codec of the source's keys.
    #[serde(default = "default_key_codec")]
    pub key_codec: CodecKind,
    /// Number of instances; events of one partition always go to the same instance.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub on_error: ErrorPolicy,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Read from the earliest offset when the group has no committed offset.
    #[serde(default = "default_true")]
    pub from_beginning: bool,
    /// Free-form parameters for the agent function (`ctx.params::<T>()`).
    #[serde(default)]
    pub params: toml::Table,
    /// The topics the agent's code forwards its events through (`group_by`, `through`),
    /// filled in from its function's declaration at start; read with its sources.
    #[serde(skip)]
    pub stages: Vec<StageTopic>,
}

/// A topic an agent's stream passes through: `group_by` (an internal repartition
/// topic) or `through` (a topic of the app).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StageTopic {
    /// "group_by" or "through".
    pub kind: &'static str,
    /// The stage's name in the code (`group_by("line", ..)`), or the topic's.
    pub name: String,
    /// The topic on the broker.
    pub topic: String,
}

fn default_codec() -> CodecKind {
    CodecKind::Json
}
fn default_key_codec() -> CodecKind {
    CodecKind::Raw
}
fn default_concurrency() -> usize {
    1
}
fn default_true() -> bool {
    true
}

/// Exactly one of `topics`, `pattern`, `timer`, `cron` or `channel`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub topics: Option<Vec<String>>,
    pub pattern: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timer: Option<Duration>,
    /// Divides a timer's interval (simulations and load tests: `timer = "5s"` with
    /// `speedup = 60` fires every 83ms).
    pub speedup: Option<f64>,
    /// An in-memory channel other agents of the worker send to (`ctx.channel(name)`).
    pub channel: Option<String>,
    /// A crontab schedule: `"0 * * * *"` (minute hour day-of-month month day-of-week), or
    /// with seconds first (six fields), or an alias like `"@hourly"`.
    pub cron: Option<String>,
    /// The IANA time zone a `cron` schedule is read in (default UTC).
    pub timezone: Option<String>,
    /// The timer fires on one worker of the app only, the leader.
    #[serde(default)]
    pub on_leader: bool,
}

/// The source of an agent, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Topics(Vec<String>),
    Pattern(String),
    Timer(TimerSpec),
    Channel(String),
}

/// When a timer source fires, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSpec {
    pub schedule: Schedule,
    /// Only on the app's leader (one worker at a time).
    pub on_leader: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every interval (speedup applied).
    Every(Duration),
    /// At the times a crontab expression names, read in a time zone.
    Cron {
        expr: String,
        timezone: chrono_tz::Tz,
    },
}

impl Source {
    /// A timer faster than the runtime can honour (under a millisecond).
    pub fn timer_too_fast(&self) -> bool {
        matches!(self, Source::Timer(TimerSpec { schedule: Schedule::Every(d), .. }) if *d < Duration::from_millis(1))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Topics(t) => write!(f, "topics {}", t.join(", ")),
            Source::Pattern(p) => write!(f, "pattern {p}"),
            Source::Channel(c) => write!(f, "channel {c}"),
            Source::Timer(t) => {
                match &t.schedule {
                    Schedule::Every(d) => {
                        write!(f, "timer every {}", humantime::format_duration(*d))?
                    }
                    Schedule::Cron { expr, timezone } => write!(f, "cron {expr} ({timezone})")?,
                }
                if t.on_leader {
                    f.write_str(" on the leader")?;
                }
                Ok(())
            }
        }
    }
}

/// A crontab expression as the timers read it: five fields (minutes), six (seconds
/// first) or seven (a year last), or an alias (`@hourly`, `@daily`, ...).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::new()
        .parse(expr)
        .map_err(|e| format!("invalid cron expression \"{expr}\": {e}"))
}

/// An IANA time zone name (`America/Chicago`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!(
            "unknown time zone \"{name}\" (give an IANA name like \"America/Chicago\" or \"UTC\")"
        )
    })
}

impl AgentSettings {
    /// The repartition topics of its `group_by` stages, when it has any: the topics its
    /// tables are co-partitioned with instead of its sources.
    pub fn table_topics(&self) -> Option<Vec<String>> {
        let regrouped: Vec<String> = self
            .stages
            .iter()
            .filter(|s| s.kind == "group_by")
            .map(|s| s.topic.clone())
            .collect();
        (!regrouped.is_empty()).then_some(regrouped)
    }

    pub fn function_name<'a>(&'a self, agent: &'a str) -> &'a str {
        self.function.as_deref().unwrap_or(agent)
    }

    /// The validated source; `validate` has checked that exactly one kind is set (an
    /// unvalidated cron expression or time zone reads as UTC).
    pub fn source(&self) -> Source {
        if let Some(t) = &self.source.topics {
            let mut topics = t.clone();
            topics.extend(self.stages.iter().map(|s| s.topic.clone()));
            return Source::Topics(topics);
        }
        if let Some(p) = &self.source.pattern {
            return Source::Pattern(p.clone());
        }
        if let Some(c) = &self.source.channel {
            return Source::Channel(c.clone());
        }
        let schedule = match &self.source.cron {
            Some(expr) => Schedule::Cron {
                expr: expr.clone(),
                timezone: self
                    .source
                    .timezone
                    .as_deref()
                    .and_then(|z| parse_timezone(z).ok())
                    .unwrap_or(chrono_tz::UTC),
            },
            None => {
                let every = self.source.timer.unwrap_or(Duration::from_secs(1));
                Schedule::Every(match self.source.speedup {
                    Some(x) if x.is_finite() && x > 0.0 => {
                        Duration::from_secs_f64(every.as_secs_f64() / x)
                    }
                    _ => every,
                })
            }
        };
        Source::Timer(TimerSpec {
            schedule,
            on_leader: self.source.on_leader,
        })
    }

    /// Whether the agent is a timer that fires on the leader only.
    pub fn on_leader(&self) -> bool {
        matches!(
            self.source(),
            Source::Timer(TimerSpec {
                on_leader: true,
                ..
            })
        )
    }
}

impl Settings {
    /// Puts every topic name of the settings in the app's namespace (`app.topic_prefix`)
    /// and expands `${app.id}` / `${app.topic_prefix}` in connectors: from here on a name
    /// in the settings is the name on the broker.
    fn resolve_namespace(&mut self) -> Result<(), SettingsError> {
        let file = self.source.to_string();
        let err = |key: String, message: String| SettingsError::Invalid {
            file: file.clone(),
            env_var: env_var_for(&key),
            key,
            message,
        };
        let prefix = self.app.topic_prefix.clone();
        namespace::check_prefix(&prefix).map_err(|m| err("app.topic_prefix".into(), m))?;
        for (key, c) in &mut self.connectors {
            if let Some(name) = &mut c.name {
                *name = namespace::expand(name, &self.app.id, &prefix)
                    .map_err(|m| err(format!("connectors.{key}.name"), m))?;
            }
            for (k, v) in c.config.iter_mut() {
                if let toml::Value::String(text) = v {
                    *text = namespace::expand(text, &self.app.id, &prefix)
                        .map_err(|m| err(format!("connectors.{key}.config.{k}"), m))?;
                }
            }
        }
        if prefix.is_empty() {
            return Ok(());
        }
        let topic = |name: &String| namespace::topic(&prefix, name);
        for a in self.agents.values_mut() {
            if let Some(topics) = &mut a.source.topics {
                *topics = topics.iter().map(topic).collect();
            }
            if let Some(p) = &mut a.source.pattern {
                *p = namespace::pattern(&prefix, p);
            }
            a.sinks = a.sinks.iter().map(topic).collect();
        }
        self.topics = std::mem::take(&mut self.topics)
            .into_iter()
            .map(|(name, t)| (topic(&name), t))
            .collect();
        for t in self.tables.values_mut() {
            t.changelog = t.changelog.as_ref().map(topic);
            t.source_topic = t.source_topic.as_ref().map(topic);
        }
        self.embedded.schemas_topic = topic(&self.embedded.schemas_topic);
        Ok(())
    }

    /// Settings for embedding the runtime in a program or a test, without a file.
    pub fn from_toml_str(text: &str) -> Result<Settings, SettingsError> {
        load_from_text(text, None, &[])
    }

    /// The settings of a topic: its own `[topics."<name>"]`, else the most specific
    /// pattern matching it (`[topics."org.chicago.cta.station.arrivals.*"]`: `*` matches
    /// any run of characters), else the defaults.
    pub fn topic(&self, name: &str) -> TopicSettings {
        self.topic_entry(name).cloned().unwrap_or_default()
    }

    fn topic_entry(&self, name: &str) -> Option<&TopicSettings> {
        self.topics.get(name).or_else(|| {
            self.topics
                .iter()
                .filter(|(pattern, _)| pattern.contains('*') && glob_match(pattern, name))
                .max_by_key(|(pattern, _)| pattern.len() - pattern.matches('*').count())
                .map(|(_, t)| t)
        })
    }

    pub fn partitions_for(&self, topic: &str) -> i32 {
        self.topic_entry(topic)
            .and_then(|t| t.partitions)
            .unwrap_or(self.topic_defaults.partitions)
    }

    pub fn replication_for(&self, topic: &str) -> i32 {
        self.topic_entry(topic)
            .and_then(|t| t.replication)
            .unwrap_or(self.topic_defaults.replication)
    }

    /// Where the embedded Schema Registry listens, if it runs.
    pub fn embedded_registry_addr(&self) -> Result<Option<SocketAddr>, String> {
        parse_addr(&self.embedded.schema_registry, "127.0.0.1:8081")
    }

    pub fn embedded_rest_proxy_addr(&self) -> Result<Option<SocketAddr>, String> {
        parse_addr(&self.embedded.rest_proxy, "127.0.0.1:8082")
    }

    /// The REST Proxy URL clients use: `services.rest_proxy`, or the embedded proxy when
    /// that is empty.
    pub fn rest_proxy_url(&self) -> String {
        match (
            self.services.rest_proxy.trim(),
            self.embedded_rest_proxy_addr(),
        ) {
            ("", Ok(Some(addr))) => format!("http://{addr}"),
            (url, _) => url.to_string(),
        }
    }

    /// The Schema Registry URL clients use: `services.schema_registry`, or the embedded
    /// registry when that is empty.
    pub fn schema_registry_url(&self) -> String {
        match (
            self.services.schema_registry.trim(),
            self.embedded_registry_addr(),
        ) {
            ("", Ok(Some(addr))) => format!("http://{addr}"),
            (url, _) => url.to_string(),
        }
    }

    pub fn table_partitions(&self, table: &str) -> i32 {
        self.tables
            .get(table)
            .and_then(|t| t.partitions)
            .unwrap_or(self.topic_defaults.partitions)
    }

    /// The partitions of agent `agent`'s repartition topics (`group_by`): those of the
    /// table it writes from them, so the table is co-partitioned with them; else the
    /// default.
    pub fn repartition_partitions(&self, agent: &str) -> i32 {
        self.tables
            .iter()
            .find(|(_, t)| !t.global && t.agent.as_deref() == Some(agent))
            .map(|(name, _)| self.table_partitions(name))
            .unwrap_or(self.topic_defaults.partitions)
    }

    /// The tables an agent writes.
    pub fn tables_of_agent<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.tables
            .iter()
            .filter(move |(_, t)| t.agent.as_deref() == Some(agent))
            .map(|(n, _)| n)
    }

    /// A path from the settings, taken relative to the settings file's directory.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match self.source.file.as_ref().and_then(|f| f.parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.resolve_path(&self.app.state_dir)
    }

    pub fn enabled_agents(&self) -> impl Iterator<Item = (&String, &AgentSettings)> {
        self.agents.iter().filter(|(_, a)| a.enabled)
    }

    /// Checks of the `[tables]` section against the declared tables (`known_tables`).
    pub fn validate_tables(&self, known_tables: &[&str]) -> Result<(), SettingsError> {
        let err = |key: String, message: String| SettingsError::Invalid {
            file: self.source.to_string(),
            env_var: env_var_for(&key),
            key,
            message,
        };
        for (name, t) in &self.tables {
            let key = |field: &str| format!("tables.{name}.{field}");
            if !known_tables.contains(&name.as_str()) {
                let mut known = known_tables.to_vec();
                known.sort_unstable();
                return Err(err(
                    format!("tables.{name}"),
                    format!(
                        "no table named '{name}' is declared with register_table! (known: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if let Some(p) = t.partitions {
                if p < 1 {
                    return Err(err(
                        key("partitions"),
                        format!("must be at least 1, not {p}"),
                    ));
                }
            }
            for (field, codec) in [("key_codec", t.key_codec), ("value_codec", t.value_codec)] {
                if codec == CodecKind::Avro && !t.global {
                    return Err(err(
                        key(field),
                        "tables store json or raw; avro is only for a global table that follows an Avro topic".into(),
                    ));
                }
            }
            if let Some(m) = &t.mirrors {
                if !t.global
                    || t.source_topic.is_some()
                    || !self.tables.contains_key(m)
                    || m == name
                {
                    return Err(err(
                        key("mirrors"),
                        format!("a global table without source_topic may mirror another table of [tables]; {m:?} is not one"),
                    ));
                }
            }
            if let Some(w) = &t.window {
                if t.global {
                    return Err(err(
                        key("window"),
                        "a global table cannot be windowed (it is read-only; window the table its agent writes)".into(),
                    ));
                }
                w.check()
                    .map_err(|(field, message)| err(key(&format!("window.{field}")), message))?;
            }
            if t.global {
                if t.agent.is_some() {
                    return Err(err(key("agent"), "a global table is read-only: it has no writing agent (give it a source_topic)".into()));
                }
                continue;
            }
            if t.source_topic.is_some() {
                return Err(err(
                    key("source_topic"),
                    "only a global table follows a source topic".into(),
                ));
            }
            let Some(agent) = &t.agent else {
                return Err(err(
                    key("agent"),
                    "name the agent that writes this table (or set global = true)".into(),
                ));
            };
            match self.agents.get(agent) {
                None => {
                    return Err(err(
                        key("agent"),
                        format!("no agent named '{agent}' in [agents]"),
                    ));
                }
                // A pattern's topics are unknown until run time; with one partition (all
                // of them, under the range assignor, on the same worker) it is safe.
                Some(a)
                    if a.source.topics.is_none()
                        && !(a.source.pattern.is_some() && self.table_partitions(name) == 1) =>
                {
                    return Err(err(
                        key("agent"),
                        format!("agent '{agent}' must read a topic list (or a pattern, with a one-partition table) to be co-partitioned with a table"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Checks that need more than types: exactly one source kind, sane numbers, regexes
    /// that compile, agent functions that exist (`known_functions`).
    pub fn validate(&self, known_functions: &[&str]) -> Result<(), SettingsError> {
        let err = |key: String, message: String| SettingsError::Invalid {
            file: self.source.to_string(),
            env_var: env_var_for(&key),
            key,
            message,
        };
        if self.app.id.trim().is_empty() {
            return Err(err("app.id".into(), "must not be empty".into()));
        }
        if self.app.broker.trim().is_empty() {
            return Err(err("app.broker".into(), "must not be empty".into()));
        }
        let session = self.app.leader_session_timeout;
        if !(Duration::from_secs(1)..=Duration::from_secs(1800)).contains(&session) {
            return Err(err(
                "app.leader_session_timeout".into(),
                format!(
                    "must be between 1s and 30m (within the broker's group.min/max.session.timeout.ms), not {}",
                    humantime::format_duration(session)
                ),
            ));
        }
        if let Err(e) = self.embedded_registry_addr() {
            return Err(err("embedded.schema_registry".into(), e));
        }
        if let Err(e) = self.embedded_rest_proxy_addr() {
            return Err(err("embedded.rest_proxy".into(), e));
        }
        for name in &self.ksql.replaces {
            if !self.agents.contains_key(name) {
                return Err(err(
                    "ksql.replaces".into(),
                    format!("names the agent {name}, which is not in [agents]"),
                ));
            }
        }
        let mut connect_names = BTreeMap::new();
        for (key, c) in &self.connectors {
            for (k, v) in &c.config {
                if matches!(v, toml::Value::Table(_) | toml::Value::Array(_)) {
                    return Err(err(
                        format!("connectors.{key}.config.{k}"),
                        "must be a string, number or boolean (Kafka Connect keeps strings)".into(),
                    ));
                }
            }
            if c.enabled {
                if let Some(other) = connect_names.insert(c.connect_name(key), key) {
                    return Err(err(
                        format!("connectors.{key}"),
                        format!(
                            "connectors.{other} is enabled too and names the same Kafka Connect connector \"{}\": enable one",
                            c.connect_name(key)
                        ),
                    ));
                }
            }
        }
        for (name, t) in &self.topics {
            if let Some(p) = t.partitions {
                if p < 1 {
                    return Err(err(
                        format!("topics.\"{name}\".partitions"),
                        format!("must be at least 1, not {p}"),
                    ));
                }
            }
            for (which, codec, schema) in [
                ("key", t.key_codec, &t.key_schema),
                ("value", t.value_codec, &t.value_schema),
            ] {
                if let Some(schema) = schema {
                    if codec != Some(CodecKind::Avro) {
                        return Err(err(
                            format!("topics.\"{name}\".{which}_schema"),
                            format!("a schema is only used with {which}_codec = \"avro\""),
                        ));
                    }
                    let path = self.resolve_path(schema);
                    if !path.is_file() {
                        return Err(err(
                            format!("topics.\"{name}\".{which}_schema"),
                            format!("schema file {} does not exist", path.display()),
                        ));
                    }
                }
            }
        }
        for (name, a) in &self.agents {
            let key = |field: &str| format!("agents.{name}.{field}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(
                    format!("agents.{name}"),
                    "agent names may hold only letters, digits, '_' and '-'".into(),
                ));
            }
            let kinds = [
                a.source.topics.is_some(),
                a.source.pattern.is_some(),
                a.source.timer.is_some(),
                a.source.channel.is_some(),
                a.source.cron.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if kinds != 1 {
                return Err(err(
                    key("source"),
                    "give exactly one of `topics = [..]`, `pattern = \"..\"`, `timer = \"5s\"`, `cron = \"0 * * * *\"` or `channel = \"..\"`"
                        .into(),
                ));
            }
            if let Some(topics) = &a.source.topics {
                if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
                    return Err(err(
                        key("source.topics"),
                        "must list at least one topic name, none empty".into(),
                    ));
                }
            }
            if let Some(p) = &a.source.pattern {
                if let Err(e) = regex::Regex::new(p) {
                    return Err(err(key("source.pattern"), format!("invalid regex: {e}")));
                }
                if !p.starts_with('^') {
                    return Err(err(
                        key("source.pattern"),
                        "a pattern must start with '^' (librdkafka only treats such names as regexes)"
                            .into(),
                    ));
                }
            }
            if let Some(c) = &a.source.channel {
                if c.trim().is_empty() {
                    return Err(err(key("source.channel"), "must name a channel".into()));
                }
                if let Some((other, _)) = self.agents.iter().find(|(n, o)| {
                    *n < name && o.enabled && a.enabled && o.source.channel.as_ref() == Some(c)
                }) {
                    return Err(err(
                        key("source.channel"),
                        format!("agent {other} reads channel {c:?} too; a channel has one reader"),
                    ));
                }
            }
            if let Some(d) = a.source.timer {
                if d.is_zero() {
                    return Err(err(
                        key("source.timer"),
                        "interval must be above zero".into(),
                    ));
                }
            }
            if let Some(expr) = &a.source.cron {
                parse_cron(expr).map_err(|m| err(key("source.cron"), m))?;
            }
            if let Some(zone) = &a.source.timezone {
                if a.source.cron.is_none() {
                    return Err(err(
                        key("source.timezone"),
                        "only a cron source has a time zone (an interval timer is the same everywhere)".into(),
                    ));
                }
                parse_timezone(zone).map_err(|m| err(key("source.timezone"), m))?;
            }
            if a.source.on_leader {
                if a.source.timer.is_none() && a.source.cron.is_none() {
                    return Err(err(
                        key("source.on_leader"),
                        "only a timer or cron source runs on the leader (a topic's partitions are shared by the group)".into(),
                    ));
                }
                if a.concurrency != 1 {
                    return Err(err(
                        key("concurrency"),
                        format!(
                            "an on_leader timer runs one instance, on one worker; not {}",
                            a.concurrency
                        ),
                    ));
                }
            }
            if let Some(x) = a.source.speedup {
                if a.source.timer.is_none() {
                    return Err(err(
                        key("source.speedup"),
                        "only a timer source can be sped up".into(),
                    ));
                }
                if !(x.is_finite() && x > 0.0) || a.source().timer_too_fast() {
                    return Err(err(
                        key("source.speedup"),
                        format!("must be a number above zero that leaves the timer at least 1ms apart, not {x}"),
                    ));
                }
            }
            if a.concurrency == 0 || a.concurrency > 1024 {
                return Err(err(
                    key("concurrency"),
                    format!("must be between 1 and 1024, not {}", a.concurrency),
                ));
            }
            let function = a.function_name(name);
            if a.enabled && !known_functions.contains(&function) {
                let mut known: Vec<&str> = known_functions.to_vec();
                known.sort_unstable();
                return Err(err(
                    if a.function.is_some() {
                        key("function")
                    } else {
                        format!("agents.{name}")
                    },
                    format!(
                        "no agent function named '{function}' is registered (known: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {file}: {message}")]
    Unreadable { file: String, message: String },
    #[error("settings file {file} is not valid TOML: {message}")]
    Syntax { file: String, message: String },
    #[error("bad setting `{key}` in {file}{}: {message}", env_note(.env_var))]
    Invalid {
        file: String,
        key: String,
        env_var: Option<String>,
        message: String,
    },
}

fn env_note(var: &Option<String>) -> String {
    match var {
        Some(v) => format!(" (overridden by environment variable {v})"),
        None => String::new(),
    }
}

/// The environment variable that would set `key`, if it is set in this process.
fn env_var_for(key: &str) -> Option<String> {
    let name = format!(
        "{ENV_PREFIX}_{}",
        key.replace('"', "").replace('.', "__").to_uppercase()
    );
    std::env::var_os(&name).map(|_| name)
}

/// Loads the settings file at `path` and applies environment overrides.
pub fn load(path: &Path) -> Result<Settings, SettingsError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError::Unreadable {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")) && k != ENV_SETTINGS_FILE)
        .collect();
    let mut settings = load_from_text(&text, Some(path), &env)?;
    settings.source.file = Some(path.to_path_buf());
    Ok(settings)
}

fn load_from_text(
    text: &str,
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<Settings, SettingsError> {
    let file = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<built-in settings>".into());
    // Parse once with `toml` for its line/column diagnostics; `config` then layers the
    // environment on top.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(SettingsError::Syntax {
            file,
            message: e.to_string().trim_end().to_string(),
        });
    }
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml));
    for (key, value) in env {
        let Some(rest) = key.strip_prefix(&format!("{ENV_PREFIX}_")) else {
            continue;
        };
        let path = rest.to_lowercase().replace("__", ".");
        builder = builder
            .set_override(&path, parse_env_value(value))
            .map_err(|e| SettingsError::Invalid {
                file: file.clone(),
                key: path.clone(),
                env_var: Some(key.clone()),
                message: e.to_string(),
            })?;
    }
    let cfg = builder.build().map_err(|e| SettingsError::Syntax {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let mut settings: Settings = serde_path_to_error::deserialize(cfg).map_err(|e| {
        let key = e.path().to_string();
        SettingsError::Invalid {
            file: file.clone(),
            env_var: env_var_for(&key),
            key,
            message: clean_serde_message(&e.inner().to_string()),
        }
    })?;
    settings.source.file = path.map(Path::to_path_buf);
    settings.resolve_namespace()?;
    if !settings.services.ksqldb.trim().is_empty() {
        for name in &settings.ksql.replaces {
            if let Some(a) = settings.agents.get_mut(name) {
                a.enabled = false;
            }
        }
    }
    Ok(settings)
}

/// Environment values are strings; numbers and booleans are recognised so that
/// `CTA_STREAM_AGENTS__X__ENABLED=false` works for a boolean key.
fn parse_env_value(v: &str) -> config::Value {
    if let Ok(b) = v.parse::<bool>() {
        return b.into();
    }
    if let Ok(i) = v.parse::<i64>() {
        return i.into();
    }
    if v.starts_with('[') && v.ends_with(']') {
        let items: Vec<config::Value> = v[1..v.len() - 1]
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .map(config::Value::from)
            .collect();
        return items.into();
    }
    v.into()
}

fn clean_serde_message(m: &str) -> String {
    // `config` appends its own (less precise) location; the path is ours to give.
    match m.find(" for key `") {
        Some(i) => m[..i].to_string(),
        None => m.to_string(),
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration_value(DurationRepr::deserialize(d)?).map_err(de::Error::custom)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<DurationRepr>::deserialize(d)? {
        None => Ok(None),
        Some(r) => parse_duration_value(r).map(Some).map_err(de::Error::custom),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Millis(u64),
    Text(String),
}

fn parse_duration_value(r: DurationRepr) -> Result<Duration, String> {
    match r {
        DurationRepr::Millis(ms) => Ok(Duration::from_millis(ms)),
        DurationRepr::Text(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid interval \"{s}\": {e} (write it like \"500ms\", \"5s\" or \"1m\")")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [app]
        id = "t"
        [agents.echo]
        source.topics = ["in"]
        sinks = ["out"]
    "#;

    #[test]
    fn minimal_settings_have_defaults() {
        let s = Settings::from_toml_str(BASE).unwrap();
        assert_eq!(s.app.broker, "127.0.0.1:9092");
        assert_eq!(s.web.bind.port(), 8888);
        let a = &s.agents["echo"];
        assert_eq!(a.codec, CodecKind::Json);
        assert_eq!(a.on_error, ErrorPolicy::Fail);
        assert_eq!(a.source(), Source::Topics(vec!["in".into()]));
        s.validate(&["echo"]).unwrap();
    }

    #[test]
    fn unknown_key_names_its_path() {
        let text = BASE.replace("sinks", "sinkz");
        let e = Settings::from_toml_str(&text).unwrap_err().to_string();
        assert!(e.contains("agents.echo"), "{e}");
        assert!(e.contains("sinkz"), "{e}");
    }

    #[test]
    fn bad_interval_names_key() {
        let text = r#"
            [app]
            id = "t"
            [agents.tick]
            source.timer = "5 parsecs"
        "#;
        let e = Settings::from_toml_str(text).unwrap_err().to_string();
        assert!(e.contains("agents.tick.source.timer"), "{e}");
        assert!(e.contains("invalid interval"), "{e}");
    }

    /// The error of validating an agent `tick` with these source lines.
    fn timer_error(source: &str) -> String {
        let text = format!("[app]\nid = \"t\"\n[agents.tick]\n{source}\n");
        match load_from_text(&text, Some(Path::new("/etc/cta/settings.toml")), &[]) {
            Err(e) => e.to_string(),
            Ok(s) => s
                .validate(&["tick"])
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string()),
        }
    }

    #[test]
    fn cron_sources_name_the_key_and_the_file_of_a_mistake() {
        let e = timer_error("source.cron = \"61 * * * *\"");
        assert!(
            e.contains("agents.tick.source.cron") && e.contains("/etc/cta/settings.toml"),
            "{e}"
        );
        assert!(e.contains("invalid cron expression \"61 * * * *\""), "{e}");
        let e = timer_error("source.cron = \"0 * * *\"");
        assert!(e.contains("agents.tick.source.cron"), "{e}");
        let e = timer_error("source.cron = \"0 * * * *\"\nsource.timezone = \"America/Chicgo\"");
        assert!(
            e.contains("agents.tick.source.timezone") && e.contains("/etc/cta/settings.toml"),
            "{e}"
        );
        assert!(e.contains("unknown time zone \"America/Chicgo\""), "{e}");
        let e = timer_error("source.timer = \"5s\"\nsource.timezone = \"UTC\"");
        assert!(
            e.contains("agents.tick.source.timezone") && e.contains("only a cron source"),
            "{e}"
        );
        let e = timer_error("source.cron = \"0 * * * *\"\nsource.timer = \"5s\"");
        assert!(
            e.contains("agents.tick.source") && e.contains("exactly one"),
            "{e}"
        );
        let e = timer_error("source.cron = \"0 * * * *\"\nsource.speedup = 2");
        assert!(e.contains("agents.tick.source.speedup"), "{e}");
        let e = timer_error("source.topics = [\"in\"]\nsource.on_leader = true");
        assert!(e.contains("agents.tick.source.on_leader"), "{e}");
        let e = timer_error("source.timer = \"1s\"\nsource.on_leader = true\nconcurrency = 2");
        assert!(
            e.contains("agents.tick.concurrency") && e.contains("on_leader"),
            "{e}"
        );
        let e = timer_error("source.on_leader = \"maybe\"\nsource.timer = \"1s\"");
        assert!(e.contains("agents.tick.source.on_leader"), "{e}");
        let text = "[app]\nid = \"t\"\nleader_session_timeout = \"100ms\"\n";
        let s = load_from_text(text, Some(Path::new("/etc/cta/settings.toml")), &[]).unwrap();
        let e = s.validate(&[]).unwrap_err().to_string();
        assert!(
            e.contains("app.leader_session_timeout") && e.contains("/etc/cta/settings.toml"),
            "{e}"
        );
    }

    #[test]
    fn cron_sources_read_their_zone_and_run_on_the_leader_when_asked() {
        assert_eq!(
            timer_error("source.cron = \"@hourly\"\nsource.on_leader = true"),
            ""
        );
        let text = "[app]\nid = \"t\"\n[agents.tick]\nsource.cron = \"0 8 * * 1-5\"\n\
                    source.timezone = \"America/Chicago\"\nsource.on_leader = true\n\
                    [agents.beat]\nsource.timer = \"5s\"\nsource.speedup = 5\n";
        let s = Settings::from_toml_str(text).unwrap();
        s.validate(&["tick", "beat"]).unwrap();
        let tick = &s.agents["tick"];
        assert_eq!(
            tick.source(),
            Source::Timer(TimerSpec {
                schedule: Schedule::Cron {
                    expr: "0 8 * * 1-5".into(),
                    timezone: chrono_tz::America::Chicago
                },
                on_leader: true
            })
        );
        assert!(tick.on_leader());
        assert_eq!(
            tick.source().to_string(),
            "cron 0 8 * * 1-5 (America/Chicago) on the leader"
        );
        let beat = &s.agents["beat"];
        assert!(!beat.on_leader());
        assert_eq!(beat.source().to_string(), "timer every 1s");
        assert_eq!(s.app.leader_session_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_function_is_rejected() {
        let s = Settings::from_toml_str(BASE).unwrap();
        let e = s.validate(&["other"]).unwrap_err().to_string();
        assert!(e.contains("agents.echo"), "{e}");
        assert!(e.contains("no agent function named 'echo'"), "{e}");
    }

    #[test]
    fn two_source_kinds_are_rejected() {
        let text = BASE.replace(
            "source.topics = [\"in\"]",
            "source.topics = [\"in\"]\nsource.timer = \"1s\"",
        );
        let s = Settings::from_toml_str(&text).unwrap();
        let e = s.validate(&["echo"]).unwrap_err().to_string();
        assert!(e.contains("agents.echo.source"), "{e}");
    }

    #[test]
    fn a_topic_prefix_resolves_every_topic_of_the_settings() {
        let text = r#"
            [app]
            id = "cta"
            topic_prefix = "t1."
            [embedded]
            schemas_topic = "_schemas"
            [topics."arr.*"]
            partitions = 2
            [agents.read]
            source.topics = ["in"]
            sinks = ["out"]
            [agents.follow]
            source.pattern = '^arr\..*'
            [tables.counts]
            agent = "read"
            [tables.counts_all]
            global = true
            mirrors = "counts"
            [tables.weather]
            global = true
            source_topic = "weather"
            [connectors.db]
            name = "${app.topic_prefix}db"
            config."slot.name" = "${app.id}_db"
            config."transforms.route.replacement" = "${app.topic_prefix}rows"
            config."database.password" = "${file:/secrets:pw}"
            config."tasks.max" = 1
        "#;
        let s = Settings::from_toml_str(text).unwrap();
        assert_eq!(
            s.agents["read"].source.topics,
            Some(vec!["t1.in".to_string()])
        );
        assert_eq!(s.agents["read"].sinks, vec!["t1.out".to_string()]);
        assert_eq!(
            s.agents["follow"].source.pattern.as_deref(),
            Some(r"^t1\.arr\..*")
        );
        assert_eq!(
            s.partitions_for("t1.arr.x"),
            2,
            "topic patterns follow the prefix"
        );
        assert_eq!(
            s.tables["weather"].source_topic.as_deref(),
            Some("t1.weather")
        );
        assert_eq!(s.embedded.schemas_topic, "t1._schemas");
        assert_eq!(s.app.topic("x"), "t1.x");
        let c = &s.connectors["db"];
        assert_eq!(c.connect_name("db"), "t1.db");
        let config = c.config_strings();
        assert_eq!(config["slot.name"], "cta_db");
        assert_eq!(config["transforms.route.replacement"], "t1.rows");
        assert_eq!(
            config["database.password"], "${file:/secrets:pw}",
            "Connect's own"
        );
        assert_eq!(config["tasks.max"], "1");

        // Without a prefix every name is as written.
        let s = Settings::from_toml_str(&text.replace("topic_prefix = \"t1.\"", "")).unwrap();
        assert_eq!(s.agents["read"].sinks, vec!["out".to_string()]);
        assert_eq!(s.tables["weather"].source_topic.as_deref(), Some("weather"));
        assert_eq!(s.embedded.schemas_topic, "_schemas");
        assert_eq!(s.connectors["db"].connect_name("db"), "db");
    }

    #[test]
    fn an_unknown_placeholder_names_the_connector_key() {
        let text = "[app]\nid = \"a\"\n[connectors.db]\nconfig.x = \"${app.nme}\"\n";
        let e = Settings::from_toml_str(text).unwrap_err().to_string();
        assert!(e.contains("connectors.db.config.x"), "{e}");
        assert!(e.contains("${app.nme}"), "{e}");
    }

    #[test]
    fn env_overrides_file() {
        let env = vec![
            ("CTA_STREAM_APP__BROKER".to_string(), "h:1".to_string()),
            (
                "CTA_STREAM_AGENTS__ECHO__ENABLED".to_string(),
                "false".to_string(),
            ),
            (
                "CTA_STREAM_AGENTS__ECHO__CONCURRENCY".to_string(),
                "3".to_string(),
            ),
        ];
        let s = load_from_text(BASE, None, &env).unwrap();
        assert_eq!(s.app.broker, "h:1");
        assert!(!s.agents["echo"].enabled);
        assert_eq!(s.agents["echo"].concurrency, 3);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = load_from_text("[app\nid=1", Some(Path::new("/x/s.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/s.toml"), "{e}");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn topic_names_keep_their_case_and_dots() {
        let text = r#"
            [app]
            id = "t"
            [topics."TURNSTILE_SUMMARY"]
            partitions = 3
            [topics."org.chicago.cta.turnstile.v1"]
            value_codec = "json"
        "#;
        let s = Settings::from_toml_str(text).unwrap();
        assert_eq!(s.partitions_for("TURNSTILE_SUMMARY"), 3);
        assert_eq!(
            s.topic("org.chicago.cta.turnstile.v1").value_codec,
            Some(CodecKind::Json)
        );
    }

    #[test]
    fn durations_accept_text_and_millis() {
        let text = r#"
            [app]
            id = "t"
            commit_interval = 250
            shutdown_timeout = "2m"
        "#;
        let s = Settings::from_toml_str(text).unwrap();
        assert_eq!(s.app.commit_interval, Duration::from_millis(250));
        assert_eq!(s.app.shutdown_timeout, Duration::from_secs(120));
    }

    #[test]
    fn topic_patterns_give_settings_to_families_of_topics() {
        assert!(glob_match("a.*", "a.b"));
        assert!(glob_match("a.*", "a."));
        assert!(!glob_match("a.*", "b.a"));
        assert!(glob_match("*.v1", "x.v1"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
        assert!(glob_match("exact", "exact"));
        let text = "[app]\nid = \"t\"\n\
                    [topics.\"arr.*\"]\npartitions = 3\nvalue_codec = \"avro\"\n\
                    [topics.\"arr.special.*\"]\npartitions = 5\n\
                    [topics.\"arr.x\"]\npartitions = 7\n";
        let s = Settings::from_toml_str(text).unwrap();
        assert_eq!(s.partitions_for("arr.clark_and_lake"), 3);
        assert_eq!(
            s.topic("arr.clark_and_lake").value_codec,
            Some(CodecKind::Avro)
        );
        assert_eq!(
            s.partitions_for("arr.special.one"),
            5,
            "the more specific pattern"
        );
        assert_eq!(s.partitions_for("arr.x"), 7, "an exact name wins");
        assert_eq!(s.partitions_for("other"), 1);
    }
}
