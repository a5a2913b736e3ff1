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

const CALLED: &str = r#"name: called
params:
  callee: { type: string }
  verdict: { type: string, default: done }
tasks:
  train:
    http:
      url: "{{ params.callee }}/train?verdict={{ params.verdict }}"
      body: { epochs: 2 }
      expect: { status: [202] }
      callback: { wait: 30s }
    outputs_from: json
    outputs: [model]
  after:
    needs: [train]
    run: test "{{ tasks.train.outputs.model }}" = m-1
"#;

/// A callee on loopback: answers each request `202 Accepted`, then calls its
/// `X-Baton-Callback-Url` with a result (a failure when the query says so), then tries the
/// same URL again and a forged one; the statuses of those calls come back on the channel.
fn callee() -> (String, std::sync::mpsc::Receiver<(u16, u16, u16)>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut callback = None;
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("x-baton-callback-url:") {
                    callback = Some(line[line.len() - v.len()..].trim().to_owned());
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let _ = stream.write_all(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            drop(stream);
            let Some(callback) = callback else { continue };
            let failed = first.contains("verdict=fail");
            let tx = tx.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let rest = callback.strip_prefix("http://").expect("http");
                let (addr, path) = rest.split_at(rest.find('/').expect("path"));
                let result = if failed {
                    r#"{"status":"failed","error":"out of GPUs"}"#
                } else {
                    r#"{"status":"done","model":"m-1"}"#
                };
                let (first, _) = support::http(addr, "POST", path, result);
                let (again, _) = support::http(addr, "POST", path, result);
                let forged = format!("{}{}", &path[..path.len() - 4], "0000");
                let (fake, _) = support::http(addr, "POST", &forged, result);
                let _ = tx.send((first, again, fake));
            });
        }
    });
    (url, rx)
}

#[test]
fn a_callback_step_ends_when_the_callee_calls_back_once() {
    let t = Test::new().file("pipelines/called.yaml", CALLED);
    let server = t.server();
    let (url, calls) = callee();
    let param = format!("callee={url}");
    let out = t.run(&[
        "--server",
        &server.url,
        "trigger",
        "called",
        "--param",
        &param,
        "--wait",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let (first, again, fake) = calls.recv().expect("the callee called back");
    assert_eq!(
        (first, again, fake),
        (200, 404, 404),
        "taken once, and never forged"
    );

    // A failure the callee reports fails the step with its reason.
    let out = t.run(&[
        "--server",
        &server.url,
        "trigger",
        "called",
        "--param",
        &param,
        "--param",
        "verdict=fail",
        "--wait",
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let run = out.stdout.lines().next().expect("run id").trim().to_owned();
    let shown = t.run(&["--server", &server.url, "show", &run, "--json"]);
    assert!(
        shown
            .stdout
            .contains("the callee reported a failure: out of GPUs"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_callback_step_without_a_server_is_refused_saying_where_it_can_run() {
    let t = Test::new().file("called.yaml", CALLED);
    let out = t.run(&["run", "called.yaml", "--param", "callee=http://127.0.0.1:9"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let show = t.show(&t.last_run());
    let error = show["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "train")
        .and_then(|t| t["error"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with("`http.callback` needs a `baton server` to be called back"),
        "{error}"
    );
}
