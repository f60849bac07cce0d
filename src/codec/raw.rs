//! The `raw` codec: record bytes handed to serde as bytes, or as text where the target
//! type asks for a string. `Bytes`, `Vec<u8>`, `String` and `Option` of those work.

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde::ser;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RawError(pub String);

impl ser::Error for RawError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

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

/// Raw encoding takes a value that serializes to text or bytes (`String`, `&str`,
/// `Bytes`, `serde_bytes`), or to a list of bytes (`Vec<u8>`).
pub fn encode_raw<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RawError> {
    value.serialize(RawSerializer)
}

struct RawSerializer;

fn not_raw<T>(what: &str) -> Result<T, RawError> {
    Err(RawError(format!(
        "the raw codec writes text or bytes, not {what}"
    )))
}

/// Collects a sequence of `u8` (how serde writes `Vec<u8>`).
struct ByteSeq(Vec<u8>);

impl ser::SerializeSeq for ByteSeq {
    type Ok = Vec<u8>;
    type Error = RawError;
    fn serialize_element<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), RawError> {
        let b = v.serialize(ByteOnly)?;
        self.0.push(b);
        Ok(())
    }
    fn end(self) -> Result<Vec<u8>, RawError> {
        Ok(self.0)
    }
}

struct ByteOnly;

macro_rules! reject {
    ($($name:ident($($t:ty),*) => $what:literal;)*) => {
        $(fn $name(self, $(_: $t),*) -> Result<Self::Ok, RawError> { not_raw($what) })*
    };
}

impl ser::Serializer for ByteOnly {
    type Ok = u8;
    type Error = RawError;
    type SerializeSeq = ser::Impossible<u8, RawError>;
    type SerializeTuple = ser::Impossible<u8, RawError>;
    type SerializeTupleStruct = ser::Impossible<u8, RawError>;
    type SerializeTupleVariant = ser::Impossible<u8, RawError>;
    type SerializeMap = ser::Impossible<u8, RawError>;
    type SerializeStruct = ser::Impossible<u8, RawError>;
    type SerializeStructVariant = ser::Impossible<u8, RawError>;
    fn serialize_u8(self, v: u8) -> Result<u8, RawError> {
        Ok(v)
    }
    reject! {
        serialize_bool(bool) => "a list of non-bytes";
        serialize_i8(i8) => "a list of non-bytes";
        serialize_i16(i16) => "a list of non-bytes";
        serialize_i32(i32) => "a list of non-bytes";
        serialize_i64(i64) => "a list of non-bytes";
        serialize_u16(u16) => "a list of non-bytes";
        serialize_u32(u32) => "a list of non-bytes";
        serialize_u64(u64) => "a list of non-bytes";
        serialize_f32(f32) => "a list of non-bytes";
        serialize_f64(f64) => "a list of non-bytes";
        serialize_char(char) => "a list of non-bytes";
        serialize_str(&str) => "a list of non-bytes";
        serialize_bytes(&[u8]) => "a list of non-bytes";
        serialize_none() => "a list of non-bytes";
        serialize_unit() => "a list of non-bytes";
        serialize_unit_struct(&'static str) => "a list of non-bytes";
        serialize_unit_variant(&'static str, u32, &'static str) => "a list of non-bytes";
    }
    fn serialize_some<T: serde::Serialize + ?Sized>(self, _: &T) -> Result<u8, RawError> {
        not_raw("a list of non-bytes")
    }
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<u8, RawError> {
        not_raw("a list of non-bytes")
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, RawError> {
        not_raw("a list of non-bytes")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, RawError> {
        not_raw("a nested list")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
        not_raw("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, RawError> {
        not_raw("a tuple")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, RawError> {
        not_raw("a tuple")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
        not_raw("a map")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, RawError> {
        not_raw("a struct")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, RawError> {
        not_raw("a struct")
    }
}

impl ser::Serializer for RawSerializer {
    type Ok = Vec<u8>;
    type Error = RawError;
    type SerializeSeq = ByteSeq;
    type SerializeTuple = ser::Impossible<Vec<u8>, RawError>;
    type SerializeTupleStruct = ser::Impossible<Vec<u8>, RawError>;
    type SerializeTupleVariant = ser::Impossible<Vec<u8>, RawError>;
    type SerializeMap = ser::Impossible<Vec<u8>, RawError>;
    type SerializeStruct = ser::Impossible<Vec<u8>, RawError>;
    type SerializeStructVariant = ser::Impossible<Vec<u8>, RawError>;
    fn serialize_str(self, v: &str) -> Result<Vec<u8>, RawError> {
        Ok(v.as_bytes().to_vec())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, RawError> {
        Ok(v.to_vec())
    }
    fn serialize_char(self, v: char) -> Result<Vec<u8>, RawError> {
        Ok(v.to_string().into_bytes())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq, RawError> {
        Ok(ByteSeq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_some<T: serde::Serialize + ?Sized>(self, v: &T) -> Result<Vec<u8>, RawError> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Vec<u8>, RawError> {
        v.serialize(self)
    }
    reject! {
        serialize_bool(bool) => "a boolean";
        serialize_i8(i8) => "a number";
        serialize_i16(i16) => "a number";
        serialize_i32(i32) => "a number";
        serialize_i64(i64) => "a number";
        serialize_u8(u8) => "a number";
        serialize_u16(u16) => "a number";
        serialize_u32(u32) => "a number";
        serialize_u64(u64) => "a number";
        serialize_f32(f32) => "a number";
        serialize_f64(f64) => "a number";
        serialize_none() => "null";
        serialize_unit() => "null";
        serialize_unit_struct(&'static str) => "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) => "an enum";
    }
    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Vec<u8>, RawError> {
        not_raw("an enum")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, RawError> {
        not_raw("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, RawError> {
        not_raw("a tuple")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, RawError> {
        not_raw("a tuple")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, RawError> {
        not_raw("an object")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, RawError> {
        not_raw("an object")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, RawError> {
        not_raw("an object")
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
        assert_eq!(
            encode_raw(&bytes::Bytes::from_static(b"k1")).unwrap(),
            b"k1"
        );
        assert_eq!(encode_raw(&Some("x")).unwrap(), b"x");
        assert!(encode_raw(&5).is_err());
        assert!(encode_raw(&serde_json::json!({"a": 1})).is_err());
        assert!(encode_raw(&vec![300u32]).is_err());
    }
}
