//! Several hosts, tested as several hosts: three `baton server` replicas, each in a network
//! namespace of its own (its own address and host name) on a bridge the test made, all on one
//! PostgreSQL that listens on the bridge. Over `BATON_FAILOVERS` (default 20) randomized
//! failures of a replica that owns running runs (killed with SIGKILL, frozen with SIGSTOP past
//! its lease, or cut off the network with `ip link set … down`), each then undone (restarted,
//! SIGCONT, link up):
//! - every run it owned goes on on a survivor within lease TTL + 5 s;
//! - a seconds-level cron schedule: no tick lost, none doubled;
//! - no task instance recorded succeeded twice, no event written under an older lease epoch
//!   than one before it, no two executions of one task instance at once (the ledger).
//!
//! It prints what it measured (`--nocapture`). `BATON_CHAOS_SEED` replays a sequence.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use support::ledger::{Chaos, LEDGER_SCRIPT, executions, overlaps};
use support::netns::{Host, Network};
use support::postgres::{OwnPostgres, psql_rows};
use support::{Server, Test, http, run_events, stale_writes, succeeded_twice, wait_until_for};

const REPLICAS: usize = 3;
const LEASE_TTL: Duration = Duration::from_secs(2);
/// What the issue allows past the lease for a survivor to go on with a run.
const TAKEOVER_SLACK: Duration = Duration::from_secs(5);
/// The schedule's period.
const TICK_MS: i64 = 2_000;
/// Chain runs kept going at once, so every failure finds runs to take over.
const RUNS_GOING: usize = 4;

/// `a`, then `b` and `c`, then `d`, then `e` and `f`, then `g`: each an execution of the
/// ledger script (about 0.6 s), so a run lasts long enough for failures to find it running.
fn chain(ledger: &Path) -> String {
    let script = ledger.with_file_name("ledger.sh");
    let mut yaml = format!(
        "name: chain\nenv:\n  LEDGER: {}\ntasks:\n",
        ledger.display()
    );
    for (task, needs) in [
        ("a", ""),
        ("b", "a"),
        ("c", "a"),
        ("d", "b, c"),
        ("e", "d"),
        ("f", "d"),
        ("g", "e, f"),
    ] {
        yaml.push_str(&format!(
            "  {task}:\n    run: sh {} {task}\n",
            script.display()
        ));
        if !needs.is_empty() {
            yaml.push_str(&format!("    needs: [{needs}]\n"));
        }
    }
    yaml
}

const TICK: &str = "name: tick\nschedule:\n  - cron: \"*/2 * * * * *\"\n    catchup: all\ntasks:\n  beat:\n    run: \"true\"\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    Stop,
    Cut,
}

/// One host's replica, and what is being done to it.
struct Replica {
    host: Host,
    server: Server,
    fault: Option<Fault>,
}

/// Whether the server at `addr` answers `/readyz` with 200 (its database answers).
fn ready(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok() && support::http(addr, "GET", "/readyz", "").0 == 200
}

