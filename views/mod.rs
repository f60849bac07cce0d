//! The app's web views (pages and APIs served by the worker, `register_view!`). Every
//! `.rs` file here is compiled in by `build.rs`; `web.views` in the settings picks them.

include!(concat!(env!("OUT_DIR"), "/views_modules.rs"));
