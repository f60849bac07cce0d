//! Faults on the real stack: the broker stopped and restarted under load, PostgreSQL and
//! Kafka Connect restarted under the stations pipeline, and the worker killed with
//! SIGKILL twenty times under the running simulation with exactly-once on.
//!
//! The broker test runs its own Kafka (scripts/stack on free ports and a private state
//! directory), so that stopping it cannot disturb anything else; the PostgreSQL and
//! Connect test restarts the local stack's services (test binaries run one at a time).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::connect::*;
use common::*;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/stack ARGS` with `env`; panics with its output when it fails.
fn stack(args: &[&str], env: &[(&str, String)]) {
    let out = Command::new(root().join("scripts/stack"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("scripts/stack");
    assert!(
        out.status.success(),
        "scripts/stack {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// A Kafka broker of this test alone, removed with its data when dropped.
struct PrivateKafka {
    dir: tempfile::TempDir,
    port: u16,
    controller: u16,
}

impl PrivateKafka {
    fn start() -> Self {
        let k = Self {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            controller: free_port(),
        };
        k.up();
        k
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CTA_STACK_DIR", self.dir.path().display().to_string()),
            ("CTA_KAFKA_PORT", self.port.to_string()),
            ("CTA_CONTROLLER_PORT", self.controller.to_string()),
            ("CTA_STACK_CONNECT", "0".into()),
        ]
    }

    fn up(&self) {
        stack(&["up", "kafka"], &self.env());
    }

    fn down(&self) {
        stack(&["down", "kafka"], &self.env());
        assert!(!port_open(self.port), "the broker still listens");
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/stack"))
            .args(["down", "--purge", "kafka"])
            .envs(self.env())
            .output();
    }
}

fn forward_settings(
    app: &str,
    broker: &str,
    port: u16,
    input: &str,
    app_toml: &str,
    health_toml: &str,
) -> String {
    format!(
        "[app]\nid = \"{app}\"\nbroker = \"{broker}\"\ncommit_interval = \"200ms\"\n{app_toml}\
         shutdown_timeout = \"20s\"\n[web]\nbind = \"127.0.0.1:{port}\"\n\
         [services]\nschema_registry = \"\"\nrest_proxy = \"\"\n\
         [health]\nbroker_timeout = \"5s\"\n{health_toml}\
         [agents.forward]\nsource.topics = [\"{input}\"]\nsinks = [\"{input}-out\"]\n"
    )
}

/// The distinct `n` of every record of `topic` on `broker`, read until all of `0..want`
/// are there or `timeout` passes.
fn distinct_ns(broker: &str, topic: &str, want: u64, timeout: Duration) -> (BTreeSet<u64>, u64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("isolation.level", "read_committed")
        .set("group.id", unique("faults-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let (mut seen, mut records) = (BTreeSet::new(), 0);
    let deadline = Instant::now() + timeout;
    while (seen.len() as u64) < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            seen.insert(v["n"].as_u64().unwrap());
            records += 1;
        }
    }
    (seen, records)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_stopped_and_restarted_under_load_loses_nothing_and_the_worker_resumes() {
    outage_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn under_exactly_once_a_broker_outage_neither_loses_nor_duplicates() {
    outage_under_load(true).await;
}

async fn outage_under_load(exactly_once: bool) {
    let kafka = PrivateKafka::start();
    let guarantee = if exactly_once {
        "processing_guarantee = \"exactly_once\"\n"
    } else {
        ""
    };
    let broker = kafka.bootstrap();
    let app = unique("outage");
    let input = format!("{app}-in");
    let mut w =
        Worker::start_settings(|port| forward_settings(&app, &broker, port, &input, guarantee, ""));
    w.wait_healthy(Duration::from_secs(90)).await;
    // A second worker that gives up when the broker is gone (health.exit_when_unhealthy).
    let quitter_app = format!("{app}-quitter");
    let quitter_in = format!("{quitter_app}-in");
    let mut quitter = Worker::start_settings(|port| {
        forward_settings(
            &quitter_app,
            &broker,
            port,
            &quitter_in,
            guarantee,
            "exit_when_unhealthy = true\n",
        )
    });
    quitter.wait_healthy(Duration::from_secs(90)).await;

    // 6,000 events over ~20 s; the producer outlives the outage (it buffers and retries).
    let total = 6000u64;
    let feeder = {
        let (broker, input) = (broker.clone(), input.clone());
        tokio::spawn(async move {
            let p: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &broker)
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", "300000")
                .create()
                .unwrap();
            let mut pending = Vec::new();
            for n in 0..total {
                let value = json!({ "n": n }).to_string();
                let key = n.to_string();
                let record = FutureRecord::to(&input).key(&key).payload(&value);
                pending.push(p.send_result(record).expect("queue"));
                if n % 30 == 29 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            for d in pending {
                d.await.unwrap().expect("the feeder's own delivery");
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    kafka.down();
    let outage = Instant::now();

    // /health turns 503 and says why once the outage outlasts health.broker_timeout.
    let reasons = loop {
        if let Some((503, body)) = w.health().await {
            break body["reasons"].to_string();
        }
        assert!(
            outage.elapsed() < Duration::from_secs(60),
            "still healthy with the broker down:\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        reasons.contains("unreachable") && reasons.contains("health.broker_timeout"),
        "{reasons}"
    );
    let status = quitter.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "{}", quitter.log_text());

    tokio::time::sleep(Duration::from_secs(5)).await;
    kafka.up();
    let back = Instant::now();
    // At-least-once rides the outage out in the same process. Under exactly-once the
    // transactional producer may come back in a state librdkafka declares fatal (an abort
    // refused as INVALID_TXN_STATE): the worker then exits 1 for its supervisor, and the
    // fresh one, fenced in, resumes from the last commit — played here by a restart.
    let mut restarts = 0;
    let mut supervise = |mut w: Worker| -> Worker {
        match w.child.try_wait().unwrap().map(|status| status.code()) {
            None => w,
            Some(code) => {
                assert!(exactly_once, "the at-least-once worker died ({code:?})");
                assert_eq!(code, Some(1), "{}", w.log_text());
                assert!(
                    w.log_text().contains("stopping the worker"),
                    "{}",
                    w.log_text()
                );
                restarts += 1;
                w.restart()
            }
        }
    };
    w = supervise(w);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !matches!(w.health().await, Some((200, _))) {
        assert!(
            Instant::now() < deadline,
            "not healthy again:\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        w = supervise(w);
    }
    let resumed_after = back.elapsed();
    tokio::time::timeout(Duration::from_secs(300), feeder)
        .await
        .expect("the feeder finishes once the broker is back")
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(180);
    let (seen, records) = loop {
        let (seen, records) = distinct_ns(
            &broker,
            &format!("{input}-out"),
            total,
            Duration::from_secs(10),
        );
        w = supervise(w);
        if seen.len() as u64 == total || Instant::now() > deadline {
            break (seen, records);
        }
    };
    let missing: Vec<u64> = (0..total).filter(|n| !seen.contains(n)).take(20).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} events lost (first: {missing:?})\n{}",
        total - seen.len() as u64,
        w.log_text()
    );
    assert!(w.child.try_wait().unwrap().is_none(), "the worker runs on");
    if exactly_once {
        assert_eq!(
            records,
            total,
            "duplicates under exactly-once\n{}",
            w.log_text()
        );
    }
    eprintln!(
        "outage {:.1} s; worker healthy {:.1} s after the broker was back ({restarts} \
         supervisor restarts); {records} records out for {total} events ({} duplicates)",
        back.duration_since(outage).as_secs_f64(),
        resumed_after.as_secs_f64(),
        records - total
    );
}

/// One run of `scripts/stack down SERVICE` + `up SERVICE` on the local stack; panics if
/// the service was not started by the script (it would not go down).
fn restart_stack_service(service: &str, port: u16) {
    stack(&["down", service], &[]);
    assert!(
        !port_open(port),
        "{service} on :{port} was not started by scripts/stack, so this test cannot restart it"
    );
    stack(&["up", service], &[]);
}

async fn wait_station_name(w: &Worker, id: i64, name: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, body) = get_json(&w.url(&format!("/tables/stations/{id}"))).await;
        if body["value"]["station_name"] == name {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "station {id} is not named {name:?}: {body}\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stations_pipeline_resumes_after_postgres_and_kafka_connect_restart() {
    require_broker();
    require_connect();
    let app = unique("pgrestart");
    let (connector, topic) = (format!("{app}-stations"), format!("{app}.stations"));
    let settings = station_pipeline_settings(&app, &connector, &topic);
    create_topic(&topic, 1).await;
    let mut w = Worker::start(&app, &settings);
    w.wait_healthy(Duration::from_secs(60)).await;
    let original = psql("select station_name from stations where station_id = 40820 limit 1");
    wait_station_name(&w, 40820, &original, Duration::from_secs(90)).await;

    let rename = |to: &str| {
        psql(&format!(
            "update stations set station_name = '{to}' where station_id = 40820"
        ))
    };
    let result = std::panic::AssertUnwindSafe(async {
        restart_stack_service("postgres", 5432);
        let after_pg = format!("Rosemont after postgres {app}");
        rename(&after_pg);
        wait_station_name(&w, 40820, &after_pg, Duration::from_secs(120)).await;

        restart_stack_service("connect", 8083);
        let after_connect = format!("Rosemont after connect {app}");
        rename(&after_connect);
        wait_station_name(&w, 40820, &after_connect, Duration::from_secs(180)).await;
        let (code, health) = w.health().await.unwrap();
        assert_eq!(code, 200, "{health}");
    });
    let outcome = futures::FutureExt::catch_unwind(result).await;
    rename(&original);
    remove_connector(&connector, &app).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The app's settings for the kill test: the simulation (clock ×10, trains, turnstiles),
/// the turnstile summary, the station transform and the train positions, exactly-once,
/// every topic under `<app>.`.
fn simulation_settings(app: &str, port: u16, registry: u16, producers: bool) -> String {
    let root = root();
    let r = root.display();
    let on = producers;
    format!(
        r#"[app]
id = "{app}"
broker = "{broker}"
processing_guarantee = "exactly_once"
commit_interval = "100ms"
shutdown_timeout = "20s"

[web]
bind = "127.0.0.1:{port}"

[services]
schema_registry = ""
rest_proxy = ""

[embedded]
schema_registry = "127.0.0.1:{registry}"
schemas_topic = "_schemas-{app}"

[topics."{app}.arrivals.*"]
key_codec = "avro"
value_codec = "avro"
key_schema = "{r}/schemas/arrival_key.json"
value_schema = "{r}/schemas/arrival_value.json"

[topics."{app}.turnstile"]
key_codec = "avro"
value_codec = "avro"
key_schema = "{r}/schemas/turnstile_key.json"
value_schema = "{r}/schemas/turnstile_value.json"

[agents.cta_clock]
source.timer = "5s"
source.speedup = 10
sinks = ["{app}.clock"]
params = {{ step = "5m", start = "2026-11-23T08:00:00Z" }}
enabled = {on}

[agents.cta_trains]
source.topics = ["{app}.clock"]
params = {{ data_dir = "{r}/data", arrivals_prefix = "{app}.arrivals." }}
enabled = {on}

[agents.cta_turnstiles]
source.topics = ["{app}.clock"]
sinks = ["{app}.turnstile"]
params = {{ data_dir = "{r}/data" }}
enabled = {on}

[agents.cta_turnstile_summary]
source.topics = ["{app}.turnstile"]
codec = "avro"
sinks = ["{app}.summary"]
on_error = "dead-letter"

[tables.turnstile_counts]
agent = "cta_turnstile_summary"

[agents.cta_station_transform]
source.topics = ["{app}.stations"]
on_error = "dead-letter"

[tables.stations]
agent = "cta_station_transform"
changelog = "{app}.stations.table"

[agents.cta_train_positions]
source.pattern = '^{pattern}\.arrivals\..*'
codec = "avro"
key_codec = "avro"
on_error = "dead-letter"

[tables.trains]
agent = "cta_train_positions"
"#,
        broker = broker(),
        pattern = app.replace('.', "\\."),
    )
}

/// The rows of data/cta_stations.csv as Kafka Connect writes them, names tagged `round`.
fn station_rows(round: u32) -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(root().join("data/cta_stations.csv")).unwrap();
    r.records()
        .map(|row| {
            let row = row.unwrap();
            let flag = |i: usize| row[i].eq_ignore_ascii_case("true");
            let v = json!({
                "stop_id": row[0].parse::<i64>().unwrap(),
                "direction_id": &row[1],
                "stop_name": &row[2],
                "station_name": format!("{} r{round}", &row[3]),
                "station_descriptive_name": &row[4],
                "station_id": row[5].parse::<i64>().unwrap(),
                "order": row[6].parse::<i64>().unwrap(),
                "red": flag(7),
                "blue": flag(8),
                "green": flag(9),
            });
            (row[0].to_string(), v.to_string())
        })
        .collect()
}

fn sim_worker(app: &str, registry: u16, producers: bool) -> Worker {
    Worker::start_settings(|port| simulation_settings(app, port, registry, producers))
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_sigkills_under_the_running_simulation_with_exactly_once_lose_and_double_nothing() {
    require_broker();
    let app = unique("kills");
    let registry = free_port();
    let stations_topic = format!("{app}.stations");
    create_topic(&stations_topic, 1).await;
    let mut w = sim_worker(&app, registry, true);
    w.wait_healthy(Duration::from_secs(90)).await;

    // Station rows keep coming while the worker is killed: ten rounds of all 230 rows.
    let rounds = 10u32;
    let feeder = {
        let topic = stations_topic.clone();
        tokio::spawn(async move {
            let p = producer();
            for round in 0..rounds {
                for (key, value) in station_rows(round) {
                    produce(&p, &topic, Some(&key), &value).await;
                }
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        })
    };

    let seed: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("kill moments from seed {seed} (FAULTS_SEED to repeat)");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    for _ in 0..20 {
        // Any moment: while starting, recovering, or in the middle of a transaction.
        let ms = rng.random_range(300..4000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Some(status) = w.child.try_wait().unwrap() {
            panic!("the worker died by itself ({status}):\n{}", w.log_text());
        }
        w.kill9();
        w = w.restart();
    }
    w.wait_healthy(Duration::from_secs(90)).await;
    // The last worker runs the simulation for a while before it is stopped: after twenty
    // SIGKILLs its consumer groups first wait out the dead members' sessions, and on a
    // loaded machine the killed workers may have produced little or nothing.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, h) = w.health().await.unwrap();
        if h["agents"]["cta_turnstiles"]["events_out"].as_u64() >= Some(2000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the simulation does not run: {h}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    feeder.await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.signal("TERM");
    assert!(
        w.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        w.log_text()
    );

    // The consumers alone (no clock, no producers) catch up with what was committed; a
    // new state directory, so their tables are rebuilt from the changelogs too.
    let mut w = sim_worker(&app, registry, false);
    w.wait_healthy(Duration::from_secs(90)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, perf) = get_json(&w.url("/performance")).await;
        let lag = |a: &str| perf["agents"][a]["lag"]["total"].as_i64();
        let parts = |a: &str| {
            perf["agents"][a]["lag"]["partitions"]
                .as_array()
                .map_or(0, Vec::len)
        };
        if lag("cta_turnstile_summary") == Some(0)
            && parts("cta_turnstile_summary") == 1
            && lag("cta_station_transform") == Some(0)
            && parts("cta_station_transform") == 1
        {
            break;
        }
        assert!(Instant::now() < deadline, "no catch-up: {perf}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Turnstile events committed to the topic, per station.
    let events = consume_raw_isolated(
        &[format!("{app}.turnstile")],
        usize::MAX,
        Duration::from_secs(120),
        Some(Duration::from_secs(3)),
        true,
    );
    assert!(
        events.len() > 1000,
        "the simulation ran: {} events",
        events.len()
    );
    let mut reader = AvroReader::new(&format!("http://127.0.0.1:{registry}"));
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for e in &events {
        let (_, v) = reader.decode(e.value.as_deref().unwrap()).await;
        *expected.entry(v["station_id"].to_string()).or_default() += 1;
    }
    // The summary (committed records, last per station) equals them exactly...
    let summary = consume_raw_isolated(
        &[format!("{app}.summary")],
        usize::MAX,
        Duration::from_secs(60),
        Some(Duration::from_secs(3)),
        true,
    );
    let mut counted: BTreeMap<String, i64> = BTreeMap::new();
    for r in summary {
        let key = String::from_utf8(r.key.unwrap()).unwrap();
        let v: Value = serde_json::from_slice(&r.value.unwrap()).unwrap();
        counted.insert(key, v["COUNT"].as_i64().unwrap());
    }
    assert_eq!(
        counted,
        expected,
        "TURNSTILE_SUMMARY != the {} committed events",
        events.len()
    );
    // ... and so does the table.
    let (_, page) = get_json(&w.url("/tables/turnstile_counts?limit=1000")).await;
    let table: BTreeMap<String, i64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].to_string(), e["value"].as_i64().unwrap()))
        .collect();
    assert_eq!(table, expected, "turnstile_counts != events");

    // The stations table is whole: every simulated station, from the last round.
    let stations = simulated_stations();
    for (id, orders) in &stations {
        let (code, body) = get_json(&w.url(&format!("/tables/stations/{id}"))).await;
        assert_eq!(code, 200, "station {id} missing: {body}");
        let v = &body["value"];
        assert!(
            v["station_name"]
                .as_str()
                .unwrap()
                .ends_with(&format!(" r{}", rounds - 1)),
            "{id}: {v}"
        );
        assert!(
            orders.contains_key(v["line"].as_str().unwrap()),
            "{id}: {v}"
        );
    }
    let (_, tables) = get_json(&w.url("/tables")).await;
    let keys: Vec<&Value> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "stations")
        .map(|t| &t["held"][0]["keys"])
        .collect();
    assert_eq!(keys, vec![&json!(stations.len())], "{tables}");
    eprintln!(
        "{} turnstile events over {} stations counted exactly across 20 SIGKILLs",
        events.len(),
        expected.len()
    );
}
