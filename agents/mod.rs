//! The app's agents: one file per agent (or per family of agents), each registering its
//! functions with `register_agent!`. Every `.rs` file here is compiled in by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/agents_modules.rs"));
