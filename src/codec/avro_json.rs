//! Avro's JSON encoding: the text form that Apache Avro's `JsonDecoder` reads and the
//! Confluent REST Proxy (v2, `application/vnd.kafka.avro.v2+json`) accepts, converted to
//! an [`apache_avro::types::Value`] of a given schema.
//!
//! The rules are those of the Avro specification ("JSON Encoding"):
//!
//! * `null`, `boolean`, `string`: the JSON value of that type.
//! * `int`, `long`: a JSON integer in range (`1.5`, `1.0`, `1e3` and `"1"` are errors).
//! * `float`, `double`: any JSON number, or one of the strings `"NaN"`, `"Infinity"`,
//!   `"-Infinity"` (what Java's Avro writes for the non-finite values).
//! * `bytes`, `fixed`: a JSON string whose characters are code points U+0000 to U+00FF,
//!   one byte each (ISO-8859-1); a `fixed` needs exactly `size` of them.
//! * record: a JSON object; a field that is absent takes the schema's default, fields
//!   the schema does not know are ignored (as Java's `JsonDecoder` does).
//! * enum: one of the symbols, as a string.
//! * array: a JSON array; map: a JSON object.
//! * union: `null` for the null branch, or an object with exactly one key naming the
//!   branch: the type name (`"long"`, `"array"`, `"map"`, ...) or, for a record, enum or
//!   fixed, its full name (the name without namespace is accepted when it is unambiguous).
//! * logical types: the JSON form of the underlying type (`timestamp-millis` is a long,
//!   `date` an int, `decimal` bytes or fixed, `uuid` a string, ...), converted to the
//!   matching [`Value`] variant (`Value::TimestampMillis`, `Value::Date`,
//!   `Value::Decimal`, `Value::Uuid`, ...).
//!
//! Default values in the schema are read with the rules for defaults: the same as above,
//! except that a union's default is written without the branch wrapper, for its first
//! branch (any other branch it fits is accepted too, as apache-avro does when it parses
//! the schema).
//!
//! Every value returned encodes with the schema (`GenericDatumWriter` /
//! `to_avro_datum`).

use std::collections::HashMap;
use std::fmt::Write as _;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{
    DecimalSchema, EnumSchema, FixedSchema, InnerDecimalSchema, Name, NamesRef, NamespaceRef,
    RecordSchema, ResolvedSchema, UnionSchema, UuidSchema,
};
use apache_avro::types::Value;
use apache_avro::{Decimal, Duration, Schema, Uuid};
use serde_json::Value as Json;
use thiserror::Error;

/// How many records, arrays, maps and unions may nest (the top one counts). Bounds the
/// recursion, also through a recursive schema's defaults. In Avro's JSON each of these is
/// one level of JSON nesting, and `serde_json` parses no more than 128 of those.
const MAX_DEPTH: usize = 128;

/// Why a JSON value does not fit the schema, and where.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("at {}: {kind}", display_path(.path))]
pub struct AvroJsonError {
    path: String,
    kind: AvroJsonErrorKind,
}

impl AvroJsonError {
    /// Where in the JSON document, jq style: `.status`, `.stops[2].name`,
    /// `.next["com.example.Node"].value`, `.labels["a key"]`; empty for the document
    /// itself (shown as `.`), so that `format!("value{}", e.path())` reads `value.status`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn kind(&self) -> &AvroJsonErrorKind {
        &self.kind
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "."
    } else {
        path
    }
}

/// What is wrong; `got` fields hold the offending JSON, abbreviated.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum AvroJsonErrorKind {
    /// The JSON is of the wrong kind for the schema, e.g. a string for a long, or a bare
    /// value for a union.
    #[error("expected {expected}, got {got}")]
    Mismatch { expected: String, got: String },
    /// An integer that does not fit an int or a long, or a number too large for a float.
    #[error("{value} is out of range for {avro_type}")]
    OutOfRange {
        avro_type: &'static str,
        value: String,
    },
    /// A string that is not one of the enum's symbols.
    #[error("{symbol:?} is not a symbol of enum {enum_name}; expected one of: {}", .symbols.join(", "))]
    UnknownSymbol {
        enum_name: String,
        symbol: String,
        symbols: Vec<String>,
    },
    /// A record field that is absent from the JSON object and has no default.
    #[error("missing field {field:?}, which has no default")]
    MissingField { field: String },
    /// A union branch object whose key names no branch of the union.
    #[error("{branch:?} is not a branch of the union; its branches are: {}", .branches.join(", "))]
    UnknownBranch {
        branch: String,
        branches: Vec<String>,
    },
    /// A union branch named by a short name that several named branches share.
    #[error("{branch:?} could be any of {}; name the branch by its full name", .candidates.join(", "))]
    AmbiguousBranch {
        branch: String,
        candidates: Vec<String>,
    },
    /// A string for bytes or fixed with a character beyond U+00FF.
    #[error("character {character:?} (U+{:04X}) at position {position} is not a byte: bytes are written as characters U+0000 to U+00FF", u32::from(*.character))]
    NotAByte { character: char, position: usize },
    /// Bytes of the wrong length for a fixed.
    #[error("fixed {name} has {expected} bytes, got {actual}")]
    FixedSize {
        name: String,
        expected: usize,
        actual: usize,
    },
    /// The underlying value is well-formed but not valid for the logical type (a string
    /// that is not a UUID, ...).
    #[error("invalid {logical_type}: {reason}")]
    InvalidLogical {
        logical_type: &'static str,
        reason: String,
    },
    /// The field was absent and its default does not fit the field's schema.
    #[error("field {field:?} is missing and its default does not fit its schema: {reason}")]
    InvalidDefault { field: String, reason: String },
    /// The schema refers to a named type it does not define.
    #[error("invalid schema: {0}")]
    Schema(String),
    /// The value (or the schema's defaults) nest deeper than this converter follows.
    #[error("nested more than {limit} levels deep")]
    TooDeep { limit: usize },
}

/// Converts `json` (Avro JSON encoding) into a value of `schema`; the error says where
/// (a path like `value.status`) and why.
pub fn from_avro_json(schema: &Schema, json: &Json) -> Result<Value, AvroJsonError> {
    let resolved = ResolvedSchema::new(schema).map_err(|e| AvroJsonError {
        path: String::new(),
        kind: AvroJsonErrorKind::Schema(e.to_string()),
    })?;
    Converter {
        names: resolved.get_names(),
    }
    .convert(schema, json, None, Mode::Data, 0)
    .map_err(|f| (*f).into_error())
}

/// JSON of a datum, or of a default value in the schema (where unions are unwrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Data,
    Default,
}

/// One step of the path, collected innermost first while an error unwinds.
#[derive(Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
struct Failure {
    rev_path: Vec<Seg>,
    kind: AvroJsonErrorKind,
}

type Res<T> = Result<T, Box<Failure>>;

fn fail(kind: AvroJsonErrorKind) -> Box<Failure> {
    Box::new(Failure {
        rev_path: Vec::new(),
        kind,
    })
}

fn mismatch(expected: impl Into<String>, got: &Json) -> Box<Failure> {
    fail(AvroJsonErrorKind::Mismatch {
        expected: expected.into(),
        got: snippet(got),
    })
}

