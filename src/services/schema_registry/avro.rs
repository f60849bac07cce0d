//! Canonical form (§1.4) and compatibility levels/checks of Avro schemas.

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

use super::errors::ApiError;

/// Parses `text` and returns the schema with its canonical text: the apache-avro parse
/// re-serialised compactly.
pub fn canonicalize(text: &str) -> Result<(Schema, String), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::rejected_schema("Empty schema"));
    }
    let schema = Schema::parse_str(text).map_err(ApiError::invalid_avro_schema)?;
    let canonical = serde_json::to_string(&schema).map_err(ApiError::invalid_avro_schema)?;
    Ok((schema, canonical))
}

/// A compatibility level (§1.2 `/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub const DEFAULT: Level = Level::Backward;

    /// Case-insensitive, surrounding blanks ignored.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }
}

/// `reader` can read everything written with `writer` (only full compatibility counts).
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => {
            Err("the reader can only partially resolve the writer's schema".to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Checks `candidate` against `existing` (a subject's non-deleted versions, oldest first) under
/// `level`: BACKWARD = the new schema reads the previous one, FORWARD = the previous reads the
/// new one, FULL = both; transitive levels check every version, the others only the latest.
/// Returns the reasons of the incompatibilities (empty = compatible).
pub fn check(level: Level, candidate: &Schema, existing: &[Schema]) -> Vec<String> {
    if level == Level::None {
        return Vec::new();
    }
    let against: &[Schema] = if level.transitive() {
        existing
    } else {
        match existing.last() {
            Some(_) => &existing[existing.len() - 1..],
            None => &[],
        }
    };
    let mut problems = Vec::new();
    for old in against {
        let backward = matches!(
            level,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        );
        let forward = matches!(
            level,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        );
        if backward {
            if let Err(e) = can_read(old, candidate) {
                problems.push(format!("new schema cannot read the previous one: {e}"));
            }
        }
        if forward {
            if let Err(e) = can_read(candidate, old) {
                problems.push(format!("previous schema cannot read the new one: {e}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"w","fields":[{"name":"a","type":"int"}]}"#;
    // adds a field with a default: backward and forward compatible
    const V2: &str = r#"{"type":"record","name":"w","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
    // adds a field without default: not backward compatible (cannot read V1 data), forward ok
    const V3: &str = r#"{"type":"record","name":"w","fields":[{"name":"a","type":"int"},{"name":"c","type":"string"}]}"#;

    fn s(t: &str) -> Schema {
        canonicalize(t).unwrap().0
    }

    #[test]
    fn canonical_ignores_whitespace_and_is_compact() {
        let pretty = "{\n  \"type\": \"record\",\n  \"name\": \"w\",\n  \"fields\": [ {\"name\": \"a\", \"type\": \"int\"} ]\n}";
        let (_, a) = canonicalize(V1).unwrap();
        let (_, b) = canonicalize(pretty).unwrap();
        assert_eq!(a, b);
        assert!(!a.contains(' ') && !a.contains('\n'), "{a}");
        assert_eq!(canonicalize("\"string\"").unwrap().1, "\"string\"");
    }

    #[test]
    fn invalid_and_empty_schemas_are_42201() {
        assert_eq!(canonicalize("not avro").unwrap_err().error_code, 42201);
        assert_eq!(
            canonicalize("{\"type\":\"nope\"}").unwrap_err().error_code,
            42201
        );
        assert_eq!(canonicalize("  ").unwrap_err().error_code, 42201);
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(
            Level::parse(" full_transitive "),
            Some(Level::FullTransitive)
        );
        assert_eq!(Level::parse("none"), Some(Level::None));
        assert_eq!(Level::parse("SIDEWAYS"), None);
        for l in [
            "NONE",
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ] {
            assert_eq!(Level::parse(l).unwrap().as_str(), l);
        }
    }

    #[test]
    fn compatibility_rules() {
        let (v1, v2, v3) = (s(V1), s(V2), s(V3));
        assert!(check(Level::Backward, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::Full, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(!check(Level::Backward, &v3, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::Forward, &v3, std::slice::from_ref(&v1)).is_empty());
        assert!(!check(Level::Full, &v3, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::None, &v3, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::Backward, &v3, &[]).is_empty());
        // non-transitive looks only at the latest; transitive at all
        let string = s("\"string\"");
        assert!(check(Level::Backward, &v1, &[string.clone(), v1.clone()]).is_empty());
        assert!(!check(Level::BackwardTransitive, &v1, &[string, v1.clone()]).is_empty());
    }
}
