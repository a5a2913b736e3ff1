use super::*;

const INGEST: &str = "name: ingest\nnamespace: data\ntasks:\n  a:\n    run: \"true\"\n";
const ETL: &str = "name: etl\nnamespace: data\ntriggers:\n  - pipeline: ingest\ntasks:\n  a:\n    run: \"true\"\n";

#[tokio::test]
async fn a_successful_upstream_run_starts_its_dependents_once() {
    let s = Server::new(&[("ingest.yaml", INGEST), ("etl.yaml", ETL)]).await;
    baton_control::upstream::watch(s.state.control.clone());
    let (_, run) = s
        .call(
            "POST",
            "/api/v1/pipelines/data/ingest/runs",
            Some(json!({})),
        )
        .await;
    let upstream = run["id"].as_str().expect("id").to_owned();
    s.wait_for(&upstream, |d| d["state"] == "succeeded").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let downstream = loop {
        let (_, page) = s.call("GET", "/api/v1/runs?pipeline=data/etl", None).await;
        if let Some(r) = page["items"].as_array().and_then(|a| a.first()) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no downstream run");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(downstream["trigger"], "pipeline");
    // The same announcement again (a restart, a second server) starts nothing new.
    let again =
        baton_control::upstream::fire(&s.state, &baton_core::ids::RunId::from_string(upstream))
            .await
            .expect("fire");
    assert!(again.is_empty());
    let (_, page) = s.call("GET", "/api/v1/runs?pipeline=data/etl", None).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
}

/// An upstream run that succeeded while nobody listened (the server died before it
/// announced the success), written straight into the store.
async fn silent_success(s: &Server, finished_at: i64) -> String {
    let version = {
        let catalog = s.state.catalog.read().await;
        catalog
            .find("data", "ingest")
            .and_then(|e| e.active.clone())
            .expect("ingest")
    };
    let created = baton_engine::create_run(
        s.state.store.as_ref(),
        baton_engine::RunRequest {
            logical_date: Some("2026-03-29".into()),
            ..baton_engine::RunRequest::new(&version.pipeline, &version.source, ".")
        },
    )
    .await
    .expect("create");
    s.state
        .store
        .apply(
            &created.id,
            baton_store::Fence::Unfenced,
            &[baton_store::Change::Run {
                state: baton_core::state::RunState::Succeeded,
                at: finished_at,
                error: None,
            }],
        )
        .await
        .expect("succeed");
    created.id.to_string()
}

async fn downstream(s: &Server) -> Vec<Value> {
    let (_, page) = s.call("GET", "/api/v1/runs?pipeline=data/etl", None).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_success_nobody_announced_is_found_by_the_scan_after_a_restart() {
    use baton_control::upstream::{OVERLAP_MS, Scanner};
    let s = Server::new(&[("ingest.yaml", INGEST), ("etl.yaml", ETL)]).await;
    let t0 = 1_900_000_000_000;
    // A first server records how far it looked, then dies; the upstream succeeds just
    // after, and its announcement dies with the process.
    assert!(
        Scanner::new(s.state.control.clone())
            .scan(t0)
            .await
            .expect("scan")
            .is_empty()
    );
    let upstream = silent_success(&s, t0 + 1_000).await;
    assert!(downstream(&s).await.is_empty());
    // An hour later a new server (a new scanner, nothing in memory) starts.
    let mut scanner = Scanner::new(s.state.control.clone());
    let started = scanner.scan(t0 + 3_600_000).await.expect("scan");
    assert_eq!(started.len(), 1);
    let runs = downstream(&s).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], json!(started[0]));
    assert_eq!(runs[0]["trigger"], "pipeline");
    assert_eq!(runs[0]["logical_date"], "2026-03-29");
    assert_eq!(
        runs[0]["idempotency_key"],
        json!(format!("upstream:{upstream}:data/etl"))
    );
    // Scanning again, or from yet another server over the overlap, starts nothing new.
    assert!(scanner.scan(t0 + 3_605_000).await.expect("scan").is_empty());
    let mut other = Scanner::new(s.state.control.clone());
    let late = silent_success(&s, t0 + 3_605_000 - OVERLAP_MS / 2).await;
    let started = other.scan(t0 + 3_610_000).await.expect("scan");
    assert_eq!(started.len(), 1, "only the late success is new");
    let runs = downstream(&s).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0]["idempotency_key"],
        json!(format!("upstream:{late}:data/etl"))
    );
}

#[tokio::test]
async fn successes_before_the_cursor_and_failures_start_nothing() {
    use baton_control::upstream::{OVERLAP_MS, Scanner};
    let s = Server::new(&[("ingest.yaml", INGEST), ("etl.yaml", ETL)]).await;
    let t0 = 1_900_000_000_000;
    let mut scanner = Scanner::new(s.state.control.clone());
    scanner.scan(t0).await.expect("scan");
    silent_success(&s, t0 - OVERLAP_MS - 1).await;
    assert!(scanner.scan(t0 + 5_000).await.expect("scan").is_empty());
    assert!(downstream(&s).await.is_empty());
}
