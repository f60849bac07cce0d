//! A backlog of undecodable records under `on_error = "dead-letter"`, against the real
//! broker: every record is dead-lettered and counted in `/metrics`, the dead-letter topic
//! holds them all, and the worker's log stays short — the first lines in full, then a
//! summary per interval, the last one written after the flood stopped.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

const RECORDS: u64 = 100_000;
/// Full lines per cause before summaries (`logging::throttle::BURST`).
const BURST: u64 = 5;
/// Well above a worker's start-up and shutdown lines plus a few summaries; far below the
/// one line per record of an unthrottled log.
const MAX_LOG_LINES: usize = 300;

/// Writes `n` records that are not JSON to `topic`, as fast as the producer goes.
fn produce_garbage(topic: &str, n: u64) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap();
    for i in 0..n {
        let value = format!("not JSON {i}");
        loop {
            match p.send(BaseRecord::<(), str>::to(topic).payload(&value)) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    p.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("cannot produce to {topic}: {e}"),
            }
        }
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Records in `topic` (the sum of its partitions' watermark spans; no transactions).
fn records_in(topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut n = 0;
    for t in md.topics() {
        for p in t.partitions() {
            let (low, high) = c
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            n += high - low;
        }
    }
    n
}

/// The value of `name{agent="<agent>"}` in the worker's `/metrics`.
async fn metric(w: &Worker, name: &str, agent: &str) -> Option<u64> {
    let text = reqwest::get(w.url("/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("{name}{{agent=\"{agent}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The number after `field=` in a log line.
fn field(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!(" {field}="))? + field.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_of_bad_records_is_dead_lettered_with_a_short_log() {
    require_broker();
    let app = unique("flood");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let dlq = format!("{app}-forward-dlq");
    create_topic(&input, 1).await;
    let produced = Instant::now();
    produce_garbage(&input, RECORDS);
    assert_eq!(records_in(&input), RECORDS as i64);
    eprintln!("{RECORDS} records produced in {:?}", produced.elapsed());

    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.forward]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n\
             on_error = \"dead-letter\"\n"
        ),
    );
    let started = Instant::now();
    w.wait_healthy(Duration::from_secs(60)).await;

    // Every record is counted.
    let deadline = started + Duration::from_secs(90);
    let mut dead = None;
    while Instant::now() < deadline {
        dead = metric(&w, "cta_stream_agent_dead_lettered_total", "forward").await;
        if dead == Some(RECORDS) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let counted = started.elapsed();
    assert_eq!(dead, Some(RECORDS), "{}", w.log_text());
    eprintln!("{RECORDS} dead-lettered {counted:?} after the worker started");
    assert_eq!(
        metric(&w, "cta_stream_agent_skipped_total", "forward").await,
        Some(0)
    );
    assert_eq!(
        metric(&w, "cta_stream_agent_events_out_total", "forward").await,
        Some(0)
    );

    // And written to the dead-letter topic.
    let deadline = Instant::now() + Duration::from_secs(30);
    while records_in(&dlq) < RECORDS as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(records_in(&dlq), RECORDS as i64);
    let first = consume(&dlq, 1, Duration::from_secs(10));
    assert_eq!(first[0].headers["dlq.error.kind"], "decode");
    assert_eq!(first[0].value.as_deref(), Some("not JSON 0"));

    // The flood has stopped: its last count is summarized within an interval and a tick.
    let everything = format!("suppressed_total={}", RECORDS - BURST);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.log_text().contains(&everything) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let summarized = started.elapsed();
    assert!(
        w.log_text().contains(&everything),
        "no summary of all {} left-out lines:\n{}",
        RECORDS - BURST,
        w.log_text()
    );

    w.signal("TERM");
    assert!(
        w.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        w.log_text()
    );
    let log = w.log_text();
    let lines: Vec<&str> = log.lines().collect();
    let full: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("dead-lettered event: "))
        .collect();
    let summaries: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("dead-lettered events: "))
        .collect();
    eprintln!(
        "log: {} lines ({} full, {} summaries); last summary {summarized:?} after start",
        lines.len(),
        full.len(),
        summaries.len()
    );
    for l in full.iter().chain(&summaries) {
        eprintln!("  {l}");
    }
    assert!(
        lines.len() < MAX_LOG_LINES,
        "{} log lines for {RECORDS} dead-lettered records:\n{}",
        lines.len(),
        lines[..60].join("\n")
    );
    assert_eq!(full.len() as u64, BURST, "{log}");
    assert!(
        full.last().unwrap().contains("summarized every 10 s"),
        "the last full line says what comes next: {}",
        full.last().unwrap()
    );
    assert!(!summaries.is_empty());
    for s in &summaries {
        assert!(
            s.contains("cta_stream_agent_dead_lettered_total"),
            "a summary points at the metric: {s}"
        );
        assert!(s.contains(&format!("topic={input}")), "{s}");
        assert!(
            s.contains("kind=\"decode\"") || s.contains("kind=decode"),
            "{s}"
        );
    }
    let left_out: u64 = summaries
        .iter()
        .map(|s| field(s, "suppressed").expect("suppressed=N"))
        .sum();
    assert_eq!(
        left_out + BURST,
        RECORDS,
        "every line is either written or counted in a summary"
    );
    let last_total = summaries
        .iter()
        .filter_map(|s| field(s, "suppressed_total"))
        .max();
    assert_eq!(last_total, Some(RECORDS - BURST));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_summary_is_written_at_shutdown() {
    require_broker();
    let app = unique("flood-stop");
    let input = format!("{app}-in");
    create_topic(&input, 1).await;
    produce_garbage(&input, 1000);
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.forward]\nsource.topics = [\"{input}\"]\nsinks = [\"{app}-out\"]\n\
             on_error = \"skip\"\n"
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&w, "cta_stream_agent_skipped_total", "forward").await != Some(1000)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&w, "cta_stream_agent_skipped_total", "forward").await,
        Some(1000)
    );
    // Stopped before the interval is over: the count is written on the way out.
    w.signal("TERM");
    assert!(w.wait_exit(Duration::from_secs(30)).success());
    let log = w.log_text();
    let full = log.matches("skipping event: ").count();
    let summary = log
        .lines()
        .find(|l| l.contains("skipping events: "))
        .unwrap_or_else(|| panic!("no summary at shutdown:\n{log}"));
    assert_eq!(full as u64, BURST, "{log}");
    assert_eq!(
        field(summary, "suppressed"),
        Some(1000 - BURST),
        "{summary}"
    );
    assert!(
        summary.contains("cta_stream_agent_skipped_total"),
        "{summary}"
    );
    assert!(
        summary.contains("offset=999"),
        "the last one is shown: {summary}"
    );
}
