//! The app's table declarations. Every `.rs` file here is compiled in by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/tables_modules.rs"));
