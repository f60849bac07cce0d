//! URL path segments: decoded as servers receive them, encoded as clients send them.

/// Percent-decodes one URL path segment (warp hands segments over encoded); invalid
/// escapes are kept as they are.
pub fn percent_decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request path as its percent-decoded segments; a trailing `/` adds none, and `/` has
/// none at all.
pub fn path_segments(path: &str) -> Vec<String> {
    let mut segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    if segs.last().is_some_and(|s| s.is_empty()) {
        segs.pop();
    }
    segs
}

/// `segment` (a subject, a connector name: anything) as one URL path segment: every byte
/// but the unreserved ones (RFC 3986: letters, digits, `-._~`) percent-encoded.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes_and_leaves_the_rest() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%22x%22"), "\"x\"");
        assert_eq!(
            percent_decode("org.chicago.cta.weather.v1-value"),
            "org.chicago.cta.weather.v1-value"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn splits_paths_into_decoded_segments() {
        assert_eq!(path_segments("/subjects/"), vec!["subjects".to_string()]);
        assert_eq!(path_segments("/topics/a%20b"), vec!["topics", "a b"]);
        assert!(path_segments("/").is_empty());
        assert!(path_segments("").is_empty());
    }

    #[test]
    fn encodes_all_but_unreserved_bytes() {
        assert_eq!(
            encode_segment("org.chicago.cta.weather.v1-value"),
            "org.chicago.cta.weather.v1-value"
        );
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("x_y~z"), "x_y~z");
        assert_eq!(percent_decode(&encode_segment("é %/?")), "é %/?");
    }
}
