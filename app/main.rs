//! The `cta-stream` binary: the runtime's command line with the CTA app's agents and
//! tables linked in. The runtime (`src/`) never refers to them; they register themselves.

#[path = "../agents/mod.rs"]
mod agents;
#[path = "../tables/mod.rs"]
mod tables;
#[path = "../views/mod.rs"]
mod views;

fn main() -> std::process::ExitCode {
    cta_stream::cli::main()
}
