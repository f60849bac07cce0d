//! `scripts/doctor`: each need is reported, and one that is missing or of the wrong
//! version fails the run with a line saying what it is for and how to fix it. The needs
//! are taken away the way a user's machine would lack them: an override pointing at
//! nothing, an old Java first in JAVA_HOME.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn doctor(env: &[(&str, &str)]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/doctor"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs scripts/doctor")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The report line of a need, and the lines under it (why, fix).
fn entry(report: &str, name: &str) -> String {
    let mut lines = report.lines().skip_while(|l| !l.contains(name));
    let first = lines.next().unwrap_or_default().to_string();
    let rest: Vec<&str> = lines
        .take_while(|l| l.trim_start().starts_with("why:") || l.trim_start().starts_with("fix:"))
        .collect();
    format!("{first}\n{}", rest.join("\n"))
}

#[test]
fn every_need_is_reported_in_its_group() {
    let report = text(&doctor(&[]));
    for group in ["build", "stack", "test", "system"] {
        assert!(
            report.lines().any(|l| l.trim() == group),
            "group {group}:\n{report}"
        );
    }
    for need in [
        "Rust",
        "rustfmt, clippy",
        "C compiler",
        "C++ compiler",
        "make",
        "libclang",
        "Java 17+",
        "Maven",
        "Kafka jars",
        "PostgreSQL",
        "Python 3.10+",
        "Python clients",
        "Node.js 18+, npm",
        "npm clients",
        "Chromium",
        "ports",
        "disk",
    ] {
        assert!(report.contains(need), "need {need}:\n{report}");
    }
}

#[test]
fn a_missing_need_fails_and_says_how_to_fix_it() {
    let out = doctor(&[("CTA_CHROMIUM", "/nonexistent/chromium")]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let chromium = entry(&report, "Chromium");
    assert!(chromium.contains("MISSING"), "{chromium}");
    assert!(
        chromium.contains("CTA_CHROMIUM=/nonexistent/chromium not found"),
        "{chromium}"
    );
    assert!(chromium.contains("why: the browser test"), "{chromium}");
    assert!(
        chromium.contains("fix:") && chromium.contains("apt-get install chromium"),
        "{chromium}"
    );
    assert!(report.contains("need(s) missing or wrong"), "{report}");

    // What scripts/run needs does not include the browser.
    let run = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/doctor"))
        .args(["--for", "run", "-q"])
        .env("CTA_CHROMIUM", "/nonexistent/chromium")
        .output()
        .unwrap();
    assert!(!text(&run).contains("Chromium"), "{}", text(&run));
}

#[test]
fn a_wrong_version_fails_and_names_the_version_found() {
    // A Java 11 where scripts/stack looks first.
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let java = bin.join("java");
    std::fs::write(
        &java,
        "#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n",
    )
    .unwrap();
    std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = doctor(&[("JAVA_HOME", home.path().to_str().unwrap())]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let java = entry(&report, "Java 17+");
    assert!(
        java.contains("WRONG") && java.contains("Java 11.0.2"),
        "{java}"
    );
    assert!(
        java.contains("fix:") && java.contains("17 or newer"),
        "{java}"
    );
}

#[test]
fn bad_usage_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/doctor"))
        .args(["--for", "everything"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--for takes run or test"),
        "{}",
        text(&out)
    );
}
