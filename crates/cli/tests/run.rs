//! `baton run` and friends against the real binary: semantics a user relies on.

mod support;

use std::time::{Duration, Instant};

use support::{Test, alive, repo, task_states, wait_until};

fn states(t: &Test) -> std::collections::BTreeMap<String, String> {
    task_states(&t.show(&t.last_run()))
}

#[test]
fn hello_example_runs_and_passes_outputs_downstream() {
    let t = Test::new();
    let file = repo().join("examples/hello.yaml");
    let out = t.run(&["run", file.to_str().expect("utf-8"), "--param", "who=baton"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    let logs = t.run(&["logs", &t.last_run(), "shout"]);
    assert_eq!(logs.stdout, "HELLO, BATON!\n");
}

#[test]
fn failure_exit_codes_and_messages() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  missing:\n    run: no-such-command-xyz\n  bad_dir:\n    working_dir: nowhere\n    run: \"true\"\n  quiet:\n    run: \"true\"\n    outputs: [v]\n  bad_template:\n    needs: [quiet]\n    run: echo {{ tasks.quiet.outputs.v }}\n",
    );
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run = t.show(&t.last_run());
    assert_eq!(run["state"], "failed");
    let errors: std::collections::BTreeMap<String, String> = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or_default().to_owned(),
                t["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors["missing"],
        "exited with code 127 (command not found)"
    );
    assert!(
        errors["bad_dir"].starts_with("cannot use working directory `"),
        "{}",
        errors["bad_dir"]
    );
    assert!(
        errors["bad_dir"].ends_with("/nowhere`: No such file or directory (os error 2)"),
        "{}",
        errors["bad_dir"]
    );
    // `quiet` declared `v` but never wrote it: the template fails at run time, before any
    // process starts, and says which field.
    assert!(
        errors["bad_template"].starts_with("cannot render `run`: "),
        "{errors:?}"
    );
    assert!(
        run["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .any(|t| t["key"] == "bad_template" && t["attempts"] == 0)
    );
}

#[test]
fn a_pipeline_env_that_fails_at_run_time_fails_tasks_clearly() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\nparams:\n  n: { type: string, default: x }\nenv: { A: \"{{ params.n.missing }}\" }\ntasks:\n  a:\n    run: echo \"$A\" > ran.txt\n",
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 1);
    let run = t.show(&t.last_run());
    let error = run["tasks"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with("cannot render pipeline env `A`: "),
        "{error}"
    );
    assert!(
        t.read("ran.txt").is_empty(),
        "the task ran with an unrendered env"
    );
}

#[test]
fn invalid_pipeline_or_params_do_not_start_a_run() {
    let t = Test::new()
        .file("bad.yaml", "name: p\ntasks:\n  a:\n    neds: [b]\n    run: x\n")
        .file("p.yaml", "name: p\nparams:\n  n: { type: integer }\ntasks:\n  a:\n    run: echo {{ params.n }}\n");
    let bad = t.run(&["run", "bad.yaml"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("bad.yaml:4:5: error: unknown key `neds` in a task"),
        "{}",
        bad.stderr
    );
    let missing = t.run(&["run", "p.yaml"]);
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stderr, "error: missing required param `n`\n");
    let wrong = t.run(&["run", "p.yaml", "--param", "n=ten"]);
    assert_eq!(wrong.code, 2);
    assert_eq!(
        wrong.stderr,
        "error: param `n`: cannot read `ten` as an integer\n"
    );
    let unknown = t.run(&["run", "p.yaml", "-p", "m=1"]);
    assert_eq!(
        unknown.stderr,
        "error: unknown param `m`\n(hint: the pipeline declares `n`)\n"
    );
    assert_eq!(t.run(&["runs"]).stdout, "no runs yet\n");
}

