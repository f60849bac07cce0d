//! Helpers for the integration tests: the real broker of the local stack, the worker as
//! a process, and plain rdkafka clients to feed and read topics.

#![allow(dead_code)]

pub mod connect;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub fn broker() -> String {
    std::env::var("CTA_TEST_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Fails the test with a clear message when the stack is not up.
pub fn require_broker() {
    let addr = broker();
    let first = addr.split(',').next().unwrap_or_default().to_string();
    if std::net::TcpStream::connect_timeout(
        &first.parse().expect("CTA_TEST_BROKER is host:port"),
        Duration::from_secs(2),
    )
    .is_err()
    {
        panic!("no Kafka broker at {addr}: start the local stack with `scripts/stack up` (or run scripts/test)");
    }
}

/// A name no other test or earlier run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let r = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .unwrap();
    for x in r {
        x.unwrap();
    }
    // The broker answers before its metadata shows the topic.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let md = admin
            .inner()
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .unwrap();
        if md
            .topics()
            .iter()
            .any(|t| t.error().is_none() && t.partitions().len() == partitions as usize)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The partition count of `topic` on the broker, `None` when it does not exist.
pub async fn topic_partitions(topic: &str) -> Option<usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    md.topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&str>, value: &str) {
    let mut rec = FutureRecord::<str, str>::to(topic).payload(value);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    p.send(rec, Duration::from_secs(10)).await.unwrap();
}

#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub value: Option<String>,
    pub partition: i32,
    pub offset: i64,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` from the beginning until `want` records arrived or `timeout` passed.
pub fn consume(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                h.value
                                    .map(|v| String::from_utf8_lossy(v).to_string())
                                    .unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                value: m.payload().map(|v| String::from_utf8_lossy(v).to_string()),
                partition: m.partition(),
                offset: m.offset(),
                headers,
            });
        }
    }
    out
}

/// The committed offset of `group` on partition 0 of `topic` (None when nothing is).
pub fn committed(group: &str, topic: &str, partition: i32) -> Option<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    match got.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// The worker binary as a child process, with its own settings file and web port.
pub struct Worker {
    pub child: Child,
    pub port: u16,
    pub dir: Option<tempfile::TempDir>,
    pub settings: PathBuf,
    pub log: PathBuf,
}

/// The CTA app's binary: the runtime with the app's agents (`cta_*`), tables and views.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cta-stream")
}

/// The runtime's examples binary: the runtime with the example agents (`examples/`).
pub fn examples_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cta-stream-examples")
}

/// The binary that registers the agents a settings text runs: the app's are all named
/// `cta_*`; the runtime's own tests run the example agents.
pub fn bin_for(settings: &str) -> &'static str {
    if settings.contains("[agents.cta_") {
        bin()
    } else {
        examples_bin()
    }
}

impl Worker {
    /// Writes `[app]`/`[web]` sections for `app_id` followed by `agents_toml`, and
    /// starts `cta-stream worker -l info`.
    pub fn start(app_id: &str, agents_toml: &str) -> Worker {
        Self::start_with(app_id, "commit_interval = \"200ms\"\n", agents_toml)
    }

    /// Like `start`, with extra `[app]` keys.
    pub fn start_with(app_id: &str, app_toml: &str, agents_toml: &str) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let settings = dir.path().join("settings.toml");
        let text = format!(
            "[app]\nid = \"{app_id}\"\nbroker = \"{}\"\nshutdown_timeout = \"20s\"\n{app_toml}\
             [web]\nbind = \"127.0.0.1:{port}\"\n[services]\nschema_registry = \"\"\nrest_proxy = \"\"\n{agents_toml}\n",
            broker()
        );
        std::fs::write(&settings, text).unwrap();
        Self::spawn(dir, settings, port)
    }

    /// Starts a worker on a whole settings file, written by `text` given the web port.
    pub fn start_settings(text: impl FnOnce(u16) -> String) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let settings = dir.path().join("settings.toml");
        std::fs::write(&settings, text(port)).unwrap();
        Self::spawn(dir, settings, port)
    }

    /// Starts a worker again with the same settings and state directory.
    pub fn restart(mut self) -> Worker {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = self.dir.take().expect("a worker owns its directory");
        Self::spawn(dir, self.settings.clone(), self.port)
    }

    fn spawn(dir: tempfile::TempDir, settings: PathBuf, port: u16) -> Worker {
        let log = dir.path().join(format!("worker-{}.log", unique("run")));
        let f = std::fs::File::create(&log).unwrap();
        let text = std::fs::read_to_string(&settings).unwrap();
        let child = Command::new(bin_for(&text))
            .arg("--settings")
            .arg(&settings)
            .args(["worker", "-l", "info"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        Worker {
            child,
            port,
            dir: Some(dir),
            settings,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn health(&self) -> Option<(u16, serde_json::Value)> {
        let r = reqwest::get(self.url("/health")).await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.json().await.ok()?))
    }

    /// Waits until `/health` answers 200 (every agent running, broker reachable).
    pub async fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("worker exited early ({status}):\n{}", self.log_text());
            }
            if let Some((200, _)) = self.health().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("worker not healthy after {timeout:?}:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "worker did not exit within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a settings file and runs a CLI command, returning (exit code, stderr).
pub fn run_cli(settings_text: Option<&str>, args: &[&str]) -> (i32, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    if let Some(t) = settings_text {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(t.as_bytes()).unwrap();
    }
    let out = Command::new(bin_for(settings_text.unwrap_or_default()))
        .arg("--settings")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    // Keep the directory alive until the caller inspects the path.
    let kept = dir.keep();
    (
        out.status.code().unwrap_or(-1),
        stderr,
        kept.join("settings.toml"),
    )
}

/// A record as bytes, with its topic.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Reads every partition of `topics` from the beginning until `want` records arrived, or
/// `timeout` passed, or (with `settle`) no record came for that long after the last one.
pub fn consume_raw(
    topics: &[String],
    want: usize,
    timeout: Duration,
    settle: Option<Duration>,
) -> Vec<RawRecord> {
    consume_raw_isolated(topics, want, timeout, settle, false)
}

/// `consume_raw`, reading only committed transactions when `read_committed`.
pub fn consume_raw_isolated(
    topics: &[String],
    want: usize,
    timeout: Duration,
    settle: Option<Duration>,
    read_committed: bool,
) -> Vec<RawRecord> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if read_committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .unwrap();
            }
        }
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if settle.is_some_and(|s| !out.is_empty() && last.elapsed() > s) {
            break;
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            last = Instant::now();
            out.push(RawRecord {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            });
        }
    }
    out
}

/// Decodes Confluent-framed Avro with the schema a registry serves for the frame's id,
/// using apache-avro directly (not the runtime's codecs).
pub struct AvroReader {
    registry: String,
    schemas: std::collections::HashMap<i32, apache_avro::Schema>,
}

impl AvroReader {
    pub fn new(registry: &str) -> Self {
        Self {
            registry: registry.trim_end_matches('/').to_string(),
            schemas: Default::default(),
        }
    }

    /// The schema id of the frame and the decoded datum as JSON.
    pub async fn decode(&mut self, bytes: &[u8]) -> (i32, serde_json::Value) {
        assert!(
            bytes.len() >= 5 && bytes[0] == 0,
            "not Confluent framing: {bytes:?}"
        );
        let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        if !self.schemas.contains_key(&id) {
            let body: serde_json::Value =
                reqwest::get(format!("{}/schemas/ids/{id}", self.registry))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            let schema = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
            self.schemas.insert(id, schema);
        }
        let schema = &self.schemas[&id];
        let mut datum = &bytes[5..];
        let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .and_then(|r| r.read_value(&mut datum))
            .unwrap_or_else(|e| panic!("datum does not match schema {id}: {e}"));
        assert!(datum.is_empty(), "bytes left after the datum");
        (id, avro_to_json(value))
    }
}

fn avro_to_json(v: apache_avro::types::Value) -> serde_json::Value {
    use apache_avro::types::Value as A;
    use serde_json::json;
    match v {
        A::Null => serde_json::Value::Null,
        A::Boolean(b) => json!(b),
        A::Int(i) => json!(i),
        A::Long(i) => json!(i),
        A::Float(f) => json!(f),
        A::Double(f) => json!(f),
        A::String(s) | A::Enum(_, s) => json!(s),
        A::Bytes(b) | A::Fixed(_, b) => json!(b),
        A::Union(_, inner) => avro_to_json(*inner),
        A::Array(items) => items.into_iter().map(avro_to_json).collect(),
        A::Map(m) => m.into_iter().map(|(k, v)| (k, avro_to_json(v))).collect(),
        A::Record(fields) => fields
            .into_iter()
            .map(|(k, v)| (k, avro_to_json(v)))
            .collect(),
        other => json!(format!("{other:?}")),
    }
}

/// GET `url`: status and JSON body (Null when the body is not JSON).
#[allow(dead_code)] // not every test file uses it
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(serde_json::Value::Null))
}