impl Failure {
    fn at(mut self: Box<Self>, seg: Seg) -> Box<Self> {
        self.rev_path.push(seg);
        self
    }

    fn into_error(self) -> AvroJsonError {
        let mut path = String::new();
        for seg in self.rev_path.iter().rev() {
            match seg {
                Seg::Key(k) if is_identifier(k) => {
                    path.push('.');
                    path.push_str(k);
                }
                Seg::Key(k) => {
                    path.push('[');
                    path.push_str(&Json::from(k.as_str()).to_string());
                    path.push(']');
                }
                Seg::Index(i) => {
                    let _ = write!(path, "[{i}]");
                }
            }
        }
        AvroJsonError {
            path,
            kind: self.kind,
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The JSON as compact text, cut short when long.
fn snippet(json: &Json) -> String {
    const MAX_CHARS: usize = 60;
    let text = json.to_string();
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// What a union branch is called in a branch object.
enum Label<'a> {
    Type(&'static str),
    Named(&'a Name),
}

fn label(schema: &Schema) -> Label<'_> {
    match schema {
        Schema::Null => Label::Type("null"),
        Schema::Boolean => Label::Type("boolean"),
        Schema::Int | Schema::Date | Schema::TimeMillis => Label::Type("int"),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Label::Type("long"),
        Schema::Float => Label::Type("float"),
        Schema::Double => Label::Type("double"),
        Schema::Bytes
        | Schema::BigDecimal
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        })
        | Schema::Uuid(UuidSchema::Bytes) => Label::Type("bytes"),
        Schema::String | Schema::Uuid(UuidSchema::String) => Label::Type("string"),
        Schema::Array(_) => Label::Type("array"),
        Schema::Map(_) => Label::Type("map"),
        Schema::Union(_) => Label::Type("union"),
        Schema::Record(RecordSchema { name, .. })
        | Schema::Enum(EnumSchema { name, .. })
        | Schema::Fixed(FixedSchema { name, .. })
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(FixedSchema { name, .. }),
            ..
        })
        | Schema::Uuid(UuidSchema::Fixed(FixedSchema { name, .. }))
        | Schema::Duration(FixedSchema { name, .. })
        | Schema::Ref { name } => Label::Named(name),
    }
}

fn label_text(schema: &Schema, ns: NamespaceRef) -> String {
    match label(schema) {
        Label::Type(t) => t.to_string(),
        Label::Named(name) => name.fully_qualified_name(ns).to_string(),
    }
}

/// Whether `key` is the full name `namespace.name` (or `name` without a namespace).
fn is_full_name(key: &str, name: &Name) -> bool {
    match name.namespace() {
        Some(ns) if !ns.is_empty() => key
            .strip_prefix(ns)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| rest == name.name()),
        _ => key == name.name(),
    }
}

struct Converter<'r, 's> {
    names: &'r NamesRef<'s>,
}

impl<'s> Converter<'_, 's> {
    fn lookup(&self, name: &Name, ns: NamespaceRef) -> Res<&'s Schema> {
        let full = name.fully_qualified_name(ns);
        self.names.get(full.as_ref()).copied().ok_or_else(|| {
            fail(AvroJsonErrorKind::Schema(format!(
                "reference to undefined type {}",
                full.as_ref()
            )))
        })
    }

    /// Recursion goes through here: keep its frame small (the leaves are elsewhere).
    fn convert(
        &self,
        schema: &'s Schema,
        json: &Json,
        ns: NamespaceRef<'s>,
        mode: Mode,
        depth: usize,
    ) -> Res<Value> {
        if depth >= MAX_DEPTH {
            return Err(fail(AvroJsonErrorKind::TooDeep { limit: MAX_DEPTH }));
        }
        let depth = depth + 1;
        // A reference is not a level of its own: the named type it stands for is.
        let schema = match schema {
            Schema::Ref { name } => self.lookup(name, ns)?,
            _ => schema,
        };
        match schema {
            Schema::Array(array) => self.array(&array.items, json, ns, mode, depth),
            Schema::Map(map) => self.map(&map.types, json, ns, mode, depth),
            Schema::Union(union) => self.union(union, json, ns, mode, depth),
            Schema::Record(record) => self.record(record, json, ns, mode, depth),
            _ => leaf(schema, json),
        }
    }

    fn array(
        &self,
        items: &'s Schema,
        json: &Json,
        ns: NamespaceRef<'s>,
        mode: Mode,
        depth: usize,
    ) -> Res<Value> {
        let Json::Array(elements) = json else {
            return Err(mismatch("a JSON array", json));
        };
        let mut out = Vec::with_capacity(elements.len());
        for (i, element) in elements.iter().enumerate() {
            out.push(
                self.convert(items, element, ns, mode, depth)
                    .map_err(|f| f.at(Seg::Index(i)))?,
            );
        }
        Ok(Value::Array(out))
    }

    fn map(
        &self,
        values: &'s Schema,
        json: &Json,
        ns: NamespaceRef<'s>,
        mode: Mode,
        depth: usize,
    ) -> Res<Value> {
        let Json::Object(entries) = json else {
            return Err(mismatch("a JSON object (map)", json));
        };
        let mut out = HashMap::with_capacity(entries.len());
        for (key, item) in entries {
            let v = self
                .convert(values, item, ns, mode, depth)
                .map_err(|f| f.at(Seg::Key(key.clone())))?;
            out.insert(key.clone(), v);
        }
        Ok(Value::Map(out))
    }

    fn record(
        &self,
        record: &'s RecordSchema,
        json: &Json,
        ns: NamespaceRef<'s>,
        mode: Mode,
        depth: usize,
    ) -> Res<Value> {
        let Json::Object(object) = json else {
            return Err(mismatch(
                format!("a JSON object (record {})", record.name),
                json,
            ));
        };
        let ns = record.name.namespace().or(ns);
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let value = match (object.get(&field.name), &field.default) {
                (Some(v), _) => self
                    .convert(&field.schema, v, ns, mode, depth)
                    .map_err(|f| f.at(Seg::Key(field.name.clone())))?,
                (None, Some(default)) => self
                    .convert(&field.schema, default, ns, Mode::Default, depth)
                    .map_err(|f| match mode {
                        // Report a bad default once, at the field that needed it.
                        Mode::Default => f.at(Seg::Key(field.name.clone())),
                        Mode::Data => {
                            let inner = (*f).into_error();
                            let reason = match inner.kind {
                                AvroJsonErrorKind::TooDeep { .. } => inner.kind.to_string(),
                                _ if inner.path.is_empty() => inner.kind.to_string(),
                                _ => inner.to_string(),
                            };
                            fail(AvroJsonErrorKind::InvalidDefault {
                                field: field.name.clone(),
                                reason,
                            })
                        }
                    })?,
                (None, None) => {
                    return Err(fail(AvroJsonErrorKind::MissingField {
                        field: field.name.clone(),
                    }))
                }
            };
            fields.push((field.name.clone(), value));
        }
        Ok(Value::Record(fields))
    }

    fn union(
        &self,
        union: &'s UnionSchema,
        json: &Json,
        ns: NamespaceRef<'s>,
        mode: Mode,
        depth: usize,
    ) -> Res<Value> {
        let variants = union.variants();
        let wrap = |i: usize, v: Value| Value::Union(i as u32, Box::new(v));
        if mode == Mode::Default {
            // A default is written for the first branch, without a wrapper; accept any
            // branch it fits, first match wins.
            let mut first_failure = None;
            for (i, variant) in variants.iter().enumerate() {
                match self.convert(variant, json, ns, mode, depth) {
                    Ok(v) => return Ok(wrap(i, v)),
                    // Trying the other branches of every level would take exponential time.
                    Err(f) if matches!(f.kind, AvroJsonErrorKind::TooDeep { .. }) => return Err(f),
                    Err(f) => {
                        first_failure.get_or_insert(f);
                    }
                }
            }
            return Err(first_failure.unwrap_or_else(|| mismatch("nothing (empty union)", json)));
        }
        match json {
            Json::Null => match variants.iter().position(|v| matches!(v, Schema::Null)) {
                Some(i) => Ok(wrap(i, Value::Null)),
                None => Err(mismatch(union_expectation(variants, ns), json)),
            },
            Json::Object(object) if object.len() == 1 => {
                let (key, inner) = object.iter().next().expect("one entry");
                let i = self.find_branch(variants, key, ns)?;
                let v = self
                    .convert(&variants[i], inner, ns, mode, depth)
                    .map_err(|f| f.at(Seg::Key(key.clone())))?;
                Ok(wrap(i, v))
            }
            _ => Err(mismatch(union_expectation(variants, ns), json)),
        }
    }

    fn find_branch(&self, variants: &'s [Schema], key: &str, ns: NamespaceRef) -> Res<usize> {
        let mut by_short_name = Vec::new();
        for (i, variant) in variants.iter().enumerate() {
            match label(variant) {
                Label::Type(t) if t == key => return Ok(i),
                Label::Type(_) => {}
                Label::Named(name) => {
                    let full = name.fully_qualified_name(ns);
                    if is_full_name(key, &full) {
                        return Ok(i);
                    }
                    if full.name() == key {
                        by_short_name.push(i);
                    }
                }
            }
        }
        match by_short_name.as_slice() {
            [i] => Ok(*i),
            [] => Err(fail(AvroJsonErrorKind::UnknownBranch {
                branch: key.to_string(),
                branches: variants.iter().map(|v| label_text(v, ns)).collect(),
            })),
            several => Err(fail(AvroJsonErrorKind::AmbiguousBranch {
                branch: key.to_string(),
                candidates: several
                    .iter()
                    .map(|&i| label_text(&variants[i], ns))
                    .collect(),
            })),
        }
    }
}

