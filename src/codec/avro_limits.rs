//! Guards around apache-avro's datum reader for records from untrusted producers: the
//! reader recurses once per nesting level (kilobytes of stack each), treats the end of
//! the input inside a boolean, string or union as a null, and turns a `big-decimal` into
//! its plain text (as many digits as the scale says) when deserialized into a
//! self-describing type. A record decoded with a recursive schema could overflow the
//! stack, a truncated one decode as nulls, a 13-byte one allocate gigabytes or panic.

use std::io::Read;

use apache_avro::schema::{Name, NamesRef, NamespaceRef, ResolvedSchema};
use apache_avro::types::Value;
use apache_avro::Schema;

/// How deep records, arrays, maps and unions may nest in a datum (the top one counts),
/// as in the Avro JSON converter (`avro_json::MAX_DEPTH`).
pub(crate) const MAX_DEPTH: usize = 128;

/// The largest scale (either sign) of a `big-decimal`: its text has that many digits.
pub(crate) const MAX_BIG_DECIMAL_SCALE: i64 = 1000;

/// What the datum reader must be kept from, found by looking at the schema alone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchemaRisks {
    /// A datum may nest deeper than `MAX_DEPTH` (the schema is recursive, or that deep).
    pub deep: bool,
    /// A datum may hold a `big-decimal`.
    pub big_decimal: bool,
    /// An array's items take no bytes (null, a record without fields, a fixed of size
    /// 0): a few bytes may stand for millions of values, per array.
    pub zero_width_items: bool,
}

pub(crate) fn risks(schema: &Schema, names: &NamesRef) -> SchemaRisks {
    let mut walk = SchemaWalk {
        names,
        depths: Vec::new(),
        on_path: Vec::new(),
        big_decimal: false,
        zero_width_items: false,
    };
    let deep = walk.depth(schema, None).is_none_or(|d| d > MAX_DEPTH);
    SchemaRisks {
        deep,
        big_decimal: walk.big_decimal,
        zero_width_items: walk.zero_width_items,
    }
}

struct SchemaWalk<'r, 's> {
    names: &'r NamesRef<'s>,
    /// Depth of the named types already walked (a type used twice is walked once).
    depths: Vec<(Name, Option<usize>)>,
    /// Named types being walked: meeting one again means the schema is recursive.
    on_path: Vec<Name>,
    big_decimal: bool,
    zero_width_items: bool,
}

impl SchemaWalk<'_, '_> {
    /// The deepest a datum of `schema` nests; `None` when unbounded or over the limit.
    fn depth(&mut self, schema: &Schema, ns: NamespaceRef) -> Option<usize> {
        if self.on_path.len() > MAX_DEPTH {
            return None;
        }
        match schema {
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns).into_owned();
                if let Some((_, d)) = self.depths.iter().find(|(n, _)| *n == full) {
                    return *d;
                }
                if self.on_path.contains(&full) {
                    return None;
                }
                let resolved = *self.names.get(&full)?;
                self.on_path.push(full.clone());
                let d = self.depth(resolved, full.namespace());
                self.on_path.pop();
                self.depths.push((full, d));
                d
            }
            Schema::Record(r) => {
                let full = r.name.fully_qualified_name(ns).into_owned();
                self.on_path.push(full.clone());
                let mut deepest = 0;
                for f in &r.fields {
                    let d = self.depth(&f.schema, full.namespace());
                    deepest = deepest.max(d.unwrap_or(usize::MAX));
                }
                self.on_path.pop();
                let d = deepest.checked_add(1).filter(|d| *d <= MAX_DEPTH);
                self.depths.push((full, d));
                d
            }
            Schema::Array(a) => {
                if self.zero_width(&a.items, ns, 0) {
                    self.zero_width_items = true;
                }
                Some(self.depth(&a.items, ns)? + 1)
            }
            Schema::Map(m) => Some(self.depth(&m.types, ns)? + 1),
            Schema::Union(u) => {
                let mut deepest = 0;
                for v in u.variants() {
                    deepest = deepest.max(self.depth(v, ns)?);
                }
                Some(deepest + 1)
            }
            Schema::BigDecimal => {
                self.big_decimal = true;
                Some(1)
            }
            _ => Some(1),
        }
    }
}

