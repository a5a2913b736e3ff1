//! The `baton` binary, driven as a user would: files in a temp dir, output and exit codes.

mod support;

use insta::assert_snapshot;
use support::{Test, repo};

const BROKEN: &str = "\
name: nightly
params:
  limit: { type: integer, default: many }
tasks:
  extract:
    run: ./extract.sh {{ params.limt }}
    timeout: 10x
  load:
    neds: [extract]
    needs: [extrct]
    run: ./load.sh
";

#[test]
fn validate_reports_every_problem_compiler_style() {
    let t = Test::new().file("pipelines/nightly.yaml", BROKEN);
    let out = t.run(&["validate", "pipelines"]);
    assert_eq!(out.code, 1);
    assert_snapshot!(out.stdout);
}

#[test]
fn validate_json_gives_the_same_diagnostics() {
    let t = Test::new().file("nightly.yaml", BROKEN);
    let out = t.run(&["validate", "nightly.yaml", "--format", "json"]);
    assert_eq!(out.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["errors"], 5);
    let first = &doc["files"][0]["diagnostics"][0];
    assert_eq!(first["line"], 3);
    assert_eq!(first["column"], 36);
    assert_eq!(first["field"], "params.limit.default");
    assert_eq!(first["severity"], "error");
    assert_snapshot!(out.stdout);
}

#[test]
fn validate_accepts_the_examples() {
    // With the repository's baton.toml, as they are run (its `[executors.k8s]`, its pools).
    let settings = std::fs::read_to_string(repo().join("baton.toml")).expect("baton.toml");
    let out = Test::new()
        .file("baton.toml", &settings)
        .run(&["validate", repo().join("examples").to_str().expect("utf-8")]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.starts_with("ok: "), "{}", out.stdout);
}

#[test]
fn validate_rejects_duplicate_pipeline_names_across_files() {
    let t = Test::new()
        .file("a.yaml", "name: same\ntasks:\n  a:\n    run: x\n")
        .file("b.yaml", "name: same\ntasks:\n  b:\n    run: y\n");
    let out = t.run(&["validate", "."]);
    assert_eq!(out.code, 1);
    assert_snapshot!(out.stdout);
}

#[test]
fn validate_explains_missing_files_and_empty_directories() {
    let t = Test::new().file("empty/readme.txt", "no pipelines");
    let missing = t.run(&["validate", "nope.yaml"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .starts_with("error: cannot read `nope.yaml`: "),
        "{}",
        missing.stderr
    );
    let empty = t.run(&["validate", "empty"]);
    assert_eq!(empty.code, 2);
    assert_snapshot!(empty.stderr);
}

#[test]
fn validate_reports_invalid_utf8_with_location() {
    let t = Test::new();
    std::fs::write(t.dir.path().join("bin.yaml"), b"name: p\ntasks: \xff\n").expect("write");
    let out = t.run(&["validate", "bin.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .starts_with("bin.yaml:2:8: error: file is not valid UTF-8"),
        "{}",
        out.stdout
    );
}

#[test]
fn graph_formats() {
    let t = Test::new().file(
        "p.yaml",
        "name: diamond\ntasks:\n  a:\n    run: x\n  b:\n    needs: [a]\n    for_each: [1, 2]\n    run: echo {{ item }}\n  c:\n    needs: [a]\n    run: x\n  d:\n    needs: [b, c]\n    trigger_rule: all_done\n    run: x\n",
    );
    let text = t.run(&["graph", "p.yaml"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    // The version hash differs by nothing but content; keep it in the snapshot.
    assert_snapshot!("graph_text", text.stdout);
    assert_snapshot!(
        "graph_dot",
        t.run(&["graph", "p.yaml", "--format", "dot"]).stdout
    );
    assert_snapshot!(
        "graph_mermaid",
        t.run(&["graph", "p.yaml", "--format", "mermaid"]).stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&t.run(&["graph", "p.yaml", "--format", "json"]).stdout)
            .expect("json");
    assert_eq!(json["order"], serde_json::json!(["a", "b", "c", "d"]));
    assert_eq!(json["edges"].as_array().map(Vec::len), Some(4));
}

#[test]
fn graph_of_an_invalid_file_shows_why() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    needs: [a]\n    run: x\n",
    );
    let out = t.run(&["graph", "p.yaml"]);
    assert_eq!(out.code, 1);
    assert_snapshot!(out.stderr);
}

#[test]
fn schema_matches_the_committed_file() {
    let out = Test::new().run(&["schema"]);
    assert_eq!(out.code, 0);
    let committed =
        std::fs::read_to_string(repo().join("schema/pipeline.schema.json")).expect("committed");
    assert_eq!(out.stdout, committed);
}

#[test]
fn help_and_version() {
    let t = Test::new();
    let version = t.run(&["--version"]);
    assert_eq!(version.code, 0);
    assert_eq!(
        version.stdout,
        format!("baton {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = t.run(&["help"]);
    assert_eq!(help.code, 0);
    assert_snapshot!(help.stdout);
    for cmd in ["validate", "graph", "schema"] {
        let out = t.run(&[cmd, "--help"]);
        assert_eq!(out.code, 0, "{cmd}");
        assert!(
            out.stdout.contains("Examples:"),
            "{cmd} --help has no example"
        );
    }
    let bare = t.run(&[]);
    assert_eq!(bare.code, 2);
    let unknown = t.run(&["frobnicate"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("unrecognized subcommand 'frobnicate'")
    );
}

#[test]
fn schedule_next_prints_rfc3339_fire_times_across_dst() {
    let t = Test::new();
    let out = t.run(&[
        "schedule",
        "next",
        "30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--after",
        "2026-10-24T12:00:00Z",
        "-n",
        "3",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "2026-10-25T02:30:00+02:00\n2026-10-26T02:30:00+01:00\n2026-10-27T02:30:00+01:00\n"
    );
    let bad = t.run(&["schedule", "next", "61 * * * *"]);
    assert_eq!(bad.code, 2);
    assert_eq!(
        bad.stderr,
        "error: invalid cron `61 * * * *`: component error: number out of bounds\n"
    );
    let zone = t.run(&["schedule", "next", "@daily", "--timezone", "Mars/Olympus"]);
    assert_eq!(zone.code, 2);
    assert!(
        zone.stderr
            .starts_with("error: unknown time zone `Mars/Olympus`"),
        "{}",
        zone.stderr
    );
}