/// `a union branch object like {"long": ..} or null`, after the union's branches.
fn union_expectation(variants: &[Schema], ns: NamespaceRef) -> String {
    let nullable = variants.iter().any(|v| matches!(v, Schema::Null));
    match variants.iter().find(|v| !matches!(v, Schema::Null)) {
        Some(example) => format!(
            "a union branch object like {{{}: ..}}{}",
            Json::from(label_text(example, ns)),
            if nullable { " or null" } else { "" }
        ),
        None if nullable => "null (the union's only branch)".to_string(),
        None => "nothing (empty union)".to_string(),
    }
}

/// A value of a schema that holds no other values (primitives, enum, fixed, logical).
#[inline(never)]
fn leaf(schema: &Schema, json: &Json) -> Res<Value> {
    Ok(match schema {
        Schema::Null => match json {
            Json::Null => Value::Null,
            _ => return Err(mismatch("null", json)),
        },
        Schema::Boolean => match json {
            Json::Bool(b) => Value::Boolean(*b),
            _ => return Err(mismatch("true or false (boolean)", json)),
        },
        Schema::Int => Value::Int(int(json, "int")?),
        Schema::Date => Value::Date(int(json, "int, date")?),
        Schema::TimeMillis => Value::TimeMillis(int(json, "int, time-millis")?),
        Schema::Long => Value::Long(long(json, "long")?),
        Schema::TimeMicros => Value::TimeMicros(long(json, "long, time-micros")?),
        Schema::TimestampMillis => Value::TimestampMillis(long(json, "long, timestamp-millis")?),
        Schema::TimestampMicros => Value::TimestampMicros(long(json, "long, timestamp-micros")?),
        Schema::TimestampNanos => Value::TimestampNanos(long(json, "long, timestamp-nanos")?),
        Schema::LocalTimestampMillis => {
            Value::LocalTimestampMillis(long(json, "long, local-timestamp-millis")?)
        }
        Schema::LocalTimestampMicros => {
            Value::LocalTimestampMicros(long(json, "long, local-timestamp-micros")?)
        }
        Schema::LocalTimestampNanos => {
            Value::LocalTimestampNanos(long(json, "long, local-timestamp-nanos")?)
        }
        Schema::Float => Value::Float(float(json)?),
        Schema::Double => Value::Double(double(json, "double")?),
        Schema::String => match json {
            Json::String(s) => Value::String(s.clone()),
            _ => return Err(mismatch("a string", json)),
        },
        Schema::Bytes => Value::Bytes(bytes(json, "bytes")?),
        Schema::Fixed(fixed) => Value::Fixed(fixed.size, fixed_bytes(json, fixed)?),
        Schema::Enum(e) => enum_value(e, json)?,
        Schema::Decimal(DecimalSchema { inner, .. }) => {
            let b = match inner {
                InnerDecimalSchema::Bytes => bytes(json, "bytes, decimal")?,
                InnerDecimalSchema::Fixed(fixed) => fixed_bytes(json, fixed)?,
            };
            if b.is_empty() {
                return Err(fail(AvroJsonErrorKind::InvalidLogical {
                    logical_type: "decimal",
                    reason: "no bytes; the unscaled value needs at least one".into(),
                }));
            }
            Value::Decimal(Decimal::from(b))
        }
        Schema::BigDecimal => big_decimal(&bytes(json, "bytes, big-decimal")?)?,
        Schema::Uuid(UuidSchema::String) => match json {
            Json::String(s) => Value::Uuid(Uuid::parse_str(s).map_err(|e| {
                fail(AvroJsonErrorKind::InvalidLogical {
                    logical_type: "uuid",
                    reason: format!("{}: {e}", snippet(json)),
                })
            })?),
            _ => return Err(mismatch("a string (uuid)", json)),
        },
        Schema::Uuid(UuidSchema::Bytes) => uuid_from_bytes(&bytes(json, "bytes, uuid")?)?,
        Schema::Uuid(UuidSchema::Fixed(fixed)) => uuid_from_bytes(&fixed_bytes(json, fixed)?)?,
        Schema::Duration(fixed) => {
            let b = fixed_bytes(json, fixed)?;
            let b: [u8; 12] = b.try_into().map_err(|b: Vec<u8>| {
                fail(AvroJsonErrorKind::InvalidLogical {
                    logical_type: "duration",
                    reason: format!("{} bytes, a duration has 12", b.len()),
                })
            })?;
            Value::Duration(Duration::from(b))
        }
        Schema::Ref { .. }
        | Schema::Array(_)
        | Schema::Map(_)
        | Schema::Union(_)
        | Schema::Record(_) => {
            return Err(fail(AvroJsonErrorKind::Schema(format!(
                "internal: {schema:?} is not a leaf"
            ))))
        }
    })
}

