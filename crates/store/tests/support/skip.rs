//! Checks that need a tool the machine lacks (PostgreSQL, Chromium, promtool, a Python
//! checker) are skipped out loud: a `SKIPPED:` line on the terminal and in a summary file, or
//! a failure where the tool is required (`BATON_REQUIRE_*`, set by `.ci/run`).
//!
//! One file for every crate's tests (the others include it by `#[path]`), so that a test
//! crate does not depend on another for its harness.
//!
//! The line goes straight to the process's stderr: the test harness captures `eprintln!` of
//! passing tests and shows nothing, which is how skips used to pass unseen.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::PathBuf;

/// Where `cargo test` collects the skips of every test binary (`target/tmp/baton-skipped.txt`);
/// `BATON_SKIPPED_FILE` names another. `.ci/run` empties it first and prints it at the end.
pub fn summary_file() -> PathBuf {
    std::env::var_os("BATON_SKIPPED_FILE").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("baton-skipped.txt"),
        PathBuf::from,
    )
}

/// Whether `variable` asks for the tool to be there (`1`, or any value but empty and `0`).
pub fn required(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Reports that `check` does not run because `tool` is missing, or fails the test when
/// `require` (a `BATON_REQUIRE_*` variable) is set. `hint` says how to get the tool.
pub fn skipped(check: &str, tool: &str, require: &str, hint: &str) {
    assert!(
        !required(require),
        "{check}: `{tool}` is required here ({require} is set) but missing\n(hint: {hint})"
    );
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map_or_else(String::new, |n| format!("::{n}"));
    let line = format!(
        "SKIPPED: {}{test}: {check}: `{tool}` missing (hint: {hint}; set {require}=1 to make this a failure)\n",
        env!("CARGO_CRATE_NAME"),
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    let file = summary_file();
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = appended {
        let _ = writeln!(
            std::io::stderr().lock(),
            "cannot record the skip in `{}`: {e}",
            file.display()
        );
    }
}
