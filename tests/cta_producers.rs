//! The CTA producers against the real broker: one clock tick drives the trains, the
//! turnstiles and the weather station; what they write is Confluent-framed Avro that a
//! plain Avro reader, and Python's confluent-kafka client, decode through the embedded
//! Schema Registry. The weather goes through the embedded REST Proxy.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Sim {
    worker: Worker,
    app: String,
    registry: String,
    proxy: String,
}

impl Sim {
    fn clock(&self) -> String {
        format!("{}.clock", self.app)
    }
    fn arrivals_prefix(&self) -> String {
        format!("{}.arrivals.", self.app)
    }
    fn turnstiles(&self) -> String {
        format!("{}.turnstiles", self.app)
    }
    fn weather(&self) -> String {
        format!("{}.weather", self.app)
    }
}

/// A worker running the three producers on topics of their own, fed by a clock topic
/// the test writes to (no clock agent: each tick is the test's).
async fn start_sim(prefix: &str) -> Sim {
    require_broker();
    let app = unique(prefix);
    let (rp, pp) = (free_port(), free_port());
    let r = root();
    let schema = |n: &str| r.join(format!("schemas/{n}.json")).display().to_string();
    let data = r.join("data").display().to_string();
    let toml = format!(
        r#"
[embedded]
schema_registry = "127.0.0.1:{rp}"
schemas_topic = "_schemas-{app}"
rest_proxy = "127.0.0.1:{pp}"

[topics."{app}.arrivals.*"]
key_codec = "avro"
value_codec = "avro"
key_schema = "{ak}"
value_schema = "{av}"

[topics."{app}.turnstiles"]
key_codec = "avro"
value_codec = "avro"
key_schema = "{tk}"
value_schema = "{tv}"

[agents.cta_trains]
source.topics = ["{app}.clock"]
params = {{ data_dir = "{data}", arrivals_prefix = "{app}.arrivals.", seed = 7 }}

[agents.cta_turnstiles]
source.topics = ["{app}.clock"]
sinks = ["{app}.turnstiles"]
params = {{ data_dir = "{data}", seed = 7 }}

[agents.cta_weather]
source.topics = ["{app}.clock"]
params = {{ topic = "{app}.weather", key_schema = "{wk}", value_schema = "{wv}", seed = 7 }}
"#,
        ak = schema("arrival_key"),
        av = schema("arrival_value"),
        tk = schema("turnstile_key"),
        tv = schema("turnstile_value"),
        wk = schema("weather_key"),
        wv = schema("weather_value"),
    );
    let mut worker = Worker::start(&app, &toml);
    worker.wait_healthy(Duration::from_secs(90)).await;
    Sim {
        worker,
        registry: format!("http://127.0.0.1:{rp}"),
        proxy: format!("http://127.0.0.1:{pp}"),
        app,
    }
}

/// 08:00 UTC on Monday 23 November 2026, a 5-minute step.
const MONDAY_8AM_MS: i64 = 1_795_392_000_000 + 8 * 3_600_000;