fn enum_value(e: &EnumSchema, json: &Json) -> Res<Value> {
    let Json::String(symbol) = json else {
        return Err(mismatch(
            format!("a string, a symbol of enum {}", e.name),
            json,
        ));
    };
    match e.symbols.iter().position(|s| s == symbol) {
        Some(i) => Ok(Value::Enum(i as u32, symbol.clone())),
        None => Err(fail(AvroJsonErrorKind::UnknownSymbol {
            enum_name: e.name.to_string(),
            symbol: symbol.clone(),
            symbols: e.symbols.clone(),
        })),
    }
}

fn int(json: &Json, what: &str) -> Res<i32> {
    let wide = integer(json, what, "int")?;
    i32::try_from(wide).map_err(|_| {
        fail(AvroJsonErrorKind::OutOfRange {
            avro_type: "int",
            value: wide.to_string(),
        })
    })
}

fn long(json: &Json, what: &str) -> Res<i64> {
    integer(json, what, "long")
}

fn integer(json: &Json, what: &str, avro_type: &'static str) -> Res<i64> {
    match json {
        Json::Number(n) if n.is_i64() || n.is_u64() => n.as_i64().ok_or_else(|| {
            fail(AvroJsonErrorKind::OutOfRange {
                avro_type,
                value: n.to_string(),
            })
        }),
        _ => Err(mismatch(format!("a JSON integer ({what})"), json)),
    }
}

fn double(json: &Json, what: &str) -> Res<f64> {
    match json {
        Json::Number(n) => n
            .as_f64()
            .ok_or_else(|| mismatch(format!("a JSON number ({what})"), json)),
        Json::String(s) if s == "NaN" => Ok(f64::NAN),
        Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => Err(mismatch(format!("a JSON number ({what})"), json)),
    }
}

fn float(json: &Json) -> Res<f32> {
    let wide = double(json, "float")?;
    let narrow = wide as f32;
    if wide.is_finite() && narrow.is_infinite() {
        return Err(fail(AvroJsonErrorKind::OutOfRange {
            avro_type: "float",
            value: snippet(json),
        }));
    }
    Ok(narrow)
}

/// A string of code points U+0000 to U+00FF, one byte each.
fn bytes(json: &Json, what: &str) -> Res<Vec<u8>> {
    let Json::String(s) = json else {
        return Err(mismatch(
            format!("a string of characters U+0000 to U+00FF ({what})"),
            json,
        ));
    };
    s.chars()
        .enumerate()
        .map(|(position, character)| {
            u8::try_from(character).map_err(|_| {
                fail(AvroJsonErrorKind::NotAByte {
                    character,
                    position,
                })
            })
        })
        .collect()
}

fn fixed_bytes(json: &Json, fixed: &FixedSchema) -> Res<Vec<u8>> {
    let b = bytes(json, &format!("fixed {}", fixed.name))?;
    if b.len() != fixed.size {
        return Err(fail(AvroJsonErrorKind::FixedSize {
            name: fixed.name.to_string(),
            expected: fixed.size,
            actual: b.len(),
        }));
    }
    Ok(b)
}

fn uuid_from_bytes(b: &[u8]) -> Res<Value> {
    Uuid::from_slice(b).map(Value::Uuid).map_err(|_| {
        fail(AvroJsonErrorKind::InvalidLogical {
            logical_type: "uuid",
            reason: format!("{} bytes, a UUID has 16", b.len()),
        })
    })
}

