//! Hostile input: properties (proptest) that what an untrusted producer or HTTP client can
//! send — Confluent-framed Avro, JSON records, Avro JSON, REST Proxy and Schema Registry
//! requests, table keys in debug URLs — never panics, hangs or allocates without bound,
//! and that oversized bodies and records are refused with a clear error.
//!
//! The HTTP properties drive the real servers over TCP (raw HTTP/1.1, so that any method,
//! path, header and body framing can be sent) against the real broker, like the other
//! integration tests. Each property runs a modest number of cases by default (the whole
//! file takes well under a minute); `PROPTEST_CASES` raises every one of them:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release --test hostile_input
//! ```

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, Name, ResolvedSchema, UuidSchema};
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use common::{broker, create_topic, unique};
use cta_stream::agent::{AgentContext, AgentFn, AgentRegistry, AgentResult};
use cta_stream::codec::avro_json::from_avro_json;
use cta_stream::codec::{
    decode_avro_datum, frame, unframe, AvroCodec, Codec, CodecError, FramingError, Part,
    SchemaRegistryClient,
};
use cta_stream::services::rest_proxy::{serve as serve_proxy, EmbeddedRestProxy};
use cta_stream::services::schema_registry::{serve as serve_registry, EmbeddedRegistry};
use cta_stream::stream::Stream;
use cta_stream::table::TableDecl;
use cta_stream::{App, Settings};
use proptest::prelude::*;
use proptest::sample::Index;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

cta_stream::register_table!(Words = "words", String => u64);
cta_stream::register_table!(Ids = "ids", i64 => Json);
cta_stream::register_table!(Pairs = "pairs", Pair => String);
cta_stream::register_table!(RawWords = "raw_words", String => String);

// ------------------------------------------------------------------ allocations ---

/// Counts the bytes each thread has allocated and not freed, and the peak of that, so
/// that a decoder run on the test's thread can be held to a memory bound.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it held allocated at once.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    (out, peak.max(0) as usize)
}

/// The bound apache-avro holds one allocation to, as the runtime's codecs set it
/// (they set it once, process-wide, when the first Avro codec is made).
fn avro_max_allocation() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let registry = Arc::new(SchemaRegistryClient::new("http://127.0.0.1:9").unwrap());
        AvroCodec::new(registry, "t", Part::Value, None).unwrap();
        apache_avro::util::max_allocation_bytes(usize::MAX)
    })
}

/// What decoding `len` bytes may hold at once: a few of the reader's bounded allocations
/// (a collection's items, a string's bytes) per level of collections in the schema, and
/// a proportion of the input for what the input itself describes.
fn memory_bound(collection_levels: usize, len: usize) -> usize {
    (collection_levels + 2) * 2 * avro_max_allocation() + 4096 * len
}

// ---------------------------------------------------------------------- config ---

/// `default_cases` unless `PROPTEST_CASES` says otherwise; no regression files.
fn cases(default_cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = default_cases;
    }
    c.failure_persistence = None;
    c.max_shrink_iters = 512;
    c
}

// ------------------------------------------------------------------ Avro schemas ---

const ARRIVAL: &str = include_str!("../schemas/arrival_value.json");
const WEATHER: &str = include_str!("../schemas/weather_value.json");

const KITCHEN_SINK: &str = r#"{"type":"record","name":"sink","namespace":"org.test","fields":[
  {"name":"n","type":"null"},
  {"name":"b","type":"boolean"},
  {"name":"i","type":"int"},
  {"name":"l","type":"long"},
  {"name":"f","type":"float"},
  {"name":"d","type":"double"},
  {"name":"by","type":"bytes"},
  {"name":"s","type":"string"},
  {"name":"e","type":{"type":"enum","name":"colour","symbols":["red","green","blue"]}},
  {"name":"fx","type":{"type":"fixed","name":"four","size":4}},
  {"name":"a","type":{"type":"array","items":"long"}},
  {"name":"m","type":{"type":"map","values":"string"}},
  {"name":"u","type":["null","string","long",{"type":"record","name":"inner","fields":[{"name":"x","type":"int"}]}]},
  {"name":"recs","type":{"type":"array","items":"inner"}},
  {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
  {"name":"decf","type":{"type":"fixed","name":"decfix","size":6,"logicalType":"decimal","precision":12,"scale":3}},
  {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
  {"name":"date","type":{"type":"int","logicalType":"date"}},
  {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
  {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
  {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
  {"name":"dur","type":{"type":"fixed","name":"twelve","size":12,"logicalType":"duration"}},
  {"name":"big","type":{"type":"bytes","logicalType":"big-decimal"}},
  {"name":"opt","type":["null","colour"],"default":null}
]}"#;

const LIST: &str = r#"{"type":"record","name":"node","namespace":"org.test","fields":[
  {"name":"value","type":"long"},
  {"name":"next","type":["null","node"],"default":null}]}"#;

const TREE: &str = r#"{"type":"record","name":"tree","fields":[
  {"name":"label","type":"string"},
  {"name":"kids","type":{"type":"array","items":"tree"}},
  {"name":"attrs","type":{"type":"map","values":["null","tree"]}}]}"#;

const TOP_UNION: &str = r#"["null","long","string",
  {"type":"array","items":"double"},
  {"type":"map","values":"boolean"},
  {"type":"record","name":"a.point","fields":[{"name":"x","type":"float"},{"name":"y","type":"float"}]},
  {"type":"enum","name":"b.suit","symbols":["spades","hearts"]},
  {"type":"fixed","name":"c.pair","size":2}]"#;

const NESTED: &str = r#"{"type":"array","items":{"type":"map","values":{"type":"array","items":
  {"type":"record","name":"leaf","fields":[{"name":"tags","type":{"type":"array","items":"string"}}]}}}}"#;

/// Record types that use the one before twice: 2^9 paths through a schema of 10 types.
fn dag_schema() -> String {
    let mut text =
        r#"{"type":"record","name":"t0","fields":[{"name":"x","type":"int"}]}"#.to_string();
    for i in 1..10 {
        text = format!(
            r#"{{"type":"record","name":"t{i}","fields":[{{"name":"a","type":{text}}},{{"name":"b","type":"t{}"}}]}}"#,
            i - 1
        );
    }
    text
}

/// The schemas the Avro properties use, with how deeply collections nest in them
/// (recursive ones: `None`, no memory bound is asserted).
fn schemas() -> &'static [(&'static str, Schema, Option<usize>)] {
    static ALL: LazyLock<Vec<(&'static str, Schema, Option<usize>)>> = LazyLock::new(|| {
        let dag: &'static str = Box::leak(dag_schema().into_boxed_str());
        [
            ("arrival", ARRIVAL, Some(0)),
            ("weather", WEATHER, Some(0)),
            ("kitchen sink", KITCHEN_SINK, Some(1)),
            ("list", LIST, None),
            ("tree", TREE, None),
            ("top union", TOP_UNION, Some(1)),
            ("nested", NESTED, Some(4)),
            ("dag", dag, Some(0)),
            ("string", r#""string""#, Some(0)),
            ("bytes", r#""bytes""#, Some(0)),
            ("long", r#""long""#, Some(0)),
            ("map of longs", r#"{"type":"map","values":"long"}"#, Some(1)),
        ]
        .into_iter()
        .map(|(name, text, levels)| {
            let schema = Schema::parse_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, schema, levels)
        })
        .collect()
    });
    &ALL
}

fn any_schema() -> impl Strategy<Value = usize> {
    0..schemas().len()
}

// ------------------------------------------------------- JSON values for a schema ---

/// Named types of a schema by full name, owned (strategies are `'static`).
type Names = Arc<HashMap<String, Schema>>;

fn names_of(schema: &Schema) -> Names {
    let resolved = ResolvedSchema::new(schema).unwrap();
    Arc::new(
        resolved
            .get_names()
            .iter()
            .map(|(n, s)| (n.to_string(), (*s).clone()))
            .collect(),
    )
}

/// A string of characters U+0000..U+00FF: how Avro's JSON writes bytes.
fn latin1(len: impl Into<proptest::collection::SizeRange>) -> BoxedStrategy<Json> {
    prop::collection::vec(any::<u8>(), len)
        .prop_map(|b| Json::String(b.into_iter().map(char::from).collect()))
        .boxed()
}

fn label(schema: &Schema, ns: Option<&str>) -> String {
    let named = |n: &Name| n.fully_qualified_name(ns).to_string();
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes
        | Schema::BigDecimal
        | Schema::Uuid(UuidSchema::Bytes)
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => "bytes".into(),
        Schema::String | Schema::Uuid(UuidSchema::String) => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(r) => named(&r.name),
        Schema::Enum(e) => named(&e.name),
        Schema::Fixed(f)
        | Schema::Duration(f)
        | Schema::Uuid(UuidSchema::Fixed(f))
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) => named(&f.name),
        Schema::Ref { name } => named(name),
    }
}

