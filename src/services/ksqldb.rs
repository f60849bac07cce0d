//! ksqlDB (and KSQL 5.x) REST client: run statements through `POST /ksql`, list the streams
//! and tables, and apply a `.sql` script so that running it again changes nothing. A
//! statement that creates a stream or table that already exists is skipped.
//!
//! The pure parts are public and tested without a server: [`split_statements`],
//! [`created_object`], [`plan`], [`request_body`], [`parse_list`] and [`interpret_response`].

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use crate::http::client::{excerpt, Backoff, RestClient, Timeouts};

/// What the client sends (the docs' form; `application/json` is accepted too).
pub const CONTENT_TYPE: &str = "application/vnd.ksql.v1+json; charset=utf-8";
/// What the client asks for.
pub const ACCEPT: &str = "application/vnd.ksql.v1+json";
/// Sent with every statement: new queries read their sources from the beginning.
pub const OFFSET_RESET_PROPERTY: (&str, &str) = ("ksql.streams.auto.offset.reset", "earliest");

/// The two kinds of named objects a statement can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Stream,
    Table,
}

impl ObjectKind {
    /// The statement that lists objects of this kind.
    pub fn show_statement(self) -> &'static str {
        match self {
            ObjectKind::Stream => "SHOW STREAMS;",
            ObjectKind::Table => "SHOW TABLES;",
        }
    }

    /// The `@type` of the listing entity, also the name of its array member.
    fn list_member(self) -> &'static str {
        match self {
            ObjectKind::Stream => "streams",
            ObjectKind::Table => "tables",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Stream => "stream",
            ObjectKind::Table => "table",
        })
    }
}

/// What [`KsqlClient::apply`] did with one statement, in the order of the statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The statement ran and created the stream or table. For `CREATE OR REPLACE`, it may
    /// have replaced an existing one.
    Created { name: String },
    /// The stream or table already existed; the statement was not sent.
    Skipped { name: String },
    /// A statement that creates nothing (INSERT, DROP, SET, ...) ran as it is.
    Ran,
}

/// What [`plan`] decides for one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Run it: it creates `name`, which does not exist yet (or it is `CREATE OR REPLACE`).
    Create { kind: ObjectKind, name: String },
    /// Do not send it: `name` already exists as this kind.
    Skip { kind: ObjectKind, name: String },
    /// `name` exists as the other kind. Streams and tables share one namespace, so this
    /// statement would fail, and skipping it would silently keep the wrong object.
    Conflict {
        name: String,
        wanted: ObjectKind,
        existing: ObjectKind,
    },
    /// Creates nothing: run it as it is.
    Run,
}

/// The streams and tables known to the server: names as `SHOW STREAMS` / `SHOW TABLES`
/// report them (unquoted identifiers upper-cased).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    pub streams: BTreeSet<String>,
    pub tables: BTreeSet<String>,
}

impl Existing {
    pub fn new(
        streams: impl IntoIterator<Item = String>,
        tables: impl IntoIterator<Item = String>,
    ) -> Self {
        Existing {
            streams: streams.into_iter().collect(),
            tables: tables.into_iter().collect(),
        }
    }

    /// Whether `name` exists, and as what.
    pub fn kind_of(&self, name: &str) -> Option<ObjectKind> {
        if self.streams.contains(name) {
            Some(ObjectKind::Stream)
        } else if self.tables.contains(name) {
            Some(ObjectKind::Table)
        } else {
            None
        }
    }

    fn insert(&mut self, kind: ObjectKind, name: &str) {
        match kind {
            ObjectKind::Stream => self.streams.insert(name.to_string()),
            ObjectKind::Table => self.tables.insert(name.to_string()),
        };
    }
}

#[derive(Debug, Error)]
pub enum KsqlError {
    #[error("ksqlDB at {url} is unreachable after {attempts} attempts: {message}")]
    Unreachable {
        url: String,
        attempts: u32,
        message: String,
    },
    #[error(
        "ksqlDB at {url} rejected a statement (HTTP {status}, error_code {error_code}): {message}; statement: {}",
        one_line(.statement)
    )]
    Statement {
        url: String,
        status: u16,
        error_code: i64,
        message: String,
        statement: String,
    },
    #[error("ksqlDB at {url} answered HTTP {status} to {}: {body}", one_line(.statement))]
    Http {
        url: String,
        status: u16,
        body: String,
        statement: String,
    },
    #[error(
        "ksqlDB at {url} did not complete a statement (command status {status}): {message}; statement: {}",
        one_line(.statement)
    )]
    CommandFailed {
        url: String,
        status: String,
        message: String,
        statement: String,
    },
    #[error("ksqlDB at {url} sent an unreadable answer to {}: {message}", one_line(.statement))]
    BadResponse {
        url: String,
        message: String,
        statement: String,
    },
    #[error(
        "ksqlDB at {url} already has a {existing} named {name}, so the {wanted} cannot be created; statement: {}",
        one_line(.statement)
    )]
    KindConflict {
        url: String,
        name: String,
        wanted: ObjectKind,
        existing: ObjectKind,
        statement: String,
    },
    #[error("cannot set up an HTTP client for ksqlDB at {url}: {message}")]
    Setup { url: String, message: String },
    #[error("no ksqlDB URL is configured (services.ksqldb)")]
    NotConfigured,
}