/// `big-decimal` bytes hold the unscaled value (length-prefixed, big-endian two's
/// complement) and the scale (a long); apache-avro's reader parses them.
fn big_decimal(b: &[u8]) -> Res<Value> {
    let invalid = |reason: String| {
        fail(AvroJsonErrorKind::InvalidLogical {
            logical_type: "big-decimal",
            reason,
        })
    };
    // The binary encoding of `bytes`: a zig-zag varint length, then the bytes.
    let mut datum = Vec::with_capacity(b.len() + 10);
    let mut n = (b.len() as u64) << 1;
    while n >= 0x80 {
        datum.push((n as u8) | 0x80);
        n >>= 7;
    }
    datum.push(n as u8);
    datum.extend_from_slice(b);
    // The runtime's bound, not apache-avro's default, if this is the first read.
    apache_avro::util::max_allocation_bytes(super::AVRO_MAX_ALLOCATION);
    let schema = Schema::BigDecimal;
    let reader = GenericDatumReader::builder(&schema)
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    match reader.read_value(&mut datum.as_slice()) {
        Ok(v @ Value::BigDecimal(_)) => Ok(v),
        Ok(other) => Err(invalid(format!("read as {other:?}"))),
        Err(e) => Err(invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WEATHER: &str = r#"{"type":"record","name":"weather","namespace":"com.udacity","fields":[{"name":"temperature","type":"float"},{"name":"status","type":{"type":"enum","name":"weather_status","symbols":["sunny","partly_cloudy","cloudy","windy","precipitation"]}}]}"#;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).unwrap_or_else(|e| panic!("schema {text}: {e}"))
    }

    /// Encodes with the schema and decodes back.
    #[allow(deprecated)] // to_avro_datum = GenericDatumWriter, from_avro_datum = GenericDatumReader
    fn round_trip(schema: &Schema, value: &Value) -> Value {
        let datum = apache_avro::to_avro_datum(schema, value.clone())
            .unwrap_or_else(|e| panic!("{value:?} does not encode: {e}"));
        let mut rest = datum.as_slice();
        let back = apache_avro::from_avro_datum(schema, &mut rest, None)
            .unwrap_or_else(|e| panic!("{value:?} does not decode: {e}"));
        assert!(rest.is_empty(), "bytes left over");
        back
    }

    /// Converts, and checks that the value encodes and decodes to itself.
    fn ok(schema: &Schema, json: Json) -> Value {
        let v = from_avro_json(schema, &json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(round_trip(schema, &v), v, "round trip of {json}");
        v
    }

    fn err(schema: &Schema, json: Json) -> AvroJsonError {
        match from_avro_json(schema, &json) {
            Ok(v) => panic!("{json} converted to {v:?}"),
            Err(e) => e,
        }
    }

    fn record(fields: Vec<(&str, Value)>) -> Value {
        Value::Record(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn union(i: u32, v: Value) -> Value {
        Value::Union(i, Box::new(v))
    }

    #[test]
    fn weather_value() {
        let s = schema(WEATHER);
        let expected = record(vec![
            ("temperature", Value::Float(70.0)),
            ("status", Value::Enum(0, "sunny".into())),
        ]);
        assert_eq!(
            ok(&s, json!({"temperature": 70.0, "status": "sunny"})),
            expected
        );
        assert_eq!(
            ok(&s, json!({"status": "sunny", "temperature": 70})),
            expected
        );
        assert_eq!(
            ok(&s, json!({"temperature": -3.5, "status": "precipitation"})),
            record(vec![
                ("temperature", Value::Float(-3.5)),
                ("status", Value::Enum(4, "precipitation".into())),
            ])
        );

        let e = err(&s, json!({"temperature": 70.0, "status": "sunnyish"}));
        assert_eq!(e.path(), ".status");
        assert_eq!(
            e.to_string(),
            "at .status: \"sunnyish\" is not a symbol of enum com.udacity.weather_status; \
             expected one of: sunny, partly_cloudy, cloudy, windy, precipitation"
        );
        assert_eq!(format!("value{}", e.path()), "value.status");

        let e = err(&s, json!({"temperature": "70", "status": "sunny"}));
        assert_eq!(
            e.to_string(),
            "at .temperature: expected a JSON number (float), got \"70\""
        );
        let e = err(&s, json!({"temperature": 70.0, "status": 1}));
        assert!(
            matches!(e.kind(), AvroJsonErrorKind::Mismatch { .. }),
            "{e}"
        );
        let e = err(&s, json!([70.0, "sunny"]));
        assert_eq!(
            e.to_string(),
            "at .: expected a JSON object (record com.udacity.weather), got [70.0,\"sunny\"]"
        );
    }

    #[test]
    fn weather_key() {
        let s = schema(
            r#"{"type":"record","name":"weather_key","fields":[{"name":"timestamp","type":"long"}]}"#,
        );
        assert_eq!(
            ok(&s, json!({"timestamp": 1_700_000_000_000_i64})),
            record(vec![("timestamp", Value::Long(1_700_000_000_000))])
        );
        assert_eq!(
            ok(&s, json!({"timestamp": i64::MIN})),
            record(vec![("timestamp", Value::Long(i64::MIN))])
        );
        let e = err(&s, json!({"timestamp": 1.5}));
        assert_eq!(
            e.to_string(),
            "at .timestamp: expected a JSON integer (long), got 1.5"
        );
        err(&s, json!({"timestamp": 1.0}));
        err(&s, json!({"timestamp": "1700000000000"}));
        let e = err(&s, json!({"timestamp": u64::MAX}));
        assert_eq!(
            e.to_string(),
            "at .timestamp: 18446744073709551615 is out of range for long"
        );
        let e = err(&s, json!({}));
        assert_eq!(
            e.to_string(),
            "at .: missing field \"timestamp\", which has no default"
        );
        assert_eq!(e.path(), "");
    }

    const ARRIVAL: &str = r#"{"type":"record","name":"arrival","namespace":"org.chicago.cta","fields":[
        {"name":"station_id","type":"int"},
        {"name":"prev_station_id","type":["null","long"]}]}"#;

    #[test]
    fn nullable_union() {
        let s = schema(ARRIVAL);
        assert_eq!(
            ok(&s, json!({"station_id": 40010, "prev_station_id": null})),
            record(vec![
                ("station_id", Value::Int(40010)),
                ("prev_station_id", union(0, Value::Null)),
            ])
        );
        assert_eq!(
            ok(
                &s,
                json!({"station_id": 40010, "prev_station_id": {"long": 5}})
            ),
            record(vec![
                ("station_id", Value::Int(40010)),
                ("prev_station_id", union(1, Value::Long(5))),
            ])
        );
        // Java's JsonDecoder also takes the null branch spelled out.
        ok(
            &s,
            json!({"station_id": 1, "prev_station_id": {"null": null}}),
        );

        let e = err(&s, json!({"station_id": 40010, "prev_station_id": 5}));
        assert_eq!(
            e.to_string(),
            r#"at .prev_station_id: expected a union branch object like {"long": ..} or null, got 5"#
        );
        let e = err(&s, json!({"station_id": 40010, "prev_station_id": "abc"}));
        assert_eq!(
            e.to_string(),
            r#"at .prev_station_id: expected a union branch object like {"long": ..} or null, got "abc""#
        );
        let e = err(&s, json!({"station_id": 1, "prev_station_id": {"int": 5}}));
        assert_eq!(
            e.to_string(),
            r#"at .prev_station_id: "int" is not a branch of the union; its branches are: null, long"#
        );
        let e = err(
            &s,
            json!({"station_id": 1, "prev_station_id": {"long": "5"}}),
        );
        assert_eq!(e.path(), ".prev_station_id.long");
        err(
            &s,
            json!({"station_id": 1, "prev_station_id": {"long": 5, "null": null}}),
        );
        // A missing nullable field without a default is still missing.
        let e = err(&s, json!({"station_id": 1}));
        assert!(
            matches!(e.kind(), AvroJsonErrorKind::MissingField { field } if field == "prev_station_id")
        );
    }

    #[test]
    fn union_with_named_branches() {
        let s = schema(
            r#"{"type":"record","name":"shape","namespace":"geo","fields":[
                {"name":"where","type":["null",
                    {"type":"record","name":"Point","fields":[
                        {"name":"x","type":"double"},{"name":"y","type":"double"}]},
                    {"type":"enum","name":"Place","namespace":"names","symbols":["HERE","THERE"]},
                    {"type":"fixed","name":"Hash","size":2},
                    "string",
                    {"type":"array","items":"Point"},
                    {"type":"map","values":"int"}]}]}"#,
        );
        let point = record(vec![("x", Value::Double(1.0)), ("y", Value::Double(2.5))]);
        for key in ["geo.Point", "Point"] {
            assert_eq!(
                ok(&s, json!({"where": {key: {"x": 1, "y": 2.5}}})),
                record(vec![("where", union(1, point.clone()))]),
                "{key}"
            );
        }
        for key in ["names.Place", "Place"] {
            assert_eq!(
                ok(&s, json!({"where": {key: "THERE"}})),
                record(vec![("where", union(2, Value::Enum(1, "THERE".into())))])
            );
        }
        assert_eq!(
            ok(&s, json!({"where": {"geo.Hash": "\u{00}\u{ff}"}})),
            record(vec![("where", union(3, Value::Fixed(2, vec![0, 255])))])
        );
        assert_eq!(
            ok(&s, json!({"where": {"string": "here"}})),
            record(vec![("where", union(4, Value::String("here".into())))])
        );
        assert_eq!(
            ok(&s, json!({"where": {"array": [{"x": 1, "y": 2.5}]}})),
            record(vec![("where", union(5, Value::Array(vec![point])))])
        );
        assert_eq!(
            ok(&s, json!({"where": {"map": {"a": 1}}})),
            record(vec![(
                "where",
                union(6, Value::Map([("a".to_string(), Value::Int(1))].into()))
            )])
        );
        // The namespace of the enclosing record is not the enum's.
        let e = err(&s, json!({"where": {"geo.Place": "HERE"}}));
        assert_eq!(
            e.to_string(),
            r#"at .where: "geo.Place" is not a branch of the union; its branches are: null, geo.Point, names.Place, geo.Hash, string, array, map"#
        );
        let e = err(&s, json!({"where": {"geo.Point": {"x": 1, "y": "2"}}}));
        assert_eq!(e.path(), r#".where["geo.Point"].y"#);
        let e = err(&s, json!({"where": {"x": 1, "y": 2}}));
        assert!(
            e.to_string().contains(r#"like {"geo.Point": ..} or null"#),
            "{e}"
        );
    }

    #[test]
    fn ambiguous_short_branch_name() {
        let s = schema(
            r#"[{"type":"record","name":"Id","namespace":"a","fields":[{"name":"v","type":"int"}]},
                {"type":"record","name":"Id","namespace":"b","fields":[{"name":"v","type":"string"}]}]"#,
        );
        assert_eq!(
            ok(&s, json!({"b.Id": {"v": "x"}})),
            union(1, record(vec![("v", Value::String("x".into()))]))
        );
        let e = err(&s, json!({"Id": {"v": 1}}));
        assert_eq!(
            e.to_string(),
            r#"at .: "Id" could be any of a.Id, b.Id; name the branch by its full name"#
        );
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let s = schema(
            r#"{"type":"record","name":"r","fields":[
                {"name":"id","type":"int"},
                {"name":"count","type":"int","default":3},
                {"name":"note","type":["null","string"],"default":null},
                {"name":"kind","type":["string","null"],"default":"plain"},
                {"name":"late","type":["null","long"],"default":7},
                {"name":"tags","type":{"type":"array","items":"string"},"default":["a"]},
                {"name":"raw","type":"bytes","default":"\u00ff\u0000"},
                {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]},"default":"GREEN"},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
                {"name":"inner","type":{"type":"record","name":"Inner","fields":[
                    {"name":"a","type":"int","default":1},
                    {"name":"b","type":["null","string"],"default":null}]},
                 "default":{"b":"x"}}]}"#,
        );
        let v = ok(&s, json!({"id": 1, "unknown": [1, 2]}));
        assert_eq!(
            v,
            record(vec![
                ("id", Value::Int(1)),
                ("count", Value::Int(3)),
                ("note", union(0, Value::Null)),
                ("kind", union(0, Value::String("plain".into()))),
                ("late", union(1, Value::Long(7))),
                ("tags", Value::Array(vec![Value::String("a".into())])),
                ("raw", Value::Bytes(vec![255, 0])),
                ("color", Value::Enum(1, "GREEN".into())),
                ("at", Value::TimestampMillis(0)),
                (
                    "inner",
                    record(vec![
                        ("a", Value::Int(1)),
                        ("b", union(1, Value::String("x".into()))),
                    ])
                ),
            ])
        );
        // Present fields win over defaults.
        let v = ok(
            &s,
            json!({"id": 1, "count": 4, "note": {"string": "n"}, "inner": {"a": 2, "b": null}}),
        );
        let Value::Record(fields) = v else {
            panic!("{v:?}")
        };
        assert_eq!(fields[1].1, Value::Int(4));
        assert_eq!(fields[2].1, union(1, Value::String("n".into())));
        assert_eq!(
            fields[9].1,
            record(vec![("a", Value::Int(2)), ("b", union(0, Value::Null))])
        );

        let e = err(&s, json!({"count": 4}));
        assert_eq!(
            e.to_string(),
            "at .: missing field \"id\", which has no default"
        );
    }

    #[test]
    fn invalid_defaults_are_reported_once() {
        // apache-avro's parser checks defaults; a schema built or changed in code may not.
        let mut s = schema(
            r#"{"type":"record","name":"N","fields":[
                {"name":"id","type":"int"},
                {"name":"next","type":"N"},
                {"name":"inner","type":{"type":"record","name":"I","fields":[
                    {"name":"xs","type":{"type":"array","items":"int"}}]}}]}"#,
        );
        let Schema::Record(r) = &mut s else {
            panic!("{s:?}")
        };
        r.fields[0].default = Some(json!("one"));
        // Every default of `next` needs another `next`: it never ends.
        r.fields[1].default = Some(json!({"id": 1}));
        r.fields[2].default = Some(json!({"xs": [1, "2"]}));

        let e = err(
            &s,
            json!({"next": {"id": 2, "inner": {"xs": []}}, "inner": {"xs": []}}),
        );
        assert_eq!(
            e.to_string(),
            "at .: field \"id\" is missing and its default does not fit its schema: \
             expected a JSON integer (int), got \"one\""
        );
        let e = err(&s, json!({"id": 1, "inner": {"xs": []}}));
        assert_eq!(
            e.to_string(),
            "at .: field \"next\" is missing and its default does not fit its schema: \
             nested more than 128 levels deep"
        );
        let e = err(
            &s,
            json!({"id": 1, "next": {"id": 2, "next": {}, "inner": {"xs": []}}}),
        );
        assert_eq!(e.path(), ".next.next");
        assert!(
            matches!(e.kind(), AvroJsonErrorKind::InvalidDefault { field, .. } if field == "id"),
            "{e}"
        );
        let Schema::Record(r) = &mut s else { panic!() };
        r.fields[0].default = None;
        r.fields[1].default = None;
        let e = err(&s, json!({"id": 1, "next": {}}));
        assert_eq!(
            e.to_string(),
            "at .next: missing field \"id\", which has no default"
        );

        let mut s = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"inner","type":{"type":"record","name":"I","fields":[
                    {"name":"xs","type":{"type":"array","items":"int"}}]}}]}"#,
        );
        let Schema::Record(r) = &mut s else { panic!() };
        r.fields[0].default = Some(json!({"xs": [1, "2"]}));
        let e = err(&s, json!({}));
        assert_eq!(
            e.to_string(),
            "at .: field \"inner\" is missing and its default does not fit its schema: \
             at .xs[1]: expected a JSON integer (int), got \"2\""
        );
        let Schema::Record(r) = &mut s else { panic!() };
        r.fields[0].default = Some(json!({"xs": [1, 2]}));
        assert_eq!(
            ok(&s, json!({})),
            record(vec![(
                "inner",
                record(vec![(
                    "xs",
                    Value::Array(vec![Value::Int(1), Value::Int(2)])
                )])
            )])
        );
    }

    #[test]
    fn int_range() {
        let s = schema(r#""int""#);
        assert_eq!(ok(&s, json!(2147483647)), Value::Int(i32::MAX));
        assert_eq!(ok(&s, json!(-2147483648)), Value::Int(i32::MIN));
        let e = err(&s, json!(2147483648_i64));
        assert_eq!(e.to_string(), "at .: 2147483648 is out of range for int");
        err(&s, json!(-2147483649_i64));
        err(&s, json!(u64::MAX));
        let e = err(&s, json!(1.5));
        assert_eq!(
            e.to_string(),
            "at .: expected a JSON integer (int), got 1.5"
        );
        err(&s, json!("1"));
        err(&s, json!(null));
        err(&s, json!(true));
    }

    #[test]
    fn floats_and_doubles() {
        let f = schema(r#""float""#);
        let d = schema(r#""double""#);
        assert_eq!(ok(&f, json!(1)), Value::Float(1.0));
        assert_eq!(ok(&f, json!(0.1)), Value::Float(0.1));
        assert_eq!(ok(&d, json!(-7)), Value::Double(-7.0));
        assert_eq!(ok(&d, json!(1e300)), Value::Double(1e300));
        assert_eq!(ok(&f, json!("Infinity")), Value::Float(f32::INFINITY));
        assert_eq!(ok(&d, json!("-Infinity")), Value::Double(f64::NEG_INFINITY));
        let Value::Double(nan) = from_avro_json(&d, &json!("NaN")).unwrap() else {
            panic!()
        };
        assert!(nan.is_nan());
        let e = err(&f, json!(1e300));
        assert_eq!(e.to_string(), "at .: 1e+300 is out of range for float");
        err(&d, json!("1.5"));
        err(&d, json!(null));
        let b = schema(r#""boolean""#);
        assert_eq!(ok(&b, json!(true)), Value::Boolean(true));
        err(&b, json!(1));
        let n = schema(r#""null""#);
        assert_eq!(ok(&n, json!(null)), Value::Null);
        err(&n, json!({}));
        let st = schema(r#""string""#);
        assert_eq!(ok(&st, json!("é€")), Value::String("é€".into()));
        err(&st, json!(1));
    }

    #[test]
    fn bytes_are_iso_8859_1() {
        let s = schema(r#""bytes""#);
        assert_eq!(
            ok(&s, json!("\u{0000}\u{007f}\u{0080}\u{00e9}\u{00ff}A")),
            Value::Bytes(vec![0, 0x7f, 0x80, 0xe9, 0xff, b'A'])
        );
        assert_eq!(ok(&s, json!("")), Value::Bytes(vec![]));
        let e = err(&s, json!("ab€"));
        assert_eq!(
            e.to_string(),
            "at .: character '€' (U+20AC) at position 2 is not a byte: bytes are written as \
             characters U+0000 to U+00FF"
        );
        err(&s, json!([1, 2]));
    }

    #[test]
    fn fixed_size() {
        let s = schema(r#"{"type":"fixed","name":"md5","namespace":"h","size":4}"#);
        assert_eq!(
            ok(&s, json!("ab\u{ff}d")),
            Value::Fixed(4, vec![b'a', b'b', 0xff, b'd'])
        );
        let e = err(&s, json!("abc"));
        assert_eq!(e.to_string(), "at .: fixed h.md5 has 4 bytes, got 3");
        err(&s, json!("abcde"));
    }

    #[test]
    fn arrays_and_maps() {
        let s = schema(
            r#"{"type":"record","name":"r","fields":[
                {"name":"scores","type":{"type":"array","items":"int"}},
                {"name":"labels","type":{"type":"map","values":["null","string"]}},
                {"name":"grid","type":{"type":"array","items":{"type":"array","items":"double"}}}]}"#,
        );
        let v = ok(
            &s,
            json!({"scores": [1, 2, 3], "labels": {"a": null, "b c": {"string": "x"}}, "grid": [[1], [], [2.5, 3]]}),
        );
        assert_eq!(
            v,
            record(vec![
                (
                    "scores",
                    Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
                ),
                (
                    "labels",
                    Value::Map(
                        [
                            ("a".to_string(), union(0, Value::Null)),
                            ("b c".to_string(), union(1, Value::String("x".into()))),
                        ]
                        .into()
                    )
                ),
                (
                    "grid",
                    Value::Array(vec![
                        Value::Array(vec![Value::Double(1.0)]),
                        Value::Array(vec![]),
                        Value::Array(vec![Value::Double(2.5), Value::Double(3.0)]),
                    ])
                ),
            ])
        );
        ok(&s, json!({"scores": [], "labels": {}, "grid": []}));
        let e = err(&s, json!({"scores": [1, 2, "3"], "labels": {}, "grid": []}));
        assert_eq!(e.path(), ".scores[2]");
        let e = err(
            &s,
            json!({"scores": [], "labels": {"b c": "x"}, "grid": []}),
        );
        assert_eq!(e.path(), r#".labels["b c"]"#);
        let e = err(
            &s,
            json!({"scores": [], "labels": {}, "grid": [[1], [true]]}),
        );
        assert_eq!(e.path(), ".grid[1][0]");
        let e = err(&s, json!({"scores": {}, "labels": {}, "grid": []}));
        assert_eq!(e.to_string(), "at .scores: expected a JSON array, got {}");
        let e = err(&s, json!({"scores": [], "labels": [], "grid": []}));
        assert_eq!(
            e.to_string(),
            "at .labels: expected a JSON object (map), got []"
        );
    }

    #[test]
    fn logical_types() {
        let s = schema(
            r#"{"type":"record","name":"r","fields":[
                {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"ts_us","type":{"type":"long","logicalType":"timestamp-micros"}},
                {"name":"local","type":{"type":"long","logicalType":"local-timestamp-millis"}},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"tod","type":{"type":"int","logicalType":"time-millis"}},
                {"name":"tod_us","type":{"type":"long","logicalType":"time-micros"}},
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}},
                {"name":"fprice","type":{"type":"fixed","name":"dec4","size":4,"logicalType":"decimal","precision":8,"scale":2}},
                {"name":"wait","type":{"type":"fixed","name":"dur","size":12,"logicalType":"duration"}},
                {"name":"maybe_ts","type":["null",{"type":"long","logicalType":"timestamp-millis"}]}]}"#,
        );
        let v = ok(
            &s,
            json!({
                "ts": 1_700_000_000_000_i64, "ts_us": 5, "local": -1, "day": 19000, "tod": 1000,
                "tod_us": 2000, "id": "550e8400-e29b-41d4-a716-446655440000",
                "price": "\u{00}\u{ff}", "fprice": "\u{ff}\u{ff}\u{ff}\u{9c}",
                "wait": "\u{1}\u{0}\u{0}\u{0}\u{2}\u{0}\u{0}\u{0}\u{3}\u{0}\u{0}\u{0}",
                "maybe_ts": {"long": 42}
            }),
        );
        let Value::Record(fields) = &v else {
            panic!("{v:?}")
        };
        let field = |name: &str| &fields.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(field("ts"), &Value::TimestampMillis(1_700_000_000_000));
        assert_eq!(field("ts_us"), &Value::TimestampMicros(5));
        assert_eq!(field("local"), &Value::LocalTimestampMillis(-1));
        assert_eq!(field("day"), &Value::Date(19000));
        assert_eq!(field("tod"), &Value::TimeMillis(1000));
        assert_eq!(field("tod_us"), &Value::TimeMicros(2000));
        assert_eq!(
            field("id"),
            &Value::Uuid(Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000").unwrap())
        );
        assert_eq!(field("price"), &Value::Decimal(Decimal::from(vec![0, 255])));
        assert_eq!(
            field("fprice"),
            &Value::Decimal(Decimal::from(vec![0xff, 0xff, 0xff, 0x9c]))
        );
        assert_eq!(
            field("wait"),
            &Value::Duration(Duration::from([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]))
        );
        assert_eq!(field("maybe_ts"), &union(1, Value::TimestampMillis(42)));

        let base = json!({
            "ts": 0, "ts_us": 0, "local": 0, "day": 0, "tod": 0, "tod_us": 0,
            "id": "550e8400-e29b-41d4-a716-446655440000", "price": "\u{1}", "fprice": "\u{0}\u{0}\u{0}\u{1}",
            "wait": "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}", "maybe_ts": null
        });
        ok(&s, base.clone());
        let with = |k: &str, v: Json| {
            let mut j = base.clone();
            j[k] = v;
            j
        };
        let e = err(&s, with("ts", json!("2024-01-01T00:00:00Z")));
        assert_eq!(
            e.to_string(),
            "at .ts: expected a JSON integer (long, timestamp-millis), got \"2024-01-01T00:00:00Z\""
        );
        let e = err(&s, with("day", json!(3_000_000_000_i64)));
        assert_eq!(e.to_string(), "at .day: 3000000000 is out of range for int");
        let e = err(&s, with("id", json!("not-a-uuid")));
        assert!(
            matches!(
                e.kind(),
                AvroJsonErrorKind::InvalidLogical {
                    logical_type: "uuid",
                    ..
                }
            ),
            "{e}"
        );
        let e = err(&s, with("price", json!("")));
        assert!(
            matches!(
                e.kind(),
                AvroJsonErrorKind::InvalidLogical {
                    logical_type: "decimal",
                    ..
                }
            ),
            "{e}"
        );
        let e = err(&s, with("fprice", json!("\u{1}")));
        assert_eq!(e.to_string(), "at .fprice: fixed dec4 has 4 bytes, got 1");
        err(&s, with("wait", json!("\u{0}")));
        let e = err(&s, with("maybe_ts", json!({"timestamp-millis": 1})));
        assert!(
            matches!(e.kind(), AvroJsonErrorKind::UnknownBranch { .. }),
            "{e}"
        );
    }

    #[test]
    fn uuid_on_fixed_and_big_decimal() {
        let s = schema(r#"{"type":"fixed","name":"u","size":16,"logicalType":"uuid"}"#);
        let raw: String = (0u8..16).map(char::from).collect();
        assert_eq!(
            ok(&s, json!(raw)),
            Value::Uuid(Uuid::from_slice(&(0u8..16).collect::<Vec<_>>()).unwrap())
        );
        err(&s, json!("short"));

        let s = schema(r#"{"type":"bytes","logicalType":"big-decimal"}"#);
        // Unscaled 12345 (0x30 0x39, length 2 -> zig-zag 4), scale 2 (zig-zag 4): 123.45.
        let v = ok(&s, json!("\u{4}\u{30}\u{39}\u{4}"));
        assert!(
            matches!(&v, Value::BigDecimal(d) if d.to_string() == "123.45"),
            "{v:?}"
        );
        let e = err(&s, json!("\u{4}\u{30}"));
        assert!(
            matches!(
                e.kind(),
                AvroJsonErrorKind::InvalidLogical {
                    logical_type: "big-decimal",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn recursive_and_referenced_types() {
        let s = schema(
            r#"{"type":"record","name":"Node","namespace":"list","fields":[
                {"name":"value","type":"int"},
                {"name":"next","type":["null","Node"]}]}"#,
        );
        let v = ok(
            &s,
            json!({"value": 1, "next": {"list.Node": {"value": 2, "next": {"Node": {"value": 3, "next": null}}}}}),
        );
        let node =
            |value: i32, next: Value| record(vec![("value", Value::Int(value)), ("next", next)]);
        assert_eq!(
            v,
            node(
                1,
                union(1, node(2, union(1, node(3, union(0, Value::Null)))))
            )
        );
        let e = err(
            &s,
            json!({"value": 1, "next": {"Node": {"value": 2, "next": {"Node": {"value": "3", "next": null}}}}}),
        );
        assert_eq!(
            e.to_string(),
            "at .next.Node.next.Node.value: expected a JSON integer (int), got \"3\""
        );

        // Types defined earlier in the schema, used by name (with and without namespace).
        let s = schema(
            r#"{"type":"record","name":"Trip","namespace":"cta","fields":[
                {"name":"line","type":{"type":"enum","name":"Line","symbols":["red","blue"]}},
                {"name":"transfer","type":"cta.Line"},
                {"name":"lines","type":{"type":"array","items":"Line"}},
                {"name":"stop","type":{"type":"record","name":"Stop","namespace":"geo","fields":[
                    {"name":"id","type":"int"}]}},
                {"name":"stops","type":{"type":"map","values":"geo.Stop"}},
                {"name":"alt","type":["null","geo.Stop","Line"],"default":null}]}"#,
        );
        let v = ok(
            &s,
            json!({"line": "red", "transfer": "blue", "lines": ["blue", "red"],
                   "stop": {"id": 1}, "stops": {"a": {"id": 2}}, "alt": {"geo.Stop": {"id": 3}}}),
        );
        assert_eq!(
            v,
            record(vec![
                ("line", Value::Enum(0, "red".into())),
                ("transfer", Value::Enum(1, "blue".into())),
                (
                    "lines",
                    Value::Array(vec![
                        Value::Enum(1, "blue".into()),
                        Value::Enum(0, "red".into())
                    ])
                ),
                ("stop", record(vec![("id", Value::Int(1))])),
                (
                    "stops",
                    Value::Map([("a".into(), record(vec![("id", Value::Int(2))]))].into())
                ),
                ("alt", union(1, record(vec![("id", Value::Int(3))]))),
            ])
        );
        ok(
            &s,
            json!({"line": "red", "transfer": "blue", "lines": [], "stop": {"id": 1},
                   "stops": {}, "alt": {"cta.Line": "red"}}),
        );
        let e = err(
            &s,
            json!({"line": "red", "transfer": "green", "lines": [], "stop": {"id": 1}, "stops": {}}),
        );
        assert_eq!(
            e.to_string(),
            "at .transfer: \"green\" is not a symbol of enum cta.Line; expected one of: red, blue"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let s = schema(
            r#"{"type":"record","name":"Node","fields":[
                {"name":"next","type":["null","Node"]}]}"#,
        );
        // Built by hand: `json!` would serialize (recursively) the value it nests.
        let nodes = |n: usize| {
            let mut deep = json!({"next": null});
            for _ in 0..n {
                let branch = serde_json::Map::from_iter([("Node".to_string(), deep)]);
                deep = Json::Object(serde_json::Map::from_iter([(
                    "next".to_string(),
                    Json::Object(branch),
                )]));
            }
            deep
        };
        // Each node is two levels (the record and the union).
        ok(&s, nodes(10));
        assert!(from_avro_json(&s, &nodes(MAX_DEPTH / 2 - 1)).is_ok());
        let e = err(&s, nodes(MAX_DEPTH / 2));
        assert_eq!(e.kind(), &AvroJsonErrorKind::TooDeep { limit: MAX_DEPTH });
        assert!(e.path().starts_with(".next.Node.next.Node"), "{e}");
        let e = err(&s, nodes(1000));
        assert_eq!(e.kind(), &AvroJsonErrorKind::TooDeep { limit: MAX_DEPTH });
    }

    #[test]
    fn every_value_encodes() {
        // A grab bag through a single schema: whatever converts must encode.
        let s = schema(
            r#"{"type":"record","name":"all","fields":[
                {"name":"u","type":["null","boolean","int","long","float","double","bytes","string",
                    {"type":"fixed","name":"f3","size":3},
                    {"type":"enum","name":"e","symbols":["A"]},
                    {"type":"array","items":["null","int"]},
                    {"type":"map","values":"f3"}]}]}"#,
        );
        let cases = [
            json!(null),
            json!({"boolean": false}),
            json!({"int": -1}),
            json!({"long": 1_i64 << 40}),
            json!({"float": 2}),
            json!({"double": "NaN"}),
            json!({"bytes": "x"}),
            json!({"string": ""}),
            json!({"f3": "abc"}),
            json!({"e": "A"}),
            json!({"array": [null, {"int": 1}]}),
            json!({"map": {"k": "\u{0}\u{0}\u{0}"}}),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let v =
                from_avro_json(&s, &json!({ "u": case })).unwrap_or_else(|e| panic!("{i}: {e}"));
            let Value::Record(fields) = &v else { panic!() };
            assert!(
                matches!(&fields[0].1, Value::Union(n, _) if *n as usize == i),
                "{v:?}"
            );
            round_trip(&s, &v);
        }
    }
}
