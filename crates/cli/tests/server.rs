//! `baton server` as a process: HTTP over loopback, and crash recovery across a `kill -9`.

mod support;

use std::io::{BufRead, BufReader};

use support::{Server, Test, http, server_args, task_states, wait_until};

#[test]
fn refuses_non_loopback_addresses_without_the_flag() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  a:\n    run: \"true\"\n",
    );
    let out = t.run(&[
        "server",
        "--pipelines",
        "pipelines",
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: refusing to listen on `0.0.0.0:0`"),
        "{}",
        out.stderr
    );
}

#[test]
fn runs_survive_a_kill_9_of_the_server() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  first:\n    run: echo first >> ran.txt\n  slow:\n    needs: [first]\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      sleep 1\n      echo slow >> ran.txt\n",
    );
    let server = t.server();
    let addr = server.addr.clone();
    assert_eq!(http(&addr, "GET", "/healthz", "").0, 200);
    let (status, run) = http(
        &addr,
        "POST",
        "/api/v1/pipelines/default/p/runs",
        r#"{"params": {}}"#,
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    // Tasks run in the pipeline file's directory.
    wait_until("slow started", || !t.read("pipelines/keys.txt").is_empty());
    drop(server); // kill -9

    let server = t.server();
    let addr = server.addr.clone();
    wait_until("run finished after restart", || {
        let (_, doc) = http(&addr, "GET", &format!("/api/v1/runs/{id}"), "");
        doc["state"] == "succeeded"
    });
    let run = t.show(&id);
    assert_eq!(task_states(&run)["slow"], "succeeded");
    let keys: Vec<String> = t
        .read("pipelines/keys.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), 2, "the cut-short attempt ran again");
    assert_eq!(keys[0], keys[1], "with the same idempotency key");
    assert_eq!(
        t.read("pipelines/ran.txt").matches("first").count(),
        1,
        "a succeeded task ran again"
    );
}

#[test]
fn a_replica_takes_over_the_runs_of_one_killed_for_good() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  first:\n    run: echo first >> ran.txt\n  slow:\n    needs: [first]\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      sleep 1\n      echo slow >> ran.txt\n",
    );
    // Two replicas on one home; the survivor looks for orphans often.
    let a = t.server();
    let b = t.replica();
    let (status, run) = http(&a.addr, "POST", "/api/v1/pipelines/default/p/runs", "{}");
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    wait_until("slow started", || !t.read("pipelines/keys.txt").is_empty());
    let (_, doc) = http(&b.addr, "GET", &format!("/api/v1/runs/{id}"), "");
    assert_eq!(doc["state"], "running");
    drop(a); // kill -9, and it never comes back

    wait_until("the other replica finished the run", || {
        let (_, doc) = http(&b.addr, "GET", &format!("/api/v1/runs/{id}"), "");
        doc["state"] == "succeeded"
    });
    let keys: Vec<String> = t
        .read("pipelines/keys.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), 2, "the cut-short attempt ran again");
    assert_eq!(keys[0], keys[1], "with the same idempotency key");
    assert_eq!(
        t.read("pipelines/ran.txt").matches("first").count(),
        1,
        "a succeeded task ran again"
    );
    let metrics = support::http_text(&b.addr, "/metrics");
    assert!(
        metrics.contains("baton_runs_taken_over_total{namespace=\"default\",pipeline=\"p\"} 1"),
        "{metrics}"
    );
}