/// Avro JSON that fits `schema` (generation stops nesting past a few levels).
fn valid_json(schema: &Schema, names: &Names, ns: Option<&str>, depth: u32) -> BoxedStrategy<Json> {
    const DEEP: u32 = 5;
    let finite_f64 = any::<f64>().prop_filter("finite", |f| f.is_finite());
    match schema {
        Schema::Null => Just(Json::Null).boxed(),
        Schema::Boolean => any::<bool>().prop_map(Json::from).boxed(),
        Schema::Int | Schema::Date | Schema::TimeMillis => {
            any::<i32>().prop_map(Json::from).boxed()
        }
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => any::<i64>().prop_map(Json::from).boxed(),
        Schema::Float => prop_oneof![
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            Just(json!("NaN")),
            Just(json!("-Infinity")),
        ]
        .boxed(),
        Schema::Double => {
            prop_oneof![finite_f64.prop_map(|f| json!(f)), Just(json!("Infinity"))].boxed()
        }
        Schema::Bytes => latin1(0..12),
        Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => latin1(1..5),
        Schema::BigDecimal => (any::<i64>(), -50i64..50)
            .prop_map(|(unscaled, scale)| {
                let mut b = Vec::new();
                zigzag(8, &mut b);
                b.extend_from_slice(&unscaled.to_be_bytes());
                zigzag(scale, &mut b);
                Json::String(b.into_iter().map(char::from).collect())
            })
            .boxed(),
        Schema::String => any::<String>().prop_map(Json::from).boxed(),
        Schema::Uuid(UuidSchema::String) => any::<u128>().prop_map(|u| json!(uuid_text(u))).boxed(),
        Schema::Uuid(UuidSchema::Bytes) => latin1(16),
        Schema::Fixed(f)
        | Schema::Duration(f)
        | Schema::Uuid(UuidSchema::Fixed(f))
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) => latin1(f.size),
        Schema::Enum(e) => prop::sample::select(e.symbols.clone())
            .prop_map(Json::from)
            .boxed(),
        Schema::Array(a) if depth < DEEP => {
            prop::collection::vec(valid_json(&a.items, names, ns, depth + 1), 0..4)
                .prop_map(Json::Array)
                .boxed()
        }
        Schema::Array(_) => Just(json!([])).boxed(),
        Schema::Map(m) if depth < DEEP => prop::collection::btree_map(
            "\\PC{0,6}",
            valid_json(&m.types, names, ns, depth + 1),
            0..4,
        )
        .prop_map(|m| Json::Object(m.into_iter().collect()))
        .boxed(),
        Schema::Map(_) => Just(json!({})).boxed(),
        Schema::Union(u) => {
            let branches: Vec<BoxedStrategy<Json>> = u
                .variants()
                .iter()
                .filter(|v| depth < DEEP || matches!(v, Schema::Null))
                .map(|v| match v {
                    Schema::Null => Just(Json::Null).boxed(),
                    v => {
                        let key = label(v, ns);
                        valid_json(v, names, ns, depth + 1)
                            .prop_map(move |j| json!({ key.clone(): j }))
                            .boxed()
                    }
                })
                .collect();
            if branches.is_empty() {
                return valid_json(&u.variants()[0], names, ns, depth + 1);
            }
            prop::strategy::Union::new(branches).boxed()
        }
        Schema::Record(r) => {
            let inner_ns: Option<String> = r
                .name
                .fully_qualified_name(ns)
                .namespace()
                .map(str::to_string);
            let fields: Vec<BoxedStrategy<(String, Option<Json>)>> = r
                .fields
                .iter()
                .map(|f| {
                    let name = f.name.clone();
                    let value = valid_json(&f.schema, names, inner_ns.as_deref(), depth + 1);
                    if f.default.is_some() {
                        (any::<bool>(), value)
                            .prop_map(move |(omit, v)| (name.clone(), (!omit).then_some(v)))
                            .boxed()
                    } else {
                        value.prop_map(move |v| (name.clone(), Some(v))).boxed()
                    }
                })
                .collect();
            fields
                .prop_map(|fs| {
                    Json::Object(
                        fs.into_iter()
                            .filter_map(|(k, v)| v.map(|v| (k, v)))
                            .collect(),
                    )
                })
                .boxed()
        }
        Schema::Ref { name } => {
            let full = name.fully_qualified_name(ns);
            let resolved = names
                .get(&full.to_string())
                .unwrap_or_else(|| panic!("undefined {full}"))
                .clone();
            let ns = full.namespace().map(str::to_string);
            valid_json(&resolved, names, ns.as_deref(), depth)
        }
    }
}

fn uuid_text(u: u128) -> String {
    let h = format!("{u:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A zig-zag varint, as Avro writes ints and longs.
fn zigzag(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Any JSON: every kind of number and string, nested a few levels.
fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Json::Number)),
        prop_oneof![Just(1e308), Just(-0.0), Just(3.4e38), Just(1.5)].prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Json::from),
        prop::sample::select(vec![
            "NaN", "Infinity", "", "null", "red", "long", "string", "node"
        ])
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "\\PC{0,8}",
                    prop::sample::select(vec![
                        "null",
                        "long",
                        "string",
                        "node",
                        "org.test.node",
                        "value",
                        "next",
                        "x",
                        "inner",
                        "array",
                        "map"
                    ])
                    .prop_map(str::to_string)
                ],
                inner,
                0..5
            )
            .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// `json` with the node at `at` (pre-order) replaced by `with`.
fn replace_node(json: &mut Json, at: &mut usize, with: &Json) -> bool {
    if *at == 0 {
        *json = with.clone();
        return true;
    }
    *at -= 1;
    match json {
        Json::Array(items) => items.iter_mut().any(|i| replace_node(i, at, with)),
        Json::Object(m) => m.values_mut().any(|v| replace_node(v, at, with)),
        _ => false,
    }
}

