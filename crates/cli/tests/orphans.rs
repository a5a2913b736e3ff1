//! What a task leaves behind when baton dies, and what baton does with it: task processes go
//! with the baton process that started them, grandchildren are reaped rather than left to
//! PID 1, and an attempt that had ended before a crash keeps its outcome.

mod support;

use support::{Test, alive, wait_until};

fn task<'a>(run: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    run["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["key"] == key)
        .expect("task")
}

fn pid_in(t: &Test, file: &str) -> i32 {
    wait_until(&format!("{file} written"), || t.read(file).ends_with('\n'));
    t.read(file).trim().parse().expect("a pid")
}

#[test]
fn a_task_dies_with_the_baton_that_started_it() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  slow:\n    run: echo $$ > pid.txt; exec sleep 300\n",
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    let pid = pid_in(&t, "pid.txt");
    assert!(alive(pid));
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    // No resume: the kernel's parent-death signal alone ends it.
    wait_until("the task outlived baton", || !alive(pid));
}

#[test]
fn grandchildren_come_to_baton_and_are_reaped_when_their_attempt_ends() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  first:\n    run: (sleep 300 & echo $! > gc.txt); sleep 1\n  second:\n    needs: [first]\n    run: touch second.txt; sleep 2\n",
    );
    let mut child = t.spawn(&["run", "p.yaml"]);
    let baton = i32::try_from(child.id()).expect("pid");
    let gc = pid_in(&t, "gc.txt");
    // Its parent, the subshell, exits just after writing the file.
    let parent = || {
        std::fs::read_to_string(format!("/proc/{gc}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PPid:\t").map(str::to_owned))
            .unwrap_or_default()
    };
    wait_until("the orphan came to baton, not to another reaper", || {
        parent() == baton.to_string()
    });
    wait_until("second started", || t.path().join("second.txt").exists());
    assert!(
        !std::path::Path::new(&format!("/proc/{gc}")).exists(),
        "the grandchild is still there (a zombie?) while baton runs"
    );
    assert!(child.wait().expect("wait").success());
}

#[test]
fn an_attempt_that_exited_before_the_crash_keeps_its_outcome() {
    let t = Test::new().file(
        "p.yaml",
        "name: p\ntasks:\n  once:\n    run: echo once >> ran.txt; echo \"n=1\" >> \"$BATON_OUTPUTS\"\n    outputs: [n]\n  after:\n    needs: [once]\n    run: echo after >> ran.txt\n",
    );
    let mut cmd = t.command(&["run", "p.yaml"]);
    cmd.env("BATON_FAULT_CRASH_AFTER_EXIT_RECORD", "1");
    let status = cmd.output().expect("run").status;
    assert_eq!(status.code(), None, "baton crashed as told");
    let id = t.last_run();
    assert_eq!(task(&t.show(&id), "once")["state"], "running");
    let out = t.run(&["resume", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run = t.show(&id);
    assert_eq!(run["state"], "succeeded");
    let once = task(&run, "once");
    assert_eq!(once["attempts"], 1, "it ran again: {once}");
    assert_eq!(once["interruptions"], 0);
    assert_eq!(once["outputs"]["n"], "1");
    assert_eq!(t.read("ran.txt"), "once\nafter\n");
}

/// A task that takes baton down with it every time (`kill -9` of its parent).
const CRASHER: &str = "name: p\ntasks:\n  crash:\n    run: kill -9 $PPID; sleep 5\n";

fn crash_until_final(t: &Test, args: &[&str]) -> serde_json::Value {
    let mut cmd = t.command(&[&["run", "p.yaml"], args].concat());
    assert_eq!(cmd.output().expect("run").status.code(), None, "baton died");
    let id = t.last_run();
    for _ in 0..10 {
        let run = t.show(&id);
        if run["state"] != "running" {
            return run;
        }
        let _ = t.command(&[&["resume", &id], args].concat()).output();
    }
    panic!("the run never ended");
}

#[test]
fn interruptions_are_counted_once_and_limited_by_the_setting() {
    let t = Test::new().file("p.yaml", CRASHER);
    let run = crash_until_final(&t, &["--interruption-limit", "2"]);
    assert_eq!(run["state"], "failed");
    let crash = task(&run, "crash");
    assert_eq!(crash["error"], "interrupted 2 times by baton stopping");
    assert_eq!(crash["interruptions"], 2, "the count and the error agree");
    assert_eq!(crash["attempts"], 2);

    let t = Test::new()
        .file("p.yaml", CRASHER)
        .file("baton.toml", "[engine]\ninterruption_limit = 3\n");
    let run = crash_until_final(&t, &[]);
    assert_eq!(task(&run, "crash")["interruptions"], 3);
    assert_eq!(
        task(&run, "crash")["error"],
        "interrupted 3 times by baton stopping"
    );
}
