//! HTTP plumbing shared by every part of the runtime that speaks HTTP: the worker's web
//! server (`web/`), the embedded Confluent-compatible services (`services/`) and the
//! clients of external services (Schema Registry, ksqlDB, Kafka Connect).
//!
//! Nothing here knows a route, a service or the app: `web/` and `services/` import from
//! this module, never from each other.
//!
//! * [`path`]: URL path segments, percent-decoded (servers) and -encoded (clients).
//! * [`server`]: request bodies with a size limit, content negotiation, binding and serving.
//! * [`client`]: [`RestClient`], the one retrying client of the external services.

pub mod client;
pub mod path;
pub mod server;

pub use client::{Answer, Backoff, RestClient, Timeouts, Unreachable};
pub use path::{encode_segment, path_segments, percent_decode};
pub use server::{negotiate, read_body, BodyError, BODY_LIMIT};
