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