#[test]
fn retries_follow_the_policy_with_a_stable_idempotency_key() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  flaky:\n    retries: { limit: 3, delay: 50ms, backoff: exponential }\n    run: |\n      echo \"$BATON_ATTEMPT $BATON_IDEMPOTENCY_KEY\" >> attempts.txt\n      test \"$BATON_ATTEMPT\" -ge 3\n  picky:\n    retries: { limit: 3, on_exit_codes: [75] }\n    run: exit 3\n",
    );
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<String> = t.read("attempts.txt").lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    let keys: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "idempotency key changed across retries: {lines:?}"
    );
    let run = t.show(&t.last_run());
    let task = |k: &str| {
        run["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["key"] == k)
            .cloned()
            .expect("task")
    };
    assert_eq!(task("flaky")["state"], "succeeded");
    assert_eq!(task("flaky")["attempts"], 3);
    assert_eq!(task("picky")["state"], "failed");
    assert_eq!(
        task("picky")["attempts"],
        1,
        "exit 3 is not in on_exit_codes"
    );
    // Every attempt is recorded with its times and exit code.
    let attempts = task("flaky")["attempt_records"]
        .as_array()
        .expect("attempts")
        .clone();
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["exit_code"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(codes, vec![1, 1, 0]);
    assert!(
        attempts
            .iter()
            .all(|a| a["finished_at"].as_i64() >= a["started_at"].as_i64())
    );
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  slow:\n    timeout: 500ms\n    run: |\n      sleep 300 &\n      echo $! > bg.pid\n      sleep 300\n",
    );
    let started = Instant::now();
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout did not stop the task"
    );
    let run = t.show(&t.last_run());
    assert_eq!(run["tasks"][0]["error"], "timed out after 500ms");
    assert_eq!(run["tasks"][0]["attempt_records"][0]["state"], "timed_out");
    let pid: i32 = t.read("bg.pid").trim().parse().expect("pid");
    assert!(
        !alive(pid),
        "background grandchild {pid} survived the timeout"
    );
}

#[test]
fn leftover_background_processes_are_cleaned_up_after_success() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    run: |\n      sleep 300 &\n      echo $! > bg.pid\n",
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 0);
    let pid: i32 = t.read("bg.pid").trim().parse().expect("pid");
    assert!(!alive(pid), "background process {pid} outlived its task");
}

#[test]
fn outputs_fan_out_and_trigger_rules() {
    let t = Test::new().file(
        "p.yaml",
        r#"name: p
params:
  regions: { type: array, default: [eu, us, ap] }
tasks:
  plan:
    run: |
      echo "shards=a,b" >> "$BATON_OUTPUTS"
      printf 'notes<<END\nline 1\nline 2\nEND\n' >> "$BATON_OUTPUTS"
    outputs: [shards, notes]
  load:
    needs: [plan]
    for_each: "{{ tasks.plan.outputs.shards | split(',') | list }}"
    run: echo "rows=$BATON_ITEM" >> "$BATON_OUTPUTS"
    outputs: [rows]
  regions:
    for_each: params.regions
    if: item != 'ap'
    run: echo {{ item }}
  report:
    needs: [load, regions]
    run: |
      echo "{{ tasks.load.outputs.rows | join('+') }}" > report.txt
      echo "{{ tasks.plan.outputs.notes }}" >> report.txt
  broken:
    run: exit 1
  handler:
    needs: [broken]
    trigger_rule: one_failed
    run: echo handled > handled.txt
  after_broken:
    needs: [broken]
    run: echo never
  always:
    needs: [broken, report]
    trigger_rule: all_done
    run: "true"
  undeclared:
    run: echo "oops=1" >> "$BATON_OUTPUTS"
"#,
    );
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let s = states(&t);
    let expect = [
        ("plan", "succeeded"),
        ("load", "succeeded"),
        ("load[a]", "succeeded"),
        ("load[b]", "succeeded"),
        ("regions", "succeeded"),
        ("regions[eu]", "succeeded"),
        ("regions[us]", "succeeded"),
        ("regions[ap]", "skipped"),
        ("report", "succeeded"),
        ("broken", "failed"),
        ("handler", "succeeded"),
        ("after_broken", "upstream_failed"),
        ("always", "succeeded"),
        ("undeclared", "failed"),
    ];
    for (k, v) in expect {
        assert_eq!(s.get(k).map(String::as_str), Some(v), "{k}: {s:?}");
    }
    assert_eq!(t.read("report.txt"), "a+b\nline 1\nline 2\n");
    assert_eq!(t.read("handled.txt"), "handled\n");
    let run = t.show(&t.last_run());
    let undeclared = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "undeclared")
        .cloned()
        .expect("task");
    assert_eq!(
        undeclared["error"],
        "invalid outputs: output `oops` is not declared\n(hint: declare it under the task's `outputs:`)"
    );
}

