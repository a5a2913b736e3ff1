//! `--database URL` (or `BATON_DATABASE_URL`, or `[database] url`): runs recorded in
//! PostgreSQL are read back by other processes, a PostgreSQL restart in the middle of a run is
//! survived, and a database that cannot be used gets one clear line and exit code 2.
//! `BATON_TEST_POSTGRES_URL` names a server (`.ci/postgres.sh` starts one); the restart test
//! starts its own.

mod support;

use std::path::Path;
use std::time::Duration;

use support::postgres::{Fresh, OwnPostgres, psql, with_database};
use support::{Test, task_states, wait_until_for};

fn hello() -> Test {
    let text = std::fs::read_to_string(support::repo().join("examples/hello.yaml")).expect("hello");
    Test::new().file("hello.yaml", &text)
}

fn runs_json(out: &support::Outcome) -> Vec<serde_json::Value> {
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("json")
}

#[test]
fn a_run_recorded_in_postgres_is_read_back_by_other_processes() {
    let Some(admin) = support::postgres::admin_url("runs recorded in PostgreSQL") else {
        return;
    };
    let db = Fresh::new(&admin, "baton_cli_read_back");
    let t = hello();
    let out = t.run(&["--database", &db.url, "run", "hello.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Nothing of it is in a SQLite file of the home, nor are its logs: they are in the
    // database too (`[logs] store` defaults to it with PostgreSQL).
    assert!(!t.path().join(".baton/baton.db").exists());
    assert!(!t.path().join(".baton/logs").exists());

    let runs = runs_json(&t.run(&["--database", &db.url, "runs", "--json"]));
    assert_eq!(runs.len(), 1);
    let id = runs[0]["id"].as_str().expect("id").to_owned();
    let show = t.run(&["--database", &db.url, "show", &id, "--json"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let run: serde_json::Value = serde_json::from_str(&show.stdout).expect("json");
    assert_eq!(run["state"], "succeeded");
    assert_eq!(task_states(&run).len(), 2);

    // The variable, and a home that does not exist: a reader needs none.
    let elsewhere = Test::new();
    let mut cmd = elsewhere.command(&["runs", "--json"]);
    let missing = elsewhere.path().join("no-home");
    cmd.env("BATON_HOME", &missing)
        .env("BATON_DATABASE_URL", &db.url);
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(runs.len(), 1);
    // Its logs too, from a process on another home.
    let mut cmd = elsewhere.command(&["logs", &id, "shout"]);
    cmd.env("BATON_HOME", &missing)
        .env("BATON_DATABASE_URL", &db.url);
    let out = cmd.output().expect("logs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HELLO, WORLD!\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!missing.exists());

    // The settings file.
    let t = elsewhere.file(
        "baton.toml",
        &format!(
            "[database]\nurl = \"{}\"\nmax_connections = 2\nstatement_timeout = \"30s\"\n",
            db.url
        ),
    );
    let runs = runs_json(&t.run(&["runs", "--json"]));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"].as_str(), Some(id.as_str()));
}

#[test]
fn a_postgres_restart_in_the_middle_of_a_run_is_survived() {
    let Some(pg) = OwnPostgres::start("a PostgreSQL restart during a run", &[]) else {
        return;
    };
    let steps = 6;
    let mut pipeline = String::from("name: steps\ntasks:\n");
    for i in 0..steps {
        pipeline.push_str(&format!("  s{i}:\n    run: sleep 0.5; echo {i}\n"));
        if i > 0 {
            pipeline.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    let t = Test::new().file("steps.yaml", &pipeline);
    let run = t.spawn(&["--database", &pg.url, "run", "steps.yaml", "--json"]);
    // Once the second step runs, the database goes away and comes back. Its logs are in the
    // database: the first step's exit record (beside its outputs) says it ended.
    wait_until_for(
        "the run reaches its second step",
        Duration::from_secs(30),
        || walk_count(&t.path().join(".baton/runs")) >= 1,
    );
    pg.pg_ctl(&["restart", "-m", "fast", "-w"]);
    let out = run.wait_with_output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let show = t.run(&[
        "--database",
        &pg.url,
        "show",
        &last_run(&t, &pg.url),
        "--json",
    ]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let run: serde_json::Value = serde_json::from_str(&show.stdout).expect("json");
    assert_eq!(run["state"], "succeeded", "{run}");
    let states = task_states(&run);
    assert_eq!(states.len(), steps, "{states:?}");
    assert!(states.values().all(|s| s == "succeeded"), "{states:?}");
    // Each step ran once: the restart cost no attempt, and none was recorded twice.
    for task in run["tasks"].as_array().expect("tasks") {
        let attempts = task["attempt_records"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 1, "{task}");
        assert_eq!(task["attempts"], 1, "{task}");
    }
    // The restart was noticed, not slept through.
    assert!(
        stderr.contains("broke") || stderr.contains("trying again"),
        "{stderr}"
    );
}

fn last_run(t: &Test, url: &str) -> String {
    let runs = runs_json(&t.run(&["--database", url, "runs", "--json", "--limit", "1"]));
    runs[0]["id"].as_str().expect("id").to_owned()
}

/// Files under `dir`, at any depth.
fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let p = e.path();
                if p.is_dir() { walk_count(&p) } else { 1 }
            })
            .sum()
    })
}

#[test]
fn a_database_that_cannot_be_used_gets_one_line_and_exit_code_2() {
    let t = Test::new().file("c/baton.toml", "[database]\nconnect_timeout = \"1s\"\n");
    let config = t.path().join("c/baton.toml");
    let config = config.to_str().expect("utf-8");
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cases = vec![
        ("mysql", "mysql://root:secret@127.0.0.1/baton".to_owned()),
        ("garbage", "garbage".to_owned()),
        (
            "refused",
            format!("postgres://baton:secret@127.0.0.1:{free}/baton"),
        ),
    ];
    let db = support::postgres::admin_url("runs recorded in PostgreSQL").map(|admin| {
        let db = Fresh::new(&admin, "baton_cli_newer");
        cases.push((
            "unknown database",
            with_database(&admin, "baton_cli_no_such_database"),
        ));
        db
    });
    if let Some(db) = &db {
        let out = t.run(&["--database", &db.url, "runs"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        psql(
            &db.url,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, '\\x00'::bytea, 1)",
        );
        cases.push(("newer", db.url.clone()));
    }
    let mut report = String::new();
    for (case, url) in &cases {
        let out = t.run(&["--config", config, "--database", url, "runs"]);
        assert_eq!(out.code, 2, "{case}: {}", out.stderr);
        assert!(!out.stderr.contains("secret"), "{case}: {}", out.stderr);
        let line = out.stderr.replace(&free.to_string(), "PORT").replace(
            &support::postgres::admin_url("runs recorded in PostgreSQL").unwrap_or_default(),
            "ADMIN",
        );
        let line = support::postgres::admin_url("runs recorded in PostgreSQL")
            .and_then(|a| a.rsplit_once('/').map(|(server, _)| server.to_owned()))
            .map_or(line.clone(), |server| line.replace(&server, "SERVER"));
        report.push_str(&format!("{case}:\n{line}\n"));
    }
    if db.is_some() {
        insta::assert_snapshot!(report);
    }
}
