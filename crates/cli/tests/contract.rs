//! The OpenAPI document is a contract the server keeps: schemathesis (`--checks all`) sends
//! requests made from it, valid and invalid, to a real `baton server` and checks every answer
//! against it (statuses, bodies, content types, that valid requests are accepted and invalid
//! ones refused). Skipped out loud without schemathesis, unless `BATON_REQUIRE_SCHEMATHESIS`
//! is set (`.ci/run` installs a pinned one and sets it).

mod support;

use std::process::{Command, Stdio};

use support::{Server, Test, http, server_args, wait_until};

/// The pinned version `.ci/run` installs; the options below are that version's.
const PINNED: &str = "4.32.5";

/// Whether schemathesis answers, and its version line.
fn schemathesis() -> Option<String> {
    let out = Command::new("schemathesis")
        .arg("--version")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn the_server_keeps_its_openapi_contract_under_schemathesis() {
    let Some(version) = schemathesis() else {
        support::skip::skipped(
            "the API against its OpenAPI document with schemathesis",
            "schemathesis",
            "BATON_REQUIRE_SCHEMATHESIS",
            &format!("python3 -m pip install schemathesis=={PINNED}"),
        );
        return;
    };
    let t = Test::new()
        .file(
            "pipelines/hello.yaml",
            "name: hello\nparams:\n  who: { type: string, default: world }\ntasks:\n  greet:\n    run: echo hello {{ params.who }}\n  after:\n    needs: [greet]\n    run: echo done\n",
        )
        .file(
            "pipelines/fails.yaml",
            "name: fails\ntasks:\n  boom:\n    run: exit 3\n",
        )
        .file(
            "pipelines/nightly.yaml",
            "name: nightly\nschedule:\n  - cron: \"0 3 * * *\"\ntasks:\n  a:\n    run: \"true\"\n",
        )
        .file("pipelines/broken.yaml", "name: broken\ntasks: [\n");
    // The server's log goes to a file: a pipe nobody reads would fill up and stall it.
    let log = std::fs::File::create(t.path().join("server.log")).expect("server log");
    let server = Server::ready(
        t.command(&server_args(&["--shutdown-grace", "1s"]))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn baton server"),
    );
    let addr = server.addr.clone();
    let mut runs = Vec::new();
    for (pipeline, body) in [
        ("hello", r#"{"params": {"who": "contract"}}"#),
        ("hello", "{}"),
        ("fails", "{}"),
    ] {
        let (status, run) = http(
            &addr,
            "POST",
            &format!("/api/v1/pipelines/default/{pipeline}/runs"),
            body,
        );
        assert_eq!(status, 201, "{run}");
        runs.push(run["id"].as_str().expect("run id").to_owned());
    }
    // Runs that ended: their event and log streams end too, so no request hangs.
    wait_until("the runs end", || {
        runs.iter().all(|id| {
            let (_, run) = http(&addr, "GET", &format!("/api/v1/runs/{id}"), "");
            ["succeeded", "failed"].contains(&run["state"].as_str().unwrap_or_default())
        })
    });
    assert_eq!(
        http(&addr, "PUT", "/api/v1/pools/gpu", r#"{"slots": 2}"#).0,
        200
    );

    let report = t.path().join("schemathesis");
    let out = Command::new("schemathesis")
        .current_dir(t.path())
        .arg("--config-file")
        .arg(support::repo().join("crates/cli/tests/schemathesis.toml"))
        .args([
            "--no-color",
            "run",
            &format!("{}/api/v1/openapi.json", server.url),
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "20261202",
            // One: with two, hypothesis' lambda-source cache races between the threads and a
            // run can end in its own `AST constructor recursion depth mismatch`.
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis ({version}) found contract failures:\n{stdout}\n{}\nserver log: {}",
        String::from_utf8_lossy(&out.stderr),
        t.path().join("server.log").display()
    );
    // A run that tested nothing would pass too: make sure the operations were exercised.
    assert!(
        stdout.contains("API Operations") && !stdout.contains("No test cases"),
        "{stdout}"
    );
}