fn count_nodes(json: &Json) -> usize {
    1 + match json {
        Json::Array(items) => items.iter().map(count_nodes).sum(),
        Json::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// A schema of the set and JSON that fits it.
fn schema_and_valid_json() -> impl Strategy<Value = (usize, Json)> {
    any_schema().prop_flat_map(|i| {
        let schema = &schemas()[i].1;
        (Just(i), valid_json(schema, &names_of(schema), None, 0))
    })
}

fn encode(schema: &Schema, value: apache_avro::types::Value) -> Vec<u8> {
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .unwrap_or_else(|e| panic!("a converted value must encode: {e}"))
}

// ------------------------------------------------------------- Avro properties ---

proptest! {
    #![proptest_config(cases(1024))]

    /// The framing decoder takes any bytes: a record is framed iff it has the 5-byte
    /// header with magic 0, and framing round-trips.
    #[test]
    fn framing_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64), id in any::<i32>()) {
        match unframe(&bytes) {
            Ok((got, rest)) => {
                prop_assert!(bytes.len() >= 5 && bytes[0] == 0);
                prop_assert_eq!(got, i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
                prop_assert_eq!(rest, &bytes[5..]);
            }
            Err(FramingError::TooShort(n)) => prop_assert!(n == bytes.len() && n < 5),
            Err(FramingError::BadMagic(m)) => prop_assert!(m != 0 && m == bytes[0]),
        }
        let framed = frame(id, &bytes);
        prop_assert_eq!(unframe(&framed), Ok((id, &bytes[..])));
    }

    /// Any bytes as a datum of any schema: a value or an error, never a panic, and no
    /// more memory than a few of apache-avro's bounded allocations.
    #[test]
    fn avro_datum_of_any_bytes(i in any_schema(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let (name, schema, levels) = &schemas()[i];
        let (result, peak) = peak_allocation(|| {
            decode_avro_datum::<Json>(schema, &mut bytes.as_slice()).map(|_| ())
        });
        if let Err(e) = &result {
            prop_assert!(!e.is_empty());
        }
        if let Some(levels) = levels {
            prop_assert!(peak <= memory_bound(*levels, bytes.len()), "{name}: {peak} bytes for {} input bytes", bytes.len());
        }
    }

    /// Valid datums decode; cut short, they are an error; with a byte changed, a value
    /// or an error within the memory bound; with a length or count that claims to be
    /// huge spliced in anywhere, the same.
    #[test]
    fn avro_datum_corrupted(
        (i, json) in schema_and_valid_json(),
        cut in any::<Index>(),
        flip in any::<(Index, u8)>(),
        huge in prop::sample::select(vec![i64::MAX, i64::MIN, -1, 1 << 40, 1 << 31, 64 << 20, 1_000_000, -1_000_000]),
        at in any::<Index>(),
    ) {
        let (name, schema, levels) = &schemas()[i];
        let value = from_avro_json(schema, &json)
            .map_err(|e| TestCaseError::fail(format!("{name}: valid JSON {json} refused: {e}")))?;
        let datum = encode(schema, value);
        decode_avro_datum::<IgnoredAny>(schema, &mut datum.as_slice())
            .map_err(|e| TestCaseError::fail(format!("{name}: {json} does not decode: {e}")))?;
        if !datum.is_empty() {
            let short = &datum[..cut.index(datum.len())];
            let r = decode_avro_datum::<IgnoredAny>(schema, &mut &short[..]);
            prop_assert!(r.is_err(), "{name}: {} of {} bytes decoded as {:?}", short.len(), datum.len(), r);
        }
        let mut flipped = datum.clone();
        if !flipped.is_empty() {
            let k = flip.0.index(flipped.len());
            flipped[k] ^= flip.1.max(1);
        }
        let mut spliced = datum.clone();
        let mut varint = Vec::new();
        zigzag(huge, &mut varint);
        let k = at.index(spliced.len() + 1);
        spliced.splice(k..k, varint);
        for bad in [flipped, spliced] {
            let (_, peak) = peak_allocation(|| decode_avro_datum::<Json>(schema, &mut bad.as_slice()).map(|_| ()));
            if let Some(levels) = levels {
                prop_assert!(peak <= memory_bound(*levels, bad.len()), "{name}: {peak} bytes for {bad:?}");
            }
        }
    }
}

/// Lengths and counts that claim gigabytes, in a few bytes: refused with an error, the
/// allocation held to apache-avro's bound.
#[test]
fn avro_huge_lengths_are_refused_without_allocating_them() {
    let limit = avro_max_allocation();
    assert_eq!(
        limit,
        64 << 20,
        "the runtime's codecs bound Avro allocations"
    );
    for (schema, claim) in [
        (r#""string""#, 1i64 << 40),
        (r#""bytes""#, i64::MAX),
        (r#""bytes""#, -5),
        (r#"{"type":"array","items":"long"}"#, 1 << 40),
        (r#"{"type":"array","items":"long"}"#, -(1 << 40)),
        (r#"{"type":"map","values":"long"}"#, 1 << 40),
        (r#"{"type":"bytes","logicalType":"big-decimal"}"#, 1 << 33),
        (LIST, 1 << 40),
    ] {
        let schema = Schema::parse_str(schema).unwrap();
        let mut datum = Vec::new();
        zigzag(claim, &mut datum);
        let (r, peak) =
            peak_allocation(|| decode_avro_datum::<Json>(&schema, &mut datum.as_slice()));
        let e = r.expect_err("a claim of more than the input holds");
        assert!(!e.is_empty());
        assert!(peak <= 2 * limit, "{claim}: {peak} bytes");
    }
}

/// The reader recursed once per level of a recursive schema, so that a record of a few
/// hundred bytes overflowed the stack (and aborted the process): now refused.
#[test]
fn avro_deep_recursive_datum_is_an_error_not_a_stack_overflow() {
    let list = Schema::parse_str(LIST).unwrap();
    for depth in [200usize, 10_000, 1_000_000] {
        // value 0, then the `node` branch of `next`, `depth` times; then null
        let mut datum = [0u8, 2].repeat(depth);
        datum.extend_from_slice(&[0, 0]);
        let e = decode_avro_datum::<Json>(&list, &mut datum.as_slice()).unwrap_err();
        assert!(e.contains("128 levels"), "{e}");
    }
    let tree = Schema::parse_str(TREE).unwrap();
    // label "", one kid, ... 100 000 times
    let datum = [0u8, 2].repeat(100_000);
    let e = decode_avro_datum::<Json>(&tree, &mut datum.as_slice()).unwrap_err();
    assert!(e.contains("128 levels"), "{e}");
}

/// Arrays of values that take no bytes (null, a record without fields, a fixed of size
/// 0) let each array of a few bytes make apache-avro build up to its allocation bound
/// (64 MiB) of values, and that bound is per array: 22 bytes made 512 MiB. The datum is
/// now checked first against one bound for the whole record.
#[test]
fn avro_zero_width_items_amplify_memory() {
    let schema =
        Schema::parse_str(r#"{"type":"array","items":{"type":"array","items":"null"}}"#).unwrap();
    let per_array = avro_max_allocation() / std::mem::size_of::<apache_avro::types::Value>();
    // 4 arrays held 512 MiB, right at the bound below: 16 (70 bytes) would hold 2 GiB.
    let inner_arrays = 16;
    let mut datum = Vec::new();
    zigzag(inner_arrays, &mut datum);
    for _ in 0..inner_arrays {
        zigzag(per_array as i64, &mut datum);
        datum.push(0);
    }
    datum.push(0);
    let (_, peak) =
        peak_allocation(|| decode_avro_datum::<Json>(&schema, &mut datum.as_slice()).map(|_| ()));
    assert!(
        peak <= memory_bound(2, datum.len()),
        "{} input bytes held {} MiB at once",
        datum.len(),
        peak >> 20
    );
}

// ------------------------------------------------------------- JSON properties ---

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Arrival {
    station_id: i32,
    train_id: String,
    prev_station_id: Option<i32>,
    stops: Vec<BTreeMap<String, f64>>,
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    rt().block_on(f)
}

proptest! {
    #![proptest_config(cases(1024))]

    /// The runtime's JSON and raw codecs: any bytes decode to a value or a typed error.
    #[test]
    fn json_and_raw_codecs_take_any_bytes(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        arb_json().prop_map(|j| j.to_string().into_bytes()),
    ]) {
        let (any, typed, text, raw_text, raw_bytes) = run(async {
            (
                Codec::Json.decode::<Json>(Some(&bytes)).await,
                Codec::Json.decode::<Option<Arrival>>(Some(&bytes)).await,
                Codec::Json.decode::<String>(Some(&bytes)).await,
                Codec::Raw.decode::<String>(Some(&bytes)).await,
                Codec::Raw.decode::<Option<Vec<u8>>>(Some(&bytes)).await,
            )
        });
        for e in [any.err(), typed.err(), text.err()].into_iter().flatten() {
            prop_assert!(matches!(e, CodecError::Json(_)), "{e:?}");
        }
        prop_assert_eq!(raw_text.is_ok(), std::str::from_utf8(&bytes).is_ok());
        prop_assert_eq!(raw_bytes.unwrap(), Some(bytes.clone()));
    }

    /// Avro's JSON encoding, any JSON against each schema: a value that encodes, or an
    /// error that says where.
    #[test]
    fn avro_json_takes_any_json(i in any_schema(), json in arb_json()) {
        let (name, schema, _) = &schemas()[i];
        match from_avro_json(schema, &json) {
            Ok(v) => {
                let datum = encode(schema, v);
                let back = decode_avro_datum::<IgnoredAny>(schema, &mut datum.as_slice());
                prop_assert!(back.is_ok(), "{name}: {json} encodes to {datum:?}, which does not decode: {back:?}");
            }
            Err(e) => prop_assert!(e.to_string().starts_with("at "), "{name}: {e}"),
        }
    }

    /// Valid Avro JSON with one node replaced by any JSON (a wrong type, a missing
    /// branch wrapper, an unknown symbol, ...): a value that encodes, or an error.
    #[test]
    fn avro_json_near_valid((i, json) in schema_and_valid_json(), at in any::<Index>(), with in arb_json()) {
        let (name, schema, _) = &schemas()[i];
        if let Err(e) = from_avro_json(schema, &json) {
            prop_assert!(false, "{name}: valid JSON {json} refused: {e}");
        }
        let mut bad = json.clone();
        replace_node(&mut bad, &mut at.index(count_nodes(&json)), &with);
        if let Ok(v) = from_avro_json(schema, &bad) {
            let datum = encode(schema, v);
            prop_assert!(decode_avro_datum::<IgnoredAny>(schema, &mut datum.as_slice()).is_ok(), "{name}: {bad}");
        }
    }
}

/// JSON nested far deeper than anything legitimate: refused by the JSON codec (serde_json
/// stops at 128 levels) and by the Avro JSON converter (also 128), never a stack overflow.
#[test]
fn deep_json_is_refused() {
    for depth in [200usize, 100_000] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let r = run(Codec::Json.decode::<Json>(Some(text.as_bytes())));
            assert!(
                matches!(&r, Err(CodecError::Json(e)) if e.to_string().contains("recursion limit")),
                "{r:?}"
            );
        }
    }
    // Built in memory, a JSON value can be deeper than any parsed one; dropping one this
    // deep recurses too, so it is built and dropped on a thread with room for that.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let list = Schema::parse_str(LIST).unwrap();
            let mut json = json!({"value": 1});
            for i in 0..20_000 {
                // (moved in, not through `json!`, which would copy the whole list)
                let mut branch = serde_json::Map::new();
                branch.insert("org.test.node".into(), json);
                let mut node = serde_json::Map::new();
                node.insert("value".into(), json!(i));
                node.insert("next".into(), Json::Object(branch));
                json = Json::Object(node);
            }
            let e = from_avro_json(&list, &json).unwrap_err();
            assert!(e.to_string().contains("nested more than 128 levels"), "{e}");
        })
        .unwrap()
        .join()
        .unwrap();
}

// ------------------------------------------------------------------ the services ---

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    &RT
}

/// A Schema Registry, a REST Proxy (with a registry of its own) and a worker with tables,
/// all in this process, on the real broker, for the whole test binary.
struct Services {
    proxy: SocketAddr,
    registry: SocketAddr,
    web: SocketAddr,
    /// A topic of the proxy's broker (1 partition) that produce requests may write to.
    topic: String,
    tables: BTreeMap<&'static str, Vec<(Json, Json)>>,
    _stop: watch::Sender<bool>,
    _state: tempfile::TempDir,
}

fn services() -> &'static Services {
    static S: OnceLock<Services> = OnceLock::new();
    S.get_or_init(|| run(Services::start()))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    line: String,
    run: u32,
}

/// Keys with everything a URL can get wrong.
fn tricky_strings() -> Vec<String> {
    [
        "plain",
        "",
        " ",
        "a/b",
        "/",
        "100%",
        "%41",
        "%zz",
        "a?b=c",
        "a#b",
        "a&b",
        "tab\tkey",
        "line\nbreak",
        "é",
        "日本",
        "😀",
        "null",
        "123",
        "-1",
        "[1]",
        "{}",
        "true",
        "..",
        ".",
        "a+b",
        "\\",
        "\u{0}",
        "\u{7f}",
        "key with spaces",
        "\"quoted\"",
        "quoted",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

async fn keep(_ctx: AgentContext, mut events: Stream<Json>) -> AgentResult {
    while let Some(_e) = events.next().await? {}
    Ok(())
}

impl Services {
    async fn start() -> Services {
        let addr = broker();
        assert!(
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
                .is_ok(),
            "no Kafka broker at {addr}: start the local stack with `scripts/stack up`"
        );
        let app = unique("hostile");
        let (stop, shutdown) = watch::channel(false);

        // The registry under test, and the proxy with a registry of its own.
        let registry = free_addr();
        let reg = EmbeddedRegistry::start(&addr, &format!("_schemas-{app}"))
            .await
            .unwrap();
        serve_registry(reg, registry, shutdown.clone())
            .await
            .unwrap();
        let proxy_registry = free_addr();
        let reg = EmbeddedRegistry::start(&addr, &format!("_schemas-{app}-proxy"))
            .await
            .unwrap();
        serve_registry(reg, proxy_registry, shutdown.clone())
            .await
            .unwrap();
        let settings =
            Settings::from_toml_str(&format!("[app]\nid = \"{app}\"\nbroker = \"{addr}\"\n"))
                .unwrap();
        let proxy = free_addr();
        let p = EmbeddedRestProxy::start(&settings, &format!("http://{proxy_registry}"))
            .await
            .unwrap();
        serve_proxy(p, proxy, shutdown.clone()).await.unwrap();
        let topic = format!("{app}-produce");
        create_topic(&topic, 1).await;

        // A worker whose tables are recovered from changelogs written here.
        let state = tempfile::tempdir().unwrap();
        let web = free_addr();
        let source = format!("{app}-in");
        create_topic(&source, 2).await;
        let mut tables: BTreeMap<&'static str, Vec<(Json, Json)>> = BTreeMap::new();
        let strings = tricky_strings();
        tables.insert(
            "words",
            strings
                .iter()
                .enumerate()
                .map(|(i, s)| (json!(s), json!(i)))
                .collect(),
        );
        tables.insert(
            "ids",
            [i64::MIN, -1, 0, 7, 123, i64::MAX]
                .iter()
                .map(|n| (json!(n), json!({"n": n, "text": n.to_string()})))
                .collect(),
        );
        tables.insert(
            "pairs",
            strings
                .iter()
                .take(8)
                .enumerate()
                .map(|(i, s)| {
                    (
                        json!(Pair {
                            line: s.clone(),
                            run: i as u32
                        }),
                        json!(s),
                    )
                })
                .collect(),
        );
        tables.insert(
            "raw_words",
            strings
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| (json!(s), json!(format!("value of {s}"))))
                .collect(),
        );
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .create()
            .unwrap();
        for (table, entries) in &tables {
            let changelog = format!("{app}-{table}-changelog");
            create_topic(&changelog, 2).await;
            for (i, (k, v)) in entries.iter().enumerate() {
                let (key, value) = if *table == "raw_words" {
                    (
                        k.as_str().unwrap().as_bytes().to_vec(),
                        v.as_str().unwrap().as_bytes().to_vec(),
                    )
                } else {
                    (
                        serde_json::to_vec(k).unwrap(),
                        serde_json::to_vec(v).unwrap(),
                    )
                };
                let rec = FutureRecord::to(&changelog)
                    .key(&key)
                    .payload(&value)
                    .partition(i as i32 % 2);
                producer.send(rec, Duration::from_secs(10)).await.unwrap();
            }
        }
        let table = |name: &str, codecs: &str| {
            format!("[tables.{name}]\nagent = \"keep\"\npartitions = 2\n{codecs}")
        };
        let settings = Settings::from_toml_str(&format!(
            "[app]\nid = \"{app}\"\nbroker = \"{addr}\"\nstate_dir = \"{}\"\n\
             [web]\nbind = \"{web}\"\n[services]\nschema_registry = \"\"\n\
             [agents.keep]\nsource.topics = [\"{source}\"]\n{}{}{}{}",
            state.path().display(),
            table("words", ""),
            table("ids", ""),
            table("pairs", ""),
            table("raw_words", "key_codec = \"raw\"\nvalue_codec = \"raw\"\n"),
        ))
        .unwrap();
        let worker = App::with_registry(settings, AgentRegistry::default())
            .agent("keep", AgentFn::new(keep))
            .table(TableDecl::of::<Words>())
            .table(TableDecl::of::<Ids>())
            .table(TableDecl::of::<Pairs>())
            .table(TableDecl::of::<RawWords>());
        tokio::spawn(async move { worker.run(shutdown).await.expect("the worker runs") });
        let s = Services {
            proxy,
            registry,
            web,
            topic,
            tables,
            _stop: stop,
            _state: state,
        };
        // Wait until the worker holds every key of every table.
        let deadline = Instant::now() + Duration::from_secs(60);
        for (table, entries) in &s.tables {
            loop {
                let got = get(s.web, &format!("/tables/{table}?limit=10000")).await;
                if matches!(&got, Ok(a) if a.status == 200 && a.json()["count"] == entries.len()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "table {table} not recovered: {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        s
    }
}

// ------------------------------------------------------------------ raw HTTP/1.1 ---

#[derive(Debug, Clone)]
enum Body {
    None,
    /// With a Content-Length.
    Sized(Vec<u8>),
    /// Transfer-Encoding: chunked, no Content-Length.
    Chunked(Vec<u8>),
    /// A Content-Length of that many bytes, of which none are sent before the answer.
    Declared(u64),
}

#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Every byte but the unreserved ones percent-encoded.
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(addr: SocketAddr, target: &str) -> Result<Answer, String> {
    request(addr, "GET", target, &[], Body::None).await
}

/// Sends one request on a new connection (`Connection: close`) and reads the answer,
/// writing the body while reading so that an early answer is seen.
async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: Body,
) -> Result<Answer, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let payload = match body {
        Body::None => Vec::new(),
        Body::Sized(b) => {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
            b
        }
        Body::Declared(n) => {
            head.push_str(&format!("Content-Length: {n}\r\n"));
            Vec::new()
        }
        Body::Chunked(b) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            let mut out = Vec::with_capacity(b.len() + 64);
            for c in b.chunks(64 * 1024) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
    };
    head.push_str("\r\n");
    let (mut r, mut w) = stream.into_split();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(head.as_bytes()).await;
        let _ = w.write_all(&payload).await;
        // Keep the write side open until the answer is read: a half-closed connection
        // is a client gone away to the server.
        let _ = done_rx.await;
    });
    let mut raw = Vec::new();
    let read = r.read_to_end(&mut raw).await;
    let _ = done_tx.send(());
    let _ = writer.await;
    if let Err(e) = read {
        if raw.is_empty() {
            return Err(format!("no answer: {e}"));
        }
    }
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete head: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let mut content_type = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-type" {
                content_type = Some(v);
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..eol]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16).map_err(|e| e.to_string())?;
            rest = &rest[eol + 2..];
            if size == 0 || rest.len() < size {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
        body = out;
    }
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// The request within `secs`, or a failed case that says it hung.
async fn within<T>(
    secs: u64,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, TestCaseError> {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .map_err(|_| TestCaseError::fail(format!("no answer within {secs} s: {what}")))
}

// ------------------------------------------------------------ request strategies ---

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("GET".to_string()),
        4 => Just("POST".to_string()),
        1 => Just("PUT".to_string()),
        1 => Just("DELETE".to_string()),
        1 => Just("PATCH".to_string()),
        1 => Just("HEAD".to_string()),
        1 => Just("OPTIONS".to_string()),
        1 => "[A-Z]{1,8}".prop_filter("CONNECT takes an authority", |m| m != "CONNECT"),
    ]
}

/// A path segment: any text percent-encoded, or raw characters a URL may hold (with
/// escapes that are not, like `%zz` or `%`).
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,12}".prop_map(|s| encode_segment(&s)),
        1 => "[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}",
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| b.iter().map(|b| format!("%{b:02X}")).collect()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => "[a-zA-Z0-9=&%._~+-]{0,30}".prop_map(|q| format!("?{q}")),
        1 => (prop::sample::select(vec!["verbose", "defaultToGlobal", "permanent", "normalize", "limit", "after"]), segment())
            .prop_map(|(k, v)| format!("?{k}={v}")),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}".prop_map(|s| s.trim().to_string())
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

