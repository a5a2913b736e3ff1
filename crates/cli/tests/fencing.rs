//! A server that stalls past its lease (SIGSTOP: a GC pause, a frozen VM) while a replica
//! takes its run over must not drive the run again when it wakes: none of its writes land,
//! its task processes are stopped, and no task runs twice at once.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use support::ledger::{LEDGER_SCRIPT, executions, overlaps};
use support::{
    Server, Test, http, run_events, server_args, stale_writes, succeeded_twice, wait_until_for,
};

const TASKS: usize = 6;

/// `t1` .. `t6`, one after the other, each an execution of the ledger script (start, ticks,
/// end: task, pid, time).
fn pipeline(ledger: &std::path::Path) -> String {
    let mut yaml = format!(
        "name: chain\nenv:\n  LEDGER: {}\ntasks:\n",
        ledger.display()
    );
    let script = ledger.with_file_name("ledger.sh");
    for i in 1..=TASKS {
        yaml.push_str(&format!("  t{i}:\n"));
        if i > 1 {
            yaml.push_str(&format!("    needs: [t{}]\n", i - 1));
        }
        yaml.push_str(&format!("    run: sh {} t{i}\n", script.display()));
    }
    yaml
}

/// A replica with a 2 s lease renewed every 300 ms, looking for orphans every 200 ms, on
/// `database` (else the home's SQLite); its log goes to `log`.
fn replica(t: &Test, log: &str, database: Option<&str>) -> Server {
    let mut args = server_args(support::QUICK_LEASES);
    if let Some(url) = database {
        args.extend(["--database", url]);
    }
    let log = std::fs::File::create(t.path().join(log)).expect("log file");
    let child = t
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn baton server");
    Server::ready(child)
}

fn run_doc(addr: &str, id: &str) -> serde_json::Value {
    let (status, doc) = http(addr, "GET", &format!("/api/v1/runs/{id}"), "");
    assert_eq!(status, 200, "{doc}");
    doc
}

#[test]
fn a_server_that_stalls_past_its_lease_writes_nothing_after_the_takeover() {
    stall_and_take_over(None);
}

#[test]
fn a_server_on_postgres_that_stalls_past_its_lease_writes_nothing_after_the_takeover() {
    let check = "a stalled replica fenced on PostgreSQL";
    let Some(admin) = support::postgres::admin_url(check) else {
        return;
    };
    let db = support::postgres::Fresh::new(&admin, "baton_cli_fencing");
    stall_and_take_over(Some(&db.url));
}

