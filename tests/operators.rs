//! Stream operators on the real broker. `group_by`: the example agent `count_values`
//! re-keys its source by value through its repartition topic and counts each value in a
//! table with another partition count than the source. `take`: `count_batched` counts
//! keys in batches. The counts equal those computed from the input — at least
//! (at-least-once) or exactly (exactly-once) — across SIGKILLs mid-stream; the
//! repartition topic is on the broker and on `/agents`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

fn settings(input: &str) -> String {
    format!(
        "[topics.\"{input}\"]\npartitions = 3\n\
         [agents.count_values]\nsource.topics = [\"{input}\"]\ncodec = \"raw\"\n\
         [agents.count_values.params]\ndelay_ms = 1\n\
         [tables.value_counts]\nagent = \"count_values\"\npartitions = 2\n\
         [store]\nflush_interval = \"500ms\"\n"
    )
}

/// Produces `n` records with keys spread over the source's partitions and values from
/// `groups` groups; returns the expected count per value.
async fn feed(topic: &str, n: u64, groups: u64) -> BTreeMap<String, u64> {
    let p = producer();
    let mut expected = BTreeMap::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("group-{:02}", (i * 7919) % groups);
        *expected.entry(value.clone()).or_insert(0) += 1;
        let rec = rdkafka::producer::FutureRecord::to(topic)
            .key(&key)
            .payload(&value);
        pending.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
    expected
}

async fn counts(w: &Worker) -> BTreeMap<String, u64> {
    let (code, page) = get_json(&w.url("/tables/value_counts?limit=1000")).await;
    assert_eq!(code, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn run(
    guarantee: &str,
    kills: u64,
) -> (Worker, BTreeMap<String, u64>, BTreeMap<String, u64>) {
    require_broker();
    let app = unique("regroup");
    let input = format!("{app}-in");
    create_topic(&input, 3).await;
    let expected = feed(&input, 3000, 30).await;
    let mut w = Worker::start_with(
        &app,
        &format!("processing_guarantee = \"{guarantee}\"\ncommit_interval = \"100ms\"\n"),
        &settings(&input),
    );
    for round in 0..kills {
        w.wait_healthy(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(400 + round * 230)).await;
        w.kill9();
        w = w.restart();
    }
    w.wait_healthy(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = counts(&w).await;
    loop {
        let done = expected
            .iter()
            .all(|(k, n)| got.get(k).copied().unwrap_or(0) >= *n);
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = counts(&w).await;
    }
    // Whatever was still to come has come.
    tokio::time::sleep(Duration::from_secs(1)).await;
    got = counts(&w).await;
    let repartition = format!("{app}-count_values-value-repartition");
    assert_eq!(
        topic_partitions(&repartition).await,
        Some(2),
        "the repartition topic has the table's partitions"
    );
    let (_, agents) = get_json(&w.url("/agents")).await;
    let stages = &agents["agents"][0]["stages"];
    assert_eq!(stages[0]["topic"], repartition.as_str(), "{agents}");
    assert_eq!(stages[0]["kind"], "group_by", "{agents}");
    (w, expected, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_a_group_by_count_is_at_least_the_input_across_a_sigkill() {
    let (w, expected, got) = run("at_least_once", 1).await;
    for (value, n) in &expected {
        let c = got.get(value).copied().unwrap_or(0);
        assert!(c >= *n, "{value}: {c} < {n}\n{got:?}\n{}", w.log_text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_a_group_by_count_equals_the_input_across_sigkills() {
    let (w, expected, got) = run("exactly_once", 3).await;
    assert_eq!(got, expected, "{}", w.log_text());
}

fn batched_settings(input: &str) -> String {
    format!(
        "[topics.\"{input}\"]\npartitions = 1\n\
         [agents.count_batched]\nsource.topics = [\"{input}\"]\ncodec = \"raw\"\n\
         [tables.key_counts]\nagent = \"count_batched\"\npartitions = 1\n"
    )
}

async fn key_counts(w: &Worker) -> BTreeMap<String, u64> {
    let (code, page) = get_json(&w.url("/tables/key_counts?limit=1000")).await;
    assert_eq!(code, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn run_batched(
    guarantee: &str,
    kills: u64,
) -> (Worker, BTreeMap<String, u64>, BTreeMap<String, u64>) {
    require_broker();
    let app = unique("batched");
    let input = format!("{app}-in");
    create_topic(&input, 1).await;
    let p = producer();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut w = Worker::start_with(
        &app,
        &format!("processing_guarantee = \"{guarantee}\"\ncommit_interval = \"100ms\"\n"),
        &batched_settings(&input),
    );
    // Records keep coming while the worker is killed: some batches are cut short.
    for round in 0..=kills {
        w.wait_healthy(Duration::from_secs(60)).await;
        for i in 0..1500u64 {
            let key = format!("key-{:02}", (i * 31 + round) % 20);
            *expected.entry(key.clone()).or_default() += 1;
            let rec = rdkafka::producer::FutureRecord::to(&input)
                .key(&key)
                .payload("x");
            p.send(rec, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
        if round < kills {
            tokio::time::sleep(Duration::from_millis(150 + round * 110)).await;
            w.kill9();
            w = w.restart();
        }
    }
    w.wait_healthy(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = key_counts(&w).await;
    while expected
        .iter()
        .any(|(k, n)| got.get(k).copied().unwrap_or(0) < *n)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = key_counts(&w).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    got = key_counts(&w).await;
    (w, expected, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_a_batched_count_is_at_least_the_input_across_a_sigkill() {
    let (w, expected, got) = run_batched("at_least_once", 1).await;
    for (key, n) in &expected {
        let c = got.get(key).copied().unwrap_or(0);
        assert!(c >= *n, "{key}: {c} < {n}\n{got:?}\n{}", w.log_text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_a_batched_count_equals_the_input_across_sigkills() {
    let (w, expected, got) = run_batched("exactly_once", 3).await;
    assert_eq!(got, expected, "{}", w.log_text());
}