#[test]
fn sigterm_drains_and_the_next_start_resumes() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\ntasks:\n  short:\n    run: sleep 0.3; echo short >> ran.txt\n  long:\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      if [ -f once ]; then exit 0; fi\n      touch once\n      sleep 300\n",
    );
    let mut server = t.server();
    let addr = server.addr.clone();
    let (status, run) = http(&addr, "POST", "/api/v1/pipelines/default/p/runs", "{}");
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    wait_until("long started", || !t.read("pipelines/keys.txt").is_empty());
    let pid = server.pid();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
    let status = server.child.wait().expect("exit");
    assert_eq!(status.code(), Some(0), "a drained server exits cleanly");
    // The short task finished within the grace period; the long one was stopped and recorded.
    let run = t.show(&id);
    assert_eq!(run["state"], "running");
    let states = task_states(&run);
    assert_eq!(states["short"], "succeeded");
    let long = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "long")
        .cloned()
        .expect("long");
    assert_eq!(long["attempt_records"][0]["state"], "interrupted");

    let server = t.server();
    let addr = server.addr.clone();
    wait_until("resumed run finished", || {
        let (_, doc) = http(&addr, "GET", &format!("/api/v1/runs/{id}"), "");
        doc["state"] == "succeeded"
    });
    assert_eq!(
        t.read("pipelines/ran.txt"),
        "short\n",
        "the finished task did not run again"
    );
    let keys: Vec<String> = t
        .read("pipelines/keys.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    let run = t.show(&id);
    let long = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "long")
        .cloned()
        .expect("long");
    assert_eq!(
        long["interruptions"], 1,
        "the drain did not use up the retry budget"
    );
}

const PIPELINE: &str = "name: NAME\ntasks:\n  a:\n    run: \"true\"\n";

fn pipeline(name: &str) -> String {
    PIPELINE.replace("NAME", name)
}

/// Names of the pipelines the server has loaded, and the paths of files with errors.
fn catalog(addr: &str) -> (Vec<String>, Vec<String>) {
    let (_, doc) = http(addr, "GET", "/api/v1/pipelines", "");
    let mut names = Vec::new();
    let mut broken = Vec::new();
    for p in doc["items"].as_array().expect("items") {
        if let Some(name) = p["name"].as_str() {
            names.push(name.to_owned());
        }
        if p["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            broken.push(p["path"].as_str().unwrap_or_default().to_owned());
        }
    }
    names.sort();
    (names, broken)
}

#[test]
fn pipeline_files_reload_when_they_change() {
    let t = Test::new().file("pipelines/one.yaml", &pipeline("one"));
    let server = t.server();
    let addr = server.addr.clone();
    assert_eq!(catalog(&addr).0, ["one"]);

    std::fs::create_dir_all(t.path().join("pipelines/team")).expect("mkdir");
    std::fs::write(t.path().join("pipelines/team/two.yaml"), pipeline("two")).expect("write");
    wait_until("the new file to load", || {
        catalog(&addr).0 == ["one", "two"]
    });

    // A broken edit keeps the last good version and shows its errors.
    std::fs::write(t.path().join("pipelines/one.yaml"), "name: one\ntasks: 7\n").expect("write");
    wait_until("the broken file to show its errors", || {
        catalog(&addr) == (vec!["one".into(), "two".into()], vec!["one.yaml".into()])
    });

    std::fs::remove_file(t.path().join("pipelines/team/two.yaml")).expect("remove");
    wait_until("the removed file to unload", || catalog(&addr).0 == ["one"]);
}

/// `baton_definition_reloads_total` on `/metrics`.
fn reloads(addr: &str) -> f64 {
    support::http_text(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("baton_definition_reloads_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("baton_definition_reloads_total on /metrics")
}

#[test]
fn a_change_reloads_once_and_then_the_watcher_stays_quiet() {
    let t = Test::new().file("pipelines/one.yaml", &pipeline("one"));
    let server = t.server();
    let addr = server.addr.clone();
    std::fs::write(t.path().join("pipelines/two.yaml"), pipeline("two")).expect("write");
    wait_until("the new file to load", || {
        catalog(&addr).0 == ["one", "two"]
    });
    // Reading the files for that reload must not count as a change that calls for the next.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after_change = reloads(&addr);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(
        reloads(&addr),
        after_change,
        "the pipelines reloaded with nothing changed"
    );
}

#[test]
fn sighup_reloads_when_watching_is_off() {
    let t = Test::new().file("pipelines/one.yaml", &pipeline("one"));
    let server = Server::ready(t.spawn(&server_args(&["--no-watch"])));
    let addr = server.addr.clone();
    std::fs::write(t.path().join("pipelines/two.yaml"), pipeline("two")).expect("write");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        catalog(&addr).0,
        ["one"],
        "no watch: nothing reloads by itself"
    );

    let pid = server.pid();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    wait_until("SIGHUP to reload", || catalog(&addr).0 == ["one", "two"]);
    assert_eq!(
        http(&addr, "GET", "/healthz", "").0,
        200,
        "SIGHUP does not stop the server"
    );
}

