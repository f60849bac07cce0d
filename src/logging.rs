//! Logging setup: Faust-style levels (`-l info`), overridable with `RUST_LOG`; and the
//! throttle of lines that can fire once per record.

pub mod throttle;

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Critical,
    Error,
    Warn,
    Warning,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Critical | LogLevel::Error => "error",
            LogLevel::Warn | LogLevel::Warning => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Installs the global subscriber; `RUST_LOG`, when set, wins over `level`.
pub fn init(level: LogLevel) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::from_str(&v).ok())
        .unwrap_or_else(|| {
            // librdkafka's own chatter stays at warnings unless asked for.
            EnvFilter::new(format!(
                "{level},librdkafka=warn,rdkafka=warn,hyper=warn,warp=warn,reqwest=warn",
                level = level.directive()
            ))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