#[test]
fn hooks_run_after_the_run_with_its_outcome() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    run: exit 1\non_failure:\n  run: echo \"{{ run.state }} {{ tasks.a.state }}\" > hook.txt\non_success:\n  run: echo never > never.txt\n",
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 1);
    assert_eq!(t.read("hook.txt"), "failed failed\n");
    assert!(t.read("never.txt").is_empty());
    let s = states(&t);
    assert_eq!(s["on_failure"], "succeeded");
    assert_eq!(t.show(&t.last_run())["state"], "failed");
}

#[test]
fn parallelism_bounds_concurrent_tasks() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  work:\n    for_each: [1, 2, 3, 4, 5, 6]\n    run: |\n      mkdir -p slots && touch slots/$BATON_TASK_KEY\n      ls slots | wc -l >> seen.txt\n      sleep 0.2\n      rm slots/$BATON_TASK_KEY\n",
    );
    assert_eq!(t.run(&["run", "p.yaml", "--parallelism", "2"]).code, 0);
    let max = t
        .read("seen.txt")
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .max();
    assert_eq!(max, Some(2));
}

#[test]
fn environment_and_resource_use_are_recorded() {
    let t = Test::new().file(
        "p.yaml",
        "name: env-check\nnamespace: team\nparams:\n  date: { type: string, default: d1 }\nenv: { WAREHOUSE: \"wh-{{ params.date }}\" }\ntasks:\n  a:\n    env: { LEVEL: \"{{ run.trigger }}\" }\n    run: |\n      echo \"$BATON_RUN_ID|$BATON_TASK_ID|$BATON_ATTEMPT|$BATON_PIPELINE|$BATON_PARAM_DATE|$WAREHOUSE|$LEVEL\" > env.txt\n      i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\n",
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 0);
    let run_id = t.last_run();
    assert_eq!(
        t.read("env.txt"),
        format!("{run_id}|a|1|team/env-check|d1|wh-d1|manual\n")
    );
    let run = t.show(&run_id);
    let usage = &run["tasks"][0]["attempt_records"][0]["rusage"];
    assert!(usage["max_rss_kb"].as_i64().unwrap_or(0) > 0, "{usage}");
    assert!(usage["cpu_user_ms"].as_i64().is_some(), "{usage}");
    let shown = t.run(&["show", &run_id]);
    assert!(shown.stdout.contains("max rss"), "{}", shown.stdout);
}

#[test]
fn approval_gate_waits_for_a_person() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  build:\n    run: \"true\"\n  release:\n    needs: [build]\n    approval: { message: ship it? }\n    run: echo released > released.txt\n  gate:\n    approval: { timeout: 300ms }\n",
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let run_id = loop {
        let out = t.run(&["runs", "--json"]);
        if let Ok(runs) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && let Some(id) = runs[0]["id"].as_str()
        {
            let s = task_states(&t.show(id));
            if s.get("release").map(String::as_str) == Some("waiting_approval") {
                break id.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "release never waited for approval"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(t.read("released.txt").is_empty());
    let approve = t.run(&["approve", &run_id, "release", "--comment", "lgtm"]);
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let status = child.wait().expect("wait");
    // The unattended gate timed out, so the run fails, but the approved task ran.
    assert_eq!(status.code(), Some(1));
    assert_eq!(t.read("released.txt"), "released\n");
    let run = t.show(&run_id);
    let gate = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "gate")
        .cloned()
        .expect("gate");
    assert_eq!(gate["error"], "approval timed out after 300ms");
}

#[test]
fn rejection_fails_the_gate() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  release:\n    approval: {}\n    run: echo no > ran.txt\n",
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = t.run(&["runs", "--json"]);
        if out.stdout.contains("\"id\"") {
            let id = t.last_run();
            if task_states(&t.show(&id)).get("release").map(String::as_str)
                == Some("waiting_approval")
            {
                let r = t.run(&["reject", &id, "release", "--comment", "too risky"]);
                assert_eq!(r.code, 0, "{}", r.stderr);
                break;
            }
        }
        assert!(Instant::now() < deadline, "never waited");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(child.wait().expect("wait").code(), Some(1));
    let run = t.show(&t.last_run());
    let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    assert_eq!(
        run["tasks"][0]["error"],
        format!("rejected by {by}: too risky")
    );
    assert!(t.read("ran.txt").is_empty());
}

