//! Codecs turn record bytes into typed values and back: JSON (serde), Avro with the
//! Confluent Schema Registry framing, and raw bytes.

pub mod avro_json;
mod avro_limits;
pub mod framing;
pub mod raw;
pub mod registry;
pub mod topics;

use std::path::Path;
use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::OnceCell;

pub use framing::{frame, unframe, FramingError};
pub use registry::{RegistryError, SchemaRegistryClient};
pub use topics::{CodecCache, TopicCodecs};

use crate::settings::CodecKind;

/// Bound on what one Avro datum may make the decoder allocate, so that a hostile length
/// prefix cannot take the process down.
const AVRO_MAX_ALLOCATION: usize = 64 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Raw(#[from] raw::RawError),
    #[error("not a schema registry framed record: {0}")]
    Framing(#[from] FramingError),
    #[error("Avro: {0}")]
    Avro(String),
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error(
        "no Avro schema for the {which} of topic {topic}: set topics.\"{topic}\".{which}_schema"
    )]
    MissingSchema { topic: String, which: &'static str },
    #[error("cannot read schema file {path}: {message}")]
    SchemaFile { path: String, message: String },
}

impl CodecError {
    /// A failure of a service rather than of the record: retry, never dead-letter.
    pub fn is_transient(&self) -> bool {
        matches!(self, CodecError::Registry(e) if e.is_transient())
    }
}

/// Key or value side of a record: selects the `<topic>-key` / `<topic>-value` subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }
}

/// A codec bound to one side of one topic.
#[derive(Clone)]
pub enum Codec {
    Json,
    Raw,
    Avro(Arc<AvroCodec>),
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Json => f.write_str("json"),
            Codec::Raw => f.write_str("raw"),
            Codec::Avro(a) => write!(f, "avro({})", a.subject),
        }
    }
}

impl Codec {
    pub fn kind(&self) -> CodecKind {
        match self {
            Codec::Json => CodecKind::Json,
            Codec::Raw => CodecKind::Raw,
            Codec::Avro(_) => CodecKind::Avro,
        }
    }

    /// Decodes a record's key or value; `None` is a null key or a tombstone, which
    /// decodes into `Option::None` (and is an error for a type that cannot be null).
    pub async fn decode<T: DeserializeOwned>(&self, bytes: Option<&[u8]>) -> Result<T, CodecError> {
        match self {
            Codec::Json => Ok(serde_json::from_slice(bytes.unwrap_or(b"null"))?),
            Codec::Raw => Ok(T::deserialize(raw::RawDeserializer(bytes))?),
            Codec::Avro(a) => a.decode(bytes).await,
        }
    }

    pub async fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Json => Ok(serde_json::to_vec(value)?),
            Codec::Raw => Ok(raw::encode_raw(value)?),
            Codec::Avro(a) => a.encode(value).await,
        }
    }
}

/// Avro through the Schema Registry: decodes with the writer's schema looked up by the
/// id in the frame; encodes with the schema configured for the topic, registered once
/// under `<topic>-key` or `<topic>-value`.
pub struct AvroCodec {
    registry: Arc<SchemaRegistryClient>,
    subject: String,
    topic: String,
    part: Part,
    writer: Option<WriterSchema>,
}

struct WriterSchema {
    schema: Schema,
    text: String,
    id: OnceCell<i32>,
}

