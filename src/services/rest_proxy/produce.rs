//! `POST /topics/{topic}[/partitions/{p}]` (spec §2.2): every record is converted before
//! anything is sent, so a bad record fails the whole request and nothing is half-written;
//! then all records are produced together and answered in request order.

use std::sync::Arc;

use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backend::ProxyRecord;
use super::errors::ApiError as E;
use super::EmbeddedRestProxy;
use crate::codec::avro_json::from_avro_json;
use crate::codec::framing::frame;

/// The embedded format a request's `Content-Type` selects (spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Binary,
    Json,
    Avro,
}

impl Format {
    /// `None`: not a produce media type this proxy speaks (415).
    pub fn from_content_type(ct: Option<&str>) -> Option<Format> {
        let media = ct?.split(';').next()?.trim().to_ascii_lowercase();
        match media.as_str() {
            "application/vnd.kafka.binary.v2+json" => Some(Format::Binary),
            "application/vnd.kafka.json.v2+json" => Some(Format::Json),
            "application/vnd.kafka.avro.v2+json" => Some(Format::Avro),
            // With no embedded format Confluent's 5.x proxy takes the records as binary.
            "application/vnd.kafka.v2+json"
            | "application/vnd.kafka+json"
            | "application/json"
            | "application/octet-stream" => Some(Format::Binary),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ProduceRequest {
    #[serde(default)]
    records: Vec<ProduceRecord>,
    key_schema: Option<String>,
    key_schema_id: Option<i32>,
    value_schema: Option<String>,
    value_schema_id: Option<i32>,
}

#[derive(Debug, Deserialize)]
struct ProduceRecord {
    #[serde(default)]
    key: Value,
    #[serde(default)]
    value: Value,
    partition: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct ProduceResponse {
    pub key_schema_id: Option<i32>,
    pub value_schema_id: Option<i32>,
    pub offsets: Vec<RecordOffset>,
}

/// One record's outcome; `error_code`/`error` are present (null) on success, as
/// Confluent's entity has no null suppression.
#[derive(Debug, Serialize)]
pub struct RecordOffset {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub error_code: Option<u32>,
    pub error: Option<String>,
}

struct Encoded {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
}

/// Parses the body: broken JSON is 400, a field of the wrong JSON type too (as Jackson's
/// mapping errors are), no records 422.
pub fn parse_request(body: &[u8]) -> Result<ProduceRequest, E> {
    let json: Value = serde_json::from_slice(body).map_err(E::bad_json)?;
    let req: ProduceRequest = serde_path_to_error::deserialize(json).map_err(|e| {
        E::bad_request(format!(
            "Cannot deserialize the request at '{}': {}",
            e.path(),
            e.inner()
        ))
    })?;
    if req.records.is_empty() {
        return Err(E::records_empty());
    }
    Ok(req)
}

/// Produces the request's records to `topic` (the partition endpoint passes `partition`,
/// which overrides the records').
pub async fn produce(
    proxy: &Arc<EmbeddedRestProxy>,
    topic: &str,
    partition: Option<i32>,
    format: Format,
    req: ProduceRequest,
) -> Result<ProduceResponse, E> {
    if !proxy.auto_create || partition.is_some() {
        let meta = proxy.topic(topic).await?;
        if let Some(p) = partition {
            if !meta.partitions.iter().any(|m| m.partition == p) {
                return Err(E::partition_not_found());
            }
        }
    }
    let (records, key_schema_id, value_schema_id) = match format {
        Format::Binary => (encode_plain(&req, partition, binary)?, None, None),
        Format::Json => (encode_plain(&req, partition, json)?, None, None),
        Format::Avro => encode_avro(proxy, topic, partition, &req).await?,
    };
    let records: Vec<ProxyRecord> = records
        .into_iter()
        .map(|r| ProxyRecord {
            key: r.key,
            value: r.value,
            partition: r.partition,
        })
        .collect();
    let offsets = proxy
        .backend
        .produce(topic, &records)
        .await
        .into_iter()
        .map(|res| match res {
            Ok((partition, offset)) => RecordOffset {
                partition: Some(partition),
                offset: Some(offset),
                error_code: None,
                error: None,
            },
            Err(e) => {
                tracing::warn!(topic, error = %e.message, "rest proxy: a record was not produced");
                RecordOffset {
                    partition: None,
                    offset: None,
                    error_code: Some(if e.retriable { 50003 } else { 50002 }),
                    error: Some(e.message),
                }
            }
        })
        .collect();
    Ok(ProduceResponse {
        key_schema_id,
        value_schema_id,
        offsets,
    })
}

type PartEncoder = fn(&Value, &str) -> Result<Option<Vec<u8>>, E>;

fn encode_plain(
    req: &ProduceRequest,
    partition: Option<i32>,
    encode: PartEncoder,
) -> Result<Vec<Encoded>, E> {
    req.records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(Encoded {
                key: encode(&r.key, &format!("records[{i}].key"))?,
                value: encode(&r.value, &format!("records[{i}].value"))?,
                partition: partition.or(r.partition),
            })
        })
        .collect()
}

/// Binary format: base64 strings, written as the bytes they encode.
fn binary(v: &Value, at: &str) -> Result<Option<Vec<u8>>, E> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| E::bad_request(format!("{at}: not valid base64: {e}"))),
        other => Err(E::bad_request(format!(
            "{at}: binary data must be a base64 string, got {other}"
        ))),
    }
}