#[test]
fn ctrl_c_cancels_the_run_and_its_processes() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  long:\n    run: |\n      sleep 300 &\n      echo $! > bg.pid\n      sleep 300\n  later:\n    needs: [long]\n    run: \"true\"\n",
    );
    let child = t.spawn(&["run", "p.yaml"]);
    wait_until("task never started", || !t.read("bg.pid").trim().is_empty());
    let pid = nix_pid(child.id());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("signal");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = states(&t);
    assert_eq!(s["long"], "cancelled");
    assert_eq!(s["later"], "cancelled");
    assert_eq!(t.show(&t.last_run())["state"], "cancelled");
    let bg: i32 = t.read("bg.pid").trim().parse().expect("pid");
    assert!(!alive(bg));
}

#[test]
fn cancel_from_another_terminal() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  long:\n    run: echo started > s.txt; sleep 300\n",
    );
    let child = t.spawn(&["run", "p.yaml"]);
    wait_until("task never started", || !t.read("s.txt").is_empty());
    let out = t.run(&["cancel", &t.last_run()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = child.wait_with_output().expect("wait").status;
    assert_eq!(status.code(), Some(130));
}

#[test]
fn logs_by_attempt_and_prefix_ids() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    retries: { limit: 1, delay: 10ms }\n    run: echo try $BATON_ATTEMPT; test $BATON_ATTEMPT -ge 2\n",
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 0);
    let id = t.last_run();
    let prefix = &id[..10];
    assert_eq!(
        t.run(&["logs", prefix, "a", "--attempt", "1"]).stdout,
        "try 1\n"
    );
    assert_eq!(t.run(&["logs", prefix, "a"]).stdout, "try 2\n");
    let none = t.run(&["logs", prefix, "a", "--attempt", "3"]);
    assert_eq!(none.code, 1);
    assert_eq!(
        none.stderr,
        format!("error: no log for `a` in run {id}\n(hint: it has attempts 1 to 2)\n")
    );
    let unknown = t.run(&["show", "zzzz"]);
    assert_eq!(unknown.stderr, "error: run `zzzz` not found\n");
}

#[test]
fn logs_kept_in_the_database_are_capped_and_read_back() {
    let t = Test::new()
        .file(
            "baton.toml",
            "[logs]\nstore = \"database\"\nmax_bytes_per_attempt = 100\n",
        )
        .file(
            "p.yaml",
            "name: p\ntasks:\n  a:\n    run: for i in $(seq 1 30); do echo line$i; done\n",
        );
    let run = t.run(&["run", "p.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !t.path().join(".baton/logs").exists(),
        "the log is in the database, not in the home"
    );
    let kept: String = (1..=30).map(|i| format!("line{i}\n")).collect();
    let expected = format!(
        "{}\n[baton: log truncated after 100 bytes; {} more bytes dropped]\n",
        &kept[..100],
        kept.len() - 100
    );
    for args in [
        &["logs", &t.last_run(), "a"][..],
        &["logs", &t.last_run(), "a", "--follow"][..],
    ] {
        let logs = t.run(args);
        assert_eq!(
            (logs.code, logs.stdout.as_str()),
            (0, expected.as_str()),
            "{}",
            logs.stderr
        );
    }
}

#[test]
fn logs_follow_a_running_task_to_its_end() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    run: |\n      echo one\n      touch started\n      sleep 1\n      echo two\n  quiet:\n    run: \"true\"\n",
    );
    let mut run = t.spawn(&["run", "p.yaml"]);
    wait_until("never started", || t.path().join("started").exists());
    let follow = t.run(&["logs", &t.last_run(), "a", "--follow"]);
    assert_eq!(follow.code, 0, "{}", follow.stderr);
    assert_eq!(follow.stdout, "one\ntwo\n");
    assert_eq!(run.wait().expect("wait").code(), Some(0));
    // A task that printed nothing has an empty log, not an error.
    let quiet = t.run(&["logs", &t.last_run(), "quiet"]);
    assert_eq!((quiet.code, quiet.stdout.as_str()), (0, ""));
}