const KEY_SCHEMA: &str =
    r#"{"type":"record","name":"weather_key","fields":[{"name":"timestamp","type":"long"}]}"#;

fn schema_text() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => pick(vec![KEY_SCHEMA, WEATHER, ARRIVAL, KITCHEN_SINK, LIST, TREE, TOP_UNION, NESTED, r#""string""#, r#""long""#])
            .prop_map(Json::from),
        1 => "\\PC{0,40}".prop_map(Json::from),
        1 => arb_json().prop_map(|j| Json::from(j.to_string())),
        1 => arb_json(),
    ]
}

/// Produce bodies that are nearly right: the fields of a produce request with values of
/// the wrong kind, records that do not fit the schema, ids that do not exist.
fn produce_body() -> impl Strategy<Value = Json> {
    let weather = Schema::parse_str(WEATHER).unwrap();
    let names = names_of(&weather);
    let value = prop_oneof![
        2 => valid_json(&weather, &names, None, 0),
        1 => arb_json(),
        1 => "[A-Za-z0-9+/]{0,12}={0,2}".prop_map(Json::from),
    ];
    let key = prop_oneof![
        2 => Just(Json::Null),
        1 => any::<i64>().prop_map(|t| json!({"timestamp": t})),
        1 => arb_json(),
    ];
    let partition = prop_oneof![
        3 => Just(Json::Null),
        1 => pick(vec![json!(0), json!(-1), json!(-7), json!(1), json!(99), json!(i32::MAX)]),
        1 => arb_json(),
    ];
    let record = (key, value, partition).prop_map(|(k, v, p)| {
        let mut r = serde_json::Map::new();
        for (name, x) in [("key", k), ("value", v), ("partition", p)] {
            if !x.is_null() {
                r.insert(name.into(), x);
            }
        }
        Json::Object(r)
    });
    let records = prop_oneof![
        4 => prop::collection::vec(record, 0..4).prop_map(Json::Array),
        1 => arb_json(),
    ];
    let id = prop_oneof![
        Just(json!(1)),
        any::<i32>().prop_map(Json::from),
        arb_json()
    ];
    (
        records,
        prop::option::of(schema_text()),
        prop_oneof![2 => Just(Some(json!(WEATHER))), 1 => prop::option::of(schema_text())],
        prop::option::of(id.clone()),
        prop_oneof![3 => Just(None), 1 => prop::option::of(id)],
    )
        .prop_map(|(records, ks, vs, kid, vid)| {
            let mut body = serde_json::Map::new();
            body.insert("records".into(), records);
            for (name, x) in [
                ("key_schema", ks),
                ("value_schema", vs),
                ("key_schema_id", kid),
                ("value_schema_id", vid),
            ] {
                if let Some(x) = x {
                    body.insert(name.into(), x);
                }
            }
            Json::Object(body)
        })
}

