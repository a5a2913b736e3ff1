//! Crash at every point of a run, resume, and check that the run ends the same way and that
//! no task that had succeeded ran again.

mod support;

use std::collections::BTreeMap;

use support::{Test, task_states, wait_until};

/// Each task appends its key to `ran.txt` as its last act, so a line means "ran to the end".
const PIPELINE: &str = r#"name: durable
tasks:
  extract:
    run: echo "rows=3" >> "$BATON_OUTPUTS"; echo extract >> ran.txt
    outputs: [rows]
  flaky:
    needs: [extract]
    retries: { limit: 2, delay: 10ms }
    run: |
      if [ ! -f flaky.once ]; then touch flaky.once; exit 1; fi
      echo flaky >> ran.txt
  load:
    needs: [extract]
    for_each: [eu, us, ap]
    run: echo "$BATON_TASK_KEY" >> ran.txt
  check:
    needs: [load, flaky]
    if: tasks.extract.outputs.rows | int > 0
    run: echo check >> ran.txt
  skipped:
    needs: [extract]
    if: "false"
    run: echo skipped >> ran.txt
  report:
    needs: [check, skipped]
    trigger_rule: none_failed
    run: echo report >> ran.txt
"#;

fn lines(t: &Test) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in t.read("ran.txt").lines() {
        *out.entry(l.to_owned()).or_insert(0) += 1;
    }
    out
}

/// Runs to completion, resuming after every crash.
fn finish(t: &Test, crash_after: Option<u32>) -> (String, bool) {
    let mut cmd = t.command(&["run", "p.yaml", "--parallelism", "2"]);
    if let Some(n) = crash_after {
        cmd.env("BATON_FAULT_CRASH_AFTER_COMMITS", n.to_string());
    }
    let status = cmd.output().expect("run").status;
    let crashed = status.code().is_none();
    let id = t.last_run();
    let mut tries = 0;
    while t.show(&id)["state"] == "running" || t.show(&id)["state"] == "queued" {
        tries += 1;
        assert!(tries < 10, "resume did not finish the run");
        let out = t.run(&["resume", &id]);
        assert!(
            out.code == 0 || out.code == 1,
            "resume failed: {}",
            out.stderr
        );
    }
    (id, crashed)
}

#[test]
fn resume_after_a_crash_at_every_commit_reaches_the_same_end() {
    let baseline = Test::new().file("p.yaml", PIPELINE);
    let (id, crashed) = finish(&baseline, None);
    assert!(!crashed);
    let want = task_states(&baseline.show(&id));
    assert_eq!(baseline.show(&id)["state"], "succeeded");
    assert_eq!(want["skipped"], "skipped");

    for n in 1..200 {
        let t = Test::new().file("p.yaml", PIPELINE);
        let (id, crashed) = finish(&t, Some(n));
        let run = t.show(&id);
        assert_eq!(run["state"], "succeeded", "crash after {n} commits");
        assert_eq!(task_states(&run), want, "crash after {n} commits");
        let ran = lines(&t);
        for task in run["tasks"].as_array().expect("tasks") {
            let key = task["key"].as_str().expect("key");
            let records = task["attempt_records"].as_array().expect("attempts");
            let succeeded = records.iter().filter(|a| a["state"] == "succeeded").count();
            let finished = ran.get(key).copied().unwrap_or(0);
            if task["state"] == "succeeded" && !records.is_empty() {
                assert_eq!(
                    succeeded, 1,
                    "crash after {n}: `{key}` succeeded {succeeded} times"
                );
                // At-least-once: an attempt cut short by the crash may have finished its
                // work, but a task never runs again once its success is recorded, and never
                // runs without an attempt on record.
                assert!(
                    finished >= 1 && finished <= records.len(),
                    "crash after {n}: `{key}` ran {finished} times with {} attempts",
                    records.len()
                );
                let after_success = records
                    .iter()
                    .skip_while(|a| a["state"] != "succeeded")
                    .count()
                    - 1;
                assert_eq!(
                    after_success, 0,
                    "crash after {n}: `{key}` ran after succeeding"
                );
            }
        }
        assert_eq!(ran.get("skipped"), None);
        if !crashed {
            // The run needed fewer than `n` commits: every crash point is covered.
            assert!(n > 10, "only {} crash points", n - 1);
            return;
        }
    }
    panic!("the run never completed without crashing");
}

