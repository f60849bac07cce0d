//! The runtime's modules form layers, and a module imports only from its own layer or
//! below: events and acks know nothing of Kafka, Kafka nothing of tables, tables nothing
//! of agents, agents nothing of the worker, the worker nothing of the web server. An
//! import that runs up a layer fails this test, naming the file and the line.
//!
//! The layers are listed here and in docs/architecture.md#layers; a new top-level
//! module must be placed in one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first. A module may import from any module of its layer or of a lower one.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &["settings", "logging", "memory", "metrics", "http"],
    ),
    ("codecs", &["codec"]),
    ("streams", &["stream"]),
    ("kafka", &["kafka"]),
    ("tables", &["table"]),
    ("agents", &["agent"]),
    ("exactly-once", &["transactions"]),
    (
        "worker",
        &["worker", "liveness", "services", "connectors", "ksql"],
    ),
    ("web", &["web"]),
    ("entry points", &["app", "cli", "testing"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/agent/runner.rs` → `agent`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and without its unit tests (`#[cfg(test)]` and
/// what follows): tests may reach wherever they like.
fn production_code(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if code.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        lines.push((i + 1, code.to_string()));
    }
    lines
}

/// The top-level modules a line names with `crate::`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `$crate::` in a macro is the caller's view of the crate, not an import.
        if !rest[..i].ends_with('$') && !name.is_empty() {
            found.push(name);
        }
        rest = after;
    }
    found
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unplaced = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue; // the crate's root re-exports every layer
        }
        let Some(own) = layer_of(&module) else {
            unplaced.insert(module, file.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in production_code(&text) {
            for target in crate_paths(&line) {
                let Some(theirs) = layer_of(&target) else {
                    continue; // re-exports of the root (inventory) and macros
                };
                if theirs > own {
                    upward.push(format!(
                        "{}:{n}: {module} ({}) imports {target} ({}): {}",
                        file.strip_prefix(&src).unwrap().display(),
                        LAYERS[own].0,
                        LAYERS[theirs].0,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS and docs/architecture.md): {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "imports that run up the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    // The test above would pass on an empty tree: make sure it reads what it must.
    assert_eq!(crate_paths("use crate::worker::WorkerState;"), ["worker"]);
    assert_eq!(
        crate_paths("let x = crate::agent::a(crate::table::b);"),
        ["agent", "table"]
    );
    assert!(crate_paths("$crate::agent::register()").is_empty());
    let code = production_code("use crate::web; // crate::app\n#[cfg(test)]\nuse crate::app;");
    assert_eq!(code.len(), 1);
    assert_eq!(crate_paths(&code[0].1), ["web"]);
    assert!(layer_of("stream") < layer_of("kafka"));
    assert!(layer_of("agent") < layer_of("transactions"));
    assert!(layer_of("worker") < layer_of("web"));
}
