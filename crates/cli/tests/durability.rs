//! Crash at every point of a run, resume, and check that the run ends the same way and that
//! no task that had succeeded ran again.

mod support;

use std::collections::BTreeMap;

use support::ledger::{Chaos, LEDGER_SCRIPT, executions, overlaps};
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

fn chaos_pipeline(name: &str, ledger: &std::path::Path) -> String {
    format!(
        "name: {name}\nenv:\n  LEDGER: {ledger}\ntasks:\n  a:\n    run: sh {script} a\n  b:\n    needs: [a]\n    run: sh {script} b\n  c:\n    needs: [a]\n    run: sh {script} c\n  d:\n    needs: [b, c]\n    run: sh {script} d\n",
        ledger = ledger.display(),
        script = ledger.with_file_name("ledger.sh").display(),
    )
}

/// How many random kills the chaos tests make together: `BATON_CHAOS_KILLS`, else 100;
/// `percent` of them are this test's.
fn chaos_kills(percent: usize) -> usize {
    let total: usize = std::env::var("BATON_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    (total * percent).div_ceil(100)
}

/// Waits up to `limit` for a child to exit by itself, else kills it (`kill -9`). Whether it
/// was killed.
fn kill_at(child: &mut std::process::Child, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

fn chaos_home(name: &str) -> (Test, std::path::PathBuf) {
    let t = Test::new().file("ledger.sh", LEDGER_SCRIPT);
    let ledger = t.path().join("ledger.txt");
    let t = t.file(
        &format!("pipelines/{name}.yaml"),
        &chaos_pipeline(name, &ledger),
    );
    (t, ledger)
}

/// One chaos case: `baton run`, killed at a random moment, then `baton resume`, killed at a
/// random moment half the time, until the run ends. Returns the kills made.
fn chaos_case(rng: &mut Chaos) -> usize {
    let (t, ledger) = chaos_home("chaos");
    let mut kills = 0;
    let mut child = t
        .command(&["run", "pipelines/chaos.yaml", "--parallelism", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn baton run");
    let id = loop {
        // The run exists once `run` has created it; a kill before then leaves no run.
        if kill_at(&mut child, rng.moment()) {
            kills += 1;
        }
        let out = t.run(&["runs", "--json", "--limit", "1"]);
        let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if let Some(id) = runs[0]["id"].as_str() {
            break id.to_owned();
        }
        child = t
            .command(&["run", "pipelines/chaos.yaml", "--parallelism", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn baton run");
    };
    let mut tries = 0;
    while !matches!(
        t.show(&id)["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    ) {
        tries += 1;
        assert!(tries < 20, "resume did not finish run `{id}`");
        let mut child = t
            .command(&["resume", &id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn baton resume");
        let limit = if rng.coin() && tries < 4 {
            rng.moment()
        } else {
            std::time::Duration::from_secs(120)
        };
        if kill_at(&mut child, limit) {
            kills += 1;
        }
    }
    let run = t.show(&id);
    assert_eq!(
        run["state"], "succeeded",
        "a healthy run failed after kills: {run}"
    );
    // Whatever the last kill left running has had time to write by now.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
    let found = overlaps(&ledger);
    assert!(
        found.is_empty(),
        "two copies of one task ran at once:\n{}\nledger:\n{ledger}",
        found.join("\n")
    );
    for key in ["a", "b", "c", "d"] {
        assert!(
            executions(&ledger)
                .iter()
                .any(|e| e.0 == format!("{id} {key}") && e.4),
            "`{key}` never ran to its end:\n{ledger}"
        );
    }
    kills
}

#[test]
fn random_kills_of_run_and_resume_never_leave_two_copies_of_a_task() {
    let want = chaos_kills(70);
    let kills = std::sync::atomic::AtomicUsize::new(0);
    // Cases mostly wait; four at a time keep the test short on two cores.
    std::thread::scope(|s| {
        for lane in 0..4u64 {
            let kills = &kills;
            s.spawn(move || {
                let mut rng = Chaos::new(lane);
                while kills.load(std::sync::atomic::Ordering::SeqCst) < want {
                    let n = chaos_case(&mut rng);
                    kills.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    eprintln!("{} kills", kills.into_inner());
}

#[test]
fn random_kills_of_a_server_replica_never_leave_two_copies_of_a_task() {
    let want = chaos_kills(30);
    let (t, ledger) = chaos_home("chaos");
    let mut rng = Chaos::new(99);
    let survivor = t.replica();
    let mut runs = Vec::new();
    let mut kills = 0;
    while kills < want {
        let victim = t.replica();
        for _ in 0..2 {
            let (status, run) = support::http(
                &victim.addr,
                "POST",
                "/api/v1/pipelines/default/chaos/runs",
                "{}",
            );
            assert_eq!(status, 201, "{run}");
            runs.push(run["id"].as_str().expect("id").to_owned());
        }
        std::thread::sleep(rng.moment());
        drop(victim); // kill -9
        kills += 1;
    }
    for id in &runs {
        support::wait_until_for(
            &format!("run `{id}` ended"),
            std::time::Duration::from_secs(120),
            || {
                let (_, doc) =
                    support::http(&survivor.addr, "GET", &format!("/api/v1/runs/{id}"), "");
                matches!(
                    doc["state"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
            },
        );
        let (_, doc) = support::http(&survivor.addr, "GET", &format!("/api/v1/runs/{id}"), "");
        assert_eq!(doc["state"], "succeeded", "a healthy run failed: {doc}");
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    let ledger = std::fs::read_to_string(&ledger).unwrap_or_default();
    let found = overlaps(&ledger);
    assert!(
        found.is_empty(),
        "two copies of one task ran at once ({} of {} runs):\n{}",
        found.len(),
        runs.len(),
        found.join("\n")
    );
    eprintln!("{kills} kills of a replica, {} runs", runs.len());
}
