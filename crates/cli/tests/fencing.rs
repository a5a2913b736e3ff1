//! A server that stalls past its lease (SIGSTOP: a GC pause, a frozen VM) while a replica
//! takes its run over must not drive the run again when it wakes: none of its writes land,
//! its task processes are stopped, and no task runs twice at once.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use support::{Server, Test, http, server_args, wait_until_for};

const TASKS: usize = 6;

/// `t1` .. `t6`, one after the other, each writing a start and an end line (task, pid, time)
/// to the ledger around a sleep.
fn pipeline() -> String {
    let mut yaml = String::from("name: chain\ntasks:\n");
    for i in 1..=TASKS {
        yaml.push_str(&format!("  t{i}:\n"));
        if i > 1 {
            yaml.push_str(&format!("    needs: [t{}]\n", i - 1));
        }
        yaml.push_str(
            "    run: |\n      \
             echo \"start $BATON_TASK_KEY $$ $(date +%s%N)\" >> ../ledger.txt\n      \
             sleep 1\n      \
             echo \"end $BATON_TASK_KEY $$ $(date +%s%N)\" >> ../ledger.txt\n",
        );
    }
    yaml
}

/// A replica with a 2 s lease renewed every 300 ms, looking for orphans every 200 ms, on
/// `database` (else the home's SQLite); its log goes to `log`.
fn replica(t: &Test, log: &str, database: Option<&str>) -> Server {
    let mut args = server_args(&[
        "--lease-ttl",
        "2s",
        "--lease-renew-interval",
        "300ms",
        "--takeover-interval",
        "200ms",
        "--kill-grace",
        "500ms",
        "--shutdown-grace",
        "1s",
    ]);
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

/// Executions in the ledger: task -> [(pid, start, end)], the end none for an execution
/// killed before its end line.
fn executions(ledger: &str) -> BTreeMap<String, Vec<(String, u128, Option<u128>)>> {
    let mut found: BTreeMap<String, Vec<(String, u128, Option<u128>)>> = BTreeMap::new();
    for line in ledger.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [what, task, pid, at] = parts[..] else {
            panic!("bad ledger line `{line}`");
        };
        let at: u128 = at.parse().expect("time");
        let runs = found.entry(task.to_owned()).or_default();
        match what {
            "start" => runs.push((pid.to_owned(), at, None)),
            "end" => {
                let run = runs
                    .iter_mut()
                    .find(|r| r.0 == pid)
                    .expect("an end follows its start");
                run.2 = Some(at);
            }
            other => panic!("bad ledger entry `{other}`"),
        }
    }
    found
}

fn run_doc(addr: &str, id: &str) -> serde_json::Value {
    let (status, doc) = http(addr, "GET", &format!("/api/v1/runs/{id}"), "");
    assert_eq!(status, 200, "{doc}");
    doc
}

/// The run's event log, from its (ended) event stream. HTTP/1.0, so the body is not chunked.
fn events(addr: &str, id: &str) -> Vec<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /api/v1/runs/{id}/events HTTP/1.0\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    let mut found = Vec::new();
    let mut end = false;
    for line in body.lines() {
        if line == "event: end" {
            end = true;
        }
        if let Some(data) = line.strip_prefix("data: ")
            && !end
        {
            found.push(serde_json::from_str(data).expect("event data"));
        }
    }
    assert!(end, "the stream of an ended run ends: {body}");
    found
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
    let t = Test::new().file("pipelines/chain.yaml", &pipeline());
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
        t.read("ledger.txt").contains("start t2 ")
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
    let before = events(&second.addr, &id);
    // Who started what: the API shows no lease owners, the attempts' events do.
    let owners: Vec<&str> = before
        .iter()
        .filter(|e| e["kind"] == "attempt_started")
        .map(|e| e["data"]["owner"].as_str().expect("owner"))
        .collect();
    let owner = owners.first().expect("t1 started").to_string();
    let taker = owners.last().expect("attempts").to_string();
    assert_ne!(owner, taker, "the replica took the run over: {owners:?}");
    let ledger_before = t.read("ledger.txt");

    // The first one wakes up: its renewal is refused, and it stops.
    kill(first.pid(), Signal::SIGCONT).expect("SIGCONT");
    let noticed = format!("lost ownership of run `{id}`");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !t.read("first.log").contains(&noticed) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Time for anything it would still have done to land.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        events(&second.addr, &id),
        before,
        "the server that lost the run wrote to it after waking up"
    );
    assert!(
        t.read("first.log").contains(&noticed),
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
    let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
    for e in before
        .iter()
        .filter(|e| e["kind"] == "task_state" && e["data"]["state"] == "succeeded")
    {
        *per_task
            .entry(e["task"].as_str().expect("task").to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_task.len(), TASKS);
    assert!(
        per_task.values().all(|&n| n == 1),
        "a task succeeded twice: {per_task:?}"
    );

    // Its task processes were stopped, and no two executions of a task overlapped.
    let executions = executions(&ledger_before);
    for (task, runs) in &executions {
        for (pid, _, end) in runs {
            if end.is_none() {
                let pid: i32 = pid.parse().expect("pid");
                assert!(!support::alive(pid), "`{task}`'s process {pid} still runs");
            }
        }
        // One execution at most was cut short (by the takeover), and it came first.
        let cut: Vec<_> = runs.iter().filter(|r| r.2.is_none()).collect();
        assert!(cut.len() <= 1, "`{task}` was cut short twice: {runs:?}");
        if let Some(cut) = cut.first() {
            assert!(
                runs.iter().all(|r| r.1 >= cut.1),
                "`{task}` ran before the execution the takeover cut short: {runs:?}"
            );
        }
        let mut spans: Vec<(u128, u128)> = runs
            .iter()
            .filter_map(|(_, start, end)| end.map(|end| (*start, end)))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[1].0 > w[0].1,
                "two executions of `{task}` overlap: {runs:?}"
            );
        }
    }

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
