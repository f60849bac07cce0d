//! The whole CTA app end to end, as `settings.toml` runs it (with its own app id, ports
//! and state): stack, Kafka Connect, producers, transform, summary and the status page —
//! checked through `GET /api/status`, a burst of concurrent requests, and a real headless
//! Chromium that watches a train move without a reload.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The worker with the repository's settings.toml, overridden only where a test must
/// not collide with anything else running: its app id and topic prefix (its own topics,
/// schemas topic, Kafka Connect connector and replication slot), ports and state.
struct App {
    child: Child,
    port: u16,
    log: PathBuf,
    app: String,
    _dir: tempfile::TempDir,
}

impl App {
    /// `app` doubles as the replication slot's name: lower-case letters, digits and `_`.
    fn start(app: &str, speedup: u32) -> App {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let (web, registry, proxy) = (free_port(), free_port(), free_port());
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .args(["--settings"])
            .arg(root().join("settings.toml"))
            .args(["worker", "-l", "info"])
            .env_remove("RUST_LOG")
            .env("CTA_STREAM_APP__ID", app)
            .env("CTA_STREAM_APP__TOPIC_PREFIX", format!("{app}."))
            .env("CTA_STREAM_APP__BROKER", broker())
            .env("CTA_STREAM_APP__STATE_DIR", dir.path().join("state"))
            .env("CTA_STREAM_WEB__BIND", format!("127.0.0.1:{web}"))
            .env(
                "CTA_STREAM_EMBEDDED__SCHEMA_REGISTRY",
                format!("127.0.0.1:{registry}"),
            )
            .env("CTA_STREAM_SERVICES__SCHEMA_REGISTRY", "")
            .env(
                "CTA_STREAM_EMBEDDED__REST_PROXY",
                format!("127.0.0.1:{proxy}"),
            )
            .env("CTA_STREAM_SERVICES__REST_PROXY", "")
            .env(
                "CTA_STREAM_AGENTS__CTA_CLOCK__SOURCE__SPEEDUP",
                speedup.to_string(),
            )
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        App {
            child,
            port: web,
            log,
            app: app.to_string(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The connector settings.toml declared in this app's namespace, and its slot (a
        // slot left behind holds WAL).
        let (name, slot) = (
            format!("{}.stations", self.app),
            format!("{}_stations", self.app),
        );
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(common::connect::remove_connector_and_slot(&name, &slot))
        });
    }
}

