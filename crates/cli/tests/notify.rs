//! `baton run` exits only after the notifications and lineage events of its run have left:
//! the failure notification of a run that just failed must not die with the process.

mod support;

use std::sync::{Arc, Mutex};

use support::Test;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_run_delivers_its_notifications_and_lineage_before_exiting() {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = Arc::clone(&received);
            move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                // Slow enough that a process not waiting for it would be gone.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                received.lock().expect("lock").push(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let t = Test::new().file(
        "failing.yaml",
        &format!(
            "name: failing\nnotify:\n  - on: failure\n    webhook: http://{addr}/hook\ntasks:\n  broken:\n    run: exit 4\n"
        ),
    );
    let lineage = t.path().join("lineage.jsonl");
    let out = tokio::task::spawn_blocking(move || {
        let status = t
            .command(&["run", "failing.yaml"])
            .env("BATON_LINEAGE_FILE", &lineage)
            .output()
            .expect("run baton");
        (
            status,
            std::fs::read_to_string(&lineage).unwrap_or_default(),
            t,
        )
    })
    .await
    .expect("baton run");
    let (output, lines, _t) = out;
    assert_eq!(output.status.code(), Some(1), "{output:?}");

    let received = received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["event"], "failure");
    assert_eq!(received[0]["run"]["state"], "failed");

    let types: Vec<String> = lines
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            format!(
                "{} {}",
                v["eventType"].as_str().unwrap_or("?"),
                v["job"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "START failing",
            "START failing.broken",
            "FAIL failing.broken",
            "FAIL failing"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_resume_does_not_report_a_deadline_missed_before_the_crash_again() {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let received = Arc::clone(&received);
            move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                received.lock().expect("lock").push(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let events = || -> Vec<String> {
        let received = received.lock().expect("lock");
        received
            .iter()
            .map(|b| {
                let task = b["task"]["key"].as_str().unwrap_or("");
                format!("{} {task}", b["event"].as_str().unwrap_or("?"))
            })
            .collect()
    };

    // The first attempt outlives both deadlines; the one after the crash is quick.
    let t = Test::new().file(
        "late.yaml",
        &format!(
            "name: late\ndeadline: 200ms\nnotify:\n  - on: deadline\n    webhook: http://{addr}/hook\ntasks:\n  slow:\n    run: test -f once || {{ touch once; sleep 3; }}\n    deadline: 100ms\n"
        ),
    );
    let mut child = t
        .command(&["run", "late.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn baton run");
    for _ in 0..1000 {
        if events().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut seen = events();
    seen.sort();
    assert_eq!(seen, ["deadline ", "deadline slow"]);
    // `kill -9`, then `baton resume`: the deadlines are past, and reported already.
    child.kill().expect("kill baton run");
    child.wait().expect("reap baton run");
    let id = t.last_run();
    let out = tokio::task::spawn_blocking(move || {
        let out = t.run(&["resume", &id]);
        (out, t)
    })
    .await
    .expect("baton resume");
    let (out, _t) = out;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // `baton resume` sends what it queued before it exits: anything sent again is here now.
    let mut seen = events();
    seen.sort();
    assert_eq!(seen, ["deadline ", "deadline slow"]);
}