#[test]
fn kill_9_mid_task_then_resume() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  first:\n    run: echo first >> ran.txt\n  slow:\n    needs: [first]\n    run: |\n      echo \"$BATON_IDEMPOTENCY_KEY\" >> keys.txt\n      sleep 1\n      echo slow >> ran.txt\n  last:\n    needs: [slow]\n    run: echo last >> ran.txt\n",
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    wait_until("slow never started", || !t.read("keys.txt").is_empty());
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let id = t.last_run();
    assert_eq!(t.show(&id)["state"], "running");
    let out = t.run(&["resume", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = t.show(&id);
    assert_eq!(run["state"], "succeeded");
    let slow = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "slow")
        .cloned()
        .expect("slow");
    let states: Vec<&str> = slow["attempt_records"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, vec!["interrupted", "succeeded"]);
    assert_eq!(slow["interruptions"], 1);
    let keys: Vec<String> = t.read("keys.txt").lines().map(str::to_owned).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "the retry must keep the idempotency key");
    assert_eq!(
        t.read("ran.txt").matches("first").count(),
        1,
        "a succeeded task ran again"
    );
}

#[test]
fn a_run_owned_by_a_live_process_cannot_be_resumed_twice() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  a:\n    run: echo go > s.txt; sleep 300\n",
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    wait_until("never started", || !t.read("s.txt").is_empty());
    let id = t.last_run();
    let out = t.run(&["resume", &id]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains(&format!("error: run `{id}` is being executed by `")),
        "{}",
        out.stderr
    );
    child.kill().expect("kill");
    child.wait().expect("reap");
}

const PARENT: &str = r#"name: parent
tasks:
  call:
    pipeline: child
  after:
    needs: [call]
    run: echo after >> ran.txt
"#;

const CHILD: &str = r#"name: child
tasks:
  first:
    run: echo first >> ran.txt
  second:
    needs: [first]
    run: echo second >> ran.txt
"#;

/// The id of the newest run of `pipeline`.
fn newest_of(t: &Test, pipeline: &str) -> String {
    let out = t.run(&["runs", "--json", "--pipeline", pipeline, "--limit", "1"]);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    runs[0]["id"].as_str().expect("a run").to_owned()
}

#[test]
fn a_crash_at_every_commit_of_a_parent_and_its_child_never_starts_a_second_child() {
    for n in 1..100 {
        let t = Test::new()
            .file("parent.yaml", PARENT)
            .file("child.yaml", CHILD);
        let mut cmd = t.command(&["run", "parent.yaml"]);
        cmd.env("BATON_FAULT_CRASH_AFTER_COMMITS", n.to_string());
        let crashed = cmd.output().expect("run").status.code().is_none();
        let id = newest_of(&t, "parent");
        let mut tries = 0;
        while !matches!(
            t.show(&id)["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            tries += 1;
            assert!(tries < 10, "crash after {n}: resume did not finish the run");
            let out = t.run(&["resume", &id]);
            assert!(
                out.code == 0 || out.code == 1,
                "resume failed: {}",
                out.stderr
            );
        }
        let run = t.show(&id);
        assert_eq!(run["state"], "succeeded", "crash after {n} commits");
        let children = run["children"].as_array().expect("children");
        assert_eq!(children.len(), 1, "crash after {n}: {children:?}");
        assert_eq!(children[0]["state"], "succeeded", "crash after {n}");
        assert_eq!(children[0]["parent"]["task"], "call");
        let call = &run["tasks"].as_array().expect("tasks")[0];
        assert_eq!(
            (&call["key"], &call["attempts"]),
            (&serde_json::json!("call"), &serde_json::json!(1)),
            "crash after {n}: the child's wait is not an interruption"
        );
        let ran = lines(&t);
        for task in ["first", "second", "after"] {
            assert!(
                ran.contains_key(task),
                "crash after {n}: `{task}` never ran"
            );
        }
        if !crashed {
            assert!(n > 8, "only {} crash points", n - 1);
            return;
        }
    }
    panic!("the run never completed without crashing");
}
