//! `cta-stream-examples`: the runtime with its example agents and tables, and nothing of
//! the CTA app — a whole app on the runtime in three files, as yours would be:
//!
//! ```sh
//! cargo run --release --bin cta-stream-examples -- --settings examples/settings.toml worker
//! ```

mod agents;
mod tables;

fn main() -> std::process::ExitCode {
    cta_stream::cli::main()
}
