//! The app's namespace on the broker: `app.topic_prefix` goes before every topic the app
//! reads or writes, so that tests, benchmarks and a second deployment run beside the app on
//! one broker and never touch its topics. The settings are resolved once, when loaded:
//! every topic name in them is the name on the broker from then on. A name an agent makes
//! up at run time goes through `AgentContext::topic`.

use regex::Regex;
use std::sync::LazyLock;

/// Topic names Kafka accepts: ASCII letters, digits, `.`, `_` and `-`, at most 249.
const MAX_TOPIC_LEN: usize = 249;

/// Checks a topic prefix (empty is fine: no namespace).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{prefix:?} holds {c:?}: topic names take only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    if prefix.len() > MAX_TOPIC_LEN / 2 {
        return Err(format!(
            "{} characters is too long for a prefix of topic names (at most {})",
            prefix.len(),
            MAX_TOPIC_LEN / 2
        ));
    }
    Ok(())
}

/// A topic name in the namespace.
pub fn topic(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

/// A source pattern in the namespace: `^org\.x\..*` → `^<prefix>org\.x\..*`. A pattern
/// that does not start with `^` is left as it is (validation refuses it).
pub fn pattern(prefix: &str, pattern: &str) -> String {
    match pattern.strip_prefix('^') {
        // The pattern goes to librdkafka's own regex engine: of the characters a prefix may
        // hold only `.` is special, and `\.` is the one escape every engine reads alike.
        Some(rest) if !prefix.is_empty() => format!("^{}{rest}", prefix.replace('.', "\\.")),
        _ => pattern.to_string(),
    }
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{app\.([A-Za-z0-9_]*)\}").expect("valid regex"));

/// Expands `${app.id}` and `${app.topic_prefix}` in a connector's name or config value.
/// Kafka Connect's own `${provider:path:key}` references are left for Connect.
pub fn expand(text: &str, app_id: &str, prefix: &str) -> Result<String, String> {
    let mut unknown = None;
    let out = PLACEHOLDER.replace_all(text, |c: &regex::Captures| match &c[1] {
        "id" => app_id.to_string(),
        "topic_prefix" => prefix.to_string(),
        other => {
            unknown.get_or_insert_with(|| other.to_string());
            String::new()
        }
    });
    match unknown {
        Some(name) => Err(format!(
            "unknown placeholder ${{app.{name}}} (known: ${{app.id}}, ${{app.topic_prefix}})"
        )),
        None => Ok(out.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_names_and_anchored_patterns() {
        assert_eq!(topic("t1.", "orders"), "t1.orders");
        assert_eq!(topic("", "orders"), "orders");
        let p = pattern("t-1.", r"^org\.cta\..*");
        assert_eq!(p, r"^t-1\.org\.cta\..*");
        let re = Regex::new(&p).unwrap();
        assert!(re.is_match("t-1.org.cta.x"));
        assert!(!re.is_match("org.cta.x"));
        assert!(!re.is_match("t-1Xorg.cta.x"), "the prefix's dot is literal");
        assert_eq!(pattern("", r"^a\..*"), r"^a\..*");
        assert_eq!(pattern("p.", "a.*"), "a.*");
    }

    #[test]
    fn prefix_must_be_a_legal_piece_of_a_topic_name() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("test-run_7.").is_ok());
        assert!(check_prefix("a b").unwrap_err().contains("' '"));
        assert!(check_prefix("x/").is_err());
        assert!(check_prefix(&"x".repeat(200)).is_err());
    }

    #[test]
    fn expands_app_placeholders_and_leaves_connects_own() {
        assert_eq!(
            expand("${app.topic_prefix}org.cta.stations", "cta", "t.").unwrap(),
            "t.org.cta.stations"
        );
        assert_eq!(
            expand("${app.id}_stations", "cta", "").unwrap(),
            "cta_stations"
        );
        assert_eq!(
            expand("${file:/etc/secrets:pw}", "cta", "t.").unwrap(),
            "${file:/etc/secrets:pw}"
        );
        assert!(expand("${app.name}", "cta", "")
            .unwrap_err()
            .contains("${app.name}"));
    }
}