/// Bodies: none, any bytes, any JSON, JSON nested too deep, or `near` (nearly right).
fn body(near: impl Strategy<Value = Json> + 'static) -> impl Strategy<Value = Body> {
    let bytes = prop_oneof![
        1 => Just(None),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Some),
        2 => arb_json().prop_map(|j| Some(j.to_string().into_bytes())),
        1 => (1usize..5000).prop_map(|d| Some(format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes())),
        6 => near.prop_map(|j| Some(j.to_string().into_bytes())),
    ];
    (bytes, any::<bool>()).prop_map(|(b, chunked)| match (b, chunked) {
        (None, _) => Body::None,
        (Some(b), false) => Body::Sized(b),
        (Some(b), true) => Body::Chunked(b),
    })
}

/// Checks an answer of the REST Proxy or the Schema Registry: in time, never 5xx,
/// errors as `{"error_code": .., "message": ..}`, every answer JSON in a JSON type.
fn check_confluent_answer(method: &str, target: &str, a: &Answer) -> Result<(), TestCaseError> {
    let what = format!("{method} {target} -> {} {}", a.status, a.text());
    prop_assert!(a.status < 500, "server error: {}", what);
    let ct = a.content_type.clone().unwrap_or_default();
    prop_assert!(
        ct.starts_with("application/") && ct.contains("json"),
        "content type {ct:?}: {what}"
    );
    if method == "HEAD" {
        return Ok(());
    }
    let body: Result<Json, _> = serde_json::from_slice(&a.body);
    prop_assert!(body.is_ok(), "not JSON: {}", what);
    let body = body.unwrap();
    if a.status >= 400 {
        prop_assert!(body["error_code"].is_u64(), "no error_code: {}", what);
        prop_assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {}",
            what
        );
    }
    Ok(())
}