/// Two replicas on one database: the owner of a running run freezes (SIGSTOP) past its lease,
/// the other takes the run over and finishes it, and the first, woken, writes nothing.
fn stall_and_take_over(database: Option<&str>) {
    let t = Test::new().file("ledger.sh", LEDGER_SCRIPT);
    let ledger = t.path().join("ledger.txt");
    let t = t.file("pipelines/chain.yaml", &pipeline(&ledger));
    let mut first = replica(&t, "first.log", database);
    let (status, run) = http(
        &first.addr,
        "POST",
        "/api/v1/pipelines/default/chain/runs",
        "{}",
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    wait_until_for("t2 started", Duration::from_secs(30), || {
        t.read("ledger.txt").contains(" t2 ")
    });
    let second = replica(&t, "second.log", database);

    // The owner freezes for longer than its lease; the other replica takes the run over and
    // finishes it.
    kill(first.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    let frozen = std::time::Instant::now();
    wait_until_for(
        "the replica finished the run",
        Duration::from_secs(60),
        || run_doc(&second.addr, &id)["state"] == "succeeded",
    );
    // Longer than the lease, whatever the takeover took.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(frozen.elapsed()));
    let before = run_events(&second.addr, &id);
    // Who started what: the API shows no lease owners, the epoch of each owner's events does.
    let owners: Vec<i64> = before
        .iter()
        .filter(|e| e["kind"] == "attempt_started")
        .map(|e| e["epoch"].as_i64().expect("an owner's epoch"))
        .collect();
    let owner = *owners.first().expect("t1 started");
    let taker = *owners.last().expect("attempts");
    assert!(taker > owner, "the replica took the run over: {owners:?}");
    assert_eq!(stale_writes(&before), Vec::<String>::new());
    let ledger_before = t.read("ledger.txt");

    // The first one wakes up and stops: its renewal is refused (it lost the run to the
    // replica), or, when a call of its was already waiting as it froze, that call's deadline
    // has passed and it gives the run up without asking (its lease expired). Which one comes
    // first is a matter of timing; either way it must write nothing more.
    kill(first.pid(), Signal::SIGCONT).expect("SIGCONT");
    let lost = format!("lost ownership of run `{id}`");
    let expired = format!("gave up run `{id}`: its lease could not be renewed before it expired");
    let noticed = || {
        let log = t.read("first.log");
        log.contains(&lost) || log.contains(&expired)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !noticed() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Time for anything it would still have done to land.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        run_events(&second.addr, &id),
        before,
        "the server that lost the run wrote to it after waking up"
    );
    assert!(
        noticed(),
        "it did not log the loss:\n{}",
        t.read("first.log")
    );
    assert_eq!(
        t.read("ledger.txt"),
        ledger_before,
        "it started tasks again"
    );

    // One owner after the takeover: every attempt started since is the replica's.
    let switch = owners
        .iter()
        .position(|o| *o != owner)
        .expect("the replica started attempts");
    assert!(
        owners[switch..].iter().all(|o| *o != owner),
        "attempts of both owners interleave: {owners:?}"
    );
    let succeeded = |kind: &str| {
        before
            .iter()
            .filter(|e| e["kind"] == kind && e["data"]["state"] == "succeeded")
            .count()
    };
    assert_eq!(succeeded("run_state"), 1, "the run succeeded twice");
    assert_eq!(
        succeeded_twice(&before),
        Vec::new(),
        "a task succeeded twice"
    );
    let succeeded_tasks = before
        .iter()
        .filter(|e| e["kind"] == "task_state" && e["data"]["state"] == "succeeded")
        .count();
    assert_eq!(succeeded_tasks, TASKS);

    // Its task processes were stopped, and no two executions of a task overlapped.
    let mut cut_short: BTreeMap<String, Vec<(u128, bool)>> = BTreeMap::new();
    for (task, pid, start, _, ended) in executions(&ledger_before) {
        if !ended {
            let pid: i32 = pid.parse().expect("pid");
            assert!(!support::alive(pid), "`{task}`'s process {pid} still runs");
        }
        cut_short.entry(task).or_default().push((start, !ended));
    }
    // One execution at most was cut short (by the takeover), and it came first.
    for (task, runs) in &cut_short {
        let cut: Vec<_> = runs.iter().filter(|r| r.1).collect();
        assert!(cut.len() <= 1, "`{task}` was cut short twice: {runs:?}");
        if let Some(cut) = cut.first() {
            assert!(
                runs.iter().all(|r| r.0 >= cut.0),
                "`{task}` ran before the execution the takeover cut short: {runs:?}"
            );
        }
    }
    assert_eq!(overlaps(&ledger_before), Vec::<String>::new());

    // It keeps serving, and counts what it lost.
    let metrics = support::http_text(&first.addr, "/metrics");
    assert!(
        metrics.contains("baton_lease_lost_total{namespace=\"default\",pipeline=\"chain\"} 1"),
        "{metrics}"
    );
    assert!(
        first.child.try_wait().expect("try_wait").is_none(),
        "the first server exited"
    );
}

#[test]
fn a_renewal_interval_not_shorter_than_the_lease_is_refused() {
    let t = Test::new().file(
        "baton.toml",
        "[engine]\nlease_ttl = \"5s\"\nlease_renew_interval = \"5s\"\n",
    );
    let out = t.run(&["runs"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("`lease_renew_interval` (5s) must be shorter than `lease_ttl` (5s)"),
        "{}",
        out.stderr
    );
    // A flag wins over the file, and is checked the same way.
    let out = t.run(&["--lease-ttl", "1s", "--lease-renew-interval", "2s", "runs"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("(2s) must be shorter than `lease_ttl` (1s)"),
        "{}",
        out.stderr
    );
    let out = t.run(&[
        "--lease-ttl",
        "1m",
        "--lease-renew-interval",
        "2s",
        "schema",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
