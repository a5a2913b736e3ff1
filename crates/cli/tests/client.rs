//! The CLI as a client of `baton server` (`--server URL`): the same commands print the same
//! thing and exit the same way whether they read the home or ask a server over HTTP.

mod support;

use support::{Outcome, Server, Test, task_states, wait_until};

/// Runs a command against the server.
fn remote(t: &Test, s: &Server, args: &[&str]) -> Outcome {
    let mut all = vec!["--server", s.url.as_str()];
    all.extend_from_slice(args);
    t.run(&all)
}

/// Runs a command on the home and through the server; both must print and exit alike.
fn same(t: &Test, s: &Server, args: &[&str]) -> Outcome {
    let local = t.run(args);
    let through = remote(t, s, args);
    assert_eq!(
        (local.code, &local.stdout, &local.stderr),
        (through.code, &through.stdout, &through.stderr),
        "`baton {}` differs between the home (left) and the server (right)",
        args.join(" ")
    );
    local
}

const P: &str = "name: p\ntasks:\n  a:\n    run: printf 'alpha\\nbeta\\n'; echo ran >> ran.txt\n  b:\n    needs: [a]\n    run: printf 'no newline'\n  quiet:\n    run: \"true\"\n";

#[test]
fn runs_show_and_logs_print_the_same_from_the_home_and_from_a_server() {
    let t = Test::new().file("pipelines/p.yaml", P);
    let s = t.server();
    let out = remote(&t, &s, &["trigger", "p", "--wait"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.lines().next().expect("id line").to_owned();
    assert_eq!(id.len(), 26, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("run {id} succeeded in ")),
        "{}",
        out.stdout
    );
    // The server ran it in the pipeline file's directory.
    assert_eq!(t.read("pipelines/ran.txt"), "ran\n");

    let prefix = &id[..12];
    for args in [
        vec!["runs"],
        vec!["runs", "--json"],
        vec![
            "runs",
            "--pipeline",
            "default/p",
            "--state",
            "succeeded",
            "--limit",
            "1",
        ],
        vec!["runs", "--state", "failed"],
        vec!["show", &id],
        vec!["show", prefix, "--json"],
        vec!["logs", &id],
        vec!["logs", prefix, "a"],
        vec!["logs", &id, "b", "--attempt", "1"],
        vec!["logs", &id, "b", "--follow"],
        vec!["logs", &id, "quiet"],
    ] {
        let out = same(&t, &s, &args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
    assert_eq!(same(&t, &s, &["logs", &id, "a"]).stdout, "alpha\nbeta\n");
    assert_eq!(same(&t, &s, &["logs", &id, "b"]).stdout, "no newline");
    assert!(
        same(&t, &s, &["runs"]).stdout.contains(&id),
        "the run is listed"
    );

    // Errors pass through with the server's message and the local exit code.
    let missing = same(&t, &s, &["show", "zzzz"]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "error: run `zzzz` not found\n")
    );
    let no_attempt = same(&t, &s, &["logs", &id, "a", "--attempt", "2"]);
    assert_eq!(no_attempt.code, 1);
    assert_eq!(
        no_attempt.stderr,
        format!("error: no log for `a` in run {id}\n(hint: it has attempts 1 to 1)\n")
    );
    let bad_state = same(&t, &s, &["runs", "--state", "nope"]);
    assert_eq!(bad_state.code, 2);
}

#[test]
fn trigger_from_the_home_runs_the_version_the_server_recorded() {
    let t = Test::new().file(
        "pipelines/p.yaml",
        "name: p\nparams:\n  n: { type: integer, default: 1 }\ntasks:\n  a:\n    run: echo n={{ params.n }} >> ran.txt\n",
    );
    let s = t.server();
    // Bad params are refused before anything starts, alike.
    let bad = same(&t, &s, &["trigger", "p", "--param", "n=x"]);
    assert_eq!(bad.code, 2);
    assert_eq!(
        bad.stderr,
        "error: param `n`: cannot read `x` as an integer\n"
    );
    let unknown = same(&t, &s, &["trigger", "data/nope"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .starts_with("error: pipeline `data/nope` not found"),
        "{}",
        unknown.stderr
    );

    let remote_run = remote(&t, &s, &["trigger", "p", "--param", "n=2", "--wait"]);
    assert_eq!(remote_run.code, 0, "{}", remote_run.stderr);
    let local_run = t.run(&["trigger", "default/p", "--param", "n=3"]);
    assert_eq!(local_run.code, 0, "{}", local_run.stderr);
    // The same shape: the id alone first, then the table `baton run` prints.
    for out in [&remote_run, &local_run] {
        let id = out.stdout.lines().next().expect("id");
        assert!(
            out.stdout
                .lines()
                .last()
                .is_some_and(|l| l.starts_with(&format!("run {id} succeeded in "))),
            "{}",
            out.stdout
        );
    }
    // Both ran in the pipeline file's directory.
    assert_eq!(t.read("pipelines/ran.txt"), "n=2\nn=3\n");

    // An idempotency key returns the earlier run, through either.
    let first = remote(&t, &s, &["trigger", "p", "--idempotency-key", "k1"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let again = remote(&t, &s, &["trigger", "p", "--idempotency-key", "k1"]);
    assert_eq!(again.stdout, first.stdout);
}

#[test]
fn logs_follow_streams_from_the_server_until_the_attempt_ends() {
    let t = Test::new().file(
        "pipelines/slow.yaml",
        "name: slow\ntasks:\n  talk:\n    run: |\n      echo one\n      printf 'half'\n      touch started\n      sleep 1\n      echo ' two'\n      printf 'end'\n",
    );
    let s = t.server();
    let out = remote(&t, &s, &["trigger", "slow"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim().to_owned();
    wait_until("talk started", || {
        t.path().join("pipelines/started").exists()
    });
    let follow = remote(&t, &s, &["logs", &id, "talk", "-f"]);
    assert_eq!(follow.code, 0, "{}", follow.stderr);
    assert_eq!(follow.stdout, "one\nhalf two\nend");
    // It returned once the attempt had ended.
    let run = t.show(&id);
    assert_eq!(
        run["tasks"][0]["attempt_records"][0]["state"], "succeeded",
        "{run}"
    );
    same(&t, &s, &["logs", &id, "talk", "-f"]);
}

#[test]
fn approve_cancel_and_retry_through_the_server() {
    let t = Test::new()
        .file(
            "pipelines/gated.yaml",
            "name: gated\ntasks:\n  release:\n    approval: {}\n    run: echo shipped\n",
        )
        .file(
            "pipelines/long.yaml",
            "name: long\ntasks:\n  wait:\n    run: sleep 300\n",
        )
        .file(
            "pipelines/flaky.yaml",
            "name: flaky\ntasks:\n  ok:\n    run: \"true\"\n  flaky:\n    needs: [ok]\n    run: test -f fixed\n",
        );
    let s = t.server();

    let id = remote(&t, &s, &["trigger", "gated"])
        .stdout
        .trim()
        .to_owned();
    wait_until("gate waits", || {
        task_states(&t.show(&id))["release"] == "waiting_approval"
    });
    let ok = remote(
        &t,
        &s,
        &["approve", &id[..10], "release", "--comment", "lgtm"],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.stdout, format!("approved `release` of run {id}\n"));
    wait_until("released", || t.show(&id)["state"] == "succeeded");
    let late = same(&t, &s, &["reject", &id, "release"]);
    assert_eq!(late.code, 1);
    assert_eq!(late.stderr, "error: task `release` is already succeeded\n");

    let id = remote(&t, &s, &["trigger", "long"])
        .stdout
        .trim()
        .to_owned();
    wait_until("long runs", || {
        task_states(&t.show(&id))["wait"] == "running"
    });
    let cancel = remote(&t, &s, &["cancel", &id]);
    assert_eq!(
        (cancel.code, cancel.stdout),
        (
            0,
            format!("cancel requested; the process running {id} will stop it\n")
        )
    );
    wait_until("cancelled", || t.show(&id)["state"] == "cancelled");
    let again = same(&t, &s, &["cancel", &id]);
    assert_eq!(again.stdout, format!("run {id} already cancelled\n"));

    let failed = remote(&t, &s, &["trigger", "flaky", "--wait"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let id = failed.stdout.lines().next().expect("id").to_owned();
    std::fs::write(t.path().join("pipelines/fixed"), "").expect("fix");
    let retried = remote(&t, &s, &["retry", &id, "--wait"]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert_eq!(retried.stderr, format!("retrying run {id}: flaky\n"));
    assert!(
        retried.stdout.contains(&format!("run {id} succeeded in ")),
        "{}",
        retried.stdout
    );
    let nothing = same(&t, &s, &["retry", &id]);
    assert_eq!(nothing.code, 1);
    assert_eq!(
        nothing.stderr,
        format!("error: run {id} succeeded; there is nothing to retry\n")
    );
}

#[test]
fn an_unreachable_server_is_named_with_a_hint() {
    let t = Test::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = t.run(&["--server", &url, "runs"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with(&format!("error: cannot reach the server at `{url}`: ")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.ends_with(
            "(hint: is `baton server` running there? --server and BATON_SERVER say where to look)\n"
        ),
        "{}",
        out.stderr
    );
    // The environment variable works like the flag.
    let env = t
        .command(&["show", "x"])
        .env("BATON_SERVER", &url)
        .output()
        .expect("run");
    assert_eq!(env.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&env.stderr).contains("cannot reach the server"));

    let bad = t.run(&["--server", "localhost:8080", "runs"]);
    assert_eq!(bad.code, 2);
    assert_eq!(
        bad.stderr,
        "error: `localhost:8080` is not a server URL\n(hint: --server http://127.0.0.1:8080)\n"
    );
}

#[test]
fn a_followed_log_does_not_hold_up_a_stopping_server() {
    let t = Test::new().file(
        "pipelines/long.yaml",
        "name: long\ntasks:\n  wait:\n    run: echo waiting; sleep 300\n",
    );
    let mut s = t.server();
    let id = remote(&t, &s, &["trigger", "long"])
        .stdout
        .trim()
        .to_owned();
    wait_until("output", || {
        remote(&t, &s, &["logs", &id, "wait"]).stdout == "waiting\n"
    });
    let follower = t.spawn(&["--server", &s.url, "logs", &id, "wait", "-f"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = s.pid();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
    let mut status = None;
    wait_until("the server stopped despite the open stream", || {
        status = s.child.try_wait().expect("wait");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    // The follower printed what there was, then gave up on the gone server.
    let out = follower.wait_with_output().expect("follower");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "waiting\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dead_letters_are_listed_and_requeued_through_the_server() {
    // `b` fails until `fixed.txt` exists beside the pipeline (where its commands run).
    let flaky = "name: f\ntasks:\n  a:\n    run: \"true\"\n  b:\n    needs: [a]\n    run: test -e fixed.txt\n  c:\n    needs: [b]\n    run: \"true\"\n";
    let t = Test::new().file("pipelines/f.yaml", flaky);
    let s = t.server();
    let out = remote(&t, &s, &["trigger", "f", "--wait"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.stdout.lines().next().expect("id line").to_owned();

    let listed = same(&t, &s, &["dead-letters"]);
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains(" b "),
        "{}",
        listed.stdout
    );
    same(&t, &s, &["dead-letters", "--json", "--pipeline", "f"]);

    // Not a dead letter: refused the same way by both.
    let refused = same(&t, &s, &["dead-letters", "requeue", &id, "c"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("is not a dead letter"),
        "{refused:?}"
    );

    std::fs::write(t.path().join("pipelines/fixed.txt"), "").expect("write");
    let out = remote(&t, &s, &["dead-letters", "requeue", &id, "b"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("requeued `b` of run {id}: b, c")),
        "{out:?}"
    );
    wait_until("the server to finish the requeued run", || {
        task_states(&t.show(&id)).get("c").map(String::as_str) == Some("succeeded")
    });
    assert_eq!(
        remote(&t, &s, &["dead-letters"]).stdout,
        "no dead letters\n"
    );
}

#[test]
fn backfill_through_the_server_follows_it_to_the_end() {
    let daily = "name: daily\nschedule:\n  - cron: \"0 0 * * *\"\ntasks:\n  a:\n    run: echo {{ run.logical_date }} >> dates.txt\n";
    let t = Test::new().file("pipelines/daily.yaml", daily);
    let s = t.server();
    let out = remote(
        &t,
        &s,
        &[
            "backfill",
            "daily",
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-03",
            "--parallelism",
            "2",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "3 succeeded, 0 failed, 0 cancelled, 0 unfinished of 3 run(s)\n"
    );
    assert!(
        out.stderr.contains("run(s), at most 2 at once") && out.stderr.contains(": 3 run(s)"),
        "{out:?}"
    );
    let mut dates: Vec<String> = t
        .read("pipelines/dates.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    dates.sort();
    assert_eq!(
        dates,
        [
            "2026-11-01T00:00:00+00:00",
            "2026-11-02T00:00:00+00:00",
            "2026-11-03T00:00:00+00:00"
        ]
    );

    let wrong = remote(
        &t,
        &s,
        &[
            "backfill",
            "nope",
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-02",
        ],
    );
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong.stderr.contains("pipeline `default/nope` not found"),
        "{wrong:?}"
    );
}