impl KsqlError {
    /// Worth retrying later: the server is down, starting, or failing, not the statement.
    pub fn is_transient(&self) -> bool {
        match self {
            KsqlError::Unreachable { .. } => true,
            KsqlError::Statement { status, .. } | KsqlError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The server refused to create something because a source with that name exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, KsqlError::Statement { message, .. } if message.contains("already exists"))
    }
}

/// Splits a `.sql` script into statements on each `;` that is outside a single-quoted string,
/// a double-quoted or back-quoted identifier, and a `--` or `/* */` comment (quotes escape
/// themselves by doubling: `'it''s'`). Comments are removed. Each statement is trimmed and
/// ends with `;`. Empty statements are dropped, including ones that held only comments.
/// The last statement may lack its `;`.
pub fn split_statements(text: &str) -> Vec<String> {
    fn finish(out: &mut Vec<String>, current: &mut String) {
        let trimmed = current.trim();
        if !trimmed.is_empty() {
            out.push(format!("{trimmed};"));
        }
        current.clear();
    }

    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                // Copy through the closing quote. A doubled quote closes, then reopens.
                current.push(c);
                for d in chars.by_ref() {
                    current.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                // Line comment: dropped, but not the newline that ends it.
                while chars.next_if(|&d| d != '\n').is_some() {}
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                current.push(' ');
            }
            ';' => finish(&mut out, &mut current),
            _ => current.push(c),
        }
    }
    finish(&mut out, &mut current);
    out
}

/// For `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name ...` (with or without
/// `AS SELECT`), the kind and the name as ksqlDB stores it. An unquoted name is upper-cased.
/// A `"quoted"` or `` `quoted` `` name is kept as written, with doubled quotes unescaped.
/// Anything else gives `None`.
pub fn created_object(stmt: &str) -> Option<(ObjectKind, String)> {
    parse_create(stmt).map(|c| (c.kind, c.name))
}

/// Decides, for each statement in order, whether to run or skip it given what `existing`
/// holds. An object created by an earlier statement of the list counts as existing for the
/// later ones.
pub fn plan(statements: &[String], existing: &Existing) -> Vec<Planned> {
    let mut known = existing.clone();
    statements
        .iter()
        .map(|stmt| {
            let Some(create) = parse_create(stmt) else {
                return Planned::Run;
            };
            match known.kind_of(&create.name) {
                Some(found) if found != create.kind => Planned::Conflict {
                    name: create.name,
                    wanted: create.kind,
                    existing: found,
                },
                Some(_) if !create.or_replace => Planned::Skip {
                    kind: create.kind,
                    name: create.name,
                },
                _ => {
                    known.insert(create.kind, &create.name);
                    Planned::Create {
                        kind: create.kind,
                        name: create.name,
                    }
                }
            }
        })
        .collect()
}

/// The body of `POST /ksql` for one statement. `after` is a `commandSequenceNumber`: the
/// server runs the statement only once that command has been executed. This is how the
/// docs chain statements that depend on each other across requests.
pub fn request_body(statement: &str, after: Option<i64>) -> Value {
    let (property, value) = OFFSET_RESET_PROPERTY;
    let mut body = json!({
        "ksql": statement,
        "streamsProperties": { property: value },
    });
    if let Some(seq) = after {
        body["commandSequenceNumber"] = json!(seq);
    }
    body
}

/// The names in a `SHOW STREAMS;` / `SHOW TABLES;` answer: an array holding one entity with
/// `"@type": "streams"` / `"tables"` and a member of the same name listing
/// `{"name": ..., ...}`. `None` when the answer has no such list.
pub fn parse_list(answer: &Value, kind: ObjectKind) -> Option<Vec<String>> {
    let member = kind.list_member();
    entities(answer)
        .iter()
        .find_map(|e| e.get(member)?.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("name")?.as_str().map(str::to_string))
                .collect()
        })
}

