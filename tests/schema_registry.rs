//! The embedded Schema Registry against the real broker (127.0.0.1:9092 or `CTA_TEST_BROKER`):
//! the spec's §1.7 checklist over HTTP, and a restart on the same topic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cta_stream::services::schema_registry::{serve, EmbeddedRegistry};
use serde_json::{json, Value};
use tokio::sync::watch;

const VND: &str = "application/vnd.schemaregistry.v1+json";

fn broker() -> String {
    std::env::var("CTA_TEST_BROKER").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

fn unique_topic() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "_schemas-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 1_000_000
    )
}

struct Server {
    base: String,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Server {
    async fn start(topic: &str) -> (Arc<EmbeddedRegistry>, Server) {
        let reg = EmbeddedRegistry::start(&broker(), topic)
            .await
            .expect("registry starts");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (stop, rx) = watch::channel(false);
        let handle = serve(reg.clone(), addr, rx).await.expect("binds");
        (
            reg,
            Server {
                base: format!("http://{addr}"),
                stop,
                handle,
                http: reqwest::Client::new(),
            },
        )
    }

    async fn shutdown(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.handle)
            .await
            .expect("server stops")
            .unwrap();
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.header("content-type", VND).body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert_eq!(ct, VND, "content type of {path}");
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, v)
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
    async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }
}

const V1_COMPACT: &str = r#"{"type":"record","name":"weather","namespace":"com.udacity","fields":[{"name":"temperature","type":"float"}]}"#;
const V1_PRETTY: &str = "{\n  \"type\" : \"record\",\n  \"name\" : \"weather\",\n  \"namespace\" : \"com.udacity\",\n  \"fields\" : [\n    { \"name\" : \"temperature\", \"type\" : \"float\" }\n  ]\n}";
// backward compatible: a new field with a default
const V2: &str = r#"{"type":"record","name":"weather","namespace":"com.udacity","fields":[{"name":"temperature","type":"float"},{"name":"status","type":"string","default":"sunny"}]}"#;
// not backward compatible with V2: a new field without a default
const V3_BAD: &str = r#"{"type":"record","name":"weather","namespace":"com.udacity","fields":[{"name":"temperature","type":"float"},{"name":"status","type":"string","default":"sunny"},{"name":"wind","type":"double"}]}"#;

