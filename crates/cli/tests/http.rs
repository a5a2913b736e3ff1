//! `http:` steps from the command line: the example calls a real `baton server`, and a
//! signing secret that cannot be used stops `baton run` before anything runs.

mod support;

use support::{Test, repo};

#[test]
fn the_http_example_calls_a_server_and_logs_each_answer() {
    let service = Test::new().file("pipelines/.keep", "");
    let server = service.server();
    let t = Test::new();
    let file = repo().join("examples/http.yaml");
    let base = format!("base={}", server.url);
    let out = t.run(&["run", file.to_str().expect("utf-8"), "--param", &base]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let logs = t.run(&["logs", &t.last_run(), "ready"]);
    assert!(
        logs.stdout
            .starts_with(&format!("> GET {}/readyz\n< 200 OK (", server.url)),
        "{}",
        logs.stdout
    );
    let latest = t.run(&["logs", &t.last_run(), "latest"]);
    assert!(
        latest.stdout.contains(&format!(
            "> GET {}/api/v1/runs?limit=1\n< 200 OK (",
            server.url
        )),
        "{}",
        latest.stdout
    );
}

#[test]
fn a_server_that_is_not_there_fails_the_step_saying_so() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  call:\n    http: { url: \"http://127.0.0.1:9/x\" }\n",
    );
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let show = t.show(&t.last_run());
    let error = show["tasks"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with("`GET http://127.0.0.1:9/x` failed: "),
        "{show:#}"
    );
}

#[test]
fn a_signing_secret_that_is_missing_or_short_stops_the_run_before_it_starts() {
    let t = Test::new()
        .file("short", "abc\n")
        .file("p.yaml", "name: p\ntasks:\n  a:\n    run: \"true\"\n");
    let missing = t.run(&["--http-signing-secret-file", "nope", "run", "p.yaml"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .starts_with("error: cannot read the HTTP signing secret `nope`: "),
        "{}",
        missing.stderr
    );
    let short = t.run(&["--http-signing-secret-file", "short", "run", "p.yaml"]);
    assert_eq!(short.code, 2, "{}", short.stderr);
    assert_eq!(
        short.stderr,
        "error: the HTTP signing secret `short` has 3 bytes, fewer than 32\n\
         (hint: make one with `head -c 32 /dev/urandom | base64 > short`)\n"
    );
    // No run was created (not even the home).
    let runs = t.run(&["runs", "--json"]);
    assert!(!runs.stdout.contains("\"id\""), "{}", runs.stdout);
}