impl SchemaWalk<'_, '_> {
    /// Whether a value of `schema` is encoded in zero bytes.
    fn zero_width(&self, schema: &Schema, ns: NamespaceRef, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match schema {
            Schema::Null => true,
            Schema::Fixed(f) => f.size == 0,
            Schema::Record(r) => {
                let full = r.name.fully_qualified_name(ns).into_owned();
                r.fields
                    .iter()
                    .all(|f| self.zero_width(&f.schema, full.namespace(), depth + 1))
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns).into_owned();
                self.names
                    .get(&full)
                    .is_some_and(|s| self.zero_width(s, full.namespace(), depth + 1))
            }
            _ => false,
        }
    }
}

/// Checks that `datum` (one datum of `schema`) nests no deeper than `MAX_DEPTH`, without
/// building it: every value is skipped over, following the encoding apache-avro reads.
/// Other faults are reported as found; the reader would refuse the datum at the same place.
pub(crate) fn check_depth(
    schema: &Schema,
    resolved: &ResolvedSchema,
    datum: &[u8],
    max_allocation: usize,
) -> Result<(), String> {
    let max_items = max_allocation / std::mem::size_of::<Value>();
    let mut skip = Skip {
        names: resolved.get_names(),
        input: datum,
        max_items,
        items_left: max_items,
    };
    skip.value(schema, None, 0)
}

struct Skip<'r, 's, 'd> {
    names: &'r NamesRef<'s>,
    input: &'d [u8],
    /// apache-avro's bound on the items of one array or map (it refuses more).
    max_items: usize,
    /// The same bound over the whole datum: arrays of items that take no bytes would
    /// otherwise each reach it.
    items_left: usize,
}

