//! What a stream reports to, and asks of, the agent that reads it. The stream sits below
//! the agent layer: it sees the agent's counters and error policy only through this
//! trait, which the agent layer implements.

use async_trait::async_trait;

use super::ack::AckToken;
use super::event::RawEvent;

/// Why an event could not be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    Decode,
    Process,
    /// An event too late for its windows (a windowed table's grace has passed).
    Late,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Decode => "decode",
            FailureKind::Process => "process",
            FailureKind::Late => "late",
        }
    }
}

/// What the error policy did with such an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Skipped,
    DeadLettered,
    /// Policy `fail`: the caller fails the agent and the event comes again.
    Fail,
}

#[async_trait]
pub trait StreamOwner: Send + Sync {
    /// An event was handed to the agent (or to its error policy).
    fn event_in(&self);

    /// An event was left out on purpose (`filter`).
    fn filtered(&self) {}

    /// Applies the agent's error policy to `raw`, which could not be handled. With a
    /// token, the policy decides when the event counts as acked.
    async fn dispose(
        &self,
        raw: &RawEvent,
        token: Option<AckToken>,
        kind: FailureKind,
        error: &str,
    ) -> Disposition;
}