// ----------------------------------------------------------- REST Proxy properties ---

fn proxy_target(topic: String) -> impl Strategy<Value = String> {
    let t = prop_oneof![
        6 => Just(encode_segment(&topic)),
        2 => "[a-z]{1,10}".prop_map(|s| format!("hostile-missing-{s}")),
        2 => segment(),
    ];
    let p = prop_oneof![
        Just("0".to_string()),
        Just("1".to_string()),
        Just("-1".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        segment(),
    ];
    (
        prop_oneof![
            6 => t.clone().prop_map(|t| format!("/topics/{t}")),
            2 => (t.clone(), p).prop_map(|(t, p)| format!("/topics/{t}/partitions/{p}")),
            1 => t.prop_map(|t| format!("/topics/{t}/partitions")),
            1 => pick(vec!["/", "/topics", "/topics/", "/brokers", "/consumers", "//", "/topics//partitions"]).prop_map(str::to_string),
            1 => prop::collection::vec(segment(), 0..5).prop_map(|s| format!("/{}", s.join("/"))),
        ],
        query(),
    )
        .prop_map(|(p, q)| format!("{p}{q}"))
}

fn proxy_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(Some("application/vnd.kafka.avro.v2+json".to_string())),
        2 => Just(Some("application/vnd.kafka.json.v2+json".to_string())),
        2 => Just(Some("application/vnd.kafka.binary.v2+json".to_string())),
        1 => pick(vec!["application/json", "application/vnd.kafka.v2+json", "application/octet-stream", "text/plain", "application/vnd.kafka.protobuf.v2+json", "application/vnd.kafka.avro.v2+json; charset=utf-8"]).prop_map(|s| Some(s.to_string())),
        1 => header_value().prop_map(Some),
        1 => Just(None),
    ]
}

fn accept() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(None),
        2 => pick(vec!["application/vnd.kafka.v2+json", "application/json", "*/*", "application/*", "text/html", "application/json; q=0", "application/vnd.schemaregistry.v1+json"]).prop_map(|s| Some(s.to_string())),
        1 => header_value().prop_map(Some),
    ]
}

/// Produce requests that are right, in each embedded format (so that the properties reach
/// the producer and the registry, not only the parsing).
fn coherent_produce() -> impl Strategy<Value = (Option<String>, Body)> {
    let weather = Schema::parse_str(WEATHER).unwrap();
    let weather = valid_json(&weather, &names_of(&weather), None, 0);
    let records = |values: Vec<Json>| {
        Json::Array(values.into_iter().map(|v| json!({ "value": v })).collect())
    };
    prop_oneof![
        prop::collection::vec(
            "[A-Za-z0-9+/]{0,8}".prop_map(|s| {
                let pad = (4 - s.len() % 4) % 4;
                json!(format!("{s}{}", "A".repeat(pad)))
            }),
            1..4
        )
        .prop_map(move |v| (
            "application/vnd.kafka.binary.v2+json",
            json!({ "records": records(v) })
        )),
        prop::collection::vec(arb_json(), 1..4).prop_map(move |v| (
            "application/vnd.kafka.json.v2+json",
            json!({ "records": records(v) })
        )),
        prop::collection::vec(weather, 1..4).prop_map(move |v| (
            "application/vnd.kafka.avro.v2+json",
            json!({ "value_schema": WEATHER, "records": records(v) })
        )),
    ]
    .prop_map(|(ct, body)| {
        (
            Some(ct.to_string()),
            Body::Sized(body.to_string().into_bytes()),
        )
    })
}

proptest! {
    #![proptest_config(cases(384))]

    /// Any method, path, content type, Accept and body: a Confluent error (4xx) or a
    /// success, in JSON, in time; a produce answer has an offset per record.
    #[test]
    fn rest_proxy_takes_any_request(
        method in prop_oneof![2 => Just("POST".to_string()), 1 => method()],
        target in proxy_target(services().topic.clone()),
        (content_type, body) in prop_oneof![
            3 => (proxy_content_type(), body(produce_body())),
            1 => coherent_produce(),
        ],
        accept in accept(),
    ) {
        let s = services();
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        if let Some(a) = accept {
            headers.push(("Accept", a));
        }
        let what = format!("{method} {target} {headers:?} {body:?}");
        let sent = body.clone();
        let answer = run(async { within(30, &what, request(s.proxy, &method, &target, &headers, body)).await })?;
        let answer = answer.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        check_confluent_answer(&method, &target, &answer)?;
        if answer.status == 200 && method == "POST" {
            let sent: Json = match sent {
                Body::Sized(b) | Body::Chunked(b) => serde_json::from_slice(&b).unwrap_or(Json::Null),
                _ => Json::Null,
            };
            let offsets = &answer.json()["offsets"];
            prop_assert_eq!(offsets.as_array().map(Vec::len), sent["records"].as_array().map(Vec::len), "{}", answer.text());
        }
    }
}

// -------------------------------------------------------- Schema Registry properties ---

fn registry_target() -> impl Strategy<Value = String> {
    let subject = prop_oneof![
        3 => pick(vec!["hostile-value", "hostile-key", "weather-value", "a", "-", "%2F"]).prop_map(str::to_string),
        2 => segment(),
    ];
    let version = prop_oneof![
        pick(vec![
            "latest",
            "LATEST",
            "-1",
            "0",
            "1",
            "2",
            "2147483647",
            "2147483648",
            "-2",
            " 1",
            "1.0"
        ])
        .prop_map(encode_segment),
        any::<i64>().prop_map(|n| n.to_string()),
        segment(),
    ];
    let id = prop_oneof![
        pick(vec!["1", "2", "0", "-1", "4294967296", "x"]).prop_map(str::to_string),
        any::<u32>().prop_map(|n| n.to_string()),
        segment(),
    ];
    let path = prop_oneof![
        3 => subject.clone().prop_map(|s| format!("/subjects/{s}/versions")),
        2 => subject.clone().prop_map(|s| format!("/subjects/{s}")),
        2 => (subject.clone(), version.clone()).prop_map(|(s, v)| format!("/subjects/{s}/versions/{v}")),
        1 => (subject.clone(), version.clone()).prop_map(|(s, v)| format!("/subjects/{s}/versions/{v}/schema")),
        2 => (subject.clone(), version).prop_map(|(s, v)| format!("/compatibility/subjects/{s}/versions/{v}")),
        2 => (id, pick(vec!["", "/schema", "/subjects", "/versions", "/nope"])).prop_map(|(i, t)| format!("/schemas/ids/{i}{t}")),
        1 => subject.prop_map(|s| format!("/config/{s}")),
        1 => pick(vec!["/", "/subjects", "/schemas/types", "/config", "/mode", "/schemas", "//subjects", "/subjects//versions"]).prop_map(str::to_string),
        1 => prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/"))),
    ];
    (path, query()).prop_map(|(p, q)| format!("{p}{q}"))
}

