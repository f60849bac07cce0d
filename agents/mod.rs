//! The app's agents: one file per agent, named after it, registering its function with
//! `register_agent!`. Every `.rs` file here is compiled in by `build.rs`. What the agents
//! share (records, the simulation model, the data files) is the directory module `cta/`.

include!(concat!(env!("OUT_DIR"), "/agents_modules.rs"));

pub mod cta;
