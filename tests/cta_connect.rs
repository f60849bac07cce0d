//! The stations pipeline through a real Kafka Connect (the local stack's, with Debezium's
//! PostgreSQL connector) and the real PostgreSQL: rows → `org.chicago.cta.stations`-like
//! topic → the station-transform agent → the `stations` table; connector registration.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::connect::*;
use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn stations_flow_from_postgres_through_kafka_connect_into_the_table() {
    require_broker();
    require_connect();
    assert_eq!(
        psql("select count(*) from stations"),
        "230",
        "scripts/stack loads the rows"
    );
    let app = unique("connect");
    let (connector, topic) = (format!("{app}-stations"), format!("{app}.stations"));
    let settings = station_pipeline_settings(&app, &connector, &topic);
    // The source topic exists before the agent subscribes (Debezium would create it later).
    create_topic(&topic, 1).await;
    let mut w = Worker::start(&app, &settings);
    w.wait_healthy(Duration::from_secs(60)).await;

    let rows = consume(&topic, 230, Duration::from_secs(90));
    assert_eq!(
        rows.len(),
        230,
        "every row of the stations table\n{}",
        w.log_text()
    );
    let first: Value = serde_json::from_str(rows[0].value.as_deref().unwrap()).unwrap();
    for field in [
        "stop_id",
        "station_id",
        "station_name",
        "order",
        "red",
        "blue",
        "green",
    ] {
        assert!(first.get(field).is_some(), "flat row with {field}: {first}");
    }

    // Every station of a simulated line is in the table with its line and order.
    let expected = simulated_stations();
    let deadline = Instant::now() + Duration::from_secs(60);
    // A station on two lines (Clark/Lake, Roosevelt) keeps the row written last.
    for (id, orders) in &expected {
        loop {
            let (code, body) = get_json(&w.url(&format!("/tables/stations/{id}"))).await;
            if code == 200 {
                let v = &body["value"];
                let order = orders.get(v["line"].as_str().unwrap());
                assert_eq!(v["order"].as_i64(), order.copied(), "{id}: {v}");
                assert_eq!(v["station_id"], *id);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "station {id} missing: {body}\n{}",
                w.log_text()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let (_, tables) = get_json(&w.url("/tables")).await;
    assert_eq!(
        tables["tables"][0]["held"][0]["keys"],
        expected.len(),
        "{tables}"
    );
    let (_, health) = w.health().await.unwrap();
    assert_eq!(
        health["agents"]["cta_station_transform"]["filtered"], 42,
        "the 42 rows of other lines are left out"
    );

    // An UPDATE in PostgreSQL reaches the table.
    let renamed = format!("Rosemont {app}");
    psql(&format!(
        "update stations set station_name = '{renamed}' where station_id = 40820"
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = get_json(&w.url("/tables/stations/40820")).await;
        if body["value"]["station_name"] == renamed.as_str() {
            break;
        }
        if Instant::now() > deadline {
            psql("update stations set station_name = 'Rosemont' where station_id = 40820");
            panic!("the update did not arrive: {body}\n{}", w.log_text());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    psql("update stations set station_name = 'Rosemont' where station_id = 40820");
    remove_connector(&connector, &app).await;
}

fn cli(settings: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("--settings")
        .arg(settings)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_applied_twice_stays_one_and_a_failed_task_reports_its_trace() {
    require_connect();
    let app = unique("conncli");
    let (good, bad) = (format!("{app}-good"), format!("{app}-bad"));
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(
        &settings,
        format!(
            "[app]\nid = \"{app}\"\n[connectors.good]\nname = \"{good}\"\n{}\
             [connectors.bad]\nname = \"{bad}\"\nwait = \"60s\"\n{}",
            debezium(&app, &format!("{app}.stations"), "cta_stations"),
            // A publication that does not exist: the config is valid, the task fails.
            debezium(
                &format!("{app}-b"),
                &format!("{app}.bad"),
                "no_such_publication"
            ),
        ),
    )
    .unwrap();

    let (code, out) = cli(&settings, &["connectors", "apply", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("created"), "{out}");
    let (code, out) = cli(&settings, &["connectors", "apply", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unchanged"), "{out}");
    let names: Vec<String> = reqwest::get(format!("{CONNECT}/connectors"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names.iter().filter(|n| **n == good).count(), 1, "{names:?}");

    let (code, out) = cli(&settings, &["connectors", "apply", &bad]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("FAILED") || out.contains("failed"), "{out}");
    assert!(out.contains("Publication"), "the task's trace: {out}");
    let (code, out) = cli(&settings, &["connectors", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(good.as_str()) && out.contains("RUNNING"),
        "{out}"
    );

    let (code, out) = cli(&settings, &["connectors", "delete", &bad]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(&settings, &["connectors", "delete", &bad]);
    assert_ne!(code, 0, "a second delete finds nothing: {out}");
    remove_connector(&good, &app).await;
    remove_connector(&bad, &format!("{app}-b")).await;
}
