//! The command line: `worker`, `agents`, `send`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use crate::agent::AgentRegistry;
use crate::app::App;
use crate::codec::{codec_for, Codec, Part, SchemaRegistryClient};
use crate::kafka::client::{client_config, ClientKind};
use crate::kafka::Names;
use crate::logging::{self, LogLevel};
use crate::settings::{self, CodecKind, Settings};
use crate::table::TableRegistry;

#[derive(Debug, Parser)]
#[command(
    name = "cta-stream",
    version,
    about = "A Faust-style stream-processing worker on Kafka",
    long_about = "A Faust-style stream-processing worker on Kafka.\n\nSettings come from a TOML file \
                  (--settings, default ./settings.toml) and may be overridden by environment \
                  variables: CTA_STREAM_<SECTION>__<KEY>, e.g. CTA_STREAM_APP__BROKER=host:9092."
)]
pub struct Cli {
    /// Settings file
    #[arg(long, global = true, env = settings::ENV_SETTINGS_FILE, default_value = "settings.toml")]
    settings: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a worker: every enabled agent and the web server, until SIGINT/SIGTERM
    Worker {
        /// Log level (RUST_LOG, when set, overrides it)
        #[arg(short = 'l', long = "loglevel", value_enum, default_value = "info")]
        loglevel: LogLevel,
    },
    /// List the agents of the settings and the agent functions the binary holds
    Agents {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// List the tables of the settings and the tables the binary declares
    Tables {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Kafka Connect connectors of the settings: status (default), apply, delete
    Connectors {
        #[command(subcommand)]
        action: Option<ConnectorsAction>,
    },
    /// Send one record to a topic
    Send {
        /// Topic to write to, as the app names it (app.topic_prefix is put before it)
        topic: String,
        /// The value: JSON text for the json and avro codecs, text for raw
        value: String,
        /// The key, encoded with --key-codec
        #[arg(long)]
        key: Option<String>,
        /// Value codec [default: the topic's value_codec, else json]
        #[arg(long, value_enum)]
        codec: Option<CodecArg>,
        /// Key codec [default: the topic's key_codec, else raw]
        #[arg(long, value_enum)]
        key_codec: Option<CodecArg>,
        /// Avro schema of the value [default: the topic's value_schema]
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Avro schema of the key [default: the topic's key_schema]
        #[arg(long)]
        key_schema: Option<PathBuf>,
        /// Partition to write to [default: by key]
        #[arg(long)]
        partition: Option<i32>,
    },
}

#[derive(Debug, Subcommand)]
enum ConnectorsAction {
    /// Each connector of the settings and its state in Kafka Connect
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Create or update the enabled connectors (or one) and wait until they run
    Apply {
        /// Connect name of one connector [default: every enabled one]
        name: Option<String>,
    },
    /// Delete a connector from Kafka Connect
    Delete {
        /// Connect name of the connector
        name: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CodecArg {
    Json,
    Avro,
    Raw,
}

impl From<CodecArg> for CodecKind {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::Json => CodecKind::Json,
            CodecArg::Avro => CodecKind::Avro,
            CodecArg::Raw => CodecKind::Raw,
        }
    }
}

/// Entry point of the binary, with the agent functions linked into it.
pub fn main() -> ExitCode {
    crate::memory::limit_malloc_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Command::Worker { loglevel } = &cli.command {
        logging::init(*loglevel);
    } else {
        logging::init(LogLevel::Warn);
    }
    let settings = match settings::load(&cli.settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Worker { .. } => worker(settings).await,
        Command::Agents { json } => agents(settings, json),
        Command::Tables { json } => tables(settings, json),
        Command::Connectors { action } => {
            let action = action.unwrap_or(ConnectorsAction::Status { json: false });
            match connectors_command(&settings, action).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Send {
            topic,
            value,
            key,
            codec,
            key_codec,
            schema,
            key_schema,
            partition,
        } => {
            let req = SendRequest {
                topic: settings.app.topic(&topic),
                value,
                key,
                codec: codec.map(Into::into),
                key_codec: key_codec.map(Into::into),
                schema,
                key_schema,
                partition,
            };
            match send(&settings, req).await {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn worker(settings: Settings) -> ExitCode {
    let app = App::new(settings);
    if let Err(e) = app.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    eprintln!("{}", app.banner());
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!("signal received: stopping gracefully (send it again to exit at once)");
        let _ = tx.send(true);
        wait_for_signal().await;
        tracing::error!("second signal: exiting now");
        std::process::exit(130);
    });
    match app.run(rx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn agents(settings: Settings, json: bool) -> ExitCode {
    let registry = AgentRegistry::collected();
    let validation = settings.validate(&registry.names());
    if json {
        let configured: Vec<serde_json::Value> = settings
            .agents
            .iter()
            .map(|(name, a)| {
                serde_json::json!({
                    "name": name,
                    "function": a.function_name(name),
                    "source": a.source().to_string(),
                    "sinks": a.sinks,
                    "codec": a.codec.to_string(),
                    "concurrency": a.concurrency,
                    "on_error": a.on_error.to_string(),
                    "dead_letter_topic": Names::new(&settings).dead_letter_topic(name),
                    "group_id": Names::new(&settings).agent_group(name),
                    "enabled": a.enabled,
                })
            })
            .collect();
        let functions: Vec<serde_json::Value> = registry
            .iter()
            .map(|(n, f, file)| serde_json::json!({"name": n, "file": file, "value_type": f.value_type}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "agents": configured,
                "functions": functions,
            }))
            .unwrap_or_default()
        );
    } else {
        println!(
            "{:<22} {:<22} {:<9} {:<5} {:<12} {:<8} SOURCE",
            "AGENT", "FUNCTION", "CODEC", "CONC", "ON_ERROR", "ENABLED"
        );
        for (name, a) in &settings.agents {
            println!(
                "{:<22} {:<22} {:<9} {:<5} {:<12} {:<8} {}",
                name,
                a.function_name(name),
                a.codec.to_string(),
                a.concurrency,
                a.on_error.to_string(),
                if a.enabled { "yes" } else { "no" },
                a.source()
            );
        }
        let unused: Vec<&str> = registry
            .names()
            .into_iter()
            .filter(|f| {
                !settings
                    .agents
                    .iter()
                    .any(|(n, a)| a.function_name(n) == *f)
            })
            .collect();
        note_unused("registered functions", &unused);
    }
    exit_for(validation)
}

fn tables(settings: Settings, json: bool) -> ExitCode {
    let decls = TableRegistry::collected();
    let validation = settings.validate_tables(&decls.names());
    let rows: Vec<serde_json::Value> = settings
        .tables
        .iter()
        .map(|(name, t)| {
            let d = decls.get(name);
            serde_json::json!({
                "name": name,
                "global": t.global,
                "agent": t.agent,
                "partitions": settings.table_partitions(name),
                "changelog": Names::new(&settings).changelog_topic(name),
                "source_topic": t.global.then(|| Names::new(&settings).global_source_topic(name)),
                "key_type": d.map(|d| d.key_type),
                "value_type": d.map(|d| d.value_type),
                "key_codec": t.key_codec.to_string(),
                "value_codec": t.value_codec.to_string(),
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "tables": rows }))
                .unwrap_or_default()
        );
    } else {
        println!(
            "{:<20} {:<6} {:<5} {:<18} {:<26} CHANGELOG / SOURCE",
            "TABLE", "GLOBAL", "PARTS", "AGENT", "KEY -> VALUE"
        );
        for r in &rows {
            let types = format!(
                "{} -> {}",
                r["key_type"].as_str().unwrap_or("?"),
                r["value_type"].as_str().unwrap_or("?")
            );
            println!(
                "{:<20} {:<6} {:<5} {:<18} {:<26} {}",
                r["name"].as_str().unwrap_or_default(),
                if r["global"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                r["partitions"],
                r["agent"].as_str().unwrap_or("-"),
                types,
                r["source_topic"]
                    .as_str()
                    .unwrap_or(r["changelog"].as_str().unwrap_or_default()),
            );
        }
        let unused: Vec<&str> = decls
            .names()
            .into_iter()
            .filter(|n| !settings.tables.contains_key(*n))
            .collect();
        note_unused("declared tables", &unused);
    }
    exit_for(validation)
}

fn note_unused(what: &str, names: &[&str]) {
    if !names.is_empty() {
        println!("\n{what} without a settings entry: {}", names.join(", "));
    }
}

/// Listing commands print what they can, then fail on invalid settings.
fn exit_for(validation: Result<(), settings::SettingsError>) -> ExitCode {
    match validation {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

struct SendRequest {
    topic: String,
    value: String,
    key: Option<String>,
    codec: Option<CodecKind>,
    key_codec: Option<CodecKind>,
    schema: Option<PathBuf>,
    key_schema: Option<PathBuf>,
    partition: Option<i32>,
}

async fn send(settings: &Settings, req: SendRequest) -> anyhow::Result<String> {
    let topic_settings = settings.topic(&req.topic);
    let value_kind = req
        .codec
        .or(topic_settings.value_codec)
        .unwrap_or(CodecKind::Json);
    let key_kind = req
        .key_codec
        .or(topic_settings.key_codec)
        .unwrap_or(CodecKind::Raw);
    let needs_registry = value_kind == CodecKind::Avro || key_kind == CodecKind::Avro;
    let registry = if needs_registry {
        let url = settings.schema_registry_url();
        Some(Arc::new(
            SchemaRegistryClient::new(&url)
                .map_err(|e| anyhow::anyhow!("services.schema_registry: {e}"))?
                .with_attempts(3),
        ))
    } else {
        None
    };
    let schema_path = |given: &Option<PathBuf>, configured: &Option<PathBuf>| -> Option<PathBuf> {
        given
            .clone()
            .or_else(|| configured.as_ref().map(|p| settings.resolve_path(p)))
    };
    let value_schema = schema_path(&req.schema, &topic_settings.value_schema);
    let key_schema = schema_path(&req.key_schema, &topic_settings.key_schema);
    let value_codec = codec_for(
        value_kind,
        &req.topic,
        Part::Value,
        value_schema.as_deref(),
        registry.as_ref(),
    )?;
    let key_codec = codec_for(
        key_kind,
        &req.topic,
        Part::Key,
        key_schema.as_deref(),
        registry.as_ref(),
    )?;

    let value = encode_arg(&value_codec, &req.value, "VALUE").await?;
    let key = match &req.key {
        Some(k) => Some(encode_arg(&key_codec, k, "--key").await?),
        None => None,
    };

    let producer: FutureProducer = client_config(settings, ClientKind::Producer).create()?;
    let mut record = FutureRecord::<[u8], [u8]>::to(&req.topic).payload(&value);
    if let Some(k) = &key {
        record = record.key(k.as_slice());
    }
    if let Some(p) = req.partition {
        record = record.partition(p);
    }
    match producer.send(record, Duration::from_secs(10)).await {
        Ok(delivery) => Ok(format!(
            "sent to {}[{}]@{}",
            req.topic, delivery.partition, delivery.offset
        )),
        Err((e, _)) => Err(anyhow::anyhow!(
            "cannot send to {} on {}: {e}",
            req.topic,
            settings.app.broker
        )),
    }
}

/// Command-line text to record bytes: JSON text for json and avro, as-is for raw.
async fn encode_arg(codec: &Codec, text: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    match codec {
        Codec::Raw => Ok(text.as_bytes().to_vec()),
        _ => {
            let v: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| anyhow::anyhow!("{what} is not valid JSON ({e}): {text}"))?;
            Ok(codec.encode(&v).await?)
        }
    }
}

/// Loads settings as the CLI does (used by tests and tools).
pub fn load_settings(path: &Path) -> Result<Settings, settings::SettingsError> {
    settings::load(path)
}

async fn connectors_command(settings: &Settings, action: ConnectorsAction) -> Result<(), String> {
    let client = crate::connectors::client(settings)?;
    match action {
        ConnectorsAction::Status { json } => {
            let mut rows = Vec::new();
            for (key, c) in &settings.connectors {
                let name = c.connect_name(key);
                // A disabled entry may share its Connect name with the enabled one.
                let status = if c.enabled {
                    client.status(name).await.map_err(|e| e.to_string())?
                } else {
                    None
                };
                rows.push(serde_json::json!({
                    "setting": key,
                    "name": name,
                    "enabled": c.enabled,
                    "class": c.config_strings().get("connector.class").cloned().unwrap_or_default(),
                    "connector": status.as_ref().map(|s| s.connector.state.clone()),
                    "tasks": status.as_ref().map(|s| s.tasks.iter().map(|t| serde_json::json!({
                        "id": t.id, "state": t.state, "worker_id": t.worker_id, "trace": t.trace,
                    })).collect::<Vec<_>>()),
                }));
            }
            if json {
                println!("{}", serde_json::Value::Array(rows));
                return Ok(());
            }
            println!(
                "{:<16} {:<16} {:<8} {:<12} tasks",
                "setting", "name", "enabled", "connector"
            );
            for r in &rows {
                let tasks = r["tasks"]
                    .as_array()
                    .map(|ts| {
                        ts.iter()
                            .map(|t| format!("{}={}", t["id"], t["state"].as_str().unwrap_or("?")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<16} {:<16} {:<8} {:<12} {tasks}",
                    r["setting"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    r["enabled"].to_string(),
                    r["connector"].as_str().unwrap_or(if r["enabled"] == true {
                        "absent"
                    } else {
                        "-"
                    }),
                );
                for t in r["tasks"].as_array().into_iter().flatten() {
                    if let Some(trace) = t["trace"].as_str() {
                        println!("  task {} trace: {trace}", t["id"]);
                    }
                }
            }
            Ok(())
        }
        ConnectorsAction::Apply { name } => {
            let chosen: Vec<_> = crate::connectors::enabled(settings)
                .into_iter()
                .filter(|(_, n, _)| name.as_deref().is_none_or(|want| want == *n))
                .collect();
            if chosen.is_empty() {
                return Err(format!(
                    "no enabled connector{} in the settings ({})",
                    name.map(|n| format!(" named {n}")).unwrap_or_default(),
                    settings.source
                ));
            }
            for (_, n, c) in chosen {
                let (applied, status) = crate::connectors::apply(&client, n, c)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{n}: {} — connector {}, {} task(s) running",
                    match applied {
                        crate::services::kafka_connect::Applied::Created => "created",
                        crate::services::kafka_connect::Applied::Updated => "updated",
                        crate::services::kafka_connect::Applied::Unchanged => "unchanged",
                    },
                    status.connector.state,
                    status.tasks.len()
                );
            }
            Ok(())
        }
        ConnectorsAction::Delete { name } => {
            if client.delete(&name).await.map_err(|e| e.to_string())? {
                println!("{name}: deleted");
                Ok(())
            } else {
                Err(format!(
                    "no connector named {name} in Kafka Connect at {}",
                    client.url()
                ))
            }
        }
    }
}
