//! Pools end to end: runs in separate `baton run` processes sharing one home share a pool's
//! slots; slots come back when a run is cancelled or its process is killed; the pool commands
//! work on the home and through a server.

mod support;

use support::{Test, task_states, wait_until};

/// `pooled` records its start and end (nanoseconds) in `pooled.txt`; `free`, in no pool, its
/// start in `free.txt`.
const SHARED: &str = r#"name: shared
tasks:
  pooled:
    pool: gpu
    run: |
      echo "start $(date +%s%N) $BATON_RUN_ID" >> pooled.txt
      sleep 1
      echo "end $(date +%s%N) $BATON_RUN_ID" >> pooled.txt
  free:
    run: echo "$(date +%s%N) $BATON_RUN_ID" >> free.txt
"#;

fn pool(t: &Test, name: &str) -> serde_json::Value {
    let out = t.run(&["pool", "list", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pools: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    pools
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no pool `{name}` in {pools}"))
}

fn set(t: &Test, name: &str, slots: &str) {
    let out = t.run(&["pool", "set", name, "--slots", slots]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// `(run, at)` of each line of `file` that starts with `what`.
fn times(t: &Test, file: &str, what: &str) -> Vec<(String, u128)> {
    t.read(file)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let first = words.next()?;
            let (at, run) = if what.is_empty() {
                (first, words.next()?)
            } else if first == what {
                (words.next()?, words.next()?)
            } else {
                return None;
            };
            Some((run.to_owned(), at.parse().ok()?))
        })
        .collect()
}

#[test]
fn two_runs_in_a_one_slot_pool_never_overlap_their_pooled_tasks() {
    let t = Test::new().file("p.yaml", SHARED);
    set(&t, "gpu", "1");
    let a = t.spawn(&["run", "p.yaml"]);
    let b = t.spawn(&["run", "p.yaml"]);
    for child in [a, b] {
        let out = child.wait_with_output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let starts = times(&t, "pooled.txt", "start");
    let ends = times(&t, "pooled.txt", "end");
    assert_eq!(
        (starts.len(), ends.len()),
        (2, 2),
        "{}",
        t.read("pooled.txt")
    );
    let interval = |run: &str| {
        let start = starts.iter().find(|(r, _)| r == run).expect("start").1;
        let end = ends.iter().find(|(r, _)| r == run).expect("end").1;
        (start, end)
    };
    let mut intervals = [interval(&starts[0].0), interval(&starts[1].0)];
    intervals.sort_unstable();
    assert!(
        intervals[0].1 <= intervals[1].0,
        "the pooled tasks overlapped: {intervals:?}"
    );
    // The second run's unpooled task did not wait for the pool.
    let second = &starts
        .iter()
        .find(|(_, at)| *at == intervals[1].0)
        .expect("second")
        .0;
    let free = times(&t, "free.txt", "");
    let free_second = free.iter().find(|(r, _)| r == second).expect("free ran").1;
    assert!(
        free_second + 500_000_000 < intervals[1].0,
        "the unpooled task waited for the pool: it started at {free_second}, the pooled one at {}",
        intervals[1].0
    );
    let gpu = pool(&t, "gpu");
    assert_eq!(
        (gpu["used"].as_u64(), gpu["waiting"].as_u64()),
        (Some(0), Some(0))
    );
}

/// `pooled` takes the slot for long; `quick`, in the same pool, only briefly.
const LONG: &str =
    "name: long\ntasks:\n  pooled:\n    pool: gpu\n    run: echo go > long.txt; sleep 300\n";
const QUICK: &str =
    "name: quick\ntasks:\n  pooled:\n    pool: gpu\n    run: echo done > quick.txt\n";

#[test]
fn cancelling_a_run_gives_its_slot_to_a_waiting_one() {
    let t = Test::new()
        .file("long.yaml", LONG)
        .file("quick.yaml", QUICK);
    set(&t, "gpu", "1");
    let mut long = t.spawn(&["run", "long.yaml"]);
    wait_until("the long task never started", || {
        !t.read("long.txt").is_empty()
    });
    let long_id = t.last_run();
    let quick = t.spawn(&["run", "quick.yaml"]);
    wait_until("the quick task never waited", || {
        pool(&t, "gpu")["waiting"].as_u64() == Some(1)
    });
    assert_eq!(pool(&t, "gpu")["used"].as_u64(), Some(1));
    assert!(t.read("quick.txt").is_empty(), "ran without a slot");
    let out = t.run(&["cancel", &long_id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = quick.wait_with_output().expect("quick");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.read("quick.txt"), "done\n");
    long.wait().expect("long ends");
    assert_eq!(t.show(&long_id)["state"], "cancelled");
    let gpu = pool(&t, "gpu");
    assert_eq!(
        (gpu["used"].as_u64(), gpu["waiting"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_killed_process_does_not_keep_its_slot_and_its_resumed_run_takes_one_again() {
    let t = Test::new()
        .file(
            "long.yaml",
            "name: long\ntasks:\n  pooled:\n    pool: gpu\n    run: echo go >> long.txt; sleep 1\n",
        )
        .file("quick.yaml", QUICK);
    set(&t, "gpu", "1");
    let mut long = t.spawn(&["run", "long.yaml"]);
    wait_until("the long task never started", || {
        !t.read("long.txt").is_empty()
    });
    let long_id = t.last_run();
    let quick = t.spawn(&["run", "quick.yaml"]);
    wait_until("the quick task never waited", || {
        pool(&t, "gpu")["waiting"].as_u64() == Some(1)
    });
    long.kill().expect("kill -9");
    long.wait().expect("reap");
    // Well before the dead process's lease (30 s) would expire.
    let started = std::time::Instant::now();
    let out = quick.wait_with_output().expect("quick");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the slot came back only after {:?}",
        started.elapsed()
    );
    assert_eq!(t.show(&long_id)["state"], "running");
    let out = t.run(&["resume", &long_id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = t.show(&long_id);
    assert_eq!(run["state"], "succeeded");
    let pooled = run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == "pooled")
        .cloned()
        .expect("pooled");
    let states: Vec<&str> = pooled["attempt_records"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["interrupted", "succeeded"]);
    assert_eq!(t.read("long.txt"), "go\ngo\n");
    let gpu = pool(&t, "gpu");
    assert_eq!(
        (gpu["used"].as_u64(), gpu["waiting"].as_u64()),
        (Some(0), Some(0))
    );
}

/// `hold` takes the slot until `release` exists; `low`, in the same run and process, waits for
/// it and would be first to ask when it comes free.
const LOW: &str = r#"name: low
tasks:
  hold:
    pool: gpu
    priority: 1
    run: |
      echo go > hold.txt
      while [ ! -e release ]; do sleep 0.05; done
  low:
    pool: gpu
    run: echo "$(date +%s%N) low" >> order.txt
"#;
const HIGH: &str = r#"name: high
tasks:
  high:
    pool: gpu
    priority: 10
    run: echo "$(date +%s%N) high" >> order.txt
"#;

#[test]
fn a_freed_slot_goes_to_the_waiting_task_of_highest_priority_of_any_run() {
    let t = Test::new().file("low.yaml", LOW).file("high.yaml", HIGH);
    set(&t, "gpu", "1");
    let low = t.spawn(&["run", "low.yaml"]);
    wait_until("the holding task never started", || {
        !t.read("hold.txt").is_empty()
    });
    wait_until("the low task never waited", || {
        pool(&t, "gpu")["waiting"].as_u64() == Some(1)
    });
    let high = t.spawn(&["run", "high.yaml"]);
    wait_until("the high task never waited", || {
        pool(&t, "gpu")["waiting"].as_u64() == Some(2)
    });
    assert!(t.read("order.txt").is_empty(), "ran without a slot");
    std::fs::write(t.path().join("release"), "").expect("release");
    for child in [low, high] {
        let out = child.wait_with_output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let order = times(&t, "order.txt", "");
    let names: Vec<&str> = order.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["high", "low"],
        "the low task, waiting longer in the process that freed the slot, ran first: {}",
        t.read("order.txt")
    );
    assert!(order[0].1 < order[1].1, "{}", t.read("order.txt"));
}

#[test]
fn a_task_naming_an_unknown_pool_fails_with_a_hint() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  train:\n    pool: gpu\n    run: echo ran > ran.txt\n  other:\n    run: \"true\"\n",
    );
    let out = t.run(&["run", "p.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("pool `gpu` does not exist"), "{all}");
    assert!(
        all.contains("(hint: `baton pool set gpu --slots N`)"),
        "{all}"
    );
    assert!(t.read("ran.txt").is_empty());
    let states = task_states(&t.show(&t.last_run()));
    assert_eq!(states["train"], "failed");
    assert_eq!(states["other"], "succeeded");
}

#[test]
fn pool_commands_work_on_the_home_and_through_a_server() {
    let t = Test::new()
        .file("pipelines/p.yaml", QUICK)
        .file("none.yaml", "name: none\ntasks:\n  a:\n    run: \"true\"\n");
    // Listing does not create a home; a run does.
    let out = t.run(&["pool", "list"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no baton home at"), "{}", out.stderr);
    assert_eq!(t.run(&["run", "none.yaml"]).code, 0);
    let out = t.run(&["pool", "list"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "no pools\n(hint: `baton pool set NAME --slots N`)\n")
    );
    let out = t.run(&[
        "pool",
        "set",
        "gpu",
        "--slots",
        "2",
        "--description",
        "GPU boxes",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "pool `gpu`: 2 slot(s), 0 used, 0 waiting\n");
    let out = t.run(&["pool", "list"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for word in ["name", "slots", "used", "waiting", "gpu", "2", "GPU boxes"] {
        assert!(out.stdout.contains(word), "{}", out.stdout);
    }
    let out = t.run(&["pool", "set", "gpu", "--slots", "-1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`slots` must be between 0 and 1000000, got -1"),
        "{}",
        out.stderr
    );
    let out = t.run(&["pool", "delete", "nope"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("pool `nope` does not exist"),
        "{}",
        out.stderr
    );

    let server = t.server();
    let remote = |args: &[&str]| {
        let mut all = vec!["--server", server.url.as_str()];
        all.extend_from_slice(args);
        t.run(&all)
    };
    let out = remote(&["pool", "set", "cpu", "--slots", "4"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "pool `cpu`: 4 slot(s), 0 used, 0 waiting\n");
    let out = remote(&["pool", "list", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pools: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        pools,
        serde_json::json!([
            {"name": "cpu", "slots": 4, "description": null, "used": 0, "waiting": 0},
            {"name": "gpu", "slots": 2, "description": "GPU boxes", "used": 0, "waiting": 0},
        ])
    );
    let out = remote(&["pool", "set", "cpu", "--slots", "-1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("`slots` must be between 0 and 1000000"),
        "{}",
        out.stderr
    );
    let out = remote(&["pool", "delete", "gpu"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "deleted pool `gpu`\n"),
        "{}",
        out.stderr
    );
    let out = remote(&["pool", "delete", "gpu"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("pool `gpu` does not exist"),
        "{}",
        out.stderr
    );
    // The server and the home are one database.
    assert_eq!(pool(&t, "cpu")["slots"], 4);
    drop(server);
}

#[test]
fn pools_of_the_config_file_are_set_when_a_run_starts() {
    let t = Test::new()
        .file(
            "baton.toml",
            "[pools]\ngpu = { slots = 1, description = \"from the file\" }\n",
        )
        .file("quick.yaml", QUICK);
    let out = t.run(&["run", "quick.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(t.read("quick.txt"), "done\n");
    let gpu = pool(&t, "gpu");
    assert_eq!(gpu["slots"], 1);
    assert_eq!(gpu["description"], "from the file");
    let t = t.file("baton.toml", "[pools]\ngpu = -3\n");
    let out = t.run(&["run", "quick.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("[pools] `slots` must be between 0"),
        "{}",
        out.stderr
    );
}