impl<'s> Skip<'_, 's, '_> {
    fn bytes(&mut self, n: usize) -> Result<(), String> {
        if n > self.input.len() {
            return Err(format!(
                "the record ends early: {n} bytes needed, {} left",
                self.input.len()
            ));
        }
        self.input = &self.input[n..];
        Ok(())
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .input
                .split_first()
                .ok_or("the record ends early inside a number")?;
            self.input = rest;
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(if z & 1 == 0 {
                    (z >> 1) as i64
                } else {
                    !(z >> 1) as i64
                });
            }
        }
        Err("a number longer than 10 bytes".into())
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    /// The item count of the next block of an array or map (0 at the end).
    fn block(&mut self, total: usize) -> Result<usize, String> {
        let n = self.long()?;
        if n < 0 {
            self.long()?; // the block's size in bytes
        }
        let n = usize::try_from(n.unsigned_abs()).map_err(|_| "block too long".to_string())?;
        if total.saturating_add(n) > self.max_items {
            return Err(format!(
                "an array or map of more than {} items",
                self.max_items
            ));
        }
        if n > self.items_left {
            return Err(format!(
                "more than {} array and map items in one record",
                self.max_items
            ));
        }
        self.items_left -= n;
        Ok(n)
    }

    fn lookup(&self, name: &Name, ns: NamespaceRef) -> Result<(&'s Schema, Name), String> {
        let full = name.fully_qualified_name(ns).into_owned();
        match self.names.get(&full) {
            Some(s) => Ok((*s, full)),
            None => Err(format!("reference to undefined type {full}")),
        }
    }

    fn value(&mut self, schema: &'s Schema, ns: NamespaceRef, depth: usize) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!(
                "the record nests more than {MAX_DEPTH} levels deep (records, arrays, maps, unions)"
            ));
        }
        match schema {
            Schema::Ref { name } => {
                let (resolved, full) = self.lookup(name, ns)?;
                return self.value(resolved, full.namespace(), depth);
            }
            Schema::Null => {}
            Schema::Boolean => self.bytes(1)?,
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                self.long()?;
            }
            Schema::Float => self.bytes(4)?,
            Schema::Double => self.bytes(8)?,
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(apache_avro::schema::UuidSchema::String)
            | Schema::Uuid(apache_avro::schema::UuidSchema::Bytes)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: apache_avro::schema::InnerDecimalSchema::Bytes,
                ..
            }) => {
                let n = self.len()?;
                self.bytes(n)?
            }
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(apache_avro::schema::UuidSchema::Fixed(f))
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: apache_avro::schema::InnerDecimalSchema::Fixed(f),
                ..
            }) => self.bytes(f.size)?,
            Schema::Array(a) => {
                let mut total = 0;
                loop {
                    let n = self.block(total)?;
                    if n == 0 {
                        break;
                    }
                    total += n;
                    for _ in 0..n {
                        self.value(&a.items, ns, depth + 1)?;
                    }
                }
            }
            Schema::Map(m) => {
                let mut total = 0;
                loop {
                    let n = self.block(total)?;
                    if n == 0 {
                        break;
                    }
                    total += n;
                    for _ in 0..n {
                        let k = self.len()?;
                        self.bytes(k)?;
                        self.value(&m.types, ns, depth + 1)?;
                    }
                }
            }
            Schema::Union(u) => {
                let i = self.long()?;
                let variant = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union branch {i} does not exist"))?;
                self.value(variant, ns, depth + 1)?;
            }
            Schema::Record(r) => {
                let full = r.name.fully_qualified_name(ns);
                for f in &r.fields {
                    self.value(&f.schema, full.namespace(), depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// Refuses `big-decimal` values whose text would be larger than `MAX_BIG_DECIMAL_SCALE`
/// digits of scale (the `value` is no deeper than `MAX_DEPTH`, checked before).
pub(crate) fn check_big_decimals(value: &Value) -> Result<(), String> {
    match value {
        Value::BigDecimal(d) => {
            let (_, scale) = d.as_bigint_and_exponent();
            if scale.unsigned_abs() > MAX_BIG_DECIMAL_SCALE.unsigned_abs() {
                return Err(format!(
                    "a big-decimal with scale {scale} (at most {MAX_BIG_DECIMAL_SCALE} either way)"
                ));
            }
            Ok(())
        }
        Value::Union(_, v) => check_big_decimals(v),
        Value::Array(items) => items.iter().try_for_each(check_big_decimals),
        Value::Map(m) => m.values().try_for_each(check_big_decimals),
        Value::Record(fields) => fields.iter().try_for_each(|(_, v)| check_big_decimals(v)),
        _ => Ok(()),
    }
}

/// A reader over the datum that fails, rather than reports the end of the input, when
/// the datum is cut short: apache-avro decodes an end of input inside a boolean, a
/// string or a union index as a null.
pub(crate) struct Exact<'a, 'b>(pub &'b mut &'a [u8]);

impl Read for Exact<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.0.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the record ends early (truncated)",
            ));
        }
        self.0.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_avro_datum;

    /// A zig-zag varint, as Avro writes ints and longs.
    fn long(n: i64, out: &mut Vec<u8>) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    fn decode(schema: &str, datum: &[u8]) -> Result<serde_json::Value, String> {
        let schema = Schema::parse_str(schema).unwrap();
        decode_avro_datum(&schema, &mut &datum[..])
    }

    const LIST: &str =
        r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#;

    #[test]
    fn a_datum_cut_short_is_an_error_not_nulls() {
        let int_then = |t: &str| {
            format!(
                r#"{{"type":"record","name":"r","fields":[{{"name":"a","type":"int"}},{{"name":"b","type":{t}}}]}}"#
            )
        };
        // `a` = 1, then nothing where a string's bytes, a union index or a boolean go
        for (t, datum) in [
            (r#""string""#, &[2u8, 10, b'h', b'e'][..]),
            (r#"["null","string"]"#, &[2u8][..]),
            (r#""boolean""#, &[2u8][..]),
        ] {
            let e = decode(&int_then(t), datum).unwrap_err();
            assert!(e.contains("truncated"), "{t}: {e}");
        }
        assert_eq!(
            decode(&int_then(r#""boolean""#), &[2, 1]).unwrap(),
            serde_json::json!({"a": 1, "b": true})
        );
    }

    #[test]
    fn a_recursive_schema_cannot_nest_a_datum_past_the_limit() {
        // Each level is a record and a union: 10 levels decode, 100 000 are refused
        // before the reader recurses (it overflowed the stack at about 1000 levels).
        let mut datum = vec![2u8; 10];
        datum.push(0);
        let v = decode(LIST, &datum).unwrap();
        assert!(v.to_string().matches("next").count() == 11, "{v}");
        let mut datum = vec![2u8; 100_000];
        datum.push(0);
        let e = decode(LIST, &datum).unwrap_err();
        assert!(e.contains("128 levels"), "{e}");
        // Levels count as in the Avro JSON converter: a record, its union, ... and the
        // final null are 127 levels after 62 links (in), 129 after 63 (out).
        let mut datum = vec![2u8; 62];
        datum.push(0);
        let schema = Schema::parse_str(LIST).unwrap();
        let resolved = ResolvedSchema::new(&schema).unwrap();
        assert!(check_depth(&schema, &resolved, &datum, 1 << 20).is_ok());
        let mut datum = vec![2u8; 63];
        datum.push(0);
        assert!(check_depth(&schema, &resolved, &datum, 1 << 20).is_err());
    }

    #[test]
    fn schema_depth_is_found_without_walking_each_use_of_a_type() {
        let risks_of = |text: &str| {
            let s = Schema::parse_str(text).unwrap();
            let r = ResolvedSchema::new(&s).unwrap();
            risks(&s, r.get_names())
        };
        assert!(risks_of(LIST).deep);
        assert!(!risks_of(r#"{"type":"array","items":{"type":"map","values":"long"}}"#).deep);
        // 40 record types, each with two fields of the one before: 2^40 paths, 40 levels.
        let mut fields = r#"[{"name":"x","type":"int"}]"#.to_string();
        let mut text = String::new();
        for i in 0..40 {
            text = format!(r#"{{"type":"record","name":"t{i}","fields":{fields}}}"#);
            fields = format!(r#"[{{"name":"a","type":{text}}},{{"name":"b","type":"t{i}"}}]"#);
        }
        let r = risks_of(&text);
        assert!(!r.deep && !r.big_decimal);
        assert!(risks_of(r#"{"type":"bytes","logicalType":"big-decimal"}"#).big_decimal);
    }

    #[test]
    fn a_big_decimal_of_a_huge_scale_is_refused() {
        // unscaled 7, then the scale: its plain text has |scale| digits
        let big = |scale: i64| {
            let mut inner = Vec::new();
            long(1, &mut inner);
            inner.push(7);
            long(scale, &mut inner);
            let mut datum = Vec::new();
            long(inner.len() as i64, &mut datum);
            datum.extend_from_slice(&inner);
            decode(r#"{"type":"bytes","logicalType":"big-decimal"}"#, &datum)
        };
        assert_eq!(big(2).unwrap(), serde_json::json!("0.07"));
        assert_eq!(big(-3).unwrap(), serde_json::json!("7000"));
        // i64::MIN panicked (overflow), i64::MAX too (capacity), -10^10 allocated 10 GB
        for scale in [i64::MIN, i64::MAX, -10_000_000_000, 1001] {
            let e = big(scale).unwrap_err();
            assert!(e.contains("big-decimal"), "{scale}: {e}");
        }
    }
}