#[test]
fn sigterm_cancels_like_ctrl_c() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  long:\n    run: touch started; sleep 300\n",
    );
    let child = t.spawn(&["run", "p.yaml"]);
    wait_until("never started", || t.path().join("started").exists());
    nix::sys::signal::kill(nix_pid(child.id()), nix::sys::signal::Signal::SIGTERM).expect("signal");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(t.show(&t.last_run())["state"], "cancelled");
}

#[test]
fn retry_reruns_a_failed_run_from_its_failed_tasks() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  ok:\n    run: echo ok >> ran.txt\n  flaky:\n    needs: [ok]\n    retries: 1\n    run: |\n      echo flaky >> ran.txt\n      test -f fixed\n  after:\n    needs: [flaky]\n    run: echo after >> ran.txt\n  fan:\n    for_each: [a, b]\n    run: |\n      echo \"fan $BATON_ITEM\" >> ran.txt\n      test \"$BATON_ITEM\" = a || test -f fixed\n",
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 1);
    let id = t.last_run();
    let s = task_states(&t.show(&id));
    assert_eq!(
        (
            s["flaky"].as_str(),
            s["after"].as_str(),
            s["fan[b]"].as_str()
        ),
        ("failed", "upstream_failed", "failed")
    );
    std::fs::write(t.path().join("fixed"), "").expect("fix");
    let out = t.run(&["retry", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = t.show(&id);
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["error"], serde_json::Value::Null);
    let ran = t.read("ran.txt");
    assert_eq!(
        ran.matches("ok").count(),
        1,
        "a succeeded task ran again: {ran}"
    );
    assert_eq!(
        ran.matches("fan a").count(),
        1,
        "a succeeded instance ran again: {ran}"
    );
    assert_eq!(ran.matches("fan b").count(), 2);
    // Two attempts before the retry (its budget), one after: a fresh budget, not an exhausted one.
    assert_eq!(ran.matches("flaky").count(), 3);
    assert_eq!(ran.matches("after").count(), 1);
    let again = t.run(&["retry", &id]);
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        format!("error: run {id} succeeded; there is nothing to retry\n")
    );
}

#[test]
fn json_output_and_idempotency_key() {
    let t = Test::new().file("p.yaml", "name: p\ntasks:\n  a:\n    run: echo hi\n");
    let first = t.run(&["run", "p.yaml", "--json", "--idempotency-key", "k1"]);
    assert_eq!(first.code, 0);
    let doc: serde_json::Value = serde_json::from_str(&first.stdout).expect("json");
    assert_eq!(doc["state"], "succeeded");
    assert_eq!(doc["tasks"][0]["attempt_records"][0]["exit_code"], 0);
    let again = t.run(&["run", "p.yaml", "--json", "--idempotency-key", "k1"]);
    let doc2: serde_json::Value = serde_json::from_str(&again.stdout).expect("json");
    assert_eq!(
        doc["id"], doc2["id"],
        "the same key must return the same run"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&t.run(&["runs", "--json"]).stdout).expect("json");
    assert_eq!(runs.as_array().map(Vec::len), Some(1));
}

fn nix_pid(id: u32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(i32::try_from(id).expect("pid"))
}