fn err_code(v: &Value) -> i64 {
    v["error_code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error_code in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_lookup_and_errors() {
    let topic = unique_topic();
    let (_reg, s) = Server::start(&topic).await;

    assert_eq!(s.get("/").await, (200, json!({})));
    assert_eq!(s.get("/subjects").await, (200, json!([])));

    // 1. same schema twice, differently indented → same id, one version
    let (st, a) = s.register("w-value", V1_COMPACT).await;
    assert_eq!(st, 200, "{a}");
    let id1 = a["id"].as_i64().unwrap();
    assert_eq!(id1, 1, "first id of a fresh registry");
    let (st, b) = s.register("w-value", V1_PRETTY).await;
    assert_eq!((st, b["id"].as_i64().unwrap()), (200, id1));
    assert_eq!(s.get("/subjects/w-value/versions").await, (200, json!([1])));

    // 2. second subject → same id, its own version 1
    let (st, c) = s.register("other-value", V1_PRETTY).await;
    assert_eq!((st, c["id"].as_i64().unwrap()), (200, id1));
    assert_eq!(
        s.get("/subjects/other-value/versions").await,
        (200, json!([1]))
    );
    let (_, mut subjects) = s.get("/subjects").await;
    subjects
        .as_array_mut()
        .unwrap()
        .sort_by_key(|v| v.to_string());
    assert_eq!(subjects, json!(["other-value", "w-value"]));
    let (st, uses) = s.get(&format!("/schemas/ids/{id1}/versions")).await;
    assert_eq!(st, 200);
    assert_eq!(uses.as_array().unwrap().len(), 2, "{uses}");

    // 3. a different (compatible) schema → next id, version 2, latest
    let (st, d) = s.register("w-value", V2).await;
    assert_eq!(st, 200, "{d}");
    let id2 = d["id"].as_i64().unwrap();
    assert_eq!(id2, id1 + 1);
    assert_eq!(
        s.get("/subjects/w-value/versions").await,
        (200, json!([1, 2]))
    );
    for latest in ["latest", "-1", "LATEST"] {
        let (st, l) = s.get(&format!("/subjects/w-value/versions/{latest}")).await;
        assert_eq!(st, 200);
        assert_eq!(l["version"], 2);
        assert_eq!(l["id"].as_i64().unwrap(), id2);
        assert_eq!(l["subject"], "w-value");
    }
    let (_, v1) = s.get("/subjects/w-value/versions/1").await;
    assert_eq!(v1["id"].as_i64().unwrap(), id1);

    // 4. by id: compact canonical text; bare schema endpoints
    let (st, by_id) = s.get(&format!("/schemas/ids/{id1}")).await;
    assert_eq!(st, 200);
    let text = by_id["schema"].as_str().unwrap();
    assert!(!text.contains(' ') && !text.contains('\n'), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        serde_json::from_str::<Value>(V1_COMPACT).unwrap()
    );
    let (st, bare) = s.get(&format!("/schemas/ids/{id1}/schema")).await;
    assert_eq!(
        (st, bare),
        (200, serde_json::from_str::<Value>(text).unwrap())
    );
    let (st, bare) = s.get("/subjects/w-value/versions/2/schema").await;
    assert_eq!(
        (st, bare["fields"][1]["name"].clone()),
        (200, json!("status"))
    );

    // lookup
    let (st, found) = s
        .post("/subjects/w-value", json!({ "schema": V1_PRETTY }))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (found["version"].clone(), found["id"].as_i64().unwrap()),
        (json!(1), id1)
    );
    let (st, e) = s
        .post("/subjects/other-value", json!({ "schema": V2 }))
        .await;
    assert_eq!((st, err_code(&e)), (404, 40403));
    let (st, e) = s.post("/subjects/nope", json!({ "schema": V2 })).await;
    assert_eq!((st, err_code(&e)), (404, 40401));

    // 5. not found / invalid version
    let (st, e) = s.get("/schemas/ids/999").await;
    assert_eq!((st, err_code(&e)), (404, 40403));
    let (st, e) = s.get("/subjects/nope/versions").await;
    assert_eq!((st, err_code(&e)), (404, 40401));
    let (st, e) = s.get("/subjects/w-value/versions/9").await;
    assert_eq!((st, err_code(&e)), (404, 40402));
    for bad in ["abc", "0", "-2"] {
        let (st, e) = s.get(&format!("/subjects/w-value/versions/{bad}")).await;
        assert_eq!((st, err_code(&e)), (422, 42202), "{bad}");
    }

    // 6. garbage → 42201; missing schema → 422; malformed JSON → 400; incompatible → 409
    let (st, e) = s.register("w-value", "this is not avro").await;
    assert_eq!((st, err_code(&e)), (422, 42201));
    let (st, e) = s
        .post("/subjects/w-value/versions", json!({"schemaa": "x"}))
        .await;
    assert_eq!((st, err_code(&e)), (422, 422));
    let r = s
        .http
        .post(format!("{}/subjects/w-value/versions", s.base))
        .header("content-type", VND)
        .body("{\"schema\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(err_code(&r.json::<Value>().await.unwrap()), 400);
    let (st, e) = s.register("w-value", V3_BAD).await;
    assert_eq!((st, err_code(&e)), (409, 409), "{e}");
    assert_eq!(
        s.get("/subjects/w-value/versions").await,
        (200, json!([1, 2]))
    );
    // compatibility endpoint agrees
    let (st, c) = s
        .post(
            "/compatibility/subjects/w-value/versions/latest",
            json!({ "schema": V3_BAD }),
        )
        .await;
    assert_eq!((st, c), (200, json!({"is_compatible": false})));
    let (st, c) = s
        .post(
            "/compatibility/subjects/w-value/versions/1",
            json!({ "schema": V2 }),
        )
        .await;
    assert_eq!((st, c), (200, json!({"is_compatible": true})));

    // 9. content types, unknown path, wrong method, Accept
    let r = s
        .http
        .post(format!("{}/subjects/w-value/versions", s.base))
        .header("content-type", "text/plain")
        .body(json!({ "schema": V2 }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(err_code(&r.json::<Value>().await.unwrap()), 415);
    assert_eq!(
        s.get("/no/such/path").await,
        (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    let (st, e) = s.put("/subjects", json!({})).await;
    assert_eq!((st, err_code(&e)), (405, 405));
    let r = s
        .http
        .get(format!("{}/subjects", s.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
    let r = s
        .http
        .get(format!("{}/subjects", s.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    // body limit
    let big = format!("{{\"schema\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = s
        .http
        .post(format!("{}/subjects/w-value/versions", s.base))
        .header("content-type", VND)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_delete_and_restart() {
    let topic = unique_topic();
    let (_reg, s) = Server::start(&topic).await;

    // 7. config
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        s.put("/config", json!({"compatibility": "none"})).await,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    let (st, e) = s.put("/config", json!({"compatibility": "SIDEWAYS"})).await;
    assert_eq!((st, err_code(&e)), (422, 42203));
    assert_eq!(
        s.get("/config").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    let (st, e) = s.get("/config/s-value").await;
    assert_eq!((st, err_code(&e)), (404, 40408));
    assert_eq!(
        s.put("/config/s-value", json!({"compatibility": "FULL"}))
            .await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        s.get("/config/s-value").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );

    // under FULL (subject level) the non-backward V3 is refused; under global NONE elsewhere accepted
    let (st, a) = s.register("s-value", V2).await;
    assert_eq!(st, 200);
    let id_v2 = a["id"].as_i64().unwrap();
    let (st, e) = s.register("s-value", V3_BAD).await;
    assert_eq!((st, err_code(&e)), (409, 409));
    let (st, _) = s.register("t-value", V2).await;
    assert_eq!(st, 200);
    let (st, b) = s.register("t-value", V3_BAD).await;
    assert_eq!(st, 200, "NONE accepts anything valid: {b}");
    let id_v3 = b["id"].as_i64().unwrap();
    assert_eq!(id_v3, id_v2 + 1);
    assert_eq!(
        s.delete("/config/s-value").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let (st, _) = s.get("/config/s-value").await;
    assert_eq!(st, 404);

    // 8. delete a version, id stays resolvable, re-register → version 2, same id
    assert_eq!(
        s.delete("/subjects/s-value/versions/1").await,
        (200, json!(1))
    );
    let (st, e) = s.get("/subjects/s-value/versions").await;
    assert_eq!((st, err_code(&e)), (404, 40401));
    let (st, _) = s.get(&format!("/schemas/ids/{id_v2}")).await;
    assert_eq!(st, 200);
    let (st, e) = s.delete("/subjects/s-value/versions/1").await;
    assert_eq!(st, 404, "{e}");
    let (st, a) = s.register("s-value", V2).await;
    assert_eq!((st, a["id"].as_i64().unwrap()), (200, id_v2));
    assert_eq!(s.get("/subjects/s-value/versions").await, (200, json!([2])));

    // delete a whole subject
    assert_eq!(s.delete("/subjects/t-value").await, (200, json!([1, 2])));
    let (st, e) = s.get("/subjects/t-value/versions").await;
    assert_eq!((st, err_code(&e)), (404, 40401));
    assert_eq!(s.get("/subjects").await, (200, json!(["s-value"])));

    s.shutdown().await;

    // restart on the same topic: same state, ids continue
    let (_reg2, s2) = Server::start(&topic).await;
    assert_eq!(
        s2.get("/config").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(s2.get("/subjects").await, (200, json!(["s-value"])));
    assert_eq!(
        s2.get("/subjects/s-value/versions").await,
        (200, json!([2]))
    );
    let (_, l) = s2.get("/subjects/s-value/versions/latest").await;
    assert_eq!(
        (l["version"].clone(), l["id"].as_i64().unwrap()),
        (json!(2), id_v2)
    );
    let (st, _) = s2.get(&format!("/schemas/ids/{id_v3}")).await;
    assert_eq!(
        st, 200,
        "deleted subject's schema still resolvable after restart"
    );
    let (st, e) = s2.get("/subjects/t-value/versions").await;
    assert_eq!(
        (st, err_code(&e)),
        (404, 40401),
        "subject delete survives restart"
    );
    // re-registering is idempotent after the restart; a new schema gets max id + 1
    let (_, a) = s2.register("s-value", V2).await;
    assert_eq!(a["id"].as_i64().unwrap(), id_v2);
    assert_eq!(
        s2.get("/subjects/s-value/versions").await,
        (200, json!([2]))
    );
    let (st, n) = s2.register("n-value", "\"string\"").await;
    assert_eq!((st, n["id"].as_i64().unwrap()), (200, id_v3 + 1));
    s2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_error_names_the_address() {
    let topic = unique_topic();
    let reg = EmbeddedRegistry::start(&broker(), &topic).await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (_tx, rx) = watch::channel(false);
    let err = serve(reg, addr, rx).await.unwrap_err().to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
}