/// JSON format: any JSON, written as its text.
fn json(v: &Value, _at: &str) -> Result<Option<Vec<u8>>, E> {
    match v {
        Value::Null => Ok(None),
        other => Ok(Some(other.to_string().into_bytes())),
    }
}

async fn encode_avro(
    proxy: &Arc<EmbeddedRestProxy>,
    topic: &str,
    partition: Option<i32>,
    req: &ProduceRequest,
) -> Result<(Vec<Encoded>, Option<i32>, Option<i32>), E> {
    let has_keys = req.records.iter().any(|r| !r.key.is_null());
    let has_values = req.records.iter().any(|r| !r.value.is_null());
    if has_keys && req.key_schema.is_none() && req.key_schema_id.is_none() {
        return Err(E::key_schema_missing());
    }
    if has_values && req.value_schema.is_none() && req.value_schema_id.is_none() {
        return Err(E::value_schema_missing());
    }
    let key = writer_schema(proxy, topic, "key", req.key_schema_id, &req.key_schema).await?;
    let value = writer_schema(
        proxy,
        topic,
        "value",
        req.value_schema_id,
        &req.value_schema,
    )
    .await?;
    let encode = |schema: &Option<(i32, Arc<Schema>)>, v: &Value| -> Result<Option<Vec<u8>>, E> {
        match (schema, v) {
            (_, Value::Null) | (None, _) => Ok(None),
            (Some((id, schema)), v) => {
                let datum = from_avro_json(schema, v).map_err(E::conversion_failed)?;
                let bytes = GenericDatumWriter::builder(schema)
                    .build()
                    .and_then(|w| w.write_value_to_vec(datum))
                    .map_err(E::conversion_failed)?;
                Ok(Some(frame(*id, &bytes)))
            }
        }
    };
    let records = req
        .records
        .iter()
        .map(|r| {
            Ok(Encoded {
                key: encode(&key, &r.key)?,
                value: encode(&value, &r.value)?,
                partition: partition.or(r.partition),
            })
        })
        .collect::<Result<Vec<_>, E>>()?;
    Ok((records, key.map(|(id, _)| id), value.map(|(id, _)| id)))
}

/// The writer schema of one part: looked up by id (which takes precedence), or parsed and
/// registered under `<topic>-<part>` (TopicNameStrategy).
async fn writer_schema(
    proxy: &Arc<EmbeddedRestProxy>,
    topic: &str,
    part: &str,
    id: Option<i32>,
    text: &Option<String>,
) -> Result<Option<(i32, Arc<Schema>)>, E> {
    let registry = || {
        proxy.registry.clone().ok_or_else(|| {
            E::schema_registry_failed("no schema registry is configured (services.schema_registry)")
        })
    };
    if let Some(id) = id {
        let schema = registry()?
            .schema(id)
            .await
            .map_err(E::schema_registry_failed)?;
        return Ok(Some((id, schema)));
    }
    let Some(text) = text else { return Ok(None) };
    let schema = Schema::parse_str(text).map_err(E::invalid_record_schema)?;
    // The registry keeps a canonical form; posting compact JSON keeps the request small.
    let compact = serde_json::from_str::<Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.clone());
    let id = registry()?
        .register(&format!("{topic}-{part}"), &compact)
        .await
        .map_err(E::schema_registry_failed)?;
    Ok(Some((id, Arc::new(schema))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_select_the_embedded_format() {
        let f = |ct| Format::from_content_type(Some(ct));
        assert_eq!(f("application/vnd.kafka.avro.v2+json"), Some(Format::Avro));
        assert_eq!(
            f("application/vnd.kafka.json.v2+json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(
            f("application/vnd.kafka.binary.v2+json"),
            Some(Format::Binary)
        );
        assert_eq!(f("application/json"), Some(Format::Binary));
        assert_eq!(f("application/vnd.kafka.protobuf.v2+json"), None);
        assert_eq!(f("text/plain"), None);
        assert_eq!(Format::from_content_type(None), None);
    }

    #[test]
    fn bodies_are_checked_before_anything_is_sent() {
        assert_eq!(parse_request(b"{").unwrap_err().status, 400);
        assert_eq!(
            parse_request(br#"{"records":[]}"#).unwrap_err().error_code,
            422
        );
        assert_eq!(parse_request(br#"{}"#).unwrap_err().error_code, 422);
        let e = parse_request(br#"{"records":{"value":1}}"#).unwrap_err();
        assert_eq!(e.status, 400, "{}", e.message);
        let ok = parse_request(br#"{"records":[{"value":"eA=="},{"key":null}]}"#).unwrap();
        assert_eq!(ok.records.len(), 2);
    }

    #[test]
    fn binary_values_are_base64_and_json_values_their_text() {
        assert_eq!(
            binary(&Value::String("Y29uZmx1ZW50".into()), "v").unwrap(),
            Some(b"confluent".to_vec())
        );
        assert_eq!(binary(&Value::Null, "v").unwrap(), None);
        assert_eq!(
            binary(&Value::String("***".into()), "v")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(binary(&serde_json::json!(5), "v").unwrap_err().status, 400);
        assert_eq!(
            json(&serde_json::json!({"a": [1, "x"]}), "v").unwrap(),
            Some(br#"{"a":[1,"x"]}"#.to_vec())
        );
    }
}
