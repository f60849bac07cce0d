//! Declares a module for every `agents/*.rs`, `tables/*.rs` and `views/*.rs` file, so that adding an
//! agent is one new file plus one settings entry, with no list of modules to edit.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for dir in ["agents", "tables", "views"] {
        let src = Path::new(&root).join(dir);
        println!("cargo:rerun-if-changed={}", src.display());
        let mut files: Vec<_> = std::fs::read_dir(&src)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                    .filter(|p| p.file_stem().is_some_and(|s| s != "mod"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut code = String::new();
        for f in files {
            let stem = f.file_stem().unwrap().to_string_lossy().replace('-', "_");
            println!("cargo:rerun-if-changed={}", f.display());
            writeln!(
                code,
                "#[path = {:?}]\npub mod {stem};",
                f.display().to_string()
            )
            .unwrap();
        }
        std::fs::write(Path::new(&out).join(format!("{dir}_modules.rs")), code)
            .expect("OUT_DIR is writable");
    }
}
