//! Timer sources: an agent whose source is `timer = "5s"` receives a `Tick` per interval.

use serde::{Deserialize, Serialize};

/// One firing of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// 0 for the first firing, then 1, 2, ... (skipped firings are not numbered).
    pub n: u64,
    /// Wall-clock time of the firing, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