/// Turns one HTTP answer from `url` to `statement` into the entity array, or into the error
/// it reports.
/// * 2xx: the JSON array of entities. An error entity inside it, or a command whose
///   `commandStatus.status` is `ERROR`, is still an error.
/// * other: [`KsqlError::Statement`] from a ksqlDB error body (`error_code`, `message`,
///   optional `@type`, `statementText`, `entities`), or [`KsqlError::Http`] when the body
///   is not one.
pub fn interpret_response(
    url: &str,
    status: u16,
    body: &[u8],
    statement: &str,
) -> Result<Value, KsqlError> {
    if !(200..300).contains(&status) {
        return Err(match parse_error_body(body) {
            Some(e) => e.into_error(url, status, statement),
            None => KsqlError::Http {
                url: url.to_string(),
                status,
                body: excerpt(body),
                statement: statement.to_string(),
            },
        });
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| KsqlError::BadResponse {
        url: url.to_string(),
        message: e.to_string(),
        statement: statement.to_string(),
    })?;
    for entity in entities(&answer) {
        if let Some(e) = ErrorBody::from_value(entity) {
            return Err(e.into_error(url, status, statement));
        }
        let command = entity.get("commandStatus");
        if let Some(s) = command
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
        {
            if s.eq_ignore_ascii_case("ERROR") {
                return Err(KsqlError::CommandFailed {
                    url: url.to_string(),
                    status: s.to_string(),
                    message: command
                        .and_then(|c| c.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    statement: text_of(entity).unwrap_or(statement).to_string(),
                });
            }
        }
    }
    Ok(answer)
}

/// The highest `commandSequenceNumber` in an answer (`-1` means none was assigned).
pub fn last_command_sequence(answer: &Value) -> Option<i64> {
    entities(answer)
        .iter()
        .filter_map(|e| e.get("commandSequenceNumber")?.as_i64())
        .filter(|n| *n >= 0)
        .max()
}

/// A ksqlDB / KSQL REST client.
pub struct KsqlClient {
    http: RestClient,
}

impl KsqlClient {
    pub fn new(base_url: &str) -> Result<Self, KsqlError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if base.is_empty() {
            return Err(KsqlError::NotConfigured);
        }
        // A CREATE ... AS SELECT answer waits for the command to run, up to the server's
        // ksql.server.command.response.timeout.ms (5 s by default).
        let http = RestClient::new(
            "ksqlDB",
            &base,
            Timeouts {
                request: Duration::from_secs(30),
                connect: Some(Duration::from_secs(3)),
            },
            Backoff {
                attempts: 5,
                first: Duration::from_millis(200),
                max: Duration::from_secs(3),
            },
        )
        .map_err(|e| KsqlError::Setup {
            url: base.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { http })
    }

    /// Fewer (or more) attempts per request; at least one.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.http = self.http.with_attempts(attempts);
        self
    }

    pub fn url(&self) -> &str {
        self.http.url()
    }

    /// Runs one statement (or several, `;`-separated, in one request) and returns the
    /// server's entity array.
    pub async fn execute(&self, stmt: &str) -> Result<Value, KsqlError> {
        self.post(stmt, None).await
    }

    /// The names of the existing streams or tables.
    pub async fn list(&self, kind: ObjectKind) -> Result<Vec<String>, KsqlError> {
        let stmt = kind.show_statement();
        let answer = self.post(stmt, None).await?;
        parse_list(&answer, kind).ok_or_else(|| KsqlError::BadResponse {
            url: self.endpoint(),
            message: format!("no \"{}\" list in {answer}", kind.list_member()),
            statement: stmt.to_string(),
        })
    }

    /// Runs `statements` in order, one request each. A statement that creates a stream or
    /// table that already exists is skipped. The existing objects are listed once per call,
    /// one SHOW per kind, and only when some statement creates something. A name that exists
    /// as the other kind fails the call before anything runs. Otherwise the call stops at the
    /// first error, which names its statement; the statements before it stay applied.
    pub async fn apply(&self, statements: &[String]) -> Result<Vec<Applied>, KsqlError> {
        let existing = if statements.iter().any(|s| parse_create(s).is_some()) {
            Existing::new(
                self.list(ObjectKind::Stream).await?,
                self.list(ObjectKind::Table).await?,
            )
        } else {
            Existing::default()
        };
        let steps = plan(statements, &existing);
        for (stmt, step) in statements.iter().zip(&steps) {
            if let Planned::Conflict { .. } = step {
                return Err(self.conflict(stmt, step));
            }
        }
        let mut after = None;
        let mut applied = Vec::with_capacity(statements.len());
        for (stmt, step) in statements.iter().zip(steps) {
            match step {
                Planned::Skip { kind, name } => {
                    tracing::info!(%kind, %name, "ksqlDB: already exists; statement skipped");
                    applied.push(Applied::Skipped { name });
                }
                Planned::Create { kind, name } => {
                    let answer = self.post(stmt, after).await?;
                    after = last_command_sequence(&answer).or(after);
                    tracing::info!(%kind, %name, "ksqlDB: created");
                    applied.push(Applied::Created { name });
                }
                Planned::Run => {
                    let answer = self.post(stmt, after).await?;
                    after = last_command_sequence(&answer).or(after);
                    tracing::info!(statement = %one_line(stmt), "ksqlDB: statement ran");
                    applied.push(Applied::Ran);
                }
                conflict @ Planned::Conflict { .. } => return Err(self.conflict(stmt, &conflict)),
            }
        }
        Ok(applied)
    }

    fn endpoint(&self) -> String {
        self.http.endpoint("/ksql")
    }

    fn conflict(&self, stmt: &str, step: &Planned) -> KsqlError {
        let Planned::Conflict {
            name,
            wanted,
            existing,
        } = step
        else {
            unreachable!("conflict() is only called with Planned::Conflict");
        };
        KsqlError::KindConflict {
            url: self.url().to_string(),
            name: name.clone(),
            wanted: *wanted,
            existing: *existing,
            statement: stmt.to_string(),
        }
    }

    /// One `POST /ksql`, retried while the request cannot have run: connection failures,
    /// and 503s (server starting, catching up with its command queue, or shutting down).
    /// Read-only statements (SHOW, LIST, DESCRIBE, EXPLAIN) are also retried after
    /// timeouts and other 5xx answers. A statement that may have reached the server is not
    /// sent twice.
    async fn post(&self, stmt: &str, after: Option<i64>) -> Result<Value, KsqlError> {
        let read_only = is_read_only(stmt);
        let answer = self
            .http
            .call(reqwest::Method::POST, "/ksql")
            .accept(ACCEPT)
            .body(CONTENT_TYPE, request_body(stmt, after).to_string())
            .retry_status(if read_only {
                |status| status >= 500
            } else {
                |status| status == 503
            })
            .resend_after_delivery(read_only)
            .send()
            .await
            .map_err(|e| KsqlError::Unreachable {
                message: if e.not_resent {
                    format!(
                        "{}; the statement may have run, so it was not sent again: {}",
                        e.message,
                        one_line(stmt)
                    )
                } else {
                    format!("{} (statement: {})", e.message, one_line(stmt))
                },
                url: e.url,
                attempts: e.attempts,
            })?;
        let answer = interpret_response(&self.endpoint(), answer.status, &answer.body, stmt)?;
        log_warnings(&answer);
        Ok(answer)
    }
}

