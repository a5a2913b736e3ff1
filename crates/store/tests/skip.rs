//! The skip report every crate's tool-dependent tests use (`support/skip.rs`): a missing tool
//! is said on the terminal and in the summary file, and fails where it is required.

#[path = "support/skip.rs"]
mod skip;

use std::process::Command;

/// What the other test starts in a child process: a check whose tool is missing.
#[test]
fn probe() {
    if std::env::var_os("BATON_SKIP_PROBE").is_none() {
        return;
    }
    skip::skipped(
        "the probe's check",
        "no-such-tool",
        "BATON_REQUIRE_NO_SUCH_TOOL",
        "it does not exist",
    );
}

fn probe_in_child(require: bool) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = dir.path().join("skipped.txt");
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(["--exact", "probe", "--test-threads", "1"])
        .env("BATON_SKIP_PROBE", "1")
        .env("BATON_SKIPPED_FILE", &summary)
        .env_remove("BATON_REQUIRE_NO_SUCH_TOOL");
    if require {
        cmd.env("BATON_REQUIRE_NO_SUCH_TOOL", "1");
    }
    let out = cmd.output().expect("run the probe");
    (out, std::fs::read_to_string(&summary).unwrap_or_default())
}

#[test]
fn a_skip_is_said_on_the_terminal_and_in_the_summary() {
    let (out, summary) = probe_in_child(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = "`no-such-tool` missing (hint: it does not exist; set BATON_REQUIRE_NO_SUCH_TOOL=1 to make this a failure)";
    // Not captured away with the output of the passing test.
    assert!(stderr.contains("SKIPPED: skip"), "{stderr}");
    assert!(stderr.contains(line), "{stderr}");
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(summary.starts_with("SKIPPED: skip"), "{summary}");
    assert!(summary.contains(line), "{summary}");
}

#[test]
fn a_required_tool_that_is_missing_fails_the_test() {
    let (out, summary) = probe_in_child(true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("the probe's check: `no-such-tool` is required here (BATON_REQUIRE_NO_SUCH_TOOL is set) but missing"),
        "{stdout}"
    );
    assert_eq!(summary, "", "a failure is not a skip");
}
