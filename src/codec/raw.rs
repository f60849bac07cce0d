//! The `raw` codec: record bytes handed to serde as bytes, or as text where the target
//! type asks for a string. `Bytes`, `Vec<u8>`, `String` and `Option` of those work.

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RawError(pub String);

impl de::Error for RawError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

pub struct RawDeserializer<'a>(pub Option<&'a [u8]>);

impl<'de> Deserializer<'de> for RawDeserializer<'de> {
    type Error = RawError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        match self.0 {
            None => v.visit_none(),
            Some(b) => v.visit_borrowed_bytes(b),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        match self.0 {
            None => v.visit_none(),
            Some(_) => v.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        match self.0 {
            None => Err(RawError("null record where text was expected".into())),
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => v.visit_borrowed_str(s),
                Err(e) => Err(RawError(format!("record is not UTF-8 text: {e}"))),
            },
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        self.deserialize_str(v)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        match self.0 {
            None => Err(RawError("null record where bytes were expected".into())),
            Some(b) => v.visit_seq(de::value::SeqDeserializer::new(
                b.iter().map(|x| x.into_deserializer()),
            )),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        v.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, RawError> {
        v.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit_struct newtype_struct tuple tuple_struct map struct enum identifier
    }
}

/// Raw encoding takes a value that serializes to text or to a list of bytes.
pub fn encode_raw<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RawError> {
    match serde_json::to_value(value).map_err(|e| RawError(e.to_string()))? {
        serde_json::Value::String(s) => Ok(s.into_bytes()),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|i| {
                i.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| RawError("raw codec: list items must be bytes".into()))
            })
            .collect(),
        other => Err(RawError(format!(
            "the raw codec writes text or bytes, not {}",
            match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                _ => "an object",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn de<'a, T: Deserialize<'a>>(b: Option<&'a [u8]>) -> Result<T, RawError> {
        T::deserialize(RawDeserializer(b))
    }

    #[test]
    fn reads_text_bytes_and_options() {
        assert_eq!(de::<String>(Some(b"abc")).unwrap(), "abc");
        assert_eq!(de::<Vec<u8>>(Some(b"ab")).unwrap(), b"ab".to_vec());
        assert_eq!(de::<bytes::Bytes>(Some(b"ab")).unwrap(), &b"ab"[..]);
        assert_eq!(de::<Option<String>>(None).unwrap(), None);
        assert_eq!(de::<Option<String>>(Some(b"x")).unwrap(), Some("x".into()));
        assert!(de::<String>(Some(&[0xff, 0xfe])).is_err());
        assert!(de::<String>(None).is_err());
    }

    #[test]
    fn writes_text_and_bytes() {
        assert_eq!(encode_raw("hé").unwrap(), "hé".as_bytes());
        assert_eq!(encode_raw(&vec![1u8, 2]).unwrap(), vec![1, 2]);
        assert!(encode_raw(&5).is_err());
    }
}