impl AvroCodec {
    pub fn new(
        registry: Arc<SchemaRegistryClient>,
        topic: &str,
        part: Part,
        writer_schema: Option<&str>,
    ) -> Result<Self, CodecError> {
        apache_avro::util::max_allocation_bytes(AVRO_MAX_ALLOCATION);
        let writer = match writer_schema {
            None => None,
            Some(text) => {
                let schema =
                    Schema::parse_str(text).map_err(|e| CodecError::Avro(e.to_string()))?;
                // The registry stores a compact form; posting compact JSON keeps the
                // request small and the cache key stable across formatting changes.
                let compact = serde_json::from_str::<serde_json::Value>(text)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| text.to_string());
                Some(WriterSchema {
                    schema,
                    text: compact,
                    id: OnceCell::new(),
                })
            }
        };
        Ok(Self {
            registry,
            subject: format!("{topic}-{}", part.as_str()),
            topic: topic.to_string(),
            part,
            writer,
        })
    }

    pub fn from_schema_file(
        registry: Arc<SchemaRegistryClient>,
        topic: &str,
        part: Part,
        path: &Path,
    ) -> Result<Self, CodecError> {
        let text = std::fs::read_to_string(path).map_err(|e| CodecError::SchemaFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::new(registry, topic, part, Some(&text)).map_err(|e| CodecError::SchemaFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The id of the writer schema, registering it on first use.
    pub async fn writer_id(&self) -> Result<i32, CodecError> {
        let w = self
            .writer
            .as_ref()
            .ok_or_else(|| CodecError::MissingSchema {
                topic: self.topic.clone(),
                which: self.part.as_str(),
            })?;
        let id =
            w.id.get_or_try_init(|| self.registry.register(&self.subject, &w.text))
                .await?;
        Ok(*id)
    }

    async fn decode<T: DeserializeOwned>(&self, bytes: Option<&[u8]>) -> Result<T, CodecError> {
        let Some(bytes) = bytes else {
            return apache_avro::from_value(&apache_avro::types::Value::Null)
                .map_err(|e| CodecError::Avro(e.to_string()));
        };
        let (id, mut datum) = unframe(bytes)?;
        let schema = match self.registry.schema(id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                return Err(CodecError::Avro(format!(
                    "schema id {id} is not in the registry at {}",
                    self.registry.url()
                )))
            }
            Err(e) => return Err(e.into()),
        };
        decode_avro_datum(&schema, &mut datum)
            .map_err(|e| CodecError::Avro(format!("record does not match schema {id}: {e}")))
    }

    async fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let id = self.writer_id().await?;
        let schema = &self.writer.as_ref().expect("writer_id checked it").schema;
        let datum = encode_avro_datum(schema, value)?;
        Ok(frame(id, &datum))
    }
}

/// Avro binary encoding of a serde value against `schema`.
pub fn encode_avro_datum<T: Serialize + ?Sized>(
    schema: &Schema,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    // Through JSON so that any serde value (structs, maps, JSON text from the command
    // line) becomes plain Avro values, which `resolve` then fits to the schema's records,
    // unions and number widths. (apache-avro's own serializer turns u64 into `fixed`.)
    let json = serde_json::to_value(value).map_err(|e| CodecError::Avro(e.to_string()))?;
    let v = json_to_avro(json)
        .resolve(schema)
        .map_err(|e| CodecError::Avro(format!("value does not fit the schema: {e}")))?;
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(v))
        .map_err(|e| CodecError::Avro(e.to_string()))
}

