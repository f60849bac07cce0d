//! [`RestClient`]: the one HTTP client of the external services (Schema Registry, ksqlDB,
//! Kafka Connect). It holds a base URL and a `reqwest` client with the service's timeouts,
//! and sends each request up to a number of attempts with exponential backoff, retrying
//! what the service's client says is worth retrying. Giving up, it names the service and
//! its URL ([`Unreachable`]).
//!
//! What is retried:
//! * a connection that could not be made (the request never left): always;
//! * an answer whose status the request's `retry_status` accepts (5xx, 409, ...): until the
//!   last attempt, whose answer is handed back as it is;
//! * a failure after the request may have reached the server (a timeout, a connection
//!   lost before or while the answer was read): unless the request says it must not run
//!   twice ([`Call::resend_after_delivery`]), in which case the client gives up at once.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;

/// Timeouts of one service's client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Bound on a whole request (connection, sending, answer).
    pub request: Duration,
    /// Bound on making the connection; `None`: only `request` bounds it.
    pub connect: Option<Duration>,
}

/// Attempts per request and the delays between them (doubling from `first` up to `max`).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

/// A service's answer: its status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// No answer: the last failure, after `attempts` attempts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} at {url} is unreachable after {attempts} attempts: {message}")]
pub struct Unreachable {
    /// The service's name, as the messages give it ("Kafka Connect").
    pub service: &'static str,
    /// The service's base URL.
    pub url: String,
    pub attempts: u32,
    /// The last failure, with its causes.
    pub message: String,
    /// The request may have reached the server the last time, and was not sent again
    /// because it must not run twice ([`Call::resend_after_delivery`]).
    pub not_resent: bool,
}

/// A retrying client of one HTTP service.
#[derive(Debug, Clone)]
pub struct RestClient {
    service: &'static str,
    base: String,
    http: reqwest::Client,
    backoff: Backoff,
}

impl RestClient {
    /// A client of `service` at `base_url` (trimmed, without a trailing `/`).
    pub fn new(
        service: &'static str,
        base_url: &str,
        timeouts: Timeouts,
        backoff: Backoff,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder().timeout(timeouts.request);
        if let Some(connect) = timeouts.connect {
            builder = builder.connect_timeout(connect);
        }
        Ok(RestClient {
            service,
            base: base_url.trim().trim_end_matches('/').to_string(),
            http: builder.build()?,
            backoff: Backoff {
                attempts: backoff.attempts.max(1),
                ..backoff
            },
        })
    }

    /// Fewer (or more) attempts per request; at least one.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.backoff.attempts = attempts.max(1);
        self
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The URL of `path` (which starts with `/`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, to set up and [`Call::send`]. By default it asks for JSON,
    /// has no body, retries 5xx answers and is sent again after any failure.
    pub fn call<'a>(&'a self, method: Method, path: &str) -> Call<'a> {
        Call {
            client: self,
            method,
            url: self.endpoint(path),
            accept: "application/json",
            body: None,
            retry_status: |status| status >= 500,
            resend: true,
        }
    }
}

/// One request of a [`RestClient`], retried as it says.
pub struct Call<'a> {
    client: &'a RestClient,
    method: Method,
    url: String,
    accept: &'a str,
    body: Option<(&'a str, String)>,
    retry_status: fn(u16) -> bool,
    resend: bool,
}

impl<'a> Call<'a> {
    /// The media type asked for (`Accept`).
    pub fn accept(mut self, media_type: &'a str) -> Self {
        self.accept = media_type;
        self
    }

    /// The body and its `Content-Type`.
    pub fn body(mut self, content_type: &'a str, body: String) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Which answers are worth another attempt (by default the 5xx).
    pub fn retry_status(mut self, retry: fn(u16) -> bool) -> Self {
        self.retry_status = retry;
        self
    }

    /// With `false`, a request that may have reached the server is not sent again: for
    /// requests that must not run twice.
    pub fn resend_after_delivery(mut self, resend: bool) -> Self {
        self.resend = resend;
        self
    }

    /// Sends the request until an answer comes that is not to be retried, or the last
    /// attempt's answer; [`Unreachable`] when no answer came.
    pub async fn send(self) -> Result<Answer, Unreachable> {
        let c = self.client;
        let Backoff {
            attempts,
            first: mut delay,
            max,
        } = c.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let mut req = c
                .http
                .request(self.method.clone(), &self.url)
                .header(reqwest::header::ACCEPT, self.accept);
            if let Some((content_type, body)) = &self.body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(body.clone());
            }
            // (what went wrong, whether the request may have reached the server)
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if (self.retry_status)(status) && attempt < attempts => {
                            (format!("HTTP {status}: {}", excerpt(&body)), false)
                        }
                        Ok(body) => return Ok(Answer { status, body }),
                        Err(e) => (error_chain(&e), true),
                    }
                }
                Err(e) => (error_chain(&e), !e.is_connect()),
            };
            let (message, delivered) = failure;
            if delivered && !self.resend {
                return Err(Unreachable {
                    service: c.service,
                    url: c.base.clone(),
                    attempts: attempt,
                    message,
                    not_resent: true,
                });
            }
            last = message;
            if attempt < attempts {
                tracing::warn!(url = %self.url, attempt, error = %last, "{} request failed; retrying", c.service);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(max);
            }
        }
        Err(Unreachable {
            service: c.service,
            url: c.base.clone(),
            attempts,
            message: last,
            not_resent: false,
        })
    }
}

/// The start of a body, for messages.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// An error and its causes, `: `-separated (reqwest's own message rarely says why).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(attempts: u32) -> RestClient {
        // Port 9 (discard) is closed on loopback: every connection is refused.
        RestClient::new(
            "Test service",
            " http://127.0.0.1:9/ ",
            Timeouts {
                request: Duration::from_secs(5),
                connect: Some(Duration::from_secs(1)),
            },
            Backoff {
                attempts,
                first: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn refused_connections_are_retried_then_named() {
        let c = quick(5).with_attempts(3);
        assert_eq!(c.url(), "http://127.0.0.1:9");
        assert_eq!(c.endpoint("/x"), "http://127.0.0.1:9/x");
        // Never sent, so retried even when a delivered request would not be.
        let e = c
            .call(Method::POST, "/x")
            .resend_after_delivery(false)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.attempts, 3);
        assert!(!e.not_resent);
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                "Test service at http://127.0.0.1:9 is unreachable after 3 attempts: "
            ),
            "{shown}"
        );
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt(&[b'a'; 400]).len(), 300);
        assert_eq!(excerpt(b"oops"), "oops");
    }
}
