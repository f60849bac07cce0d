//! The worker against the real broker: agents transform topics, timers tick, failing
//! agents are restarted without losing events, bad events follow the error policy, and
//! kills and signals never leave a gap in the committed offsets.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

/// Starts a worker running the example agent `jobs` from `<app>-in` to `<app>-out`,
/// with `extra` settings lines for the agent.
fn start_jobs(app: &str, extra: &str) -> (Worker, String, String) {
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let w = Worker::start(
        app,
        &format!("[agents.jobs]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n{extra}"),
    );
    (w, input, output)
}

fn ids(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| r.value.as_deref())
        .filter_map(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .filter_map(|v| v["id"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_agent_transforms_a_topic_into_another() {
    require_broker();
    let app = unique("shout");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut w = Worker::start(
        &app,
        &format!("[agents.shout]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n"),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for i in 0..50 {
        produce(
            &p,
            &input,
            Some(&format!("k{i}")),
            &format!(r#"{{"text":"hello {i}"}}"#),
        )
        .await;
    }
    let out = consume(&output, 50, Duration::from_secs(30));
    assert_eq!(out.len(), 50, "{}", w.log_text());
    for (i, r) in out.iter().enumerate() {
        assert_eq!(
            r.key.as_deref(),
            Some(format!("k{i}").as_str()),
            "keys are kept"
        );
        let v: serde_json::Value = serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(v["text"], format!("HELLO {i}"));
    }
    let (code, h) = w.health().await.unwrap();
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["agents"]["shout"]["events_in"], 50);
    assert_eq!(h["agents"]["shout"]["events_out"], 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_agent_emits_at_its_interval() {
    require_broker();
    let app = unique("tick");
    let output = format!("{app}-ticks");
    let mut w = Worker::start(
        &app,
        &format!("[agents.ticker]\nsource.timer = \"250ms\"\nsinks = [\"{output}\"]\n"),
    );
    let started = Instant::now();
    w.wait_healthy(Duration::from_secs(60)).await;
    let healthy = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.signal("TERM");
    assert!(w.wait_exit(Duration::from_secs(20)).success());
    let (longest, shortest) = (started.elapsed(), healthy.elapsed());
    let ticks = consume(&output, 1000, Duration::from_secs(3));
    let (most, least) = (
        longest.as_millis() / 250 + 1,
        shortest.as_millis() / 250 - 2,
    );
    assert!(
        (least..=most).contains(&(ticks.len() as u128)),
        "{} ticks in {shortest:?}..{longest:?} at 250 ms",
        ticks.len()
    );
    let parsed: Vec<serde_json::Value> = ticks
        .iter()
        .map(|r| serde_json::from_str(r.value.as_deref().unwrap()).unwrap())
        .collect();
    for (i, t) in parsed.iter().enumerate() {
        assert_eq!(t["n"], i as u64, "ticks are numbered in order");
    }
    let gaps: Vec<i64> = parsed
        .windows(2)
        .map(|w| w[1]["at_ms"].as_i64().unwrap() - w[0]["at_ms"].as_i64().unwrap())
        .collect();
    let mean = gaps.iter().sum::<i64>() as f64 / gaps.len() as f64;
    assert!(
        (200.0..=300.0).contains(&mean),
        "mean interval {mean} ms: {gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_agent_is_restarted_and_every_event_is_processed() {
    require_broker();
    let app = unique("flaky");
    let (mut w, input, output) = start_jobs(&app, "on_error = \"fail\"\n");
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for id in 0..40u64 {
        let v = match id {
            5 | 17 | 30 => format!(r#"{{"id":{id},"fail":true}}"#),
            23 => format!(r#"{{"id":{id},"panic":true}}"#),
            _ => format!(r#"{{"id":{id}}}"#),
        };
        produce(&p, &input, None, &v).await;
    }
    // Four failures, each followed by a restart with backoff (0.2 + 0.4 + 0.8 + 1.6 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline && seen.len() < 40 {
        seen = ids(&consume(&output, 1000, Duration::from_secs(2)))
            .into_iter()
            .collect();
    }
    let missing: Vec<u64> = (0..40).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "never processed: {missing:?}\n{}",
        w.log_text()
    );
    let (_, h) = w.health().await.unwrap();
    let a = &h["agents"]["jobs"];
    assert_eq!(a["failures"], 4, "{h}");
    assert_eq!(a["restarts"], 4, "{h}");
    assert!(a["rewinds"].as_u64().unwrap() >= 4, "{h}");
    let log = w.log_text();
    assert!(log.contains("job 5 failed on purpose"), "{log}");
    assert!(
        log.contains("panicked: job 23 panicked on purpose"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dead_letter_policy_writes_bad_events_with_their_origin() {
    require_broker();
    let app = unique("dlq");
    let (mut w, input, output) = start_jobs(&app, "on_error = \"dead-letter\"\n");
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    let values = [
        r#"{"id":1}"#.to_string(),
        "this is not JSON".to_string(),
        r#"{"id":2}"#.to_string(),
        r#"{"no_id":true}"#.to_string(),
        r#"{"id":3,"fail":true}"#.to_string(),
        r#"{"id":4}"#.to_string(),
    ];
    for v in &values {
        produce(&p, &input, Some("key-x"), v).await;
    }
    let dlq_topic = format!("{app}-jobs-dlq");
    let dlq = consume(&dlq_topic, 3, Duration::from_secs(30));
    assert_eq!(dlq.len(), 3, "{}", w.log_text());
    let expected = [(1, "decode"), (3, "decode"), (4, "process")];
    for (r, (offset, kind)) in dlq.iter().zip(expected) {
        assert_eq!(
            r.value.as_deref(),
            Some(values[offset].as_str()),
            "the record is kept as it was"
        );
        assert_eq!(r.key.as_deref(), Some("key-x"));
        assert_eq!(r.headers["dlq.source.topic"], input);
        assert_eq!(r.headers["dlq.source.partition"], "0");
        assert_eq!(r.headers["dlq.source.offset"], offset.to_string());
        assert_eq!(r.headers["dlq.error.kind"], kind);
        assert_eq!(r.headers["dlq.agent"], "jobs");
        assert!(!r.headers["dlq.error"].is_empty());
    }
    assert!(dlq[2].headers["dlq.error"].contains("job 3 failed on purpose"));
    let out = ids(&consume(&output, 3, Duration::from_secs(30)));
    assert_eq!(out, vec![1, 2, 4]);
    // Everything was handled: the committed offset reaches the end of the input.
    let group = format!("{app}-jobs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(&group, &input, 0) != Some(6) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(committed(&group, &input, 0), Some(6));
    let (_, h) = w.health().await.unwrap();
    assert_eq!(h["agents"]["jobs"]["dead_lettered"], 3, "{h}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_skip_policy_logs_counts_and_goes_on() {
    require_broker();
    let app = unique("skip");
    let (mut w, input, output) = start_jobs(&app, "on_error = \"skip\"\n");
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for v in [r#"{"id":1}"#, "garbage", r#"{"id":2}"#, "[]", r#"{"id":3}"#] {
        produce(&p, &input, None, v).await;
    }
    let out = ids(&consume(&output, 3, Duration::from_secs(30)));
    assert_eq!(out, vec![1, 2, 3]);
    let (code, h) = w.health().await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(h["agents"]["jobs"]["skipped"], 2, "{h}");
    assert!(w.log_text().contains("skipping event"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_and_restart_resume_from_the_committed_offset_without_a_gap() {
    require_broker();
    let app = unique("kill");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topic(&input, 3).await;
    let p = producer();
    let total = 3000u64;
    for id in 0..total {
        // 2 ms of work per job: about six seconds for all, so the kill lands midway.
        produce(
            &p,
            &input,
            Some(&format!("k{}", id % 17)),
            &format!(r#"{{"id":{id},"sleep_ms":2}}"#),
        )
        .await;
    }
    let agents = format!(
        "[topics.\"{input}\"]\npartitions = 3\n[agents.jobs]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n"
    );
    let mut w = Worker::start(&app, &agents);
    // Kill it while it is working through the backlog.
    let deadline = Instant::now() + Duration::from_secs(60);
    while consume(&output, 300, Duration::from_secs(1)).len() < 300 && Instant::now() < deadline {}
    w.kill9();
    let group = format!("{app}-jobs");
    let committed_before: i64 = (0..3).filter_map(|pt| committed(&group, &input, pt)).sum();
    assert!(committed_before < total as i64, "killed before the end");

    let mut w = w.restart();
    w.wait_healthy(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        out = ids(&consume(&output, usize::MAX, Duration::from_secs(2)));
        if out.iter().collect::<BTreeSet<_>>().len() as u64 == total {
            break;
        }
    }
    let seen: BTreeSet<u64> = out.iter().copied().collect();
    let missing: Vec<u64> = (0..total).filter(|i| !seen.contains(i)).take(20).collect();
    assert!(
        missing.is_empty(),
        "gap after SIGKILL: missing {missing:?}\n{}",
        w.log_text()
    );
    // At-least-once: redelivery is bounded by what was uncommitted at the kill.
    let duplicates = out.len() as u64 - total;
    assert!(
        duplicates <= total - committed_before as u64,
        "{duplicates} duplicates"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_with_offsets_committed() {
    require_broker();
    let app = unique("term");
    let (mut w, input, output) = start_jobs(&app, "");
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for id in 0..200u64 {
        produce(&p, &input, None, &format!(r#"{{"id":{id}}}"#)).await;
    }
    assert_eq!(consume(&output, 200, Duration::from_secs(30)).len(), 200);
    w.signal("TERM");
    let status = w.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status}\n{}", w.log_text());
    assert_eq!(committed(&format!("{app}-jobs"), &input, 0), Some(200));
    let log = w.log_text();
    assert!(log.contains("worker stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_waits_for_the_event_in_flight_and_a_second_signal_exits_at_once() {
    require_broker();
    let app = unique("busy");
    let (mut w, input, output) = start_jobs(&app, "");
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    produce(&p, &input, None, r#"{"id":1,"sleep_ms":1500}"#).await;
    produce(&p, &input, None, r#"{"id":2,"sleep_ms":60000}"#).await;
    // Let job 1 start, then ask to stop: job 1 is finished and committed.
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.signal("TERM");
    let status = w.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{}", w.log_text());
    assert_eq!(ids(&consume(&output, 1, Duration::from_secs(10))), vec![1]);
    assert_eq!(committed(&format!("{app}-jobs"), &input, 0), Some(1));

    // Restarted, it picks up job 2 (60 s of work): a second signal must not wait.
    let mut w = w.restart();
    w.wait_healthy(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        w.child.try_wait().unwrap().is_none(),
        "still finishing job 2"
    );
    let t = Instant::now();
    w.signal("TERM");
    let status = w.wait_exit(Duration::from_secs(5));
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
    // Job 2 was never finished, so it was never committed.
    assert_eq!(committed(&format!("{app}-jobs"), &input, 0), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pattern_source_reads_every_matching_topic() {
    require_broker();
    let app = unique("pat");
    let prefix = format!("{app}.arrivals.");
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    create_topic(&a, 1).await;
    create_topic(&b, 1).await;
    let output = format!("{app}-out");
    let pattern = format!("^{}.*", prefix.replace('.', "\\\\."));
    let mut w = Worker::start(
        &app,
        &format!("[agents.jobs]\nsource.pattern = \"{pattern}\"\nsinks = [\"{output}\"]\n"),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    produce(&p, &a, None, r#"{"id":1}"#).await;
    produce(&p, &b, None, r#"{"id":2}"#).await;
    let mut got = ids(&consume(&output, 2, Duration::from_secs(30)));
    got.sort_unstable();
    assert_eq!(got, vec![1, 2], "{}", w.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_instances_keep_the_order_of_each_partition() {
    require_broker();
    let app = unique("conc");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topic(&input, 4).await;
    let mut w = Worker::start(
        &app,
        &format!(
            "[topics.\"{input}\"]\npartitions = 4\n[agents.jobs]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\nconcurrency = 3\n"
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for id in 0..400u64 {
        produce(
            &p,
            &input,
            Some(&format!("k{}", id % 8)),
            &format!(r#"{{"id":{id}}}"#),
        )
        .await;
    }
    let out = consume(&output, 400, Duration::from_secs(30));
    assert_eq!(out.len(), 400);
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for r in &out {
        let id = ids(std::slice::from_ref(r))[0];
        let key = r.key.clone().unwrap();
        if let Some(prev) = last.insert(key.clone(), id) {
            assert!(id > prev, "key {key}: {id} after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_under_fail_turns_health_red_and_blocks_its_offset() {
    require_broker();
    let app = unique("poison");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut w = Worker::start(
        &app,
        &format!("[agents.jobs]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\non_error = \"fail\"\n"),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    produce(&p, &input, None, r#"{"id":1}"#).await;
    produce(&p, &input, None, r#"{"id":2,"fail_always":true}"#).await;
    produce(&p, &input, None, r#"{"id":3}"#).await;
    assert_eq!(ids(&consume(&output, 1, Duration::from_secs(20))), vec![1]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        let (code, h) = w.health().await.unwrap();
        if code == 503 && h["agents"]["jobs"]["state"] == "failing" {
            last = Some(h);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = last.expect("health never turned 503 while the agent kept failing");
    assert_eq!(h["status"], "failing");
    assert!(
        h["reasons"][0]
            .as_str()
            .unwrap()
            .contains("agent jobs is failing"),
        "{h}"
    );
    assert!(h["agents"]["jobs"]["last_failure"]["error"]
        .as_str()
        .unwrap()
        .contains("job 2 always fails"));
    // Never skipped: nothing after it is committed, and job 3 waits behind it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(committed(&format!("{app}-jobs"), &input, 0), Some(1));
    assert_eq!(ids(&consume(&output, 2, Duration::from_secs(2))), vec![1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_with_other_partitions_than_the_settings_is_reported() {
    require_broker();
    let app = unique("parts");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    create_topic(&input, 2).await;
    let mut w = Worker::start(
        &app,
        &format!("[agents.jobs]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n"),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let log = w.log_text();
    assert!(
        log.contains(&format!(
            "topic {input} has 2 partitions on the broker but the settings give 1"
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn under_exactly_once_a_stopped_worker_leaves_its_group_at_once() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    require_broker();
    let app = unique("eosleave");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut w = Worker::start_with(
        &app,
        "processing_guarantee = \"exactly_once\"\ncommit_interval = \"100ms\"\n",
        &format!("[agents.forward]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n"),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    produce(&producer(), &input, None, r#"{"n": 1}"#).await;
    assert_eq!(consume(&output, 1, Duration::from_secs(30)).len(), 1);
    w.signal("TERM");
    assert!(
        w.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        w.log_text()
    );
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let group = format!("{app}-forward");
    let groups = c
        .fetch_group_list(Some(&group), Duration::from_secs(10))
        .unwrap();
    let members: usize = groups.groups().iter().map(|g| g.members().len()).sum();
    assert_eq!(
        members, 0,
        "the group is left at once, not after the session timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_in_prometheus_text_format() {
    require_broker();
    let app = unique("metrics");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.forward]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\non_error = \"skip\"\n"
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for v in [r#"{"n": 1}"#, "not json", r#"{"n": 2}"#] {
        produce(&p, &input, None, v).await;
    }
    assert_eq!(consume(&output, 2, Duration::from_secs(30)).len(), 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::get(w.url("/metrics")).await.unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = r.text().await.unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(
                series.starts_with("cta_stream_") || series.starts_with("process_"),
                "{line}"
            );
        }
        let has = |s: &str| text.lines().any(|l| l == s);
        if has("cta_stream_agent_events_out_total{agent=\"forward\"} 2")
            && has("cta_stream_agent_skipped_total{agent=\"forward\"} 1")
        {
            assert!(
                has("cta_stream_agent_healthy{agent=\"forward\"} 1"),
                "{text}"
            );
            assert!(
                text.contains("# TYPE cta_stream_producer_in_flight gauge"),
                "{text}"
            );
            // All three events were acked (the skipped one too) and timed; lag comes
            // with the consumer's statistics (every 5 s), commits with the commit tick.
            let lag = format!(
                "cta_stream_consumer_lag{{agent=\"forward\",topic=\"{input}\",partition=\"0\"}} 0"
            );
            let done = has("cta_stream_agent_processing_seconds_count{agent=\"forward\"} 3")
                && has(
                    "cta_stream_agent_processing_seconds_bucket{agent=\"forward\",le=\"+Inf\"} 3",
                )
                && has(&lag)
                && !has("cta_stream_agent_commits_total{agent=\"forward\"} 0")
                && has("cta_stream_agent_partition_assignments_total{agent=\"forward\"} 1");
            if !done {
                assert!(Instant::now() < deadline, "{text}");
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            assert!(
                text.contains("# TYPE cta_stream_agent_processing_seconds histogram"),
                "{text}"
            );
            assert!(
                text.contains("cta_stream_rocksdb_memory_bytes{kind=\"block_cache\"}"),
                "{text}"
            );
            let rss = text
                .lines()
                .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            assert!(rss > 1e6, "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The same, worked out for people.
    let (code, perf) = get_json(&w.url("/performance")).await;
    assert_eq!(code, 200, "{perf}");
    let a = &perf["agents"]["forward"];
    assert_eq!(a["acked"], 3, "{perf}");
    assert_eq!(a["latency_ms_since_start"]["samples"], 3, "{perf}");
    assert!(
        a["latency_ms_since_start"]["p99"].as_f64().unwrap() > 0.0,
        "{perf}"
    );
    assert_eq!(a["lag"]["total"], 0, "{perf}");
    assert_eq!(a["lag"]["partitions"][0]["end_offset"], 3, "{perf}");
    assert!(a["throughput"].get("in_per_sec_60s").is_some(), "{perf}");
    assert!(
        perf["memory"]["resident_bytes"].as_u64().unwrap() > 1 << 20,
        "{perf}"
    );
    assert!(
        perf["memory"]["rocksdb"]["cache_capacity_bytes"]
            .as_u64()
            .unwrap()
            > 0,
        "{perf}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_stuck_on_waiting_events_makes_the_worker_unhealthy_and_can_make_it_exit() {
    require_broker();
    let app = unique("stall");
    let input = format!("{app}-in");
    create_topic(&input, 1).await;
    // Each event takes ten minutes: the agent sits on the first with the rest waiting.
    let agents = format!(
        "[agents.count_keys]\nsource.topics = [\"{input}\"]\ncodec = \"raw\"\n\
         params = {{ delay_ms = 600000 }}\n[tables.key_counts]\nagent = \"count_keys\"\n"
    );
    let health = "[health]\nstall_timeout = \"3s\"\n";
    let mut w = Worker::start(&app, &format!("{agents}{health}"));
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for i in 0..3 {
        produce(&p, &input, Some(&format!("k{i}")), "x").await;
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let reasons = loop {
        if let Some((503, body)) = w.health().await {
            break body["reasons"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "still healthy:\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let text = reasons.to_string();
    assert!(
        text.contains("agent count_keys has made no progress") && text.contains("waiting"),
        "{text}"
    );
    let (_, perf) = get_json(&w.url("/performance")).await;
    assert!(
        perf["agents"]["count_keys"]["lag"]["total"]
            .as_i64()
            .unwrap()
            >= 2,
        "{perf}"
    );
    w.kill9();

    // With the exit setting, the same state ends the process (code 3) for a supervisor.
    let mut w = Worker::start(
        &app,
        &format!("{agents}{health}exit_when_unhealthy = true\n"),
    );
    let status = w.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "{}", w.log_text());
    assert!(
        w.log_text()
            .contains("exiting so that a supervisor restarts the worker"),
        "{}",
        w.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn while_a_global_table_catches_up_health_answers_503_and_says_so() {
    require_broker();
    let app = unique("catchup");
    let topic = format!("{app}-big");
    create_topic(&topic, 1).await;
    // Enough records that reading them into the table takes a while.
    let p = producer();
    let value = "1";
    let mut pending = Vec::new();
    for i in 0..300_000u32 {
        let key = format!("k{}", i % 50_000);
        let rec = rdkafka::producer::FutureRecord::to(&topic)
            .key(&key)
            .payload(value);
        pending.push(p.send_result(rec).expect("queue"));
        if pending.len() >= 50_000 {
            for d in pending.drain(..) {
                d.await.unwrap().unwrap();
            }
        }
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
    let mut w = Worker::start(
        &app,
        &format!(
            "[tables.key_counts_all]\nglobal = true\nsource_topic = \"{topic}\"\nkey_codec = \"raw\"\n"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_starting = None;
    loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            panic!("worker exited ({status}):\n{}", w.log_text());
        }
        match w.health().await {
            Some((503, body))
                if body["reasons"]
                    .to_string()
                    .contains("starting: global table key_counts_all") =>
            {
                seen_starting.get_or_insert(body);
            }
            Some((200, _)) => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "{}", w.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen_starting.is_some(),
        "the web server answered only once the table had caught up:\n{}",
        w.log_text()
    );
}
