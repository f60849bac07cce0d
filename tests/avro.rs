//! Avro end to end: `cta-stream send --codec avro` registers the schema with the worker's
//! embedded Schema Registry and writes Confluent-framed Avro; an agent decodes it and
//! writes Avro again; a plain Avro reader decodes the output with the schema the
//! registry serves for the id in the frame.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_avro_record_goes_through_an_agent_and_the_embedded_registry() {
    require_broker();
    let app = unique("avro");
    let (input, output) = (format!("{app}-in"), format!("{app}-out"));
    let registry_port = free_port();
    let schema_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/arrival_value.json");
    let mut w = Worker::start(
        &app,
        &format!(
            "[embedded]\nschema_registry = \"127.0.0.1:{registry_port}\"\nschemas_topic = \"_schemas-{app}\"\n\
             [topics.\"{output}\"]\nvalue_codec = \"avro\"\nvalue_schema = \"{}\"\n\
             [agents.forward]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\ncodec = \"avro\"\n",
            schema_file.display()
        ),
    );
    w.wait_healthy(Duration::from_secs(60)).await;

    let value = r#"{"station_id": 40380, "train_id": "BL003", "direction": "b", "line": "blue",
                    "train_status": "in_service", "prev_station_id": 40490, "prev_direction": "b"}"#;
    let sent = std::process::Command::new(bin())
        .arg("--settings")
        .arg(&w.settings)
        .args(["send", &input, value, "--codec", "avro", "--schema"])
        .arg(&schema_file)
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    let out = consume_bytes(&output, Duration::from_secs(30));
    let bytes = out.unwrap_or_else(|| panic!("no record on {output}\n{}", w.log_text()));
    assert_eq!(bytes[0], 0, "Confluent magic byte");
    let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let body: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{registry_port}/schemas/ids/{id}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let schema = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
    let decoded: serde_json::Value =
        cta_stream::codec::decode_avro_datum(&schema, &mut &bytes[5..]).unwrap();
    assert_eq!(decoded["station_id"], 40380);
    assert_eq!(decoded["train_id"], "BL003");
    assert_eq!(decoded["prev_station_id"], 40490);
    assert_eq!(decoded["prev_direction"], "b");
    let subjects: Vec<String> = reqwest::get(format!("http://127.0.0.1:{registry_port}/subjects"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(subjects.contains(&format!("{input}-value")), "{subjects:?}");
    assert!(
        subjects.contains(&format!("{output}-value")),
        "{subjects:?}"
    );
}

/// The raw bytes of the first record of `topic`.
fn consume_bytes(topic: &str, timeout: Duration) -> Option<Vec<u8>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("avro-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            return m.payload().map(<[u8]>::to_vec);
        }
    }
    None
}