fn json_to_avro(v: serde_json::Value) -> apache_avro::types::Value {
    use apache_avro::types::Value as A;
    match v {
        serde_json::Value::Null => A::Null,
        serde_json::Value::Bool(b) => A::Boolean(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => A::Long(i),
            None => A::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => A::String(s),
        serde_json::Value::Array(items) => A::Array(items.into_iter().map(json_to_avro).collect()),
        serde_json::Value::Object(m) => {
            A::Map(m.into_iter().map(|(k, v)| (k, json_to_avro(v))).collect())
        }
    }
}

/// Decodes one Avro binary datum written with `schema`; the whole input must be used.
/// A datum cut short, nested deeper than 128 levels, or holding a `big-decimal` of a
/// scale beyond 1000 is an error (see `avro_limits`).
pub fn decode_avro_datum<T: DeserializeOwned>(
    schema: &Schema,
    datum: &mut &[u8],
) -> Result<T, String> {
    let max_allocation = apache_avro::util::max_allocation_bytes(AVRO_MAX_ALLOCATION);
    let resolved = apache_avro::schema::ResolvedSchema::new(schema).map_err(|e| e.to_string())?;
    let risks = avro_limits::risks(schema, resolved.get_names());
    if risks.deep || risks.zero_width_items {
        avro_limits::check_depth(schema, &resolved, datum, max_allocation)?;
    }
    let reader = GenericDatumReader::builder(schema)
        .build()
        .map_err(|e| e.to_string())?;
    let value = reader
        .read_value(&mut avro_limits::Exact(datum))
        .map_err(|e| e.to_string())?;
    if !datum.is_empty() {
        return Err(format!("{} bytes left over after the datum", datum.len()));
    }
    if risks.big_decimal {
        avro_limits::check_big_decimals(&value)?;
    }
    apache_avro::from_value(&value).map_err(|e| e.to_string())
}

/// Builds the codec for one side of `topic` from the settings of that topic.
pub fn codec_for(
    kind: CodecKind,
    topic: &str,
    part: Part,
    schema_file: Option<&Path>,
    registry: Option<&Arc<SchemaRegistryClient>>,
) -> Result<Codec, CodecError> {
    Ok(match kind {
        CodecKind::Json => Codec::Json,
        CodecKind::Raw => Codec::Raw,
        CodecKind::Avro => {
            let registry = registry.ok_or(CodecError::Registry(RegistryError::NotConfigured))?;
            let avro = match schema_file {
                Some(p) => AvroCodec::from_schema_file(registry.clone(), topic, part, p)?,
                None => AvroCodec::new(registry.clone(), topic, part, None)?,
            };
            Codec::Avro(Arc::new(avro))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Arrival {
        station_id: i32,
        prev_station_id: Option<i32>,
        train_id: String,
    }

    const SCHEMA: &str = r#"{"type":"record","name":"value","namespace":"arrival","fields":[
        {"name":"station_id","type":"int"},
        {"name":"prev_station_id","type":["null","int"]},
        {"name":"train_id","type":"string"}]}"#;

    #[test]
    fn avro_datum_round_trips_through_serde() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let a = Arrival {
            station_id: 40010,
            prev_station_id: None,
            train_id: "BL000".into(),
        };
        let datum = encode_avro_datum(&schema, &a).unwrap();
        let framed = frame(42, &datum);
        let (id, mut rest) = unframe(&framed).unwrap();
        assert_eq!(id, 42);
        let back: Arrival = decode_avro_datum(&schema, &mut rest).unwrap();
        assert_eq!(back, a);
        let mut truncated = &datum[..datum.len() - 1];
        assert!(decode_avro_datum::<Arrival>(&schema, &mut truncated).is_err());
        let mut longer = [datum.as_slice(), &[0]].concat();
        assert!(decode_avro_datum::<Arrival>(&schema, &mut longer.as_slice()).is_err());
        longer.clear();
    }

    #[test]
    fn json_text_and_wide_integers_fit_int_and_union_fields() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let v: serde_json::Value = serde_json::from_str(
            r#"{"station_id": 40380, "prev_station_id": 40490, "train_id": "BL003"}"#,
        )
        .unwrap();
        let datum = encode_avro_datum(&schema, &v).unwrap();
        let back: Arrival = decode_avro_datum(&schema, &mut datum.as_slice()).unwrap();
        assert_eq!(back.station_id, 40380);
        assert_eq!(back.prev_station_id, Some(40490));
        #[derive(Serialize)]
        struct Wide {
            station_id: u64,
            prev_station_id: Option<u64>,
            train_id: String,
        }
        let w = Wide {
            station_id: 7,
            prev_station_id: None,
            train_id: "x".into(),
        };
        let back: Arrival = decode_avro_datum(
            &schema,
            &mut encode_avro_datum(&schema, &w).unwrap().as_slice(),
        )
        .unwrap();
        assert_eq!((back.station_id, back.prev_station_id), (7, None));
    }

    #[test]
    fn avro_value_must_fit_schema() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let e = encode_avro_datum(&schema, &serde_json::json!({"station_id": "x"})).unwrap_err();
        assert!(e.to_string().contains("schema"), "{e}");
    }

    #[tokio::test]
    async fn json_and_raw_decode_and_encode() {
        let v: serde_json::Value = Codec::Json.decode(Some(br#"{"a":1}"#)).await.unwrap();
        assert_eq!(v["a"], 1);
        let none: Option<serde_json::Value> = Codec::Json.decode(None).await.unwrap();
        assert!(none.is_none());
        let bad = Codec::Json
            .decode::<serde_json::Value>(Some(b"{nope"))
            .await;
        assert!(matches!(bad, Err(CodecError::Json(_))));
        assert!(!bad.unwrap_err().is_transient());
        let s: String = Codec::Raw.decode(Some(b"hi")).await.unwrap();
        assert_eq!(s, "hi");
        assert_eq!(
            Codec::Json
                .encode(&serde_json::json!({"a":1}))
                .await
                .unwrap(),
            br#"{"a":1}"#
        );
    }
}
