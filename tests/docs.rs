//! The README and the files of docs/ link to each other, to headings and to the code. A
//! moved file or a renamed heading breaks such a link without any build noticing; this
//! test notices. It also keeps the README a front page, with the detail in docs/.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and the markdown files of docs/.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("docs/ entry is readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

/// The lines outside fenced code blocks, numbered from 1: what a code block holds is an
/// example, not a link or a heading of the document.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| t.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// The line without its code spans, which show syntax such as `[a](b)` rather than link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + ticks..];
        match after.find(&rest[start..start + ticks]) {
            Some(end) => rest = &after[end + ticks..],
            None => return out + &rest[start..],
        }
    }
    out + rest
}

/// The targets of the links `[text](target)` and images `![alt](target)` of a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut from = 0;
    while let Some(open) = line[from..].find('[').map(|i| from + i) {
        // Brackets nest, as in a linked image `[![alt](img)](target)`.
        let mut depth = 0;
        let close = line[open..].char_indices().find_map(|(i, c)| {
            depth += match c {
                '[' => 1,
                ']' => -1,
                _ => 0,
            };
            (depth == 0).then_some(open + i)
        });
        // An unclosed `[` is text; a link may still follow it.
        let inner = close.and_then(|close| line[close + 1..].strip_prefix('('));
        if let Some(inner) = inner {
            // `(<a b.md>)` may hold spaces; otherwise a space ends the target, and a title
            // (`"…"`) may follow.
            let target = match inner.strip_prefix('<') {
                Some(quoted) => quoted.split_once('>').map(|(t, _)| t),
                None => inner
                    .split_once(')')
                    .map(|(t, _)| t.split_whitespace().next().unwrap_or("")),
            };
            if let Some(target) = target {
                targets.push(target.to_string());
            }
        }
        from = open + 1;
    }
    targets
}

/// The anchors GitHub gives the headings of a markdown text: the heading in lower case,
/// punctuation dropped, spaces turned into hyphens, and `-1`, `-2`, … on repeats.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for (_, line) in prose_lines(text) {
        let level = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&level) || !line[level..].starts_with(' ') {
            continue;
        }
        let title = line[level..].trim().trim_end_matches('#').trim();
        let base: String = title
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

/// Whether `target`, linked from `doc`, names an existing file and, for a markdown file,
/// an existing heading.
fn resolves(doc: &Path, target: &str) -> bool {
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let file = match path {
        "" => doc.to_path_buf(),
        p => doc.parent().expect("a document has a directory").join(p),
    };
    if !file.exists() {
        return false;
    }
    match fragment {
        Some(f) if file.extension().is_some_and(|x| x == "md") => {
            fs::read_to_string(&file).is_ok_and(|text| anchors(&text).contains(f))
        }
        _ => true,
    }
}

#[test]
fn every_relative_link_of_the_docs_resolves() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = fs::read_to_string(&doc).expect("document is readable");
        let name = doc
            .strip_prefix(root())
            .unwrap_or(&doc)
            .display()
            .to_string();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(&without_code_spans(line)) {
                let external = ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|scheme| target.starts_with(scheme));
                if !external && !resolves(&doc, &target) {
                    broken.push(format!("{name}:{n}: {target}"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_readme_stays_a_front_page() {
    let text = fs::read_to_string(root().join("README.md")).expect("README.md is readable");
    let lines = text.lines().count();
    assert!(
        lines <= 210,
        "README.md has {lines} lines, at most 210: move the detail into docs/"
    );
}

const REFERENCE_BEGIN: &str =
    "<!-- settings reference: generated from src/settings/reference.rs -->\n";
const REFERENCE_END: &str = "<!-- end of the settings reference -->\n";

/// docs/settings.md's table is the code's reference (key, type, default read from the
/// loader's own defaults, environment variable, meaning), so it cannot drift.
/// `CTA_UPDATE_DOCS=1` writes the code's table into the file instead of comparing.
#[test]
fn the_settings_reference_is_the_codes() {
    let path = root().join("docs/settings.md");
    let text = fs::read_to_string(&path).expect("docs/settings.md is readable");
    let (Some(begin), Some(end)) = (text.find(REFERENCE_BEGIN), text.find(REFERENCE_END)) else {
        panic!("docs/settings.md lacks the markers {REFERENCE_BEGIN:?} … {REFERENCE_END:?}");
    };
    let documented = &text[begin + REFERENCE_BEGIN.len()..end];
    let generated = cta_stream::settings::reference::markdown();
    if std::env::var_os("CTA_UPDATE_DOCS").is_some() {
        // Blank lines around the table: a table right after an HTML comment may not render.
        let updated = format!(
            "{}\n{generated}\n{}",
            &text[..begin + REFERENCE_BEGIN.len()],
            &text[end..]
        );
        fs::write(&path, updated).expect("docs/settings.md is writable");
        return;
    }
    assert!(
        documented.trim() == generated.trim(),
        "docs/settings.md's table differs from the code's reference; regenerate it with \
         `CTA_UPDATE_DOCS=1 cargo test --release --test docs`.\n--- documented\n{documented}\n--- code\n{generated}"
    );
}