async fn tick(sim: &Sim, sim_time_ms: i64) {
    let now = chrono_now_ms();
    let t = json!({"step": 0, "sim_time_ms": sim_time_ms, "step_ms": 300_000, "emitted_ms": now});
    produce(&producer(), &sim.clock(), Some("clock"), &t.to_string()).await;
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The topics whose names start with `prefix`, as the REST Proxy lists them.
async fn topics_with_prefix(proxy: &str, prefix: &str) -> Vec<String> {
    let all: Vec<String> = reqwest::get(format!("{proxy}/topics"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.into_iter().filter(|t| t.starts_with(prefix)).collect()
}

/// (line, station_id) of every station on each line, from the data file.
fn line_stations() -> BTreeSet<(String, i64)> {
    let mut r = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(root().join("data/cta_stations.csv"))
        .unwrap();
    let mut out = BTreeSet::new();
    for row in r.records() {
        let row = row.unwrap();
        let id: i64 = row[5].parse().unwrap();
        for (col, line) in [(7, "red"), (8, "blue"), (9, "green")] {
            if row[col].eq_ignore_ascii_case("true") {
                out.insert((line.to_string(), id));
            }
        }
    }
    out
}

/// Weekday rides per station and the share of the day in `hour`, from the data files.
fn ridership(hour: usize) -> (BTreeMap<i64, f64>, f64) {
    let mut r = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(root().join("data/ridership.csv"))
        .unwrap();
    let weekday = r
        .records()
        .map(|row| {
            let row = row.unwrap();
            (row[0].parse().unwrap(), row[2].parse().unwrap())
        })
        .collect();
    let mut c = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_path(root().join("data/ridership_curve.csv"))
        .unwrap();
    let ratio = c
        .records()
        .map(|row| row.unwrap())
        .find(|row| row[0].parse::<usize>().unwrap() == hour)
        .map(|row| row[1].parse().unwrap())
        .unwrap();
    (weekday, ratio)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_clock_step_produces_the_expected_arrivals_turnstiles_and_weather() {
    let sim = start_sim("ctasim").await;
    tick(&sim, MONDAY_8AM_MS).await;

    // Arrivals: where the 30 trains start, then their 30 moves of the step.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut topics = Vec::new();
    while topics.len() < 50 && std::time::Instant::now() < deadline {
        topics = topics_with_prefix(&sim.proxy, &sim.arrivals_prefix()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(topics.len() >= 50, "one topic per station name: {topics:?}");
    let records = consume_raw(
        &topics,
        61,
        Duration::from_secs(40),
        Some(Duration::from_secs(5)),
    );
    assert_eq!(
        records.len(),
        60,
        "30 start + 30 moves\n{}",
        sim.worker.log_text()
    );
    let mut reader = AvroReader::new(&sim.registry);
    let mut by_train: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for r in &records {
        let (_, key) = reader.decode(r.key.as_deref().unwrap()).await;
        assert!(
            key["timestamp"].as_i64().unwrap() > chrono_now_ms() - 120_000,
            "{key}"
        );
        let (_, v) = reader.decode(r.value.as_deref().unwrap()).await;
        assert_eq!(v["train_status"], "in_service");
        let station = r
            .topic
            .strip_prefix(&sim.arrivals_prefix())
            .unwrap()
            .to_string();
        by_train
            .entry(v["train_id"].as_str().unwrap().to_string())
            .or_default()
            .push((station, v));
    }
    assert_eq!(by_train.len(), 30, "{:?}", by_train.keys());
    for (train, arrivals) in by_train.iter_mut() {
        assert_eq!(arrivals.len(), 2, "{train}: {arrivals:?}");
        // The two are on different topics: their order is not kept; the start has no prev.
        arrivals.sort_by_key(|(_, v)| !v["prev_station_id"].is_null());
        let line = match &train[..1] {
            "B" => "blue",
            "R" => "red",
            _ => "green",
        };
        assert!(arrivals.iter().all(|(_, v)| v["line"] == line), "{train}");
        assert!(
            arrivals[0].1["prev_station_id"].is_null(),
            "start first: {train}"
        );
        assert_eq!(
            arrivals[1].1["prev_station_id"], arrivals[0].1["station_id"],
            "{train}"
        );
        assert_eq!(
            arrivals[1].1["prev_direction"], arrivals[0].1["direction"],
            "{train}"
        );
    }
    // The reference's blue step 1, with the project's fix: Forest Park's Harlem (40980),
    // which the original lost to a name clash, is a station again, so BL005 stops there.
    let step1 = |t: &str| by_train[t][1].clone();
    let (topic, v) = step1("BL000");
    assert_eq!(
        (
            topic.as_str(),
            &v["direction"],
            &v["prev_station_id"],
            &v["prev_direction"]
        ),
        ("rosemont", &json!("b"), &json!(40890), &json!("b"))
    );
    assert_eq!(by_train["BL000"][0].0, "ohare");
    let (topic, v) = step1("BL005");
    assert_eq!(
        (
            topic.as_str(),
            &v["direction"],
            &v["prev_station_id"],
            &v["prev_direction"]
        ),
        ("harlem", &json!("b"), &json!(40180), &json!("b"))
    );
    assert_eq!(v["station_id"], 40980);
    let (_, v) = step1("BL006");
    assert_eq!(
        (&v["direction"], &v["prev_station_id"], &v["prev_direction"]),
        (&json!("a"), &json!(40970), &json!("a"))
    );
    let (topic, _) = step1("BL001");
    assert_eq!(topic, "addison");

    // Turnstiles: per station of each line, the day's rides × the hour's share ÷ 12 steps,
    // give or take the reference's noise (−5..4).
    let events = consume_raw(
        &[sim.turnstiles()],
        usize::MAX,
        Duration::from_secs(60),
        Some(Duration::from_secs(4)),
    );
    let mut counts: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for e in &events {
        let (_, v) = reader.decode(e.value.as_deref().unwrap()).await;
        assert!(
            v["station_name"].as_str().is_some_and(|n| !n.is_empty()),
            "{v}"
        );
        *counts
            .entry((
                v["line"].as_str().unwrap().to_string(),
                v["station_id"].as_i64().unwrap(),
            ))
            .or_default() += 1;
    }
    let stations = line_stations();
    assert_eq!(stations.len(), 94, "stations of the three lines");
    let (weekday, ratio) = ridership(8);
    let mut expected_min = 0;
    for (line, id) in &stations {
        let base = (weekday[id] * ratio / 12.0).floor() as i64;
        let got = counts.get(&(line.clone(), *id)).copied().unwrap_or(0);
        assert!(
            (base - 5).max(0) <= got && got <= base + 4,
            "{line} {id}: {got} entries, expected {base} ± noise"
        );
        expected_min += (base - 5).max(0);
    }
    assert!(
        counts.keys().all(|k| stations.contains(k)),
        "no turnstile outside the lines"
    );
    assert!(
        events.len() as i64 >= expected_min && expected_min > 1000,
        "{} events",
        events.len()
    );

    // Weather: 08:00 starts an hour, so one reading went through the REST Proxy.
    let weather = consume_raw(&[sim.weather()], 1, Duration::from_secs(30), None);
    assert_eq!(weather.len(), 1, "{}", sim.worker.log_text());
    let (kid, key) = reader.decode(weather[0].key.as_deref().unwrap()).await;
    let (vid, value) = reader.decode(weather[0].value.as_deref().unwrap()).await;
    assert!(key["timestamp"].as_i64().unwrap() > 0);
    assert!(value["temperature"].as_f64().is_some(), "{value}");
    assert!(
        ["sunny", "partly_cloudy", "cloudy", "windy", "precipitation"]
            .contains(&value["status"].as_str().unwrap())
    );
    let latest = |subject: String| {
        let url = format!("{}/subjects/{subject}/versions/latest", sim.registry);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        }
    };
    assert_eq!(
        i64::from(kid),
        latest(format!("{}-key", sim.weather())).await
    );
    assert_eq!(
        i64::from(vid),
        latest(format!("{}-value", sim.weather())).await
    );

    // A step that does not start an hour sends no weather.
    tick(&sim, MONDAY_8AM_MS + 300_000).await;
    let more = consume_raw(&[sim.weather()], 2, Duration::from_secs(8), None);
    assert_eq!(more.len(), 1, "no reading at 08:05");
}

/// The reader in tests/python: Python's confluent-kafka with its AvroDeserializer.
fn python_read(sim: &Sim, topics: &[String], count: usize) -> Vec<Value> {
    let py = std::process::Command::new("bash")
        .arg(root().join("scripts/pyenv"))
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "scripts/pyenv: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let python = String::from_utf8_lossy(&py.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(root().join("tests/python/read_avro.py"))
        .args(["--bootstrap", &broker(), "--registry", &sim.registry])
        .args(["--count", &count.to_string(), "--timeout", "60"]);
    for t in topics {
        cmd.args(["--topic", t]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "read_avro.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_kafkas_python_client_decodes_what_the_producers_write() {
    let sim = start_sim("ctapy").await;
    tick(&sim, MONDAY_8AM_MS).await;
    let p = sim.arrivals_prefix();
    let arrivals = [format!("{p}ohare"), format!("{p}rosemont")];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while consume_raw(&[sim.weather()], 1, Duration::from_secs(1), None).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            sim.worker.log_text()
        );
    }
    let got = python_read(&sim, &arrivals, 2);
    let by_topic: BTreeMap<&str, &Value> = got
        .iter()
        .map(|m| (m["topic"].as_str().unwrap(), m))
        .collect();
    let o_hare = by_topic[arrivals[0].as_str()];
    assert_eq!(o_hare["value"]["train_id"], "BL000");
    assert_eq!(o_hare["value"]["prev_station_id"], Value::Null);
    assert!(o_hare["key"]["timestamp"].as_i64().unwrap() > 0);
    let rosemont = by_topic[arrivals[1].as_str()];
    assert_eq!(rosemont["value"]["station_id"], 40820);
    assert_eq!(rosemont["value"]["prev_station_id"], 40890);
    assert_eq!(rosemont["value"]["direction"], "b");

    let turnstiles = python_read(&sim, &[sim.turnstiles()], 5);
    assert_eq!(turnstiles.len(), 5);
    for t in &turnstiles {
        assert!(t["value"]["station_id"].as_i64().is_some(), "{t}");
        assert!(
            ["blue", "red", "green"].contains(&t["value"]["line"].as_str().unwrap()),
            "{t}"
        );
        assert!(t["key"]["timestamp"].as_i64().is_some(), "{t}");
    }

    let weather = python_read(&sim, &[sim.weather()], 1);
    assert!(
        weather[0]["value"]["temperature"].as_f64().is_some(),
        "{}",
        weather[0]
    );
    assert!(
        weather[0]["value"]["status"].as_str().is_some(),
        "{}",
        weather[0]
    );
    assert!(weather[0]["value_schema_id"].as_i64().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clock_publishes_steps_of_simulated_time_at_its_speedup() {
    require_broker();
    let app = unique("ctaclock");
    let clock = format!("{app}.clock");
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.cta_clock]\nsource.timer = \"5s\"\nsource.speedup = 50\nsinks = [\"{clock}\"]\n\
             params = {{ step = \"5m\", start = \"2026-11-23T08:00:00Z\" }}\n"
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let started = std::time::Instant::now();
    let ticks = consume(&clock, 20, Duration::from_secs(30));
    let elapsed = started.elapsed();
    assert_eq!(ticks.len(), 20, "{}", w.log_text());
    let ticks: Vec<Value> = ticks
        .iter()
        .map(|r| serde_json::from_str(r.value.as_deref().unwrap()).unwrap())
        .collect();
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(t["step"], i as u64, "{t}");
        assert_eq!(t["sim_time_ms"], MONDAY_8AM_MS + i as i64 * 300_000, "{t}");
        assert_eq!(t["step_ms"], 300_000);
    }
    // 5 s ÷ 50 = one step every 100 ms: 20 steps take about 2 s, far less than 5 s each.
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    let (first, last) = (
        ticks[0]["emitted_ms"].as_i64().unwrap(),
        ticks[19]["emitted_ms"].as_i64().unwrap(),
    );
    assert!(
        (1_500..=4_000).contains(&(last - first)),
        "19 intervals of 100 ms took {} ms",
        last - first
    );
}
