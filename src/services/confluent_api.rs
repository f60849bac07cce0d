//! What the embedded Confluent-compatible services (REST Proxy, Schema Registry) share:
//! their error answer — an HTTP status and a JSON body `{"error_code": .., "message": ..}`
//! — and the handling around each request (content negotiation, the answer in the
//! negotiated media type, 5xx logged).
//!
//! One [`ApiError`] for both. The answers any HTTP API gives (400, 404, 405, 406, 413, 415,
//! 422, 500) are built here; each service adds the constructors of its own Confluent error
//! codes in an `impl ApiError` block of its `errors.rs`. The two services give some codes
//! different meanings (42201 is an invalid schema in the registry, a missing key schema in
//! the proxy), so a constructor's name says what it means, and the compiler keeps the names
//! unique across the blocks.

use std::future::Future;

use serde_json::json;
use warp::http::header::{ACCEPT, CONTENT_TYPE};
use warp::http::{HeaderMap, Method, Response};

use crate::http::{negotiate, BodyError};

/// An error answer: HTTP status, Confluent `error_code` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub error_code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, error_code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code,
            message: message.into(),
        }
    }
    pub fn not_found_path() -> Self {
        Self::new(404, 404, "HTTP 404 Not Found")
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, 405, "HTTP 405 Method Not Allowed")
    }
    pub fn not_acceptable() -> Self {
        Self::new(406, 406, "HTTP 406 Not Acceptable")
    }
    pub fn unsupported_media_type() -> Self {
        Self::new(415, 415, "HTTP 415 Unsupported Media Type")
    }
    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(413, 413, format!("Request body larger than {limit} bytes"))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 400, message)
    }
    /// A body that is not JSON (Confluent's Jackson wording).
    pub fn bad_json(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Unexpected character or malformed JSON: {detail}"))
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, 422, message)
    }
    pub fn internal() -> Self {
        Self::new(500, 500, "Internal Server Error")
    }

    /// The JSON error body.
    pub fn body(&self) -> String {
        json!({"error_code": self.error_code, "message": self.message}).to_string()
    }
}

/// A request body that could not be read: 413 over the limit, else 400.
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => ApiError::payload_too_large(limit),
            BodyError::Read(m) => ApiError::bad_request(format!("Cannot read the body: {m}")),
        }
    }
}

/// A service's answer: the body, or the error answer.
pub type Answer = Result<String, ApiError>;

/// The HTTP response for `answer` (200 with its body, or the error's status and body), in
/// the negotiated `content_type`.
pub fn respond(content_type: &str, answer: Answer) -> Response<String> {
    let (status, body) = match answer {
        Ok(b) => (200, b),
        Err(e) => (e.status, e.body()),
    };
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_else(|_| Response::new(String::new()))
}

/// A Confluent-compatible API, as the request handling it shares sees it.
pub struct ConfluentApi {
    /// Its name, in the log.
    pub name: &'static str,
    /// The media types it answers in, with the server's quality; the first is the default,
    /// and that of a 406.
    pub media_types: &'static [(&'static str, f32)],
}

impl ConfluentApi {
    /// The media type to answer in for an `Accept` header, `None` = 406.
    pub fn negotiate(&self, accept: Option<&str>) -> Option<&'static str> {
        negotiate(accept, self.media_types)
    }

    /// Answers one request: 406 when no media type of the API fits its `Accept` (and then
    /// `answer` does not run), else `answer` in the negotiated type, a 5xx logged as a
    /// warning (the other errors are the client's business).
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        answer: impl Future<Output = Answer>,
    ) -> Response<String> {
        let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
        let Some(content_type) = self.negotiate(accept) else {
            return respond(self.default_type(), Err(ApiError::not_acceptable()));
        };
        let answer = answer.await;
        if let Err(e) = &answer {
            if e.status >= 500 {
                tracing::warn!(%method, path, error = %e.message, "{}", self.name);
            }
        }
        respond(content_type, answer)
    }

    /// The answer to a request that failed where no handler could answer it (a rejection).
    pub fn internal_error(&self) -> Response<String> {
        respond(self.default_type(), Err(ApiError::internal()))
    }

    fn default_type(&self) -> &'static str {
        self.media_types
            .first()
            .map_or("application/json", |(t, _)| *t)
    }
}

/// A value as a JSON answer.
pub fn to_json<T: serde::Serialize>(v: &T) -> Answer {
    serde_json::to_string(v).map_err(|_| ApiError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_answer_their_status_with_a_confluent_body() {
        let r = respond("application/json", Err(ApiError::payload_too_large(10)));
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(v["error_code"], 413);
        assert_eq!(v["message"], "Request body larger than 10 bytes");
        let r = respond("application/json", Ok("{}".into()));
        assert_eq!((r.status().as_u16(), r.body().as_str()), (200, "{}"));
        assert_eq!(
            ApiError::from(BodyError::Read("reset".into())),
            ApiError::new(400, 400, "Cannot read the body: reset")
        );
    }
}
