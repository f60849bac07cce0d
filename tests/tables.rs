//! Tables against the real broker: counts survive SIGKILL, a deleted state directory is
//! rebuilt from the changelog, a clean restart replays nothing, partitions move between
//! two workers, global tables follow, and the debug endpoints answer.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

fn count_agent(app: &str, input: &str, partitions: i32, delay_ms: u64) -> String {
    format!(
        "[topics.\"{input}\"]\npartitions = {partitions}\n\
         [agents.count_keys]\nsource.topics = [\"{input}\"]\ncodec = \"raw\"\n\
         [agents.count_keys.params]\ndelay_ms = {delay_ms}\n\
         [tables.key_counts]\nagent = \"count_keys\"\npartitions = {partitions}\n\
         [tables.key_counts_all]\nglobal = true\nsource_topic = \"{app}-key_counts-changelog\"\n\
         [store]\nflush_interval = \"500ms\"\n"
    )
}

/// Produces `n` records over `keys` keys; returns the expected count per key.
async fn feed(topic: &str, n: u64, keys: u64) -> BTreeMap<String, u64> {
    let p = producer();
    let mut expected = BTreeMap::new();
    let mut pending = Vec::new();
    for i in 0..n {
        let key = format!("key-{:03}", (i * 7919) % keys);
        *expected.entry(key.clone()).or_insert(0) += 1;
        let rec = rdkafka::producer::FutureRecord::to(topic)
            .key(&key)
            .payload("x");
        pending.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    for d in pending {
        d.await.unwrap().unwrap();
    }
    expected
}

/// The whole table as the worker's endpoint pages it.
async fn table_content(w: &Worker, table: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = w.url(&format!("/tables/{table}?limit=50"));
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let (code, page) = get_json(&url).await;
        assert_eq!(code, 200, "{page}");
        for e in page["entries"].as_array().unwrap() {
            out.insert(
                e["key"].as_str().unwrap().to_string(),
                e["value"].as_u64().unwrap(),
            );
        }
        match page["next_after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => return out,
        }
    }
}