#[test]
fn baton_toml_sets_what_flags_and_variables_do_not() {
    let t = Test::new()
        .file("conf/flows/one.yaml", &pipeline("one"))
        .file("conf/other/two.yaml", &pipeline("two"))
        .file(
            "conf/baton.toml",
            "home = \"state\"\n\n[server]\npipelines = \"flows\"\nlisten = \"127.0.0.1:0\"\ncatchup_cap = 5\n",
        );
    // Paths in the file are relative to it, wherever the server starts from.
    let mut cmd = t.command(&["server", "--config", "conf/baton.toml"]);
    cmd.env_remove("BATON_HOME")
        .stdout(std::process::Stdio::piped());
    let server = Server::ready(cmd.spawn().expect("spawn"));
    let addr = server.addr.clone();
    assert_eq!(catalog(&addr).0, ["one"]);
    assert!(
        t.path().join("conf/state/baton.db").exists(),
        "home from the file"
    );
    drop(server);

    // A variable beats the file; a flag beats both.
    let mut cmd = t.command(&["server", "--config", "conf/baton.toml"]);
    cmd.env("BATON_PIPELINES", "conf/other")
        .stdout(std::process::Stdio::piped());
    let server = Server::ready(cmd.spawn().expect("spawn"));
    let addr = server.addr.clone();
    assert_eq!(catalog(&addr).0, ["two"]);
    drop(server);
    let mut cmd = t.command(&[
        "server",
        "--config",
        "conf/baton.toml",
        "--pipelines",
        "conf/flows",
    ]);
    cmd.env("BATON_PIPELINES", "conf/other")
        .stdout(std::process::Stdio::piped());
    let server = Server::ready(cmd.spawn().expect("spawn"));
    let addr = server.addr.clone();
    assert_eq!(catalog(&addr).0, ["one"]);
}