/// GET as JSON; a worker not listening yet is status 0.
async fn try_json(url: &str) -> (u16, Value) {
    match reqwest::get(url).await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// Train id → (line, station id) over the status, and whether any train is shown twice.
fn placements(status: &Value) -> (BTreeMap<String, Vec<(String, i64)>>, usize) {
    let mut at: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    let mut stations = 0;
    for line in status["lines"].as_array().unwrap() {
        for s in line["stations"].as_array().unwrap() {
            stations += 1;
            for dir in ["train_a", "train_b"] {
                for t in s[dir].as_array().unwrap() {
                    at.entry(t.as_str().unwrap().to_string())
                        .or_default()
                        .push((
                            line["line"].as_str().unwrap().to_string(),
                            s["station_id"].as_i64().unwrap(),
                        ));
                }
            }
        }
    }
    (at, stations)
}

fn entries(status: &Value) -> BTreeMap<(String, i64), i64> {
    let mut out = BTreeMap::new();
    for line in status["lines"].as_array().unwrap() {
        for s in line["stations"].as_array().unwrap() {
            out.insert(
                (
                    line["line"].as_str().unwrap().to_string(),
                    s["station_id"].as_i64().unwrap(),
                ),
                s["entries"].as_i64().unwrap(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_app_serves_a_live_status_page() {
    require_broker();
    common::connect::require_connect();
    let app = unique("ctaapp").replace('-', "_");
    let w = App::start(&app, 10);

    // Within a bounded time: 94 stations over three lines, 30 trains placed once each,
    // the weather set.
    let deadline = Instant::now() + Duration::from_secs(150);
    let first = loop {
        let (code, status) = try_json(&w.url("/api/status")).await;
        if code == 200 {
            let (at, stations) = placements(&status);
            if stations == 94 && at.len() >= 30 && !status["weather"].is_null() {
                break status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "status not complete: {status}\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lines: Vec<(String, usize)> = first["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line"].as_str().unwrap().to_string(),
                l["stations"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("blue".into(), 33),
            ("green".into(), 28),
            ("red".into(), 33)
        ]
    );
    let (at, _) = placements(&first);
    assert!(
        at.values().all(|v| v.len() == 1),
        "a train at two stations: {at:?}"
    );
    assert!(first["weather"]["temperature"].as_str().is_some());

    // Turnstile counts rise as the simulation goes on (on a broker with older runs'
    // data, once the summary agent has gone through it).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut before = entries(&first);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, later) = get_json(&w.url("/api/status")).await;
        let after = entries(&later);
        if before
            .iter()
            .any(|(k, v)| after.get(k).is_some_and(|a| a > v))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no station's entries rose\n{before:?}\n{after:?}"
        );
        before = after;
    }

    // Every topic the app reads or writes is in the test's namespace: the app's own
    // topics (org.chicago.cta.*, TURNSTILE_SUMMARY, _schemas) only ever hold the app's
    // records.
    let ns = format!("{app}.");
    let (_, agents) = get_json(&w.url("/agents")).await;
    for a in agents["agents"].as_array().unwrap() {
        let source = a["source"].as_str().unwrap();
        let topics: Vec<&str> = match source.split_once(' ') {
            Some(("topics", list)) => list.split(", ").collect(),
            Some(("pattern", p)) => {
                assert!(p.starts_with(&format!("^{app}\\.")), "{a}");
                vec![]
            }
            _ => vec![],
        };
        let sinks = a["sinks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap());
        let dlq = a["dead_letter_topic"].as_str().unwrap();
        for t in topics.into_iter().chain(sinks).chain([dlq]) {
            assert!(
                t.starts_with(&ns),
                "agent {} uses {t} outside {ns}",
                a["name"]
            );
        }
    }
    let (_, tables) = get_json(&w.url("/tables")).await;
    for t in tables["tables"].as_array().unwrap() {
        for topic in [&t["changelog"], &t["source_topic"]] {
            if let Some(topic) = topic.as_str() {
                assert!(
                    topic.starts_with(&ns),
                    "table {} uses {topic} outside {ns}",
                    t["name"]
                );
            }
        }
    }

    // The tables behind the page, in the metrics.
    let metrics = reqwest::get(w.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("cta_stream_table_keys{table=\"trains_all\",partition=\"global\"}"),
        "{metrics}"
    );

    // The page, rendered on the server, and a burst of 500 concurrent requests.
    let page = reqwest::get(w.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<tr class=\"station").count(), 94);
    assert!(page.contains("id=\"weather-temperature\""));
    let client = reqwest::Client::new();
    let burst = (0..500).map(|i| {
        let url = w.url(if i % 2 == 0 { "/" } else { "/api/status" });
        let c = client.clone();
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let results = futures::future::join_all(burst).await;
    let failed: Vec<_> = results.iter().filter(|r| !matches!(r, Ok(200))).collect();
    assert!(
        failed.is_empty(),
        "{} of 500 failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // A real browser sees the page move without reloading.
    let env = Command::new("bash")
        .arg(root().join("scripts/browser-env"))
        .output()
        .unwrap();
    assert!(
        env.status.success(),
        "scripts/browser-env: {}",
        String::from_utf8_lossy(&env.stderr)
    );
    let launcher = String::from_utf8_lossy(&env.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let shots = root().join("target/browser");
    let out = Command::new(&launcher)
        .arg(root().join("tests/browser/status_page.mjs"))
        .args(["--url", &w.url("/"), "--timeout", "60", "--screenshot"])
        .arg(shots.join("status.png"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test: {report}\n{}\n(screenshot in {})",
        String::from_utf8_lossy(&out.stderr),
        shots.display()
    );
    let seen: Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    assert_eq!(seen["rows"], 94, "{seen}");
    // Warnings: a sideways scroll on a phone, page or console errors, other trains twice.
    assert!(
        seen["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "browser warnings: {seen}"
    );

    // The busiest station's page: its entries per simulated hour over the last simulated
    // day (the windowed table's mirror), drawn as 24 bars equal to its JSON.
    let (_, status) = get_json(&w.url("/api/status")).await;
    let busiest = status["lines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["stations"].as_array().unwrap().iter())
        .max_by_key(|s| s["entries"].as_i64().unwrap_or(0))
        .unwrap()["station_id"]
        .as_i64()
        .unwrap();
    let api = w.url(&format!("/api/stations/{busiest}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let station = loop {
        let (code, p) = try_json(&api).await;
        let counted = p["entries_per_hour"].as_array().map(|bars| {
            (
                bars.len(),
                bars.iter()
                    .filter(|b| b["entries"].as_u64().unwrap_or(0) > 0)
                    .count(),
            )
        });
        let headways = p["headways"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["count"].as_u64().unwrap_or(0) > 0));
        if code == 200 && counted.is_some_and(|(n, busy)| n == 24 && busy >= 2) && headways {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the station page has no two hours of entries or no headway: {p}\n{}",
            w.log_text()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(station["station_id"], busiest, "{station}");
    assert!(
        !station["lines"].as_array().unwrap().is_empty(),
        "{station}"
    );
    assert!(
        station["weather"]["temperature"].as_str().is_some(),
        "{station}"
    );
    assert_eq!(try_json(&w.url("/api/stations/abc")).await.0, 400);
    assert_eq!(try_json(&w.url("/api/stations/1")).await.0, 404);
    let out = Command::new(&launcher)
        .arg(root().join("tests/browser/station_page.mjs"))
        .args([
            "--url",
            &w.url(&format!("/stations/{busiest}")),
            "--timeout",
            "60",
            "--screenshot",
        ])
        .arg(shots.join("station.png"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "station page in the browser: {report}\n{}\n(screenshots in {})",
        String::from_utf8_lossy(&out.stderr),
        shots.display()
    );
    let seen: Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    assert_eq!(seen["bars"], 24, "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn arrivals_read_out_of_order_never_put_a_train_at_two_stations() {
    require_broker();
    let app = unique("ooo");
    let (a, b, c) = (
        format!("{app}.arrivals.a"),
        format!("{app}.arrivals.b"),
        format!("{app}.arrivals.c"),
    );
    for t in [&a, &b, &c] {
        create_topic(t, 1).await;
    }
    let mut w = Worker::start(
        &app,
        &format!(
            "[agents.cta_train_positions]\nsource.pattern = '^{}\\.arrivals\\..*'\n\
             key_codec = \"json\"\non_error = \"dead-letter\"\n\
             [tables.trains]\nagent = \"cta_train_positions\"\n\
             [tables.trains_all]\nglobal = true\nmirrors = \"trains\"\n",
            app
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;
    let arrival = |station: i64, prev: Option<i64>| {
        json!({"station_id": station, "train_id": "BL000", "direction": "b", "line": "blue",
               "train_status": "in_service", "prev_station_id": prev,
               "prev_direction": prev.map(|_| "b")})
        .to_string()
    };
    let p = producer();
    let processed = |n: u64| {
        let w = &w;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, h) = w.health().await.unwrap();
                let st = h["agents"]["cta_train_positions"].clone();
                // Handed out and done with: an event counts in `events_in` when the
                // agent gets it, in `acked` once it asked for the next one.
                if st["events_in"] == n && st["acked"] == n {
                    return st;
                }
                assert!(Instant::now() < deadline, "{h}\n{}", w.log_text());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Read in the wrong order, from three topics: step 2 first, then the start and step 1
    // (which share their key time, as one clock tick announces both).
    produce(&p, &c, Some(r#"{"timestamp": 2000}"#), &arrival(3, Some(2))).await;
    processed(1).await;
    produce(&p, &b, Some(r#"{"timestamp": 1000}"#), &arrival(2, Some(1))).await;
    processed(2).await;
    produce(&p, &a, Some(r#"{"timestamp": 1000}"#), &arrival(1, None)).await;
    let st = processed(3).await;
    assert_eq!(
        st["filtered"], 2,
        "the two older arrivals are left out: {st}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = get_json(&w.url("/tables/trains_all/BL000")).await;
        if code == 200 {
            assert_eq!(body["value"]["station_id"], 3, "the latest arrival: {body}");
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
