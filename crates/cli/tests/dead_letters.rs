//! `baton dead-letters`: failed tasks listed from the home and requeued in the foreground.

mod support;

use insta::assert_snapshot;
use support::{Test, task_states};

// `a` fails until `fixed` exists, after its one retry; `b` needs it.
const FLAKY: &str = "name: flaky\ntasks:\n  a:\n    retries: { limit: 1, delay: 0s }\n    run: test -f fixed\n  b:\n    needs: [a]\n    run: \"true\"\n";
const BROKEN: &str = "name: broken\nnamespace: ops\ntasks:\n  only:\n    run: exit 3\n";

/// Runs in creation order, oldest first.
fn run_ids(t: &Test) -> Vec<String> {
    let out = t.run(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let mut ids: Vec<String> = runs
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    ids.reverse();
    ids
}

/// Output with run ids and failure times replaced by stable names of the same width, so
/// tables keep their shape.
fn redact(t: &Test, text: &str) -> String {
    let mut text = text.to_owned();
    for (n, id) in run_ids(t).iter().enumerate() {
        let name = format!("<run {}>", n + 1);
        text = text.replace(id, &format!("{name:<width$}", width = id.len()));
    }
    let out = t.run(&["dead-letters", "--json", "--limit", "100"]);
    let letters: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    for d in letters.as_array().expect("letters") {
        let at = jiff::Timestamp::from_millisecond(d["finished_at"].as_i64().expect("time"))
            .expect("instant")
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string();
        text = text.replace(&at, &format!("{:<width$}", "<time>", width = at.len()));
    }
    text
}

fn failed_runs() -> Test {
    let t = Test::new()
        .file("flaky.yaml", FLAKY)
        .file("broken.yaml", BROKEN);
    for file in ["flaky.yaml", "broken.yaml", "flaky.yaml"] {
        assert_eq!(t.run(&["run", file]).code, 1);
    }
    t
}

#[test]
fn dead_letters_are_listed_newest_first() {
    let t = Test::new().file("ok.yaml", "name: ok\ntasks:\n  a:\n    run: \"true\"\n");
    assert_eq!(t.run(&["run", "ok.yaml"]).code, 0);
    assert_eq!(t.run(&["dead-letters"]).stdout, "no dead letters\n");
    let t = failed_runs();
    let out = t.run(&["dead-letters"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_snapshot!(redact(&t, &out.stdout));
    let ops = t.run(&["dead-letters", "--pipeline", "ops/broken"]);
    assert_snapshot!(redact(&t, &ops.stdout));
    let json: serde_json::Value =
        serde_json::from_str(&t.run(&["dead-letters", "--json", "--limit", "1"]).stdout)
            .expect("json");
    let newest = &json.as_array().expect("array")[0];
    assert_eq!(newest["key"], "a");
    assert_eq!(newest["attempts"], 2);
    assert_eq!(newest["exit_code"], 1);
    assert_eq!(newest["run_state"], "failed");
}

#[test]
fn requeue_one_runs_it_and_what_needs_it_with_a_fresh_budget() {
    let t = failed_runs();
    let ids = run_ids(&t);
    let refused = t.run(&["dead-letters", "requeue", &ids[0], "b"]);
    assert_eq!(refused.code, 1, "a refusal, as for `baton retry`");
    assert_eq!(
        refused.stderr,
        format!(
            "error: task `b` of run {} is not a dead letter: it is upstream_failed\n",
            ids[0]
        )
    );
    std::fs::write(t.path().join("fixed"), "").expect("fix");
    let out = t.run(&["dead-letters", "requeue", &ids[0][..12], "a"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("requeued `a` of run {}: a, b\n", ids[0])),
        "{}",
        out.stderr
    );
    let run = t.show(&ids[0]);
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["tasks"][0]["attempts"], 3, "two before, one after");
    let states = task_states(&run);
    assert_eq!(states["b"], "succeeded");
    let left = t.run(&["dead-letters"]);
    assert_snapshot!(redact(&t, &left.stdout));
}

#[test]
fn requeue_all_of_a_pipeline_or_everything() {
    let t = failed_runs();
    let ids = run_ids(&t);
    std::fs::write(t.path().join("fixed"), "").expect("fix");
    let out = t.run(&["dead-letters", "requeue", "--all", "--pipeline", "flaky"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for id in [&ids[0], &ids[2]] {
        assert_eq!(t.show(id)["state"], "succeeded");
    }
    assert_eq!(t.show(&ids[1])["state"], "failed", "another pipeline's");
    // What is left fails again: the exit status says so, and it is a dead letter again.
    let rest = t.run(&["dead-letters", "requeue", "--all"]);
    assert_eq!(rest.code, 1);
    assert!(
        rest.stderr
            .contains(&format!("requeued `only` of run {}: only\n", ids[1])),
        "{}",
        rest.stderr
    );
    let again = t.show(&ids[1]);
    assert_eq!(again["tasks"][0]["attempts"], 2);
    let letters: serde_json::Value =
        serde_json::from_str(&t.run(&["dead-letters", "--json"]).stdout).expect("json");
    assert_eq!(letters.as_array().map(Vec::len), Some(1));
    let none = t.run(&["dead-letters", "requeue", "--all", "--pipeline", "flaky"]);
    assert_eq!((none.code, none.stdout.as_str()), (0, "no dead letters\n"));
}

#[test]
fn requeue_needs_a_task_or_all() {
    let t = Test::new();
    let out = t.run(&["dead-letters", "requeue"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("the following required arguments were not provided"),
        "{}",
        out.stderr
    );
    let out = t.run(&["dead-letters", "requeue", "01abc", "a", "--all"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = t.run(&["dead-letters", "requeue", "01abc"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = t.run(&["dead-letters", "requeue", "01abc", "a", "--pipeline", "p"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn a_fan_out_instance_is_requeued_alone() {
    let t = Test::new().file(
        "fan.yaml",
        "name: fan\ntasks:\n  load:\n    for_each: [eu, us]\n    run: |\n      echo \"$BATON_ITEM\" >> ran.txt\n      test \"$BATON_ITEM\" = eu || test -f fixed\n  report:\n    needs: [load]\n    run: \"true\"\n",
    );
    assert_eq!(t.run(&["run", "fan.yaml"]).code, 1);
    let id = t.last_run();
    let letters: serde_json::Value =
        serde_json::from_str(&t.run(&["dead-letters", "--json"]).stdout).expect("json");
    let keys: Vec<&str> = letters
        .as_array()
        .expect("letters")
        .iter()
        .map(|d| d["key"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        vec!["load[us]"],
        "the fan-out's own row is not listed"
    );
    let refused = t.run(&["dead-letters", "requeue", &id, "load"]);
    assert_eq!(refused.code, 1, "a refusal, as for `baton retry`");
    assert_eq!(
        refused.stderr,
        format!(
            "error: task `load` of run {id} is not a dead letter: it is a fan-out\n(hint: requeue its failed instances: `load[us]`)\n"
        )
    );
    std::fs::write(t.path().join("fixed"), "").expect("fix");
    let out = t.run(&["dead-letters", "requeue", &id, "load[us]"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let states = task_states(&t.show(&id));
    assert_eq!(states["report"], "succeeded");
    let ran = t.read("ran.txt");
    assert_eq!(
        (ran.matches("eu").count(), ran.matches("us").count()),
        (1, 2),
        "only the failed instance ran again: {ran}"
    );
}
