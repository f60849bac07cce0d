//! The bare rdkafka baselines of `benches/vs_faust.sh`, and its Kafka helpers: the same
//! jobs as the `cta_station_transform` and `count_keys` agents, written as plain
//! consume → parse → transform → produce loops, with nothing of the runtime.
//!
//! - station transform: JSON rows of the PostgreSQL `stations` table as Kafka Connect
//!   writes them; a row of the red, blue or green line becomes a station
//!   `{station_id, station_name, order, line}`, produced keyed by `station_id` (what the
//!   `stations` table's changelog gets) and keyed `"<line>:<station_id>"` (`line_stations`);
//!   other rows are left out;
//! - counting: a count per record key in a `HashMap`, each new count produced keyed by the
//!   record key (what the `key_counts` table's changelog gets).
//!
//! Both produce with the runtime's producer settings (idempotent, `linger.ms` 5, lz4) and
//! commit every second after a flush (at-least-once). Keys and values are JSON, as the
//! tables' changelogs, so one check reads all of them.
//!
//! `cargo bench --bench bare_jobs` alone fills an input for each job, runs its baseline
//! and prints its throughput. `benches/vs_faust.sh` runs one step at a time with
//! `BENCH_STEP`:
//!
//! | `BENCH_STEP` | does |
//! |---|---|
//! | `all` (default) | the above |
//! | `fill` | creates `BENCH_INPUT` (1 partition) and writes `BENCH_MESSAGES` records of the job |
//! | `bare` | creates `BENCH_OUTPUT` (and, for stations, `BENCH_OUTPUT_LINES`) and runs the baseline from `BENCH_INPUT` into them until it has consumed `BENCH_MESSAGES` records, as consumer group `BENCH_GROUP` (default: a new `bench-bare-job-…`) |
//! | `wait` | waits until `BENCH_OUTPUT` holds the records the job must write (and, with `BENCH_GROUP`, until that group has committed all of `BENCH_INPUT`); fails if process `BENCH_PID` ends (before) or after `BENCH_TIMEOUT` seconds (default 600); prints `{"cpu_samples": [[wall-clock ms, CPU s], ...]}`, the CPU time (user + system) of process `BENCH_PID` sampled every 10 ms |
//! | `measure` | reads `BENCH_OUTPUT` (read_committed), checks it holds exactly what the job must write, and prints `{"topic", "records", "expected", "first_ms", "last_ms", "span_s", "check"}` as one JSON line |
//!
//! Other environment: `BENCH_JOB` (`stations` or `counting`), `BENCH_MESSAGES` (default
//! 200000), `BENCH_KEYS` (counting: distinct keys, default 10000), `BENCH_TABLE` (wait,
//! measure: `stations`, `line_stations` or `key_counts`; default the job's first),
//! `BENCH_STATIONS_CSV` (default `data/cta_stations.csv`), `CTA_TEST_BROKER` (default
//! 127.0.0.1:9092). Station rows cycle through the CSV's 230 rows in file order; counting
//! keys are `key-00000000` … (record i has key i mod `BENCH_KEYS`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

mod common;
use common::{broker, create, env_num, fill, unique};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const DEFAULT_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/cta_stations.csv");

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn required(name: &str) -> String {
    let v = env(name);
    if v.is_empty() {
        fail(&format!("set {name}"));
    }
    v
}

fn fail(msg: &str) -> ! {
    eprintln!("bare_jobs: error: {msg}");
    std::process::exit(1);
}

// ---------------------------------------------------------------------------- the data

/// A line of data/cta_stations.csv (booleans as TRUE/FALSE).
#[derive(Deserialize)]
struct CsvRow {
    stop_id: i64,
    direction_id: String,
    stop_name: String,
    station_name: String,
    station_descriptive_name: String,
    station_id: i32,
    order: Option<i32>,
    red: String,
    blue: String,
    green: String,
}

/// A row of the `stations` table as Kafka Connect writes it (JSON without schema, columns
/// in table order).
#[derive(Serialize)]
struct Row {
    stop_id: i64,
    direction_id: String,
    stop_name: String,
    station_name: String,
    station_descriptive_name: String,
    station_id: i32,
    order: Option<i32>,
    red: bool,
    blue: bool,
    green: bool,
}

/// What the transform reads of a row (the agent's `Station`).
#[derive(Deserialize)]
struct Station {
    station_name: String,
    station_id: i32,
    order: Option<i32>,
    red: bool,
    blue: bool,
    green: bool,
}

/// What it writes (the agent's `TransformedStation`).
#[derive(Serialize)]
struct TransformedStation<'a> {
    station_id: i32,
    station_name: &'a str,
    order: Option<i32>,
    line: &'static str,
}

