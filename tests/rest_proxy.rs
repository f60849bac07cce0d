//! The embedded REST Proxy against the real broker and the embedded Schema Registry: the
//! spec's §2.6 checklist (Confluent's documented requests, answers and errors) over HTTP.

mod common;

use std::time::Duration;

use common::*;
use cta_stream::services::rest_proxy::{serve as serve_proxy, EmbeddedRestProxy};
use cta_stream::services::schema_registry::{serve as serve_registry, EmbeddedRegistry};
use cta_stream::settings::Settings;
use serde_json::{json, Value};
use tokio::sync::watch;

const V2: &str = "application/vnd.kafka.v2+json";
const AVRO: &str = "application/vnd.kafka.avro.v2+json";
const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
const BINARY: &str = "application/vnd.kafka.binary.v2+json";

const KEY_SCHEMA: &str =
    r#"{"type":"record","name":"weather_key","fields":[{"name":"timestamp","type":"long"}]}"#;
const VALUE_SCHEMA: &str = r#"{"type":"record","name":"weather","fields":[{"name":"temperature","type":"float"},{"name":"status","type":{"type":"enum","name":"weather_status","symbols":["sunny","partly_cloudy","cloudy","windy","precipitation"]}}]}"#;

struct Services {
    proxy: String,
    registry: String,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
}

