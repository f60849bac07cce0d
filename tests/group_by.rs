//! `group_by` on the real broker: the example agent `count_values` re-keys its source by
//! value through its repartition topic and counts each value in a table with another
//! partition count than the source. The counts equal those computed from the input —
//! at least (at-least-once) or exactly (exactly-once) — across SIGKILLs mid-stream; the
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
