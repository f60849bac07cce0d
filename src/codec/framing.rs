//! Confluent wire framing of Schema Registry encoded records: magic byte 0, the schema id
//! as a 4-byte big-endian signed integer, then the Avro binary datum.

use thiserror::Error;

pub const MAGIC_BYTE: u8 = 0;
pub const HEADER_LEN: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("record of {0} bytes is too short for the 5-byte schema registry header")]
    TooShort(usize),
    #[error("unknown magic byte {0} (expected 0: Confluent schema registry framing)")]
    BadMagic(u8),
}

/// Prepends the header for `schema_id` to an Avro binary datum.
pub fn frame(schema_id: i32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + datum.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a framed record into its schema id and datum.
pub fn unframe(bytes: &[u8]) -> Result<(i32, &[u8]), FramingError> {
    if bytes.len() < HEADER_LEN {
        return Err(FramingError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(FramingError::BadMagic(bytes[0]));
    }
    let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_magic_then_big_endian_id() {
        let framed = frame(0x0102_0304, &[9, 8]);
        assert_eq!(framed, vec![0, 1, 2, 3, 4, 9, 8]);
        assert_eq!(unframe(&framed), Ok((0x0102_0304, &[9u8, 8][..])));
    }

    #[test]
    fn empty_datum_is_allowed() {
        assert_eq!(unframe(&frame(7, &[])), Ok((7, &[][..])));
    }

    #[test]
    fn short_and_bad_magic_are_errors() {
        assert_eq!(unframe(&[0, 0, 0]), Err(FramingError::TooShort(3)));
        assert_eq!(unframe(&[1, 0, 0, 0, 1]), Err(FramingError::BadMagic(1)));
        assert_eq!(unframe(b"{\"a\":1}"), Err(FramingError::BadMagic(b'{')));
    }
}
