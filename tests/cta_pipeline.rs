//! The CTA stations pipeline and turnstile summary against the real stack: PostgreSQL →
//! Kafka Connect (Debezium) → `org.chicago.cta.stations` → the station-transform agent →
//! the `stations` table; turnstile events → the summary agent → `TURNSTILE_SUMMARY`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn summary_settings(app: &str) -> String {
    format!(
        "[agents.cta_turnstile_summary]\nsource.topics = [\"{app}.turnstile\"]\n\
         sinks = [\"{app}.summary\"]\non_error = \"dead-letter\"\n\
         [tables.turnstile_counts]\nagent = \"cta_turnstile_summary\"\n"
    )
}

/// The last `{"STATION_ID", "COUNT"}` per key of a summary topic (committed records only).
fn last_counts(topic: &str, timeout: Duration) -> BTreeMap<String, Value> {
    let records = consume_raw_isolated(
        &[topic.to_string()],
        usize::MAX,
        timeout,
        Some(Duration::from_secs(3)),
        true,
    );
    let mut last = BTreeMap::new();
    for r in records {
        let key = String::from_utf8(r.key.unwrap()).unwrap();
        last.insert(key, serde_json::from_slice(&r.value.unwrap()).unwrap());
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn the_turnstile_summary_counts_every_event_once_across_sigkills() {
    require_broker();
    let app = unique("summary");
    let input = format!("{app}.turnstile");
    create_topic(&input, 1).await;
    let mut w = Worker::start_with(
        &app,
        "processing_guarantee = \"exactly_once\"\ncommit_interval = \"100ms\"\n",
        &summary_settings(&app),
    );
    w.wait_healthy(Duration::from_secs(60)).await;

    // A stream of events while the worker is killed and restarted twice.
    let stations = [40380, 40820, 40890, 41400, 40980];
    let total = 6000usize;
    let feeder = {
        let input = input.clone();
        tokio::spawn(async move {
            let p = producer();
            let mut expected: BTreeMap<String, i64> = BTreeMap::new();
            for i in 0..total {
                let id = stations[(i * 7 + i / 13) % stations.len()];
                let v = json!({"station_id": id, "station_name": "x", "line": "blue"});
                produce(&p, &input, None, &v.to_string()).await;
                *expected.entry(id.to_string()).or_default() += 1;
                if i % 500 == 0 {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
            expected
        })
    };
    for pause in [700, 1300] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        w.kill9();
        w = w.restart();
        w.wait_healthy(Duration::from_secs(60)).await;
    }
    let expected = feeder.await.unwrap();
    let summary = format!("{app}.summary");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let last = last_counts(&summary, Duration::from_secs(30));
        let got: BTreeMap<String, i64> = last
            .iter()
            .map(|(k, v)| {
                assert_eq!(v["STATION_ID"].to_string(), *k, "key = station id: {v}");
                (k.clone(), v["COUNT"].as_i64().unwrap())
            })
            .collect();
        if got == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "summary {got:?} != events {expected:?}\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The table agrees.
    let (code, body) = get_json(&w.url("/tables/turnstile_counts/40380")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["value"], json!(expected["40380"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_station_rows_are_dead_lettered_and_the_transform_goes_on() {
    require_broker();
    let app = unique("stationrows");
    let input = format!("{app}.stations");
    create_topic(&input, 1).await;
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.cta_station_transform]\nsource.topics = [\"{input}\"]\non_error = \"dead-letter\"\n\
             [tables.stations]\nagent = \"cta_station_transform\"\nchangelog = \"{app}.stations.table\"\n"
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let p = producer();
    let austin = json!({"stop_id":30001,"direction_id":"E","stop_name":"Austin (O'Hare-bound)",
        "station_name":"Austin","station_descriptive_name":"Austin (Blue Line)","station_id":40010,
        "order":29,"red":false,"blue":true,"green":false});
    let kimball = json!({"stop_id":30249,"direction_id":"S","stop_name":"Kimball (Loop-bound)",
        "station_name":"Kimball","station_descriptive_name":"Kimball (Brown Line)","station_id":41290,
        "order":null,"red":false,"blue":false,"green":false});
    for v in [
        "not json".to_string(),
        r#"{"station_id": "forty"}"#.to_string(),
        kimball.to_string(),
        austin.to_string(),
    ] {
        produce(&p, &input, None, &v).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = get_json(&w.url("/tables/stations/40010")).await;
        if code == 200 {
            assert_eq!(
                body["value"],
                json!({"station_id": 40010, "station_name": "Austin", "order": 29, "line": "blue"})
            );
            break;
        }
        assert!(Instant::now() < deadline, "{body}\n{}", w.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let dlq = consume(
        &format!("{app}-cta_station_transform-dlq"),
        2,
        Duration::from_secs(20),
    );
    assert_eq!(dlq.len(), 2, "both malformed rows dead-lettered");
    assert!(dlq.iter().all(|r| r.headers["dlq.error.kind"] == "decode"));
    let (_, health) = w.health().await.unwrap();
    let status = &health["agents"]["cta_station_transform"];
    assert_eq!(
        status["filtered"], 1,
        "Kimball is on no simulated line: {status}"
    );
    assert_eq!(status["dead_lettered"], 2, "{status}");
    let (code, _) = get_json(&w.url("/tables/stations/41290")).await;
    assert_eq!(code, 404);
    // The changelog is the original's Faust output: JSON station_id key, JSON value.
    let changelog = consume(&format!("{app}.stations.table"), 1, Duration::from_secs(20));
    assert_eq!(changelog[0].key.as_deref(), Some("40010"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_ksqldb_set_the_summary_agent_gives_way_and_an_unreachable_server_is_named() {
    require_broker();
    let app = unique("ksql");
    let statements =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ksql/turnstile_summary.sql");
    let settings = format!(
        "{}[ksql]\nstatements = \"{}\"\nreplaces = [\"cta_turnstile_summary\"]\n",
        summary_settings(&app),
        statements.display()
    );
    // Nothing listens on port 9: ksqlDB cannot run here, so the test checks what the
    // worker does without it — it names the server and stops, rather than half-running.
    let text = format!(
        "[app]\nid = \"{app}\"\nbroker = \"{}\"\nstartup_timeout = \"3s\"\n\
         [web]\nbind = \"127.0.0.1:{}\"\n[services]\nksqldb = \"http://127.0.0.1:9\"\n{settings}",
        broker(),
        free_port()
    );
    let (code, out, path) = run_cli(Some(&text), &["agents", "--json"]);
    assert_eq!(code, 0, "{out}");
    let listed = std::process::Command::new(bin())
        .arg("--settings")
        .arg(&path)
        .args(["agents", "--json"])
        .output()
        .unwrap();
    let agents: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let summary = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "cta_turnstile_summary")
        .cloned()
        .unwrap_or_else(|| panic!("{agents}"));
    assert_eq!(
        summary["enabled"], false,
        "ksqlDB computes the summary instead: {summary}"
    );

    let started = Instant::now();
    let (code, out, _) = run_cli(Some(&text), &["worker", "-l", "info"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("ksqlDB") && out.contains("127.0.0.1:9"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "retries are bounded"
    );
}
