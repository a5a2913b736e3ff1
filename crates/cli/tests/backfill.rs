//! `baton backfill` against the real binary: one run per tick, its own parallelism.

mod support;

use support::Test;

const DAILY: &str = "name: daily\nparams:\n  who: { type: string, default: world }\nschedule:\n  - cron: \"0 0 * * *\"\n    timezone: UTC\ntasks:\n  a:\n    run: |\n      echo + >> events\n      sleep 0.3\n      echo {{ run.logical_date }} {{ params.who }} >> dates\n      echo - >> events\n";

/// The most runs that were inside their task at once, from the `+`/`-` lines they wrote.
fn most_at_once(events: &str) -> i32 {
    let mut now = 0;
    let mut most = 0;
    for line in events.lines() {
        now += if line == "+" { 1 } else { -1 };
        most = most.max(now);
    }
    most
}

#[test]
fn backfill_runs_each_tick_once_with_at_most_parallelism_at_once() {
    let t = Test::new().file("daily.yaml", DAILY);
    let out = t.run(&[
        "backfill",
        "daily.yaml",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-04",
        "--parallelism",
        "2",
        "-p",
        "who=bf",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut dates: Vec<String> = t.read("dates").lines().map(str::to_owned).collect();
    dates.sort();
    assert_eq!(
        dates,
        vec![
            "2026-01-01T00:00:00+00:00 bf",
            "2026-01-02T00:00:00+00:00 bf",
            "2026-01-03T00:00:00+00:00 bf",
            "2026-01-04T00:00:00+00:00 bf",
        ]
    );
    assert!(most_at_once(&t.read("events")) <= 2, "{}", t.read("events"));
    // One line per run as it ends, then the summary.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    assert!(
        lines[..4].iter().all(|l| l.contains("  succeeded  run ")),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[4],
        "4 succeeded, 0 failed, 0 cancelled, 0 unfinished of 4 run(s)"
    );
    assert!(
        out.stderr.contains("4 run(s), at most 2 at once"),
        "{}",
        out.stderr
    );
    let runs: serde_json::Value =
        serde_json::from_str(&t.run(&["runs", "--json"]).stdout).expect("json");
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter()
            .all(|r| r["trigger"] == "backfill" && r["backfill_id"].is_string())
    );
}

#[test]
fn a_failed_tick_fails_the_backfill_and_the_rest_still_run() {
    let t = Test::new().file(
        "f.yaml",
        "name: f\nschedule:\n  - cron: \"0 12 * * *\"\ntasks:\n  a:\n    run: test {{ run.logical_date }} != 2026-03-02T12:00:00+00:00\n",
    );
    let out = t.run(&[
        "backfill",
        "f.yaml",
        "--start",
        "2026-03-01",
        "--end",
        "2026-03-03",
    ]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("2026-03-02T12:00:00+00:00  failed     run "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("2 succeeded, 1 failed, 0 cancelled, 0 unfinished of 3 run(s)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn backfills_without_a_schedule_or_with_a_reversed_range_are_refused() {
    let t = Test::new().file("h.yaml", "name: h\ntasks:\n  a:\n    run: \"true\"\n");
    let out = t.run(&[
        "backfill",
        "h.yaml",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-02",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("pipeline `default/h` has no schedule to backfill"),
        "{}",
        out.stderr
    );
    let t = t.file("daily.yaml", DAILY);
    let out = t.run(&[
        "backfill",
        "daily.yaml",
        "--start",
        "2026-01-05",
        "--end",
        "2026-01-01",
    ]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("before it starts"), "{}", out.stderr);
    assert_eq!(t.read("dates"), "", "nothing ran");
}

/// Ctrl-C stops a backfill driven here: the running tick is cancelled (its process stopped),
/// the waiting ones end cancelled too, and nothing is left for nobody to finish.
#[test]
fn an_interrupted_backfill_cancels_what_runs_and_what_waits() {
    let t = Test::new().file(
        "slow.yaml",
        "name: slow\nschedule:\n  - cron: \"0 0 * * *\"\ntasks:\n  a:\n    run: |\n      echo $$ >> pids\n      sleep 30\n",
    );
    let child = t.spawn(&[
        "backfill",
        "slow.yaml",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-03",
        "--parallelism",
        "1",
    ]);
    support::wait_until("the first tick's task starts", || {
        !t.read("pids").trim().is_empty()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("signal");
    let out = child.wait_with_output().expect("baton exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    let pid: i32 = t.read("pids").trim().parse().expect("one pid");
    assert!(!support::alive(pid), "the task's process outlived its run");
    assert_eq!(t.read("pids").lines().count(), 1, "a waiting tick started");
    let runs: serde_json::Value =
        serde_json::from_str(&t.run(&["runs", "--json"]).stdout).expect("json");
    let states: Vec<&str> = runs
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["state"].as_str().expect("state"))
        .collect();
    assert_eq!(states, vec!["cancelled"; 3], "{stdout}");
}