/// The last lines of `host`'s server log.
fn log_tail(t: &Test, host: &Host) -> String {
    let log =
        std::fs::read_to_string(t.path().join(format!("{}.log", host.name))).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn start(t: &Test, net: &Network, host: &Host, database: &str) -> Server {
    let listen = format!("{}:0", host.addr);
    let args = [
        "server",
        "--pipelines",
        "pipelines",
        "--listen",
        &listen,
        // Only the test's own hosts reach the bridge.
        "--allow-remote-unauthenticated",
        "--database",
        database,
    ];
    let args: Vec<&str> = args.iter().chain(support::QUICK_LEASES).copied().collect();
    let path = t.path().join(format!("{}.log", host.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("log file");
    let child = t
        .command_on(net, host, &args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn baton server");
    Server::ready_logging_to(child, Some(&path))
}

/// Running runs with an owner: id -> (owner's host, epoch). An owner is `host:pid:nonce`, and
/// each replica's host name is its namespace's.
fn owned(db: &str) -> BTreeMap<String, (String, i64)> {
    psql_rows(
        db,
        "SELECT id, lease_owner, lease_epoch FROM runs \
         WHERE state = 'running' AND lease_owner IS NOT NULL",
    )
    .lines()
    .filter_map(|line| {
        let [id, owner, epoch] = line.split('|').collect::<Vec<_>>()[..] else {
            return None;
        };
        let host = owner.split(':').next()?.to_owned();
        Some((id.to_owned(), (host, epoch.parse().ok()?)))
    })
    .collect()
}

fn count(db: &str, sql: &str) -> usize {
    psql_rows(db, sql).trim().parse().expect("a count")
}

#[allow(clippy::print_stderr, reason = "the figures are the test's report")]
#[test]
fn runs_survive_randomized_failovers_across_hosts() {
    let check = "failover across network namespaces";
    let Some(mut net) = Network::new(check) else {
        return;
    };
    let Some(pg) = OwnPostgres::start(check, &[net.gateway()]) else {
        return;
    };
    let failovers: usize = std::env::var("BATON_FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let t = Test::new().file("ledger.sh", LEDGER_SCRIPT);
    let ledger = t.path().join("ledger.txt");
    let t = t
        .file("pipelines/chain.yaml", &chain(&ledger))
        .file("pipelines/tick.yaml", TICK);
    let remote = pg.url_at(net.gateway());
    let db = pg.url.clone();
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|_| {
            let host = net.host();
            let server = start(&t, &net, &host, &remote);
            Replica {
                host,
                server,
                fault: None,
            }
        })
        .collect();
    let mut chaos = Chaos::new(20);
    let began = Instant::now();
    let mut launched: Vec<String> = Vec::new();
    let mut takeovers: Vec<Duration> = Vec::new();
    let mut faults: BTreeMap<Fault, usize> = BTreeMap::new();

    for round in 0..failovers {
        // Runs to take over: launched on healthy replicas, which own them.
        let going = count(
            &db,
            "SELECT count(*) FROM runs WHERE pipeline = 'chain' \
             AND state IN ('queued', 'running')",
        );
        for _ in going..RUNS_GOING {
            let healthy: Vec<&Replica> = replicas.iter().filter(|r| r.fault.is_none()).collect();
            let via = healthy[usize::try_from(chaos.next()).unwrap_or(0) % healthy.len()];
            let (status, run) = http(
                &via.server.addr,
                "POST",
                "/api/v1/pipelines/default/chain/runs",
                "{}",
            );
            assert_eq!(
                status,
                201,
                "{run} from {}; its log ends:\n{}",
                via.host.name,
                log_tail(&t, &via.host)
            );
            launched.push(run["id"].as_str().expect("id").to_owned());
        }
        std::thread::sleep(chaos.moment());

        // The victim: a replica owning running runs, if any does.
        let before = owned(&db);
        let owners: Vec<usize> = (0..REPLICAS)
            .filter(|&i| before.values().any(|(h, _)| *h == replicas[i].host.name))
            .collect();
        let victim = if owners.is_empty() {
            usize::try_from(chaos.next()).unwrap_or(0) % REPLICAS
        } else {
            owners[usize::try_from(chaos.next()).unwrap_or(0) % owners.len()]
        };
        let theirs: Vec<(String, i64)> = before
            .iter()
            .filter(|(_, (h, _))| *h == replicas[victim].host.name)
            .map(|(id, (_, epoch))| (id.clone(), *epoch))
            .collect();
        let fault = match chaos.next() % 3 {
            0 => Fault::Kill,
            1 => Fault::Stop,
            _ => Fault::Cut,
        };
        *faults.entry(fault).or_default() += 1;
        let r = &mut replicas[victim];
        let hit = Instant::now();
        match fault {
            Fault::Kill => kill(r.server.pid(), Signal::SIGKILL).expect("SIGKILL"),
            Fault::Stop => kill(r.server.pid(), Signal::SIGSTOP).expect("SIGSTOP"),
            Fault::Cut => net.cut(&r.host),
        }
        r.fault = Some(fault);
        eprintln!(
            "failover {round}: {fault:?} {} owning {} running runs",
            r.host.name,
            theirs.len()
        );

        // Each of its runs goes on elsewhere (a newer epoch, another host), or had just ended.
        let limit = LEASE_TTL + TAKEOVER_SLACK;
        let mut waiting = theirs;
        while !waiting.is_empty() {
            let now = owned(&db);
            waiting.retain(|(id, epoch)| {
                let moved = now
                    .get(id)
                    .is_none_or(|(h, e)| e > epoch && *h != r.host.name);
                if moved && now.contains_key(id) {
                    takeovers.push(hit.elapsed());
                }
                !moved
            });
            assert!(
                hit.elapsed() <= limit,
                "runs {waiting:?} of {} ({fault:?}) were not taken over within {limit:?}",
                r.host.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // At least a lease's length for the failure, so runs it did not own at the start
        // (being launched to it) are orphaned too.
        std::thread::sleep(LEASE_TTL.saturating_sub(hit.elapsed()));

        match fault {
            Fault::Kill => {
                let _ = r.server.child.wait();
                r.server = start(&t, &net, &r.host, &remote);
            }
            Fault::Stop => kill(r.server.pid(), Signal::SIGCONT).expect("SIGCONT"),
            Fault::Cut => net.heal(&r.host),
        }
        // Back in service once it says it is ready, as a load balancer would see it: its
        // connections to the database may have died while it was away.
        let addr = r.server.addr.clone();
        wait_until_for(
            &format!("{} ready again after {fault:?}", r.host.name),
            Duration::from_secs(20),
            || ready(&addr),
        );
        r.fault = None;
    }
    let chaos_time = began.elapsed();

    // Everything ends, and ends well.
    wait_until_for("every run ended", Duration::from_secs(90), || {
        count(
            &db,
            "SELECT count(*) FROM runs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')",
        ) == 0
    });
    let failed = psql_rows(
        &db,
        "SELECT id, pipeline, state FROM runs WHERE state <> 'succeeded'",
    );
    assert_eq!(failed, "", "runs that did not succeed");

    // Per run, from the API: each task instance succeeded once, and no owner wrote after a
    // newer one had taken over.
    let via = &replicas[0].server.addr;
    let ids = psql_rows(&db, "SELECT id FROM runs ORDER BY id");
    let mut events = 0;
    for id in ids.lines() {
        let run = run_events(via, id);
        events += run.len();
        assert_eq!(stale_writes(&run), Vec::<String>::new(), "run `{id}`");
        assert_eq!(
            succeeded_twice(&run),
            Vec::new(),
            "run `{id}`: a task succeeded twice"
        );
    }

    // The ledger: no two executions of a task instance at once, and nothing left running.
    let ledger_text = std::fs::read_to_string(&ledger).expect("ledger");
    assert_eq!(overlaps(&ledger_text), Vec::<String>::new());
    let runs = executions(&ledger_text);
    let cut_short: Vec<_> = runs.iter().filter(|e| !e.4).collect();
    for (task, pid, ..) in &cut_short {
        let pid: i32 = pid.parse().expect("pid");
        assert!(!support::alive(pid), "`{task}`'s process {pid} still runs");
    }

    // The schedule's ticks: one run each, every 2 s, from the first to the last.
    let mut ticks: Vec<i64> = psql_rows(
        &db,
        "SELECT idempotency_key FROM runs WHERE pipeline = 'tick'",
    )
    .lines()
    .map(|key| {
        key.rsplit(':')
            .next()
            .and_then(|ms| ms.parse().ok())
            .expect("a tick's key ends with its time")
    })
    .collect();
    ticks.sort_unstable();
    let doubled = ticks.windows(2).filter(|w| w[0] == w[1]).count();
    let lost: i64 = ticks
        .windows(2)
        .map(|w| ((w[1] - w[0]) / TICK_MS - 1).max(0))
        .sum();
    assert_eq!((doubled, lost), (0, 0), "ticks doubled and lost: {ticks:?}");
    let span = Duration::from_millis(
        u64::try_from(ticks.last().unwrap_or(&0) - ticks.first().unwrap_or(&0)).unwrap_or(0),
    );
    assert!(
        span + Duration::from_secs(8) >= chaos_time,
        "ticks cover {span:?} of {chaos_time:?}"
    );

    takeovers.sort_unstable();
    let pick = |q: f64| {
        takeovers
            .get(((takeovers.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    assert!(!takeovers.is_empty(), "no run was taken over");
    eprintln!(
        "failovers: {failovers} ({faults:?}) over {chaos_time:.1?}; runs taken over: {}, \
         from the failure to the survivor's lease: min {:.2?}, p50 {:.2?}, max {:.2?} (limit {:?}); \
         chain runs: {}; executions cut short: {}; events checked: {events}, stale-epoch \
         writes accepted: 0; tasks succeeded twice: 0; cron ticks: {}, lost 0, doubled 0",
        takeovers.len(),
        pick(0.0),
        pick(0.5),
        pick(1.0),
        LEASE_TTL + TAKEOVER_SLACK,
        launched.len(),
        cut_short.len(),
        ticks.len(),
    );
}