async fn wait_for_total(
    w: &Worker,
    table: &str,
    total: u64,
    timeout: Duration,
) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = table_content(w, table).await;
        if c.values().sum::<u64>() >= total || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until every key of `expected` is counted at least as often (at-least-once may
/// count some twice, so a total says nothing of each key); returns the table then, or at
/// the deadline.
async fn wait_for_each(
    w: &Worker,
    table: &str,
    expected: &BTreeMap<String, u64>,
    timeout: Duration,
) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = table_content(w, table).await;
        let done = expected
            .iter()
            .all(|(k, n)| c.get(k).copied().unwrap_or(0) >= *n);
        if done || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// (partition, records recovery read, full rebuild) of each partition held, once every
/// held partition's recovery is over.
async fn recovery_records(w: &Worker, table: &str) -> Vec<(i64, u64, bool)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let (_, list) = get_json(&w.url("/tables")).await;
        let held: Vec<serde_json::Value> = list["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == table)
            .flat_map(|t| t["held"].as_array().unwrap().clone())
            .collect();
        let ready = !held.is_empty() && held.iter().all(|h| h["recovery"]["state"] == "ready");
        if ready || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let t = list["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == table)
        .unwrap()
        .clone();
    t["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["partition"].as_i64().unwrap(),
                h["recovery"]["records"].as_u64().unwrap(),
                h["recovery"]["full"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_survive_sigkill_and_the_state_dir_rebuilds_from_the_changelog() {
    require_broker();
    let app = unique("count");
    let input = format!("{app}-in");
    create_topic(&input, 2).await;
    let total = 2000u64;
    let expected = feed(&input, total, 40).await;

    let mut w = Worker::start(&app, &count_agent(&app, &input, 2, 1));
    // Kill it five times at different moments of the backlog.
    for round in 0..5u64 {
        w.wait_healthy(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(300 + round * 170)).await;
        w.kill9();
        w = w.restart();
    }
    w.wait_healthy(Duration::from_secs(60)).await;
    let mut counts = wait_for_each(&w, "key_counts", &expected, Duration::from_secs(90)).await;
    // Redelivered events may still be counting (at-least-once): wait until it settles.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = table_content(&w, "key_counts").await;
        if now == counts || Instant::now() > deadline {
            break;
        }
        counts = now;
    }
    for (k, n) in &expected {
        let got = counts.get(k).copied().unwrap_or(0);
        assert!(
            got >= *n,
            "at-least-once: {k} counted {got} < {n}\n{}",
            w.log_text()
        );
    }
    // The global table follows the changelog: same content.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut global = table_content(&w, "key_counts_all").await;
    while global != counts && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        global = table_content(&w, "key_counts_all").await;
    }
    assert_eq!(global, counts, "the global table equals the table");

    // A clean stop flushes the stores: a restart replays nothing.
    w.signal("TERM");
    assert!(
        w.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        w.log_text()
    );
    let mut w = w.restart();
    w.wait_healthy(Duration::from_secs(60)).await;
    let recovered = recovery_records(&w, "key_counts").await;
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    for (p, records, full) in &recovered {
        assert_eq!(
            *records, 0,
            "partition {p} replayed {records} records after a clean stop"
        );
        assert!(!full);
    }
    assert_eq!(table_content(&w, "key_counts").await, counts);

    // Without its state directory it is rebuilt from the changelog alone.
    w.signal("TERM");
    assert!(w.wait_exit(Duration::from_secs(30)).success());
    let state = w.dir.as_ref().unwrap().path().join("state");
    assert!(
        state.join("tables").is_dir(),
        "stores live under the state dir"
    );
    std::fs::remove_dir_all(&state).unwrap();
    let mut w = w.restart();
    w.wait_healthy(Duration::from_secs(60)).await;
    let rebuilt = recovery_records(&w, "key_counts").await;
    assert!(
        rebuilt
            .iter()
            .all(|(_, records, full)| *full && *records > 0),
        "{rebuilt:?}"
    );
    assert_eq!(table_content(&w, "key_counts").await, counts);
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_and_their_stores_move_between_two_workers() {
    require_broker();
    let app = unique("pair");
    let input = format!("{app}-in");
    create_topic(&input, 2).await;
    let settings = count_agent(&app, &input, 2, 0);
    let first = feed(&input, 400, 10).await;

    let mut a = Worker::start(&app, &settings);
    a.wait_healthy(Duration::from_secs(60)).await;
    wait_for_total(&a, "key_counts", 400, Duration::from_secs(60)).await;
    let held = |recs: Vec<(i64, u64, bool)>| recs.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(held(recovery_records(&a, "key_counts").await), vec![0, 1]);

    // A second worker joins: each ends up with one partition.
    let mut b = Worker::start(&app, &settings);
    b.wait_healthy(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ha, hb) = (
            held(recovery_records(&a, "key_counts").await),
            held(recovery_records(&b, "key_counts").await),
        );
        if ha.len() == 1 && hb.len() == 1 && ha != hb {
            break;
        }
        assert!(Instant::now() < deadline, "no split: a {ha:?}, b {hb:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // More input while split; every key is readable from the worker that owns it.
    let second = feed(&input, 400, 10).await;
    let mut expected = first.clone();
    for (k, n) in second {
        *expected.entry(k).or_insert(0) += n;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut both = table_content(&a, "key_counts").await;
        both.extend(table_content(&b, "key_counts").await);
        if both == expected {
            for k in expected.keys() {
                let (ca, _) = get_json(&a.url(&format!("/tables/key_counts/{k}"))).await;
                let (cb, _) = get_json(&b.url(&format!("/tables/key_counts/{k}"))).await;
                assert!(ca == 200 || cb == 200, "{k} readable from its owner");
                assert!(ca == 404 || cb == 404, "{k} held by one worker only");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "split counts {both:?} != {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The second leaves: the first holds everything again, nothing lost.
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(30)).success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if held(recovery_records(&a, "key_counts").await) == vec![0, 1]
            && table_content(&a, "key_counts").await == expected
        {
            break;
        }
        assert!(Instant::now() < deadline, "{}", a.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_debug_endpoints_answer_with_json_and_4xx_for_bad_requests() {
    require_broker();
    let app = unique("dbg");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.jobs]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\n\
             [tables.jobs_seen]\nagent = \"jobs\"\n"
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    for id in [3, 1, 2, 3] {
        produce(&p, &input, None, &format!(r#"{{"id":{id}}}"#)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, v) = get_json(&w.url("/tables/jobs_seen/3")).await;
        if code == 200 && v["value"] == 2 {
            assert_eq!(v["key"], 3);
            assert_eq!(v["partition"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, list) = get_json(&w.url("/tables")).await;
    assert_eq!(code, 200);
    let t = &list["tables"][0];
    assert_eq!(t["name"], "jobs_seen");
    assert_eq!(t["changelog"], format!("{app}-jobs_seen-changelog"));
    assert_eq!(t["held"][0]["recovery"]["state"], "ready");
    assert_eq!(t["held"][0]["keys"], 3);

    let (code, page) = get_json(&w.url("/tables/jobs_seen?limit=2")).await;
    assert_eq!(code, 200);
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["entries"][0]["key"], 1);
    let after = page["next_after"].as_str().unwrap().to_string();
    let (_, rest) = get_json(&w.url(&format!("/tables/jobs_seen?limit=2&after={after}"))).await;
    assert_eq!(rest["entries"][0]["key"], 3);
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);

    for (path, want) in [
        ("/tables/jobs_seen/99", 404),
        ("/tables/jobs_seen/not-a-number", 400),
        ("/tables/jobs_seen/-1", 400),
        ("/tables/nope", 404),
        ("/tables/nope/1", 404),
        ("/tables/jobs_seen?limit=0", 400),
        ("/tables/jobs_seen?limit=abc", 400),
        ("/tables/jobs_seen/%ff%fe", 400),
    ] {
        let (code, body) = get_json(&w.url(path)).await;
        assert_eq!(code, want, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: JSON error body {body}");
    }
    let (code, h) = w.health().await.unwrap();
    assert_eq!(code, 200, "no panic, still healthy: {h}");
}

#[test]
fn a_table_whose_partitions_differ_from_its_agents_source_is_refused() {
    require_broker();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = unique("copart");
    let input = format!("{app}-in");
    rt.block_on(create_topic(&input, 3));
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.count_keys]\nsource.topics = [\"{input}\"]\ncodec = \"raw\"\n\
             [tables.key_counts]\nagent = \"count_keys\"\npartitions = 2\n"
        ),
    );
    let status = w.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    let log = w.log_text();
    assert!(log.contains(&format!("table key_counts has 2 partition(s) (tables.key_counts.partitions) but topic {input} has 3")), "{log}");
}

#[test]
fn tables_in_the_settings_must_be_declared_and_have_a_writer() {
    let (code, stderr, _) = run_cli(
        Some("[app]\nid = \"x\"\n[tables.nope]\nagent = \"a\"\n"),
        &["tables"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("tables.nope"), "{stderr}");
    assert!(
        stderr.contains("no table named 'nope' is declared"),
        "{stderr}"
    );
    let (code, stderr, _) = run_cli(
        Some("[app]\nid = \"x\"\n[tables.key_counts]\n"),
        &["worker"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("tables.key_counts.agent"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn under_exactly_once_counts_are_exact_after_repeated_sigkills() {
    require_broker();
    let app = unique("eos");
    let input = format!("{app}-in");
    create_topic(&input, 2).await;
    let total = 2000u64;
    let expected = feed(&input, total, 40).await;
    let settings = count_agent(&app, &input, 2, 1);
    let mut w = Worker::start_with(
        &app,
        "processing_guarantee = \"exactly_once\"\ncommit_interval = \"100ms\"\n",
        &settings,
    );
    for round in 0..5u64 {
        w.wait_healthy(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(250 + round * 190)).await;
        w.kill9();
        w = w.restart();
    }
    w.wait_healthy(Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut counts = table_content(&w, "key_counts").await;
    while counts != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        counts = table_content(&w, "key_counts").await;
    }
    assert_eq!(counts, expected, "exactly-once counts\n{}", w.log_text());
    // And from the changelog alone, as a new worker would see it.
    w.signal("TERM");
    assert!(
        w.wait_exit(Duration::from_secs(30)).success(),
        "{}",
        w.log_text()
    );
    let state = w.dir.as_ref().unwrap().path().join("state");
    std::fs::remove_dir_all(&state).unwrap();
    let mut w = w.restart();
    w.wait_healthy(Duration::from_secs(60)).await;
    let rebuilt = recovery_records(&w, "key_counts").await;
    assert!(
        rebuilt
            .iter()
            .all(|(_, records, full)| *full && *records > 0),
        "{rebuilt:?}"
    );
    let content = table_content(&w, "key_counts").await;
    if content != expected {
        let (_, list) = get_json(&w.url("/tables")).await;
        panic!(
            "rebuilt {content:?} != {expected:?}\n{list}\n{}",
            w.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_behind_the_changelog_start_is_wiped_and_rebuilt() {
    require_broker();
    let app = unique("lso");
    let input = format!("{app}-in");
    let changelog = format!("{app}-key_counts-changelog");
    create_topic(&input, 1).await;
    feed(&input, 200, 20).await;
    let mut w = Worker::start(&app, &count_agent(&app, &input, 1, 0));
    w.wait_healthy(Duration::from_secs(60)).await;
    wait_for_total(&w, "key_counts", 200, Duration::from_secs(60)).await;
    w.signal("TERM");
    assert!(w.wait_exit(Duration::from_secs(30)).success());

    // Meanwhile the changelog moved on (50 writes of new keys) and its start moved past
    // everything the local store has (retention, or records deleted).
    let p = producer();
    for i in 0..50 {
        produce(
            &p,
            &changelog,
            Some(&format!("\"z-{i:02}\"")),
            &i.to_string(),
        )
        .await;
    }
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", broker())
            .create()
            .unwrap();
    let c: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    use rdkafka::consumer::Consumer;
    let (_, high) = c
        .fetch_watermarks(&changelog, 0, Duration::from_secs(10))
        .unwrap();
    // Kafka deletes records only from topics whose policy includes "delete".
    let cfg =
        rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(&changelog))
            .set("cleanup.policy", "compact,delete");
    for r in admin
        .alter_configs([&cfg], &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&changelog, 0, rdkafka::Offset::Offset(high - 10))
        .unwrap();
    // The broker applies the new policy a moment after it answered: until then it refuses
    // the deletion as a policy violation.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let deleted = admin
            .delete_records(&tpl, &rdkafka::admin::AdminOptions::new())
            .await
            .map(|done| {
                done.elements()
                    .iter()
                    .try_for_each(|e| e.error())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        match deleted {
            Ok(()) => break,
            Err(e) if e.contains("PolicyViolation") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("delete_records: {e}"),
        }
    }
    let (low, _) = c
        .fetch_watermarks(&changelog, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(low, high - 10);

    let mut w = w.restart();
    w.wait_healthy(Duration::from_secs(60)).await;
    let rec = recovery_records(&w, "key_counts").await;
    assert_eq!(
        rec,
        vec![(0, 10, true)],
        "a full rebuild of what the changelog still has\n{}",
        w.log_text()
    );
    let content = table_content(&w, "key_counts").await;
    let want: BTreeMap<String, u64> = (40..50).map(|i| (format!("z-{i:02}"), i)).collect();
    assert_eq!(
        content, want,
        "old entries the changelog no longer has are gone"
    );
    assert!(w.log_text().contains("behind the changelog's start"));
}