#[test]
fn runs_between_instants_or_durations_ago() {
    let t = Test::new().file("p.yaml", "name: p\ntasks:\n  a:\n    run: \"true\"\n");
    assert_eq!(t.run(&["run", "p.yaml"]).code, 0);
    let count = |window: &[&str]| -> usize {
        let mut args = vec!["runs", "--json"];
        args.extend_from_slice(window);
        let out = t.run(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        runs.as_array().map_or(0, Vec::len)
    };
    assert_eq!(count(&["--since", "1h"]), 1);
    assert_eq!(count(&["--until", "1h"]), 0);
    assert_eq!(count(&["--since", "2000-01-01T00:00:00Z"]), 1);
    assert_eq!(
        count(&[
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2000-01-02T00:00:00+02:00"
        ]),
        0
    );
    let bad = t.run(&["runs", "--since", "yesterday"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.starts_with(
            "error: `--since yesterday` is neither an RFC 3339 instant nor a duration\n(hint: "
        ),
        "{}",
        bad.stderr
    );
}

#[test]
fn json_log_lines_of_a_run_carry_its_run_and_task_ids() {
    let t = Test::new().file(
        "logged.yaml",
        "name: logged\ntasks:\n  hello:\n    run: exit 2\n",
    );
    let out = t
        .command(&["--log-format", "json", "run", "logged.yaml"])
        .env("BATON_LOG", "info")
        .output()
        .expect("run baton");
    assert_eq!(out.status.code(), Some(1));
    let run_id = t.last_run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no `{message}` line in {stderr}"))
    };
    let task = line("task failed");
    assert_eq!(task["run"], run_id.as_str(), "{task}");
    assert_eq!(task["task"], "hello", "{task}");
    assert_eq!(task["pipeline"], "default/logged", "{task}");
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"], "exited with code 2", "{task}");
    assert_eq!(task["level"], "INFO", "{task}");
    let run = line("run failed");
    assert_eq!(run["run"], run_id.as_str(), "{run}");
    assert_eq!(run["pipeline"], "default/logged", "{run}");
}

#[test]
fn a_cached_task_is_reused_shown_and_bypassed_with_no_cache() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  build:\n    outputs: [by]\n    cache: { key: \"build-v1\" }\n    run: echo built >> built.txt && echo \"by=$BATON_RUN_ID\" >> \"$BATON_OUTPUTS\"\n  use:\n    needs: [build]\n    run: echo \"{{ tasks.build.outputs.by }}\" >> seen.txt\n",
    );
    let first = t.run(&["run", "p.yaml"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(!first.stdout.contains("(cached)"), "{}", first.stdout);
    let first = t.last_run();

    let second = t.run(&["run", "p.yaml"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let row = second
        .stdout
        .lines()
        .find(|l| l.contains("build"))
        .unwrap_or_default();
    assert!(row.contains("succeeded (cached)"), "{}", second.stdout);
    assert!(
        second.stderr.contains(&format!(
            "build reuses the cached result of build in run {first}"
        )),
        "{}",
        second.stderr
    );
    let second = t.last_run();
    assert_eq!(t.read("built.txt"), "built\n", "the command ran once");
    assert_eq!(t.read("seen.txt"), format!("{first}\n{first}\n"));
    let shown = t.run(&["show", &second]);
    assert!(
        shown.stdout.contains(&format!(
            "build reused the cached result of build in run {first}"
        )),
        "{}",
        shown.stdout
    );
    let doc = t.show(&second);
    assert_eq!(doc["tasks"][0]["cached_from"]["run"], first.as_str());
    assert_eq!(doc["tasks"][0]["cached_from"]["task"], "build");
    assert_eq!(doc["no_cache"], false);

    // `--no-cache` runs it again; the fresh result is what the next run reuses.
    let bypass = t.run(&["run", "p.yaml", "--no-cache"]);
    assert_eq!(bypass.code, 0, "{}", bypass.stderr);
    assert!(!bypass.stdout.contains("(cached)"), "{}", bypass.stdout);
    let bypass = t.last_run();
    assert_eq!(t.read("built.txt"), "built\nbuilt\n");
    assert_eq!(t.show(&bypass)["no_cache"], true);
    assert!(
        t.run(&["show", &bypass])
            .stdout
            .contains("cache:    not used (--no-cache)")
    );
    assert_eq!(t.run(&["run", "p.yaml"]).code, 0);
    assert_eq!(
        t.show(&t.last_run())["tasks"][0]["cached_from"]["run"],
        bypass.as_str()
    );

    // The choice is the run's: resumed after a crash, it still does not use the cache.
    let mut crashing = t.command(&["run", "p.yaml", "--no-cache"]);
    crashing.env("BATON_FAULT_CRASH_AFTER_COMMITS", "1");
    assert!(
        crashing.output().expect("run").status.code().is_none(),
        "it crashed"
    );
    let crashed = t.last_run();
    let resumed = t.run(&["resume", &crashed]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(t.read("built.txt"), "built\nbuilt\nbuilt\n");
    assert_eq!(
        t.show(&crashed)["tasks"][0]["cached_from"],
        serde_json::Value::Null
    );

    // `baton trigger` takes the same option.
    let triggered = t.run(&["trigger", "p", "--no-cache"]);
    assert_eq!(triggered.code, 0, "{}", triggered.stderr);
    assert_eq!(t.show(&t.last_run())["no_cache"], true);
    assert_eq!(t.read("built.txt"), "built\nbuilt\nbuilt\nbuilt\n");
}

#[test]
fn a_sub_pipeline_next_to_the_file_runs_as_a_child_run() {
    let t = Test::new()
        .file(
            "parent.yaml",
            "name: parent\nparams:\n  day: { type: string, default: d1 }\ntasks:\n  call:\n    pipeline: child\n    params:\n      day: \"{{ params.day }}\"\n  after:\n    needs: [call]\n    run: echo after >> ran.txt\n",
        )
        .file(
            "lib/child.yaml",
            "name: child\nparams:\n  day: { type: string }\ntasks:\n  a:\n    run: echo \"child $BATON_PARAM_DAY\" >> ran.txt\n",
        );
    let out = t.run(&["run", "parent.yaml", "--param", "day=d2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The child runs in its own file's directory, before what needs it.
    assert_eq!(t.read("lib/ran.txt"), "child d2\n");
    assert_eq!(t.read("ran.txt"), "after\n");
    let parent = out
        .stderr
        .split_whitespace()
        .nth(1)
        .expect("`run ID of ...` first")
        .to_owned();
    let run = t.show(&parent);
    assert_eq!(run["pipeline"], "parent");
    let child = run["children"][0]["id"]
        .as_str()
        .expect("a child")
        .to_owned();
    assert!(
        out.stderr
            .contains(&format!("call runs default/child as run {child}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("call sub-pipeline run {child} succeeded")),
        "{}",
        out.stderr
    );
    let shown = t.run(&["show", &parent]);
    assert!(
        shown.stdout.contains(&format!(
            "call attempt 1 started run {child} of default/child (succeeded)"
        )),
        "{}",
        shown.stdout
    );
    let child_run = t.show(&child);
    assert_eq!(child_run["trigger"], "parent");
    assert_eq!(child_run["params"], serde_json::json!({"day": "d2"}));
    assert_eq!(
        child_run["parent"],
        serde_json::json!({"run": parent, "task": "call", "attempt": 1})
    );
    let shown = t.run(&["show", &child]);
    assert!(
        shown
            .stdout
            .contains(&format!("parent:   run {parent} task call (attempt 1)")),
        "{}",
        shown.stdout
    );
    let log = t.run(&["logs", &parent, "call"]);
    assert!(
        log.stdout
            .contains(&format!("started run {child} of default/child")),
        "{}",
        log.stdout
    );
}

#[test]
fn an_unknown_sub_pipeline_fails_saying_where_it_looked() {
    let t = Test::new().file("p.yaml", "name: p\ntasks:\n  call:\n    pipeline: nope\n");
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run = t.show(&t.last_run());
    let dir = std::fs::canonicalize(t.path()).expect("canonical");
    assert_eq!(
        run["tasks"][0]["error"],
        format!(
            "sub-pipeline `default/nope` not found\n(hint: looked in `{}` and the directories below it)",
            dir.display()
        )
    );
}

#[test]
fn baton_run_passes_the_users_environment_but_not_batons_secrets() {
    let t = Test::new().file(
        "p.yaml",
        "name: envs\ntriggers:\n  - webhook:\n      secret_env: ENVTEST_HOOK_SECRET\nnotify:\n  - on: [failure]\n    webhook_env: ENVTEST_ALERTS_URL\ntasks:\n  dump:\n    run: env\n",
    );
    let out = t
        .command(&["run", "p.yaml"])
        .env("ENVTEST_USER_VAR", "ordinary-value")
        .env("ENVTEST_HOOK_SECRET", "hook-s3cret")
        .env("ENVTEST_ALERTS_URL", "https://alerts.example/s3cret")
        .env("OPENLINEAGE_API_KEY", "lineage-s3cret")
        .output()
        .expect("run baton");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = t.run(&["logs", &t.last_run(), "dump"]).stdout;
    assert!(env.contains("ENVTEST_USER_VAR=ordinary-value"), "{env}");
    for secret in ["hook-s3cret", "alerts.example", "lineage-s3cret"] {
        assert!(!env.contains(secret), "`{secret}` reached the task:\n{env}");
    }
}