/// Register, lookup, compatibility and config bodies that are nearly right.
fn registry_body() -> impl Strategy<Value = Json> {
    let level = prop_oneof![
        pick(vec![
            "NONE",
            "BACKWARD",
            "full_transitive",
            " forward ",
            "SIDEWAYS",
            ""
        ])
        .prop_map(Json::from),
        arb_json(),
    ];
    (
        prop::option::of(schema_text()),
        prop::option::of(prop_oneof![
            pick(vec![
                json!("AVRO"),
                json!("PROTOBUF"),
                json!("avro"),
                Json::Null
            ]),
            arb_json()
        ]),
        prop::option::of(prop_oneof![
            Just(json!([])),
            Just(json!([{"name": "x", "subject": "y", "version": 1}])),
            arb_json()
        ]),
        prop::option::of(level),
        prop::option::of(prop_oneof![Just(json!(1)), arb_json()]),
    )
        .prop_map(|(schema, schema_type, references, level, id)| {
            let mut body = serde_json::Map::new();
            for (name, x) in [
                ("schema", schema),
                ("schemaType", schema_type),
                ("references", references),
                ("compatibility", level),
                ("id", id),
            ] {
                if let Some(x) = x {
                    body.insert(name.into(), x);
                }
            }
            Json::Object(body)
        })
}

fn registry_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(Some("application/vnd.schemaregistry.v1+json".to_string())),
        2 => Just(None),
        1 => pick(vec!["application/json", "application/vnd.schemaregistry+json", "application/octet-stream", "text/plain", "application/json; charset=utf-8", ""]).prop_map(|s| Some(s.to_string())),
        1 => header_value().prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(cases(384))]

    /// Any method, path, query, content type, Accept and body: a Confluent error (4xx)
    /// or a success, in JSON, in time.
    #[test]
    fn schema_registry_takes_any_request(
        method in prop_oneof![1 => Just("POST".to_string()), 2 => method()],
        target in registry_target(),
        content_type in registry_content_type(),
        accept in accept(),
        body in body(registry_body()),
    ) {
        let s = services();
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        if let Some(a) = accept {
            headers.push(("Accept", a));
        }
        let what = format!("{method} {target} {headers:?} {body:?}");
        let answer = run(async { within(30, &what, request(s.registry, &method, &target, &headers, body)).await })?;
        let answer = answer.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        check_confluent_answer(&method, &target, &answer)?;
    }
}

// ------------------------------------------------------- table endpoint properties ---

fn table_name() -> impl Strategy<Value = &'static str> {
    pick(vec!["words", "ids", "pairs", "raw_words"])
}

/// Checks an answer of the worker's table endpoints: in time, 200/400/404 (405 for
/// other methods), JSON, errors with their status.
fn check_table_answer(what: &str, a: &Answer) -> Result<Json, TestCaseError> {
    prop_assert!(
        [200, 400, 404, 405].contains(&a.status),
        "status {}: {what} -> {}",
        a.status,
        a.text()
    );
    let body: Json = serde_json::from_slice(&a.body)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {what} -> {}", a.text())))?;
    if a.status != 200 {
        prop_assert_eq!(&body["status"], &json!(a.status), "{} -> {}", what, body);
        prop_assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{} -> {}",
            what,
            body
        );
    }
    Ok(body)
}

proptest! {
    #![proptest_config(cases(256))]

    /// Every stored key is found by its JSON text, whatever it holds.
    #[test]
    fn table_keys_are_found_by_their_json_text(table in table_name(), k in any::<Index>()) {
        let s = services();
        let entries = &s.tables[table];
        let (key, value) = &entries[k.index(entries.len())];
        let target = format!("/tables/{table}/{}", encode_segment(&key.to_string()));
        let answer = run(async { within(10, &target, get(s.web, &target)).await })?
            .map_err(TestCaseError::fail)?;
        let body = check_table_answer(&target, &answer)?;
        prop_assert_eq!(answer.status, 200, "{} -> {}", target, body);
        prop_assert_eq!(&body["key"], key);
        prop_assert_eq!(&body["value"], value);
    }

    /// Any key text, encoded or raw: 200 with the key, 404 or 400, in JSON.
    #[test]
    fn table_lookup_takes_any_key(
        table in prop_oneof![4 => table_name().prop_map(str::to_string), 1 => segment()],
        key in prop_oneof![
            3 => "\\PC{0,24}".prop_map(|s| encode_segment(&s)),
            2 => segment(),
            1 => arb_json().prop_map(|j| encode_segment(&j.to_string())),
            1 => any::<i64>().prop_map(|n| n.to_string()),
        ],
        method in prop_oneof![6 => Just("GET".to_string()), 1 => method()],
    ) {
        let s = services();
        let target = format!("/tables/{table}/{key}");
        let answer = run(async { within(10, &target, request(s.web, &method, &target, &[], Body::None)).await })?
            .map_err(TestCaseError::fail)?;
        if method == "HEAD" {
            prop_assert!([200, 400, 404, 405].contains(&answer.status), "{} {}", target, answer.status);
        } else {
            check_table_answer(&format!("{method} {target}"), &answer)?;
        }
    }

    /// Any `?limit=&after=` (and other parameters): a page of at most `limit` entries in
    /// key order, 400 or 404, in JSON.
    #[test]
    fn table_pages_take_any_query(
        table in table_name(),
        limit in prop_oneof![
            Just(None),
            (0usize..12).prop_map(|n| Some(n.to_string())),
            pick(vec!["10000", "10001", "-1", "1e3", "99999999999999999999999", "", "x"]).prop_map(|s| Some(s.to_string())),
            segment().prop_map(Some),
        ],
        after in prop::option::of(prop_oneof![
            "\\PC{0,16}".prop_map(|s| encode_segment(&s)),
            segment(),
            arb_json().prop_map(|j| encode_segment(&j.to_string())),
        ]),
        extra in prop_oneof![3 => Just(String::new()), 1 => "[a-z=&%0-9]{0,12}"],
    ) {
        let s = services();
        let mut q = Vec::new();
        if let Some(l) = &limit {
            q.push(format!("limit={l}"));
        }
        if let Some(a) = &after {
            q.push(format!("after={a}"));
        }
        if !extra.is_empty() {
            q.push(extra);
        }
        let target = format!("/tables/{table}?{}", q.join("&"));
        let answer = run(async { within(10, &target, get(s.web, &target)).await })?
            .map_err(TestCaseError::fail)?;
        let body = check_table_answer(&target, &answer)?;
        if answer.status == 200 {
            let entries = body["entries"].as_array().cloned().unwrap_or_default();
            let limit: usize = limit.and_then(|l| l.parse().ok()).unwrap_or(100);
            prop_assert!(entries.len() <= limit, "{} -> {}", target, body);
            prop_assert_eq!(body["count"].as_u64(), Some(entries.len() as u64));
        }
    }
}

/// Paging with `next_after` visits every key once, string keys whose text is itself a
/// JSON string (`"quoted"`, with the quotes) included.
#[test]
fn table_paging_visits_every_key_once_even_json_looking_ones() {
    let s = services();
    for limit in 1..4 {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut target = format!("/tables/words?limit={limit}");
            if let Some(a) = &after {
                target.push_str(&format!("&after={}", encode_segment(a)));
            }
            let page = run(get(s.web, &target)).unwrap().json();
            for e in page["entries"].as_array().unwrap() {
                seen.push(e["key"].clone());
            }
            match page["next_after"].as_str() {
                Some(a) => after = Some(a.to_string()),
                None => break,
            }
            assert!(seen.len() <= 1000, "paging does not end");
        }
        let mut want: Vec<Json> = s.tables["words"].iter().map(|(k, _)| k.clone()).collect();
        want.sort_by_key(|k| serde_json::to_vec(k).unwrap());
        assert_eq!(seen, want, "limit {limit}");
    }
}

// ------------------------------------------------------------ oversized input ---

