//! The command line: bad settings are refused with the key and the file named and a
//! non-zero exit; `agents` lists what is registered; `send` writes a record.

mod common;

use std::time::Duration;

use common::*;

const GOOD: &str = r#"
[app]
id = "cli-test"
[agents.shout]
source.topics = ["in"]
sinks = ["out"]
"#;

fn assert_refused(settings: Option<&str>, key: &str, extra: &str) {
    let (code, stderr, path) = run_cli(settings, &["worker"]);
    assert_eq!(code, 2, "exit code for bad settings; stderr: {stderr}");
    assert!(stderr.contains(key), "names the key `{key}`: {stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file {}: {stderr}",
        path.display()
    );
    assert!(stderr.contains(extra), "says `{extra}`: {stderr}");
}

#[test]
fn an_unknown_agent_function_is_refused() {
    assert_refused(
        Some(&GOOD.replace("[agents.shout]", "[agents.whisper]")),
        "agents.whisper",
        "no agent function named 'whisper'",
    );
}

#[test]
fn a_bad_interval_is_refused() {
    let text =
        "[app]\nid = \"x\"\n[agents.ticker]\nsource.timer = \"every tuesday\"\nsinks = [\"t\"]\n";
    assert_refused(Some(text), "agents.ticker.source.timer", "invalid interval");
}

#[test]
fn an_unknown_key_is_refused() {
    assert_refused(
        Some(&GOOD.replace("id = \"cli-test\"", "id = \"cli-test\"\nbrokers = \"x:1\"")),
        "app",
        "unknown field `brokers`",
    );
}

#[test]
fn a_missing_file_is_refused() {
    let (code, stderr, path) = run_cli(None, &["worker"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot read settings file"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[test]
fn an_unreadable_file_is_refused() {
    // A directory where the file should be cannot be read, even by root.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .arg("--settings")
        .arg(dir.path())
        .arg("agents")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
}

#[test]
fn a_toml_syntax_error_names_the_line() {
    let (code, stderr, _) = run_cli(Some("[app\nid = 1\n"), &["agents"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn a_bad_environment_override_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, GOOD).unwrap();
    let out = std::process::Command::new(examples_bin())
        .arg("--settings")
        .arg(&path)
        .arg("worker")
        .env("CTA_STREAM_AGENTS__SHOUT__CONCURRENCY", "many")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("agents.shout.concurrency"), "{stderr}");
    assert!(
        stderr.contains("CTA_STREAM_AGENTS__SHOUT__CONCURRENCY"),
        "{stderr}"
    );
}

/// `BIN --settings SETTINGS CMD --json`, which must succeed.
fn json_of(bin: &str, settings: &std::path::Path, cmd: &str) -> serde_json::Value {
    let out = std::process::Command::new(bin)
        .arg("--settings")
        .arg(settings)
        .args([cmd, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{bin} {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The agent functions a binary registers, from `agents --json`.
fn functions(agents: &serde_json::Value) -> Vec<String> {
    agents["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn agents_lists_settings_and_registered_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, GOOD).unwrap();
    let v = json_of(examples_bin(), &path, "agents");
    assert_eq!(v["agents"][0]["name"], "shout");
    assert_eq!(v["agents"][0]["source"], "topics in");
    let functions = functions(&v);
    for f in ["shout", "forward", "ticker", "jobs", "word_count"] {
        assert!(functions.iter().any(|x| x == f), "{functions:?}");
    }
}

#[test]
fn the_app_binary_carries_the_app_and_not_the_example_agents() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let functions = functions(&json_of(bin(), &root.join("settings.toml"), "agents"));
    assert!(functions.iter().any(|f| f == "cta_trains"), "{functions:?}");
    for f in [
        "shout",
        "forward",
        "ticker",
        "jobs",
        "count_keys",
        "word_count",
    ] {
        assert!(
            !functions.iter().any(|x| x == f),
            "{f} in the app's binary: {functions:?}"
        );
    }
    // The examples' own settings run in their own binary.
    json_of(
        examples_bin(),
        &root.join("examples/settings.toml"),
        "agents",
    );
}

#[test]
fn a_topic_prefix_puts_every_topic_of_the_settings_in_its_namespace() {
    let text = "[app]\nid = \"ns\"\ntopic_prefix = \"t7.\"\n\
                [agents.count_keys]\nsource.topics = [\"in\"]\ncodec = \"raw\"\n\
                on_error = \"dead-letter\"\n\
                [agents.shout]\nsource.pattern = '^greet\\..*'\nsinks = [\"loud\"]\n\
                [tables.key_counts]\nagent = \"count_keys\"\n\
                [tables.key_counts_all]\nglobal = true\nsource_topic = \"elsewhere\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, text).unwrap();
    let json = |cmd: &str| json_of(examples_bin(), &path, cmd);
    let agents = json("agents");
    let by_name = |n: &str| {
        agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("count_keys")["source"], "topics t7.in");
    assert_eq!(
        by_name("count_keys")["dead_letter_topic"],
        "t7.ns-count_keys-dlq"
    );
    assert_eq!(by_name("shout")["source"], "pattern ^t7\\.greet\\..*");
    assert_eq!(by_name("shout")["sinks"][0], "t7.loud");
    let tables = json("tables");
    assert_eq!(
        tables["tables"][0]["changelog"],
        "t7.ns-key_counts-changelog"
    );
    assert_eq!(tables["tables"][1]["source_topic"], "t7.elsewhere");

    // A prefix that cannot start a topic name is refused, naming the key.
    assert_refused(
        Some(&text.replace("t7.", "t 7")),
        "app.topic_prefix",
        "topic names take only",
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["worker", "--help"],
        vec!["agents", "--help"],
        vec!["send", "--help"],
    ] {
        let out = std::process::Command::new(bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn send_writes_a_json_record_with_its_key() {
    require_broker();
    let topic = unique("send");
    create_topic(&topic, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(
        &path,
        format!("[app]\nid = \"send-test\"\nbroker = \"{}\"\n", broker()),
    )
    .unwrap();
    let run = |value: &str| {
        std::process::Command::new(bin())
            .arg("--settings")
            .arg(&path)
            .args(["send", &topic, value, "--key", "station-1"])
            .output()
            .unwrap()
    };
    let ok = run(r#"{"a": 1}"#);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("sent to {topic}[0]@0")));
    let bad = run("{not json");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not valid JSON"));
    let got = consume(&topic, 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key.as_deref(), Some("station-1"));
    assert_eq!(got[0].value.as_deref(), Some(r#"{"a":1}"#));
}

#[test]
fn tables_lists_the_tables_of_the_settings_with_their_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(
        &path,
        "[app]\nid = \"t\"\n[agents.count_keys]\nsource.topics = [\"in\"]\ncodec = \"raw\"\n\
         [tables.key_counts]\nagent = \"count_keys\"\npartitions = 3\n\
         [tables.key_counts_all]\nglobal = true\nsource_topic = \"t-key_counts-changelog\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(examples_bin())
        .arg("--settings")
        .arg(&path)
        .args(["tables", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["tables"][0];
    assert_eq!(t["name"], "key_counts");
    assert_eq!(t["partitions"], 3);
    assert_eq!(t["changelog"], "t-key_counts-changelog");
    assert_eq!(t["key_type"], "String");
    assert_eq!(t["value_type"], "u64");
    assert_eq!(v["tables"][1]["global"], true);
    assert_eq!(v["tables"][1]["source_topic"], "t-key_counts-changelog");
}