impl Station {
    fn transform(&self) -> Option<TransformedStation<'_>> {
        let line = if self.red {
            "red"
        } else if self.blue {
            "blue"
        } else if self.green {
            "green"
        } else {
            return None;
        };
        Some(TransformedStation {
            station_id: self.station_id,
            station_name: &self.station_name,
            order: self.order,
            line,
        })
    }
}

/// The input records of the station job, (key, value), in file order.
fn station_rows() -> Vec<(String, String)> {
    let path = std::env::var("BENCH_STATIONS_CSV").unwrap_or_else(|_| DEFAULT_CSV.into());
    let mut reader =
        csv::Reader::from_path(&path).unwrap_or_else(|e| fail(&format!("cannot read {path}: {e}")));
    let truth = |s: &str| s.eq_ignore_ascii_case("true");
    let rows: Vec<_> = reader
        .deserialize::<CsvRow>()
        .map(|r| {
            let r = r.unwrap_or_else(|e| fail(&format!("{path}: {e}")));
            let row = Row {
                stop_id: r.stop_id,
                direction_id: r.direction_id,
                stop_name: r.stop_name,
                station_name: r.station_name,
                station_descriptive_name: r.station_descriptive_name,
                station_id: r.station_id,
                order: r.order,
                red: truth(&r.red),
                blue: truth(&r.blue),
                green: truth(&r.green),
            };
            (
                format!(r#"{{"stop_id":{}}}"#, row.stop_id),
                serde_json::to_string(&row).unwrap(),
            )
        })
        .collect();
    if rows.is_empty() {
        fail(&format!("{path} has no rows"));
    }
    rows
}

fn counting_key(i: u64, keys: u64) -> String {
    format!("key-{:08}", i % keys.max(1))
}

/// The table a job's output topic holds: what the job must write to it, in order of
/// writing (key and value, both JSON).
fn expected_writes(table: &str, n: u64, keys: u64) -> Vec<(Value, Value)> {
    match table {
        "stations" | "line_stations" => {
            let rows = station_rows();
            let mut out = Vec::new();
            for i in 0..n {
                let (_, value) = &rows[(i % rows.len() as u64) as usize];
                let s: Station = serde_json::from_str(value).unwrap();
                if let Some(t) = s.transform() {
                    let key = if table == "stations" {
                        Value::from(t.station_id)
                    } else {
                        Value::from(format!("{}:{}", t.line, t.station_id))
                    };
                    out.push((key, serde_json::to_value(&t).unwrap()));
                }
            }
            out
        }
        "key_counts" => {
            let mut counts: HashMap<String, u64> = HashMap::new();
            (0..n)
                .map(|i| {
                    let k = counting_key(i, keys);
                    let c = counts.entry(k.clone()).or_default();
                    *c += 1;
                    (Value::from(k), Value::from(*c))
                })
                .collect()
        }
        other => fail(&format!(
            "unknown table '{other}' (stations, line_stations or key_counts)"
        )),
    }
}

// ---------------------------------------------------------------------------- steps

async fn step_fill(job: &str, input: &str, n: u64, keys: u64) {
    create(input, false).await;
    let t = Instant::now();
    match job {
        "stations" => {
            let rows = station_rows();
            fill(input, n, |i| rows[(i % rows.len() as u64) as usize].clone()).await;
        }
        "counting" => fill(input, n, |i| (counting_key(i, keys), "x".into())).await,
        other => fail(&format!("unknown job '{other}' (stations or counting)")),
    }
    eprintln!(
        "bare_jobs: filled {input} with {n} {job} records in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// Sends a record, waiting while the producer's queue is full.
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &[u8],
    value: &[u8],
) {
    let mut rec = BaseRecord::<[u8], [u8]>::to(topic).key(key).payload(value);
    loop {
        match producer.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => fail(&format!("producing to {topic}: {e}")),
        }
    }
}

/// The baseline loop: consume `n` records of `input`, hand each to `job` (which produces
/// through the producer it is given), flush and commit every second.
fn bare_loop(
    input: &str,
    n: u64,
    mut job: impl FnMut(&ThreadedProducer<DefaultProducerContext>, Option<&[u8]>, &[u8]),
) {
    let group = match env("BENCH_GROUP") {
        g if g.is_empty() => unique("bench-bare-job"),
        g => g,
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    consumer.subscribe(&[input]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(env_num("BENCH_TIMEOUT", 600));
    let mut seen = 0;
    let mut last_commit = Instant::now();
    while seen < n {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            if Instant::now() > deadline {
                fail(&format!(
                    "the bare loop saw {seen} of {n} records of {input}"
                ));
            }
            continue;
        };
        let m = m.unwrap_or_else(|e| fail(&format!("consuming {input}: {e}")));
        job(&producer, m.key(), m.payload().unwrap_or_default());
        seen += 1;
        if last_commit.elapsed() > Duration::from_secs(1) {
            producer.flush(Duration::from_secs(30)).unwrap();
            consumer.commit_message(&m, CommitMode::Async).unwrap();
            last_commit = Instant::now();
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    consumer.commit_consumer_state(CommitMode::Sync).ok();
}

async fn create_outputs(job: &str, output: &str, by_line: &str) {
    create(output, false).await;
    if job == "stations" {
        create(by_line, false).await;
    }
}

fn step_bare(job: &str, input: &str, output: &str, by_line: &str, n: u64) {
    match job {
        "stations" => {
            let mut bad = 0u64;
            bare_loop(input, n, |p, _key, value| {
                let Ok(row) = serde_json::from_slice::<Station>(value) else {
                    bad += 1;
                    return;
                };
                if let Some(t) = row.transform() {
                    let value = serde_json::to_vec(&t).unwrap();
                    send(p, output, t.station_id.to_string().as_bytes(), &value);
                    let key = serde_json::to_vec(&format!("{}:{}", t.line, t.station_id)).unwrap();
                    send(p, by_line, &key, &value);
                }
            });
            if bad > 0 {
                fail(&format!("{bad} rows of {input} did not parse"));
            }
        }
        "counting" => {
            let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
            bare_loop(input, n, |p, key, _value| {
                let Some(key) = key else { return };
                let c = counts.entry(key.to_vec()).or_default();
                *c += 1;
                let json_key = serde_json::to_vec(&String::from_utf8_lossy(key)).unwrap();
                send(p, output, &json_key, c.to_string().as_bytes());
            });
        }
        other => fail(&format!("unknown job '{other}' (stations or counting)")),
    }
}

/// `BENCH_TABLE`, or the job's first table.
fn table_of(job: &str) -> String {
    let t = env("BENCH_TABLE");
    if !t.is_empty() {
        return t;
    }
    first_table(job).into()
}

fn first_table(job: &str) -> &'static str {
    match job {
        "stations" => "stations",
        "counting" => "key_counts",
        other => fail(&format!("unknown job '{other}' (stations or counting)")),
    }
}

/// CPU seconds (user + system, all threads) that process `pid` has used so far; Linux's
/// clock tick is 100 Hz.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // after the command: state is field 3 of the line, utime 14 and stime 15
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

fn step_wait(job: &str, input: &str, n: u64, keys: u64) {
    let output = required("BENCH_OUTPUT");
    let expected = expected_writes(&table_of(job), n, keys).len() as i64;
    let group = env("BENCH_GROUP");
    let pid = env("BENCH_PID");
    let timeout = env_num("BENCH_TIMEOUT", 600);
    let client = || -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", broker())
            .set(
                "group.id",
                if group.is_empty() {
                    "bench-wait"
                } else {
                    &group
                },
            )
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let mut c = client();
    let t0 = Instant::now();
    let mut last_report = Instant::now();
    let mut errors = 0;
    // The process's CPU time, sampled every 10 ms: (wall-clock ms, CPU s).
    let mut samples: Vec<(i64, f64)> = Vec::new();
    let sample = |samples: &mut Vec<(i64, f64)>| {
        if let Some(cpu) = cpu_secs(&pid) {
            samples.push((now_ms(), cpu));
        }
    };
    loop {
        // The topic may not exist yet (the app creates it at start); a broker that lost
        // its partitions for a while (fenced under load) may leave a client failing on
        // stale metadata: a fresh client after a few errors in a row.
        let mut error = None;
        let high = match c.fetch_watermarks(&output, 0, Duration::from_secs(5)) {
            Ok((_, h)) => h,
            Err(e) => {
                error = Some(format!("{output}: {e}"));
                0
            }
        };
        let committed = if group.is_empty() {
            None
        } else {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(input, 0);
            match c.committed_offsets(tpl, Duration::from_secs(5)) {
                Ok(t) => Some(
                    t.find_partition(input, 0)
                        .and_then(|e| e.offset().to_raw())
                        .unwrap_or(-1),
                ),
                Err(e) => {
                    error = Some(format!("committed offsets of {group}: {e}"));
                    Some(-1)
                }
            }
        };
        if high >= expected && committed.is_none_or(|o| o >= n as i64) {
            sample(&mut samples);
            println!("{}", serde_json::json!({ "cpu_samples": samples }));
            return;
        }
        let mut state = match committed {
            Some(o) => format!(
                "{output} at {high} of {expected} records, group {group} committed {o} of {n}"
            ),
            None => format!("{output} at {high} of {expected} records"),
        };
        if let Some(e) = &error {
            state = format!("{state} (last error: {e})");
            errors += 1;
            if errors >= 5 {
                c = client();
                errors = 0;
            }
        } else {
            errors = 0;
        }
        if !pid.is_empty() && !alive(&pid) {
            fail(&format!(
                "process {pid} ended before the job was done: {state}"
            ));
        }
        if t0.elapsed() > Duration::from_secs(timeout) {
            fail(&format!("timed out after {timeout} s: {state}"));
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!("bare_jobs: waiting: {state}");
            last_report = Instant::now();
        }
        for _ in 0..20 {
            sample(&mut samples);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The last value of each key of a topic.
type LastValues = HashMap<Vec<u8>, Vec<u8>>;

/// Reads `topic` to its end (read_committed): records, first and last timestamps, and the
/// last value of each key.
fn read_all(topic: &str) -> (u64, Option<i64>, i64, LastValues) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("bench-measure"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let (mut n, mut first, mut last) = (0u64, None, 0i64);
    let mut latest = HashMap::new();
    // A transaction still open on the topic holds read_committed readers back until it
    // completes or times out.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match c.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                let ts = m.timestamp().to_millis().unwrap_or(0);
                first.get_or_insert(ts);
                last = ts;
                n += 1;
                latest.insert(
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                );
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => fail(&format!("reading {topic}: {e}")),
            None if Instant::now() > deadline => {
                fail(&format!("no end of {topic} after {n} records"))
            }
            None => {}
        }
    }
    (n, first, last, latest)
}

fn step_measure(table: &str, output: &str, n: u64, keys: u64) -> Value {
    let writes = expected_writes(table, n, keys);
    let expected: HashMap<String, Value> = writes
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let (records, first, last, latest) = read_all(output);
    let mut problems = Vec::new();
    if records != writes.len() as u64 {
        problems.push(format!("{records} records, expected {}", writes.len()));
    }
    let mut wrong = 0;
    for (k, v) in &latest {
        let key = serde_json::from_slice::<Value>(k).map(|k| k.to_string());
        let value = serde_json::from_slice::<Value>(v).ok();
        match key.ok().and_then(|k| expected.get(&k)) {
            Some(e) if Some(e) == value.as_ref() => {}
            _ => wrong += 1,
        }
    }
    if latest.len() != expected.len() {
        problems.push(format!(
            "{} keys, expected {}",
            latest.len(),
            expected.len()
        ));
    }
    if wrong > 0 {
        problems.push(format!("{wrong} keys with a wrong final value"));
    }
    let first = first.unwrap_or(last);
    serde_json::json!({
        "topic": output,
        "table": table,
        "records": records,
        "expected": writes.len(),
        "keys": latest.len(),
        "first_ms": first,
        "last_ms": last,
        "span_s": (last - first) as f64 / 1000.0,
        "check": if problems.is_empty() { "ok".to_string() } else { problems.join("; ") },
    })
}

fn main() {
    let step = match env("BENCH_STEP") {
        s if s.is_empty() => "all".to_string(),
        s => s,
    };
    let n = env_num("BENCH_MESSAGES", 200_000);
    let keys = env_num("BENCH_KEYS", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match step.as_str() {
        "fill" => {
            let job = required("BENCH_JOB");
            rt.block_on(step_fill(&job, &required("BENCH_INPUT"), n, keys));
        }
        "bare" => {
            let job = required("BENCH_JOB");
            let (output, by_line) = (required("BENCH_OUTPUT"), env("BENCH_OUTPUT_LINES"));
            if job == "stations" && by_line.is_empty() {
                fail("set BENCH_OUTPUT_LINES");
            }
            rt.block_on(create_outputs(&job, &output, &by_line));
            step_bare(&job, &required("BENCH_INPUT"), &output, &by_line, n);
        }
        "wait" => step_wait(&required("BENCH_JOB"), &required("BENCH_INPUT"), n, keys),
        "measure" => {
            let table = table_of(&required("BENCH_JOB"));
            println!(
                "{}",
                step_measure(&table, &required("BENCH_OUTPUT"), n, keys)
            );
        }
        "all" => {
            for job in ["stations", "counting"] {
                let input = unique(&format!("bench-{job}-in"));
                let output = unique(&format!("bench-{job}-out"));
                let by_line = format!("{output}-lines");
                rt.block_on(async {
                    step_fill(job, &input, n, keys).await;
                    create_outputs(job, &output, &by_line).await;
                });
                step_bare(job, &input, &output, &by_line, n);
                let m = step_measure(first_table(job), &output, n, keys);
                let span = m["span_s"].as_f64().unwrap_or(0.0).max(0.001);
                let records = m["records"].as_u64().unwrap_or(0);
                println!(
                    "{job}: bare rdkafka loop, {n} input records, 1 partition: {records} output records in {span:.2} s, {:.0} records/s, {:.0} input records/s (check: {})",
                    records as f64 / span,
                    n as f64 / span,
                    m["check"].as_str().unwrap_or("?")
                );
            }
        }
        other => fail(&format!(
            "unknown BENCH_STEP '{other}' (all, fill, bare, wait or measure)"
        )),
    }
}
