//! What the worker measures about itself: latency histograms, process memory, and the
//! rolling windows behind `/performance`. Rendering lives in `web`.

pub mod histogram;
pub mod process;
pub mod window;