/// The bodies a 1 MiB limit must refuse, and how each is sent: a little over it with
/// Content-Length and chunked (both read and drained, then 413), far over it declared
/// (413 before any of it is read), far over it chunked (413 once 8 MiB have been read).
fn oversized() -> Vec<(&'static str, Body)> {
    const LIMIT: usize = 1024 * 1024;
    let over = vec![b' '; LIMIT + 1];
    vec![
        ("Content-Length, 1 byte over", Body::Sized(over.clone())),
        ("chunked, 1 byte over", Body::Chunked(over)),
        ("Content-Length, 2 MiB", Body::Sized(vec![b'{'; 2 * LIMIT])),
        ("declared 100 GiB", Body::Declared(100 << 30)),
        ("chunked, 9 MiB", Body::Chunked(vec![b'['; 9 * LIMIT])),
    ]
}

fn assert_413(what: &str, a: &Result<Answer, String>) {
    let a = a
        .as_ref()
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    assert_eq!(a.status, 413, "{what}: {}", a.text());
    assert_eq!(a.json()["error_code"], 413, "{what}: {}", a.text());
    assert_eq!(
        a.json()["message"],
        "Request body larger than 1048576 bytes",
        "{what}"
    );
}

#[test]
fn oversized_bodies_get_413_from_the_rest_proxy_and_the_registry() {
    let s = services();
    let produce = format!("/topics/{}", s.topic);
    let ct = |t: &str| vec![("Content-Type", t.to_string())];
    for (what, body) in oversized() {
        let a = run(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                request(
                    s.proxy,
                    "POST",
                    &produce,
                    &ct("application/vnd.kafka.json.v2+json"),
                    body.clone(),
                ),
            )
            .await
            .unwrap_or_else(|_| Err("no answer in 30 s".into()))
        });
        assert_413(&format!("rest proxy, {what}"), &a);
        let a = run(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                request(
                    s.registry,
                    "POST",
                    "/subjects/big-value/versions",
                    &ct("application/vnd.schemaregistry.v1+json"),
                    body,
                ),
            )
            .await
            .unwrap_or_else(|_| Err("no answer in 30 s".into()))
        });
        assert_413(&format!("schema registry, {what}"), &a);
    }
    // At the limit the body is read and judged on what it holds.
    let mut at_limit = br#"{"records":[{"value":"x"}]}"#.to_vec();
    at_limit.resize(1024 * 1024, b' ');
    let a = run(request(
        s.proxy,
        "POST",
        &produce,
        &ct("application/vnd.kafka.json.v2+json"),
        Body::Chunked(at_limit),
    ))
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
}

/// A record the producer cannot send (over librdkafka's `message.max.bytes`, 1 000 000)
/// within a body the proxy takes: the request succeeds, the record's offset says why it
/// was not written, as Confluent's proxy answers.
#[test]
fn a_record_over_the_producers_limit_gets_a_clear_error() {
    let s = services();
    let big = "x".repeat(1_000_100);
    let body = json!({"records": [{"value": big}, {"value": "small"}]}).to_string();
    let a = run(request(
        s.proxy,
        "POST",
        &format!("/topics/{}", s.topic),
        &[("Content-Type", "application/vnd.kafka.json.v2+json".into())],
        Body::Sized(body.into_bytes()),
    ))
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    let offsets = a.json()["offsets"].clone();
    assert_eq!(offsets[0]["error_code"], 50002, "{offsets}");
    let error = offsets[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.to_lowercase().contains("size"), "{error}");
    assert!(offsets[1]["offset"].is_u64(), "{offsets}");
}

/// Topic names the broker cannot hold: answered at once (404), not after the producer's
/// delivery timeout.
#[test]
fn impossible_topic_names_are_answered_at_once() {
    let s = services();
    for name in [
        "a b",
        "..",
        ".",
        "a/b",
        &"t".repeat(300),
        "é",
        "a%00b",
        "\0",
        "a\0b",
    ] {
        let body = json!({"records": [{"value": "eA=="}]}).to_string();
        let t = Instant::now();
        for (method, path, body) in [
            (
                "POST",
                format!("/topics/{}", encode_segment(name)),
                Body::Sized(body.clone().into_bytes()),
            ),
            (
                "POST",
                format!("/topics/{}/partitions/0", encode_segment(name)),
                Body::Sized(body.into_bytes()),
            ),
            (
                "GET",
                format!("/topics/{}", encode_segment(name)),
                Body::None,
            ),
            (
                "GET",
                format!("/topics/{}/partitions", encode_segment(name)),
                Body::None,
            ),
        ] {
            let a = run(request(
                s.proxy,
                method,
                &path,
                &[(
                    "Content-Type",
                    "application/vnd.kafka.binary.v2+json".into(),
                )],
                body,
            ))
            .unwrap();
            assert!(
                (400..500).contains(&a.status),
                "{method} {path}: {} {}",
                a.status,
                a.text()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            t.elapsed()
        );
    }
}

/// Avro JSON as deep as JSON parsing allows (126 levels of a recursive schema), through
/// the proxy: converted and written, or refused, and the server still answers.
#[test]
fn deep_avro_json_through_the_rest_proxy() {
    let s = services();
    for links in [10usize, 40, 62] {
        let mut value = json!(null);
        for i in 0..links {
            value = json!({"value": i, "next": {"org.test.node": value}});
        }
        let value = json!({"value": -1, "next": value});
        let body = json!({"value_schema": LIST, "records": [{"value": value}]}).to_string();
        let a = run(request(
            s.proxy,
            "POST",
            &format!("/topics/{}", s.topic),
            &[("Content-Type", "application/vnd.kafka.avro.v2+json".into())],
            Body::Sized(body.into_bytes()),
        ))
        .unwrap_or_else(|e| panic!("{links} links: {e}"));
        assert!(a.status < 500, "{links} links: {} {}", a.status, a.text());
    }
    assert_eq!(run(get(s.proxy, "/")).unwrap().status, 200);
}

async fn oversize(ctx: AgentContext, mut events: Stream<Json>) -> AgentResult {
    let out = ctx.agent_settings().sinks[0].clone();
    while let Some(e) = events.next().await? {
        let n = e.value["bytes"].as_u64().unwrap_or(1) as usize;
        ctx.send(&out, None::<&str>, &"x".repeat(n)).await?;
    }
    Ok(())
}

/// An agent that writes a record over the producer's limit: the send fails with an error
/// that says so, the agent's error policy applies (here: skip), and the next event goes
/// through.
#[test]
fn an_agent_record_over_the_producers_limit_is_a_clear_failure() {
    run(async {
        let addr = broker();
        let app = unique("hostile-big");
        let (input, output) = (format!("{app}-in"), format!("{app}-out"));
        create_topic(&input, 1).await;
        create_topic(&output, 1).await;
        let web = free_addr();
        let state = tempfile::tempdir().unwrap();
        let settings = Settings::from_toml_str(&format!(
            "[app]\nid = \"{app}\"\nbroker = \"{addr}\"\nstate_dir = \"{}\"\ncommit_interval = \"200ms\"\n\
             [web]\nbind = \"{web}\"\n[services]\nschema_registry = \"\"\n\
             [agents.oversize]\nsource.topics = [\"{input}\"]\nsinks = [\"{output}\"]\non_error = \"skip\"\n",
            state.path().display()
        ))
        .unwrap();
        let worker = App::with_registry(settings, AgentRegistry::default())
            .agent("oversize", AgentFn::new(oversize));
        let (stop, shutdown) = watch::channel(false);
        let handle = tokio::spawn(worker.run(shutdown));
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .create()
            .unwrap();
        for n in [2_000_000u64, 10] {
            let v = json!({ "bytes": n }).to_string();
            producer
                .send(
                    FutureRecord::<str, str>::to(&input).payload(&v),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            let a = get(web, "/agents").await;
            let status = a.ok().map(|a| a.json()["agents"][0]["status"].clone());
            if let Some(st) = status.filter(|st| st["events_out"] == 1 && st["skipped"] == 1) {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not skip and go on"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let failure = status["last_failure"].to_string();
        assert!(
            failure.to_lowercase().contains("size") && failure.contains(&output),
            "{failure}"
        );
        stop.send(true).unwrap();
        handle.await.unwrap().unwrap();
    });
}