/// A ksqlDB error body.
struct ErrorBody {
    error_code: i64,
    message: String,
    statement_text: Option<String>,
}

impl ErrorBody {
    /// An error entity: `error_code` and `message`, and `@type` ending in `_error` if it is
    /// there (`statement_error`, `generic_error`).
    fn from_value(v: &Value) -> Option<Self> {
        let error_code = v.get("error_code")?.as_i64()?;
        let message = v.get("message")?.as_str()?.to_string();
        if let Some(t) = v.get("@type").and_then(Value::as_str) {
            if !t.ends_with("_error") {
                return None;
            }
        }
        Some(ErrorBody {
            error_code,
            message,
            statement_text: text_of(v).map(str::to_string),
        })
    }

    fn into_error(self, url: &str, status: u16, sent: &str) -> KsqlError {
        KsqlError::Statement {
            url: url.to_string(),
            status,
            error_code: self.error_code,
            message: self.message,
            statement: self.statement_text.unwrap_or_else(|| sent.to_string()),
        }
    }
}

/// The error object of a non-2xx body, bare or as the first error entity of an array.
fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    let v: Value = serde_json::from_slice(body).ok()?;
    entities(&v).iter().find_map(|e| ErrorBody::from_value(e))
}

/// The entities of an answer: its elements when it is an array, else the answer itself.
fn entities(answer: &Value) -> Vec<&Value> {
    match answer {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn text_of(entity: &Value) -> Option<&str> {
    entity
        .get("statementText")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn log_warnings(answer: &Value) {
    for entity in entities(answer) {
        let warnings = entity.get("warnings").and_then(Value::as_array);
        for w in warnings.into_iter().flatten() {
            let message = w.get("message").and_then(Value::as_str).unwrap_or_default();
            let statement = text_of(entity).map(one_line).unwrap_or_default();
            tracing::warn!(%statement, "ksqlDB warning: {message}");
        }
    }
}

/// A statement on one line, for messages: every run of whitespace becomes one space.
fn one_line(stmt: &str) -> String {
    stmt.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Create {
    kind: ObjectKind,
    name: String,
    or_replace: bool,
}

fn parse_create(stmt: &str) -> Option<Create> {
    let toks = leading_tokens(stmt, 9);
    let word = |i: usize, w: &str| matches!(toks.get(i), Some(Token::Word(t)) if t.eq_ignore_ascii_case(w));
    if !word(0, "CREATE") {
        return None;
    }
    let mut i = 1;
    let or_replace = word(i, "OR") && word(i + 1, "REPLACE");
    if or_replace {
        i += 2;
    }
    if word(i, "SOURCE") {
        i += 1;
    }
    let kind = if word(i, "STREAM") {
        ObjectKind::Stream
    } else if word(i, "TABLE") {
        ObjectKind::Table
    } else {
        return None;
    };
    i += 1;
    // IF is not reserved: `CREATE TABLE if (...)` creates a table named IF.
    if word(i, "IF") && word(i + 1, "NOT") && word(i + 2, "EXISTS") {
        i += 3;
    }
    let name = match toks.get(i)? {
        Token::Word(w) => w.to_uppercase(),
        Token::Quoted(q) => q.clone(),
        Token::Other(_) => return None,
    };
    Some(Create {
        kind,
        name,
        or_replace,
    })
}

/// SHOW / LIST / DESCRIBE / EXPLAIN change nothing, so sending them twice is harmless.
fn is_read_only(stmt: &str) -> bool {
    matches!(leading_tokens(stmt, 1).first(), Some(Token::Word(w))
        if ["SHOW", "LIST", "DESCRIBE", "EXPLAIN"].iter().any(|k| w.eq_ignore_ascii_case(k)))
}

#[derive(Debug, PartialEq)]
enum Token {
    /// An unquoted word (keyword or identifier), as written.
    Word(String),
    /// A `"double"` or `` `back` ``-quoted identifier, unescaped.
    Quoted(String),
    /// Any other character (punctuation, a string literal's opening quote, ...).
    Other(char),
}

/// The first `max` tokens of a statement, skipping whitespace and comments.
fn leading_tokens(stmt: &str, max: usize) -> Vec<Token> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '@';
    let mut out = Vec::new();
    let mut chars = stmt.chars().peekable();
    while out.len() < max {
        let Some(c) = chars.next() else { break };
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek() == Some(&'-') => while chars.next_if(|&d| d != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '"' | '`' => {
                let mut name = String::new();
                while let Some(d) = chars.next() {
                    // A doubled quote stands for one; a single one closes the name.
                    if d == c && chars.next_if_eq(&c).is_none() {
                        break;
                    }
                    name.push(d);
                }
                out.push(Token::Quoted(name));
            }
            c if is_word(c) => {
                let mut w = String::from(c);
                while let Some(d) = chars.next_if(|&d| is_word(d)) {
                    w.push(d);
                }
                out.push(Token::Word(w));
            }
            other => out.push(Token::Other(other)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The app's statements as the worker submits them without a topic prefix.
    fn cta_script() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ksql/turnstile_summary.sql");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        crate::settings::namespace::expand(&text, "cta", "").unwrap()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let text = "CREATE STREAM a (x VARCHAR) WITH (KAFKA_TOPIC='t;1', VALUE_FORMAT='JSON');\n\
                    INSERT INTO a (x) VALUES ('it''s; fine');  \n\
                    -- a comment; with a quote ' and a semicolon\n\
                    SELECT \"we;ird\", `back;tick` FROM a /* no; split */ EMIT CHANGES;\n\
                    \t  \n";
        assert_eq!(
            split_statements(text),
            strings(&[
                "CREATE STREAM a (x VARCHAR) WITH (KAFKA_TOPIC='t;1', VALUE_FORMAT='JSON');",
                "INSERT INTO a (x) VALUES ('it''s; fine');",
                "SELECT \"we;ird\", `back;tick` FROM a   EMIT CHANGES;",
            ])
        );
    }

    #[test]
    fn drops_empty_and_comment_only_statements_and_terminates_the_last() {
        assert_eq!(split_statements(""), Vec::<String>::new());
        assert_eq!(
            split_statements(" ;\n;; -- only a comment\n"),
            Vec::<String>::new()
        );
        assert_eq!(split_statements("/* a */ ; /* b; */"), Vec::<String>::new());
        assert_eq!(
            split_statements("SHOW TABLES;\nSHOW STREAMS  \r\n"),
            strings(&["SHOW TABLES;", "SHOW STREAMS;"])
        );
        // A line comment ends at the newline: the text after it is kept.
        assert_eq!(
            split_statements("DROP -- why\nSTREAM s;"),
            strings(&["DROP \nSTREAM s;"])
        );
    }

    #[test]
    fn created_object_recognises_create_stream_and_table() {
        use ObjectKind::*;
        let cases: &[(&str, Option<(ObjectKind, &str)>)] = &[
            (
                "CREATE STREAM turnstile (a INT) WITH (KAFKA_TOPIC='t');",
                Some((Stream, "TURNSTILE")),
            ),
            (
                "create table Summary WITH (VALUE_FORMAT='JSON') AS SELECT 1;",
                Some((Table, "SUMMARY")),
            ),
            (
                "CREATE OR REPLACE STREAM s AS SELECT * FROM t;",
                Some((Stream, "S")),
            ),
            (
                "CREATE SOURCE TABLE t (k INT PRIMARY KEY) WITH (KAFKA_TOPIC='t');",
                Some((Table, "T")),
            ),
            (
                "CREATE OR REPLACE SOURCE STREAM s2 (a INT);",
                Some((Stream, "S2")),
            ),
            (
                "CREATE STREAM IF NOT EXISTS s3 (a INT);",
                Some((Stream, "S3")),
            ),
            (
                "CREATE TABLE if not exists t2 AS SELECT 1;",
                Some((Table, "T2")),
            ),
            ("CREATE TABLE if (k INT PRIMARY KEY);", Some((Table, "IF"))),
            ("CREATE STREAM x_1(a INT);", Some((Stream, "X_1"))),
            (
                "CREATE STREAM \"MixedCase\" (a INT);",
                Some((Stream, "MixedCase")),
            ),
            (
                "CREATE TABLE `back``tick` (k INT PRIMARY KEY);",
                Some((Table, "back`tick")),
            ),
            ("CREATE STREAM \"a\"\"b\" (a INT);", Some((Stream, "a\"b"))),
            (
                "-- leading comment\n/* and another */ CREATE\n  STREAM\tlate (a INT);",
                Some((Stream, "LATE")),
            ),
            ("INSERT INTO s SELECT * FROM t;", None),
            ("DROP TABLE t;", None),
            ("SHOW TABLES;", None),
            ("CREATE TYPE address AS STRUCT<a INT>;", None),
            ("CREATE SOURCE CONNECTOR c WITH ('a'='b');", None),
            ("CREATE OR REPLACE;", None),
            ("CREATE STREAM ${name} (a INT);", None),
            ("CREATE STREAM", None),
        ];
        for (stmt, want) in cases {
            let got = created_object(stmt);
            let want = want.map(|(k, n)| (k, n.to_string()));
            assert_eq!(got, want, "{stmt}");
        }
    }

    #[test]
    fn request_body_has_the_statement_and_offset_reset() {
        let body = request_body("SHOW TABLES;", None);
        assert_eq!(
            body,
            json!({
                "ksql": "SHOW TABLES;",
                "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest"}
            })
        );
        let chained = request_body("CREATE TABLE t AS SELECT 1;", Some(7));
        assert_eq!(chained["commandSequenceNumber"], json!(7));
        assert_eq!(chained["ksql"], json!("CREATE TABLE t AS SELECT 1;"));
    }

    #[test]
    fn statement_error_body_becomes_a_statement_error() {
        let body = br#"{"@type":"statement_error","error_code":40001,"message":"Table TURNSTILE already exists","statementText":"CREATE TABLE turnstile (station_id INT) WITH (KAFKA_TOPIC='x');","entities":[]}"#;
        let err = interpret_response("http://ksql:8088/ksql", 400, body, "sent;").unwrap_err();
        match &err {
            KsqlError::Statement {
                url,
                status,
                error_code,
                message,
                statement,
            } => {
                assert_eq!(url, "http://ksql:8088/ksql");
                assert_eq!(*status, 400);
                assert_eq!(*error_code, 40001);
                assert_eq!(message, "Table TURNSTILE already exists");
                assert!(
                    statement.starts_with("CREATE TABLE turnstile"),
                    "{statement}"
                );
            }
            other => panic!("not a statement error: {other:?}"),
        }
        let shown = err.to_string();
        for part in [
            "Table TURNSTILE already exists",
            "40001",
            "CREATE TABLE turnstile (station_id INT)",
            "http://ksql:8088/ksql",
        ] {
            assert!(shown.contains(part), "{part:?} missing from {shown}");
        }
        assert!(err.is_already_exists());
        assert!(!err.is_transient());
    }

    #[test]
    fn other_error_bodies() {
        // A generic error without statementText names the statement that was sent.
        let body = br#"{"@type":"generic_error","error_code":50302,"message":"KSQL is not yet ready to serve requests."}"#;
        let err = interpret_response("u", 503, body, "SHOW TABLES;").unwrap_err();
        assert!(
            matches!(&err, KsqlError::Statement { error_code: 50302, statement, .. } if statement == "SHOW TABLES;"),
            "{err:?}"
        );
        assert!(err.is_transient());
        // An error entity wrapped in an array, as some versions answer.
        let body = br#"[{"@type":"statement_error","error_code":40001,"message":"Cannot add stream 'S': A stream with the same name already exists","statementText":"CREATE STREAM s (a INT);"}]"#;
        let err = interpret_response("u", 400, body, "x;").unwrap_err();
        assert!(err.is_already_exists(), "{err:?}");
        // Not a ksqlDB body: HTTP error with the body's start.
        let err =
            interpret_response("u", 502, b"<html>Bad Gateway</html>", "SHOW TABLES;").unwrap_err();
        assert!(
            matches!(&err, KsqlError::Http { status: 502, body, .. } if body.contains("Bad Gateway")),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert!(err.to_string().contains("SHOW TABLES;"), "{err}");
        let err = interpret_response("u", 404, br#"{"message":"no"}"#, "s;").unwrap_err();
        assert!(
            matches!(err, KsqlError::Http { status: 404, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn success_bodies() {
        let body = br#"[{"@type":"currentStatus","statementText":"CREATE STREAM turnstile (...) WITH (...);","commandId":"stream/TURNSTILE/create","commandStatus":{"status":"SUCCESS","message":"Stream created"},"commandSequenceNumber":2,"warnings":[]},
                         {"@type":"currentStatus","statementText":"CREATE TABLE turnstile_summary ...;","commandId":"table/TURNSTILE_SUMMARY/create","commandStatus":{"status":"SUCCESS","message":"Created query with ID CTAS_TURNSTILE_SUMMARY_3"},"commandSequenceNumber":3}]"#;
        let answer = interpret_response("u", 200, body, "s;").unwrap();
        assert_eq!(last_command_sequence(&answer), Some(3));
        assert_eq!(
            last_command_sequence(&json!([{"commandSequenceNumber": -1}])),
            None
        );

        let failed = br#"[{"@type":"currentStatus","statementText":"CREATE TABLE t AS SELECT 1;","commandStatus":{"status":"ERROR","message":"boom"},"commandSequenceNumber":-1}]"#;
        let err = interpret_response("u", 200, failed, "s;").unwrap_err();
        assert!(
            matches!(&err, KsqlError::CommandFailed { message, statement, .. } if message == "boom" && statement == "CREATE TABLE t AS SELECT 1;"),
            "{err:?}"
        );
        let err = interpret_response("u", 200, b"not json", "s;").unwrap_err();
        assert!(matches!(err, KsqlError::BadResponse { .. }), "{err:?}");
    }

    #[test]
    fn parses_show_tables_and_streams_answers() {
        let tables: Value = serde_json::from_str(
            r#"[{"@type":"tables","statementText":"SHOW TABLES;","tables":[
                  {"type":"TABLE","name":"TURNSTILE","topic":"org.chicago.cta.turnstile.v1","keyFormat":"KAFKA","valueFormat":"AVRO","isWindowed":false},
                  {"type":"TABLE","name":"TURNSTILE_SUMMARY","topic":"TURNSTILE_SUMMARY","format":"JSON","isWindowed":false}],"warnings":[]}]"#,
        )
        .unwrap();
        assert_eq!(
            parse_list(&tables, ObjectKind::Table),
            Some(strings(&["TURNSTILE", "TURNSTILE_SUMMARY"]))
        );
        assert_eq!(parse_list(&tables, ObjectKind::Stream), None);

        let streams = json!([{"@type":"streams","statementText":"SHOW STREAMS;","streams":[
            {"type":"STREAM","name":"KSQL_PROCESSING_LOG","topic":"default_ksql_processing_log","keyFormat":"KAFKA","valueFormat":"JSON","isWindowed":false}],"warnings":[]}]);
        assert_eq!(
            parse_list(&streams, ObjectKind::Stream),
            Some(strings(&["KSQL_PROCESSING_LOG"]))
        );
        let empty = json!([{"@type":"streams","statementText":"SHOW STREAMS;","streams":[]}]);
        assert_eq!(parse_list(&empty, ObjectKind::Stream), Some(vec![]));
    }

    #[test]
    fn plan_skips_what_exists_and_creates_the_rest() {
        let stmts = strings(&[
            "CREATE STREAM turnstile (a INT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');",
            "CREATE TABLE turnstile_summary AS SELECT a, COUNT(*) AS n FROM turnstile GROUP BY a;",
            "INSERT INTO turnstile (a) VALUES (1);",
        ]);
        let create = |kind, name: &str| Planned::Create {
            kind,
            name: name.to_string(),
        };
        assert_eq!(
            plan(&stmts, &Existing::default()),
            vec![
                create(ObjectKind::Stream, "TURNSTILE"),
                create(ObjectKind::Table, "TURNSTILE_SUMMARY"),
                Planned::Run,
            ]
        );
        let existing = Existing::new(strings(&["TURNSTILE", "KSQL_PROCESSING_LOG"]), vec![]);
        assert_eq!(
            plan(&stmts, &existing),
            vec![
                Planned::Skip {
                    kind: ObjectKind::Stream,
                    name: "TURNSTILE".into()
                },
                create(ObjectKind::Table, "TURNSTILE_SUMMARY"),
                Planned::Run,
            ]
        );
        // A name created earlier in the same list counts as existing.
        let twice = strings(&["CREATE STREAM s (a INT);", "create stream S (a INT);"]);
        assert!(matches!(
            plan(&twice, &Existing::default()).as_slice(),
            [Planned::Create { .. }, Planned::Skip { .. }]
        ));
        // OR REPLACE always runs; a name taken by the other kind is a conflict.
        let replace = strings(&["CREATE OR REPLACE STREAM turnstile (a INT);"]);
        assert_eq!(
            plan(&replace, &existing),
            vec![create(ObjectKind::Stream, "TURNSTILE")]
        );
        let old = Existing::new(vec![], strings(&["TURNSTILE"]));
        assert_eq!(
            plan(&stmts[..1], &old),
            vec![Planned::Conflict {
                name: "TURNSTILE".into(),
                wanted: ObjectKind::Stream,
                existing: ObjectKind::Table,
            }]
        );
        // Quoted names are compared as written.
        let quoted = strings(&["CREATE STREAM \"turnstile\" (a INT);"]);
        assert!(matches!(
            plan(&quoted, &existing).as_slice(),
            [Planned::Create { name, .. }] if name == "turnstile"
        ));
    }

    #[test]
    fn the_turnstile_script_creates_a_stream_then_the_summary_table() {
        let stmts = split_statements(&cta_script());
        assert_eq!(stmts.len(), 2, "{stmts:#?}");
        assert_eq!(
            created_object(&stmts[0]),
            Some((ObjectKind::Stream, "TURNSTILE".to_string()))
        );
        assert_eq!(
            created_object(&stmts[1]),
            Some((ObjectKind::Table, "TURNSTILE_SUMMARY".to_string()))
        );
        assert!(stmts[0].contains("KAFKA_TOPIC='org.chicago.cta.turnstile.v1'"));
        assert!(stmts[0].contains("VALUE_FORMAT='AVRO'"));
        assert!(
            !stmts[0].contains("KEY='"),
            "the 5.x KEY property is gone in ksqlDB"
        );
        for part in [
            "KAFKA_TOPIC='TURNSTILE_SUMMARY'",
            "VALUE_FORMAT='JSON'",
            "AS_VALUE(station_id) AS station_id",
            "COUNT(station_id) AS count",
            "FROM turnstile",
            "GROUP BY station_id",
        ] {
            assert!(
                stmts[1].contains(part),
                "{part:?} missing from {}",
                stmts[1]
            );
        }
        // Nothing exists: both run; the stream exists: only the table runs.
        let streams_only = Existing::new(strings(&["TURNSTILE"]), vec![]);
        assert!(matches!(
            plan(&stmts, &streams_only).as_slice(),
            [Planned::Skip { .. }, Planned::Create { .. }]
        ));
    }

    #[test]
    fn read_only_statements() {
        assert!(is_read_only("SHOW TABLES;"));
        assert!(is_read_only("  list streams;"));
        assert!(is_read_only("-- c\nDESCRIBE t;"));
        assert!(!is_read_only("CREATE STREAM s (a INT);"));
        assert!(!is_read_only("showx;"));
    }

    #[test]
    fn empty_url_is_not_configured() {
        assert!(matches!(
            KsqlClient::new("  "),
            Err(KsqlError::NotConfigured)
        ));
        let c = KsqlClient::new("http://ksql:8088/").unwrap();
        assert_eq!(c.url(), "http://ksql:8088");
    }

    #[tokio::test]
    async fn unreachable_server_names_its_url() {
        // Port 9 (discard) is closed on loopback: a refused connection is retried, then
        // reported with the URL.
        let c = KsqlClient::new("http://127.0.0.1:9")
            .unwrap()
            .with_attempts(2);
        let err = c.list(ObjectKind::Table).await.unwrap_err();
        assert!(
            matches!(&err, KsqlError::Unreachable { attempts: 2, .. }),
            "{err:?}"
        );
        assert!(err.is_transient());
        let shown = err.to_string();
        assert!(shown.contains("http://127.0.0.1:9"), "{shown}");
        assert!(shown.contains("SHOW TABLES;"), "{shown}");
        // apply lists first, so nothing is created when the server cannot be reached.
        let err = c
            .apply(&strings(&["CREATE STREAM s (a INT);"]))
            .await
            .unwrap_err();
        assert!(matches!(err, KsqlError::Unreachable { .. }), "{err:?}");
    }
}
