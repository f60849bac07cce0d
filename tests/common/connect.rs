//! The local stack's Kafka Connect and PostgreSQL, as the stations tests use them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub const CONNECT: &str = "http://127.0.0.1:8083";

pub fn require_connect() {
    let ok = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:8083".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_ok();
    assert!(
        ok,
        "Kafka Connect is not running on 127.0.0.1:8083: run scripts/stack up"
    );
}

/// psql as `cta_admin` over TCP, as any client of the database would.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-h",
            "127.0.0.1",
            "-U",
            "cta_admin",
            "-d",
            "cta",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", "chicago")
        .output()
        .expect("psql (installed with PostgreSQL by scripts/stack)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Debezium connector config for the stack, writing flat rows to `topic`.
pub fn debezium(app: &str, topic: &str, publication: &str) -> String {
    let slot = format!("{}_slot", app.replace('-', "_"));
    let pairs = [
        (
            "connector.class",
            "io.debezium.connector.postgresql.PostgresConnector",
        ),
        ("plugin.name", "pgoutput"),
        ("database.hostname", "127.0.0.1"),
        ("database.port", "5432"),
        ("database.user", "cta_admin"),
        ("database.password", "chicago"),
        ("database.dbname", "cta"),
        ("topic.prefix", app),
        ("table.include.list", "public.stations"),
        ("publication.name", publication),
        ("publication.autocreate.mode", "disabled"),
        ("slot.name", &slot),
        ("snapshot.mode", "initial"),
        (
            "key.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("key.converter.schemas.enable", "false"),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        ("value.converter.schemas.enable", "false"),
        ("transforms", "unwrap,route"),
        (
            "transforms.unwrap.type",
            "io.debezium.transforms.ExtractNewRecordState",
        ),
        ("transforms.unwrap.delete.tombstone.handling.mode", "drop"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", ".*"),
        ("transforms.route.replacement", topic),
        ("topic.creation.default.replication.factor", "1"),
        ("topic.creation.default.partitions", "1"),
    ];
    pairs
        .iter()
        .map(|(k, v)| format!("config.\"{k}\" = \"{v}\"\n"))
        .collect()
}

/// Deletes the connector and its replication slot (a slot left behind holds WAL).
pub async fn remove_connector(name: &str, app: &str) {
    remove_connector_and_slot(name, &format!("{}_slot", app.replace('-', "_"))).await;
}

/// Deletes the connector `name` and then the replication slot `slot` it held.
pub async fn remove_connector_and_slot(name: &str, slot: &str) {
    let _ = reqwest::Client::new()
        .delete(format!("{CONNECT}/connectors/{name}"))
        .send()
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let active = psql(&format!(
            "select active from pg_replication_slots where slot_name = '{slot}'"
        ));
        if active.is_empty() {
            return;
        }
        if active == "f" {
            psql(&format!("select pg_drop_replication_slot('{slot}')"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// station_id → its order on each simulated line it is on, from the data file.
pub fn simulated_stations() -> BTreeMap<i64, BTreeMap<String, i64>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut r = csv::Reader::from_path(root.join("data/cta_stations.csv")).unwrap();
    let mut out: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for row in r.records() {
        let row = row.unwrap();
        let id: i64 = row[5].parse().unwrap();
        let order: i64 = row[6].parse().unwrap();
        for (col, line) in [(7, "red"), (8, "blue"), (9, "green")] {
            if row[col].eq_ignore_ascii_case("true") {
                out.entry(id).or_default().insert(line.to_string(), order);
            }
        }
    }
    out
}

/// Settings of a worker that declares a Debezium connector writing station rows to
/// `topic` and runs the station-transform agent into the `stations` table.
pub fn station_pipeline_settings(app: &str, connector: &str, topic: &str) -> String {
    format!(
        "[connectors.stations]\nname = \"{connector}\"\nwait = \"90s\"\n{}\
         [agents.cta_station_transform]\nsource.topics = [\"{topic}\"]\non_error = \"dead-letter\"\n\
         [tables.stations]\nagent = \"cta_station_transform\"\nchangelog = \"{app}.stations.table\"\n",
        debezium(app, topic, "cta_stations")
    )
}