impl Services {
    async fn start() -> Services {
        require_broker();
        let app = unique("proxy");
        let (rp, pp) = (free_port(), free_port());
        let (stop, shutdown) = watch::channel(false);
        let registry = EmbeddedRegistry::start(&broker(), &format!("_schemas-{app}"))
            .await
            .unwrap();
        let addr = format!("127.0.0.1:{rp}").parse().unwrap();
        serve_registry(registry, addr, shutdown.clone())
            .await
            .unwrap();
        let settings = Settings::from_toml_str(&format!(
            "[app]\nid = \"{app}\"\nbroker = \"{}\"\n",
            broker()
        ))
        .unwrap();
        let registry_url = format!("http://127.0.0.1:{rp}");
        let proxy = EmbeddedRestProxy::start(&settings, &registry_url)
            .await
            .unwrap();
        let addr = format!("127.0.0.1:{pp}").parse().unwrap();
        serve_proxy(proxy, addr, shutdown).await.unwrap();
        Services {
            proxy: format!("http://127.0.0.1:{pp}"),
            registry: registry_url,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    async fn post(&self, path: &str, content_type: &str, body: &str) -> (u16, String, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.proxy))
            .header("Content-Type", content_type)
            .header("Accept", V2)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, ct, json)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.proxy))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn registry_versions(&self, subject: &str) -> Value {
        self.http
            .get(format!("{}/subjects/{subject}/versions", self.registry))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn avro_body(value: Value) -> String {
    json!({
        "key_schema": KEY_SCHEMA,
        "value_schema": VALUE_SCHEMA,
        "records": [{"key": {"timestamp": 1_577_836_800_000i64}, "value": value}],
    })
    .to_string()
}

fn assert_error(got: (u16, String, Value), status: u16, code: i64) {
    let (s, ct, body) = got;
    assert_eq!(
        (s, body["error_code"].as_i64()),
        (status, Some(code)),
        "{body}"
    );
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(ct, V2);
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_records_are_registered_framed_and_answered_as_confluent_does() {
    let s = Services::start().await;
    let topic = unique("weather");
    create_topic(&topic, 1).await;

    // 1. Schemas as strings: registered under TopicNameStrategy subjects.
    let (status, ct, body) = s
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &avro_body(json!({"temperature": 70.0, "status": "sunny"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, V2);
    let key_id = body["key_schema_id"].as_i64().unwrap();
    let value_id = body["value_schema_id"].as_i64().unwrap();
    let versions = s.registry_versions(&format!("{topic}-value")).await;
    assert_eq!(versions, json!([1]));
    let latest: Value = s
        .http
        .get(format!(
            "{}/subjects/{topic}-value/versions/latest",
            s.registry
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["id"].as_i64(), Some(value_id));
    // 8. Success offsets carry explicit nulls.
    assert_eq!(
        body["offsets"],
        json!([{"partition": 0, "offset": 0, "error_code": null, "error": null}])
    );

    // 2. The same schemas by id: same ids, no new version.
    let by_id = json!({
        "key_schema_id": key_id,
        "value_schema_id": value_id,
        "records": [{"key": {"timestamp": 1}, "value": {"temperature": 12.5, "status": "windy"}},
                    {"key": {"timestamp": 2}, "value": {"temperature": -3, "status": "cloudy"}}],
    });
    let (status, _, body) = s
        .post(&format!("/topics/{topic}"), AVRO, &by_id.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key_schema_id"].as_i64(), Some(key_id));
    assert_eq!(body["value_schema_id"].as_i64(), Some(value_id));
    assert_eq!(body["offsets"][1]["offset"], 2);
    assert_eq!(
        s.registry_versions(&format!("{topic}-value")).await,
        json!([1])
    );

    // The records are Confluent-framed Avro that a plain reader decodes.
    let records = consume_raw(
        std::slice::from_ref(&topic),
        3,
        Duration::from_secs(20),
        None,
    );
    assert_eq!(records.len(), 3);
    let mut reader = AvroReader::new(&s.registry);
    let (id, value) = reader.decode(records[0].value.as_deref().unwrap()).await;
    assert_eq!(i64::from(id), value_id);
    assert_eq!(value, json!({"temperature": 70.0, "status": "sunny"}));
    let (id, key) = reader.decode(records[2].key.as_deref().unwrap()).await;
    assert_eq!((i64::from(id), key), (key_id, json!({"timestamp": 2})));
    let (_, value) = reader.decode(records[2].value.as_deref().unwrap()).await;
    assert_eq!(value, json!({"temperature": -3.0, "status": "cloudy"}));

    // The partition endpoint.
    let (status, _, body) = s
        .post(
            &format!("/topics/{topic}/partitions/0"),
            AVRO,
            &by_id.to_string(),
        )
        .await;
    assert_eq!(
        (status, &body["offsets"][0]["partition"]),
        (200, &json!(0)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_confluents_errors_and_write_nothing() {
    let s = Services::start().await;
    let topic = unique("bad");
    create_topic(&topic, 1).await;
    let path = format!("/topics/{topic}");

    // 3. Keys or values without their schema.
    let no_key_schema = json!({"value_schema": VALUE_SCHEMA,
        "records": [{"key": {"timestamp": 1}, "value": {"temperature": 1.0, "status": "sunny"}}]});
    assert_error(
        s.post(&path, AVRO, &no_key_schema.to_string()).await,
        422,
        42201,
    );
    let no_value_schema = json!({"key_schema": KEY_SCHEMA,
        "records": [{"key": {"timestamp": 1}, "value": {"temperature": 1.0, "status": "sunny"}}]});
    assert_error(
        s.post(&path, AVRO, &no_value_schema.to_string()).await,
        422,
        42202,
    );
    // 4. A record that does not fit its schema; a schema that is not one.
    assert_error(
        s.post(
            &path,
            AVRO,
            &avro_body(json!({"temperature": 1.0, "status": "sunnyish"})),
        )
        .await,
        422,
        42203,
    );
    assert_error(
        s.post(
            &path,
            AVRO,
            &avro_body(json!({"temperature": "warm", "status": "sunny"})),
        )
        .await,
        422,
        42203,
    );
    let broken_schema = json!({"value_schema": "{", "records": [{"value": {"a": 1}}]});
    assert_error(
        s.post(&path, AVRO, &broken_schema.to_string()).await,
        422,
        42205,
    );
    // 5. No records.
    assert_error(s.post(&path, AVRO, r#"{"records": []}"#).await, 422, 422);
    // Malformed JSON; a field of the wrong type.
    assert_error(
        s.post(&path, JSON_V2, r#"{"records": [{"value": "#).await,
        400,
        400,
    );
    assert_error(
        s.post(&path, BINARY, r#"{"records": {"value": "eA=="}}"#)
            .await,
        400,
        400,
    );
    assert_error(
        s.post(&path, BINARY, r#"{"records": [{"value": 5}]}"#)
            .await,
        400,
        400,
    );
    // 7. A format this proxy does not speak; an unknown schema id; unknown topics.
    assert_error(
        s.post(
            &path,
            "application/vnd.kafka.protobuf.v2+json",
            r#"{"records":[{"value":1}]}"#,
        )
        .await,
        415,
        415,
    );
    assert_error(s.post(&path, "text/plain", "hello").await, 415, 415);
    let unknown_id = json!({"value_schema_id": 999_999, "records": [{"value": {"a": 1}}]});
    assert_error(
        s.post(&path, AVRO, &unknown_id.to_string()).await,
        408,
        40801,
    );
    let missing = format!("/topics/{}", unique("nope"));
    assert_error(
        s.post(&missing, JSON_V2, r#"{"records":[{"value":1}]}"#)
            .await,
        404,
        40401,
    );
    assert_error(
        s.post(
            &format!("{path}/partitions/7"),
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await,
        404,
        40402,
    );
    let (status, body) = s.get(&missing).await;
    assert_eq!((status, &body["error_code"]), (404, &json!(40401)));

    // Nothing of the above reached the topic.
    assert!(consume_raw(&[topic], 1, Duration::from_secs(3), None).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_and_json_records_and_topic_metadata() {
    let s = Services::start().await;
    let topic = unique("plain");
    create_topic(&topic, 2).await;
    let path = format!("/topics/{topic}");

    // 6. Binary: base64 in, bytes out; no schema ids.
    let (status, _, body) = s
        .post(
            &path,
            BINARY,
            r#"{"records":[{"value":"Y29uZmx1ZW50","partition":1},{"key":"a2V5","value":null,"partition":1}]}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["key_schema_id"], &body["value_schema_id"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(body["offsets"][0]["partition"], 1);
    let (status, _, body) = s
        .post(
            &path,
            JSON_V2,
            r#"{"records":[{"key":"k","value":{"a":[1,"x"]},"partition":0}]}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let records = consume_raw(
        std::slice::from_ref(&topic),
        3,
        Duration::from_secs(20),
        None,
    );
    let values: Vec<Option<Vec<u8>>> = {
        let mut r = records.clone();
        r.sort_by_key(|r| (r.partition, r.offset));
        r.into_iter().map(|r| r.value).collect()
    };
    assert_eq!(
        values,
        vec![
            Some(br#"{"a":[1,"x"]}"#.to_vec()),
            Some(b"confluent".to_vec()),
            None
        ]
    );
    assert!(records
        .iter()
        .any(|r| r.key.as_deref() == Some(b"key".as_slice())));

    // Metadata.
    let (status, topics) = s.get("/topics").await;
    assert_eq!(status, 200);
    assert!(
        topics.as_array().unwrap().contains(&json!(topic)),
        "{topics}"
    );
    let (status, t) = s.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(t["name"], json!(topic));
    assert_eq!(t["configs"]["cleanup.policy"], "delete", "{t}");
    assert_eq!(t["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(t["partitions"][0]["replicas"][0]["leader"], true);
    assert_eq!(t["partitions"][0]["replicas"][0]["in_sync"], true);
    let (status, p) = s.get(&format!("{path}/partitions/1")).await;
    assert_eq!((status, &p["partition"]), (200, &json!(1)));
    let (status, b) = s.get("/brokers").await;
    assert_eq!(status, 200);
    assert_eq!(b["brokers"].as_array().unwrap().len(), 1);
    // Unknown paths and methods answer with Confluent error bodies.
    let (status, body) = s.get("/nowhere").await;
    assert_eq!((status, &body["error_code"]), (404, &json!(404)));
    let r = s
        .http
        .delete(format!("{}{path}", s.proxy))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = s
        .http
        .get(format!("{}/topics", s.proxy))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
}