#[test]
fn a_bad_baton_toml_is_reported_with_its_location() {
    let t = Test::new().file("baton.toml", "[server]\nlisten = \"localhost\"\n");
    let out = t.run(&["server"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        "error: invalid config `baton.toml:2:10`: invalid socket address syntax\n"
    );
    let out = t.run(&["server", "--config", "missing.toml"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("error: cannot read `missing.toml`: "),
        "{out:?}"
    );
}

#[test]
fn server_logs_are_json_lines_on_request() {
    let t = Test::new().file("pipelines/one.yaml", &pipeline("one"));
    let mut child = t.spawn(&server_args(&["--log-format", "json"]));
    let stderr = child.stderr.take().expect("stderr");
    let _server = Server::ready(child);
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("a log line");
    let event: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(event["level"], "INFO", "{line}");
    assert_eq!(event["message"], "pipelines loaded", "{line}");
    assert_eq!(event["loaded"], 1, "{line}");
}

/// A pipeline whose task prints its environment, and whose webhook key and alert URL are
/// secrets in the server's environment.
const PRINTS_ENV: &str = "name: envs\ntriggers:\n  - webhook:\n      secret_env: ENVTEST_HOOK_SECRET\nnotify:\n  - on: [failure]\n    webhook_env: ENVTEST_ALERTS_URL\nenv:\n  SEEN_IN_TEMPLATE: \"[{{ env.AWS_PROFILE }}]\"\ntasks:\n  dump:\n    run: env\n";

#[test]
fn server_tasks_get_a_clean_environment_without_its_secrets() {
    let t = Test::new()
        .file("pipelines/envs.yaml", PRINTS_ENV)
        .file(
            "pipelines/leaky.yaml",
            "name: leaky\nenv:\n  STOLEN: \"{{ env.ENVTEST_HOOK_SECRET }}\"\ntasks:\n  a:\n    run: echo \"$STOLEN\"\n",
        )
        .file(
            "pipelines/other.yaml",
            "name: other\ntriggers:\n  - webhook:\n      secret_env: ENVTEST_OTHER_SECRET\ntasks:\n  a:\n    run: \"true\"\n",
        );
    let mut cmd = t.command(&server_args(&[
        "--inherit-env",
        "AWS_*,ENVTEST_OTHER_SECRET",
    ]));
    cmd.env("ENVTEST_HOOK_SECRET", "hook-s3cret")
        .env("ENVTEST_ALERTS_URL", "https://alerts.example/s3cret")
        .env("ENVTEST_OTHER_SECRET", "other-s3cret")
        .env("OPENLINEAGE_API_KEY", "lineage-s3cret")
        .env("ENVTEST_RANDOM", "random-value")
        .env("AWS_PROFILE", "ops-profile")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = Server::ready(cmd.spawn().expect("spawn baton"));
    let (status, run) = http(
        &server.addr,
        "POST",
        "/api/v1/pipelines/default/envs/runs",
        "{}",
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let mut doc = serde_json::Value::Null;
    wait_until("the run ends", || {
        doc = http(&server.addr, "GET", &format!("/api/v1/runs/{id}"), "").1;
        doc["state"] != "running" && doc["state"] != "queued"
    });
    assert_eq!(doc["state"], "succeeded", "{doc:#}");
    // What `baton logs` and the logs API show is what the task printed.
    let logs = t.run(&["--server", &server.url, "logs", &id, "dump"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    let env = logs.stdout;
    for secret in [
        "hook-s3cret",
        "alerts.example",
        "other-s3cret",
        "lineage-s3cret",
        "random-value",
    ] {
        assert!(!env.contains(secret), "`{secret}` reached the task:\n{env}");
    }
    for seen in [
        "AWS_PROFILE=ops-profile",
        "SEEN_IN_TEMPLATE=[ops-profile]",
        "PATH=",
        &format!("BATON_RUN_ID={id}"),
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(seen)),
            "no `{seen}` in:\n{env}"
        );
    }
}

#[test]
fn inherit_env_naming_a_baton_secret_is_refused_at_start() {
    let t = Test::new().file("pipelines/p.yaml", &pipeline("p"));
    let out = t.run(&server_args(&["--inherit-env", "OPENLINEAGE_*"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("`inherit_env` entry `OPENLINEAGE_*` would pass baton's secret `OPENLINEAGE_API_KEY` to every task"),
        "{}",
        out.stderr
    );
}

/// The status of a `GET` sent with `host` as its `Host` header.
fn status_for_host(addr: &str, path: &str, host: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    resp[9..12].parse().expect("status")
}

#[test]
fn allowed_hosts_come_from_flags_and_baton_toml_and_match_the_listening_port() {
    let t = Test::new().file("pipelines/p.yaml", &pipeline("p")).file(
        "baton.toml",
        "[server]\nallowed_hosts = [\"from-file.example\"]\n",
    );
    let server = Server::ready(t.spawn(&server_args(&[])));
    let port = server.addr.rsplit_once(':').expect("port").1.to_owned();
    let addr = &server.addr;
    assert_eq!(
        status_for_host(addr, "/api/v1/pipelines", "from-file.example"),
        200
    );
    assert_eq!(
        status_for_host(
            addr,
            "/api/v1/pipelines",
            &format!("from-file.example:{port}")
        ),
        200
    );
    assert_eq!(
        status_for_host(addr, "/api/v1/pipelines", "from-file.example:1"),
        421
    );
    assert_eq!(
        status_for_host(addr, "/api/v1/pipelines", "evil.example"),
        421
    );
    assert_eq!(
        status_for_host(addr, "/", &format!("evil.example:{port}")),
        421
    );
    assert_eq!(status_for_host(addr, "/healthz", "10.9.8.7"), 200);
    drop(server);

    // A flag wins over the file.
    let server = Server::ready(t.spawn(&server_args(&["--allowed-host", "from-flag.example"])));
    assert_eq!(
        status_for_host(&server.addr, "/api/v1/runs", "from-flag.example"),
        200
    );
    assert_eq!(
        status_for_host(&server.addr, "/api/v1/runs", "from-file.example"),
        421
    );
    assert_eq!(
        status_for_host(&server.addr, "/api/v1/runs", &server.addr),
        200
    );
}
