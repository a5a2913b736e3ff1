//! The API driven through the router, without a socket.

mod support;

#[path = "api/bounds.rs"]
mod bounds;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use baton_server::AppState;
use serde_json::{Value, json};

struct Server {
    dir: tempfile::TempDir,
    state: AppState,
}

impl Server {
    async fn new(files: &[(&str, &str)]) -> Self {
        let (dir, state) = support::app(files, &[("BATON_TEST_WEBHOOK_SECRET", "s3cret")]).await;
        Self { dir, state }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let a = support::request(&self.state, method, uri, &[], body).await;
        (a.status, a.json())
    }

    async fn wait_for(&self, run: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, doc) = self.call("GET", &format!("/api/v1/runs/{run}"), None).await;
            if pred(&doc) {
                return doc;
            }
            assert!(Instant::now() < deadline, "timed out; last state: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

const HELLO: &str = "name: hello\nparams:\n  who: { type: string, default: world }\n  n: { type: integer, default: 1, min: 1 }\ntasks:\n  greet:\n    run: echo hi {{ params.who }}\n";
const GATED: &str = "name: gated\nnamespace: ops\ntasks:\n  release:\n    approval: { message: ship? }\n    run: \"true\"\n";
const BROKEN: &str = "name: broken\ntasks:\n  a:\n    neds: [b]\n    run: x\n";

#[tokio::test]
async fn health_and_unknown_routes() {
    let s = Server::new(&[]).await;
    assert_eq!(
        s.call("GET", "/healthz", None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        s.call("GET", "/readyz", None).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    let (status, body) = s.call("GET", "/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "no such route", "details": null}})
    );
}

#[tokio::test]
async fn pools_are_set_listed_and_deleted() {
    let s = Server::new(&[]).await;
    assert_eq!(
        s.call("GET", "/api/v1/pools", None).await,
        (StatusCode::OK, json!([]))
    );
    let (status, body) = s
        .call(
            "PUT",
            "/api/v1/pools/gpu",
            Some(json!({"slots": 2, "description": "the GPU box"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let gpu =
        json!({"name": "gpu", "slots": 2, "description": "the GPU box", "used": 0, "waiting": 0});
    assert_eq!(body, gpu);
    // Resizing keeps the description.
    let (status, body) = s
        .call("PUT", "/api/v1/pools/gpu", Some(json!({"slots": 0})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["slots"], 0);
    assert_eq!(body["description"], "the GPU box");
    s.call("PUT", "/api/v1/pools/cpu", Some(json!({"slots": 8})))
        .await;
    let (_, list) = s.call("GET", "/api/v1/pools", None).await;
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["cpu", "gpu"]);
    let (status, body) = s
        .call("PUT", "/api/v1/pools/gpu", Some(json!({"slots": -1})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_pool");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("`slots` must be between 0 and 1000000, got -1")),
        "{body}"
    );
    let (status, body) = s
        .call("PUT", "/api/v1/pools/a%20b", Some(json!({"slots": 1})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_pool");
    let (status, body) = s.call("GET", "/api/v1/pools/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"code": "not_found", "message": "pool `nope` does not exist", "details": null}})
    );
    let (status, body) = s.call("DELETE", "/api/v1/pools/cpu", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "cpu");
    let (status, _) = s.call("DELETE", "/api/v1/pools/cpu", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = s.call("GET", "/api/v1/pools", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn pipelines_with_validation_errors_and_pages() {
    let s = Server::new(&[("a.yaml", HELLO), ("b.yaml", GATED), ("c.yaml", BROKEN)]).await;
    let (status, page) = s.call("GET", "/api/v1/pipelines?limit=2", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, vec![&json!("default/hello"), &json!("ops/gated")]);
    let cursor = page["next_cursor"].as_str().expect("more pages");
    let (_, rest) = s
        .call(
            "GET",
            &format!("/api/v1/pipelines?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    let broken = &rest["items"][0];
    assert_eq!(broken["path"], "c.yaml");
    assert_eq!(broken["valid"], false);
    assert_eq!(
        broken["errors"][0]["message"],
        "unknown key `neds` in a task"
    );
    assert_eq!(broken["errors"][0]["line"], 4);
    assert!(rest.get("next_cursor").is_none());

    let (status, hello) = s.call("GET", "/api/v1/pipelines/default/hello", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hello["graph"]["order"], json!(["greet"]));
    assert_eq!(hello["params"]["n"]["type"], "integer");
    let (status, err) = s.call("GET", "/api/v1/pipelines/default/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["message"], "pipeline `default/nope` not found");
}

#[tokio::test]
async fn trigger_validates_params_and_runs() {
    let s = Server::new(&[("a.yaml", HELLO)]).await;
    let (status, err) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(json!({"params": {"n": 0, "x": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "invalid_params");
    assert_eq!(
        err["error"]["details"]["problems"],
        json!([
            "param `n`: value must be at least 1, got 0",
            "unknown param `x`"
        ])
    );

    let body = json!({"params": {"who": "api"}, "idempotency_key": "k-1"});
    let (status, run) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let (status, again) = s
        .call("POST", "/api/v1/pipelines/default/hello/runs", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["id"],
        json!(id),
        "the same idempotency key returns the same run"
    );

    let done = s.wait_for(&id, |d| d["state"] == "succeeded").await;
    assert_eq!(done["params"], json!({"who": "api", "n": 1}));
    assert_eq!(done["tasks"][0]["state"], "succeeded");
    assert_eq!(done["attempts"][0]["exit_code"], 0);
    let (status, conflict) = s
        .call("POST", &format!("/api/v1/runs/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        conflict["error"]["message"],
        format!("run `{id}` already succeeded")
    );
}

#[tokio::test]
async fn runs_list_filters_and_pages() {
    let s = Server::new(&[("a.yaml", HELLO)]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, run) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/hello/runs",
                Some(json!({})),
            )
            .await;
        ids.push(run["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        s.wait_for(id, |d| d["state"] == "succeeded").await;
    }
    let (_, page) = s
        .call("GET", "/api/v1/runs?pipeline=default/hello&limit=2", None)
        .await;
    let first: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(first, vec![ids[2].as_str(), ids[1].as_str()]);
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (_, page2) = s
        .call(
            "GET",
            &format!("/api/v1/runs?limit=2&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(page2["items"][0]["id"], json!(ids[0]));
    let (status, err) = s.call("GET", "/api/v1/runs?state=bogus", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["message"], "unknown run state `bogus`");
}

#[tokio::test]
async fn approvals_through_the_api() {
    let s = Server::new(&[("g.yaml", GATED)]).await;
    let (_, run) = s
        .call("POST", "/api/v1/pipelines/ops/gated/runs", Some(json!({})))
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    let waiting = s
        .wait_for(&id, |d| d["tasks"][0]["state"] == "waiting_approval")
        .await;
    assert_eq!(
        waiting["tasks"][0]["approval_message"], "ship?",
        "{waiting}"
    );
    let (status, ok) = s
        .call(
            "POST",
            &format!("/api/v1/runs/{id}/tasks/release/approve"),
            Some(json!({"by": "ann", "comment": "go"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let (status, again) = s
        .call(
            "POST",
            &format!("/api/v1/runs/{id}/tasks/release/reject"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    s.wait_for(&id, |d| d["state"] == "succeeded").await;
    let (status, _) = s
        .call(
            "POST",
            &format!("/api/v1/runs/{id}/tasks/nope/approve"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn retry_through_the_api() {
    let s = Server::new(&[(
        "f.yaml",
        "name: f\ntasks:\n  a:\n    run: test -f ../fixed\n",
    )])
    .await;
    let (_, run) = s
        .call("POST", "/api/v1/pipelines/default/f/runs", Some(json!({})))
        .await;
    let id = run["id"].as_str().expect("id").to_owned();
    s.wait_for(&id, |d| d["state"] == "failed").await;
    std::fs::write(s.dir.path().join("fixed"), "").expect("fix");
    let (status, body) = s
        .call("POST", &format!("/api/v1/runs/{id}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["reopened"], json!(["a"]));
    let done = s.wait_for(&id, |d| d["state"] == "succeeded").await;
    assert_eq!(done["tasks"][0]["attempts"], 2);
    let (status, err) = s
        .call("POST", &format!("/api/v1/runs/{id}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        err["error"]["message"],
        format!("run {id} succeeded; there is nothing to retry")
    );
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let s = Server::new(&[("a.yaml", HELLO)]).await;
    let big = json!({"params": {"who": "x".repeat(baton_server::MAX_BODY_BYTES)}});
    let (status, err) = s
        .call("POST", "/api/v1/pipelines/default/hello/runs", Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(err["error"]["code"], "body_too_large");
    let (status, err) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(json!({"parms": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "invalid_body");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field `parms`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_that_stops_validating_keeps_its_last_good_version() {
    let s = Server::new(&[("a.yaml", HELLO)]).await;
    let (_, before) = s.call("GET", "/api/v1/pipelines/default/hello", None).await;
    std::fs::write(
        s.dir.path().join("pipelines/a.yaml"),
        format!("{HELLO}    neds: []\n"),
    )
    .expect("write");
    let (status, report) = s.call("POST", "/api/v1/reload", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report, json!({"loaded": 0, "invalid": 1, "removed": 0}));
    let (status, after) = s.call("GET", "/api/v1/pipelines/default/hello", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        after["version"], before["version"],
        "still the last good version"
    );
    assert_eq!(after["valid"], false);
    assert_eq!(
        after["errors"][0]["message"],
        "unknown key `neds` in a task"
    );
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/hello/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "runs still start from the good version"
    );

    std::fs::write(
        s.dir.path().join("pipelines/a.yaml"),
        HELLO.replace("world", "there"),
    )
    .expect("write");
    s.call("POST", "/api/v1/reload", None).await;
    let (_, versions) = s
        .call("GET", "/api/v1/pipelines/default/hello/versions", None)
        .await;
    assert_eq!(versions["items"].as_array().map(Vec::len), Some(2));
}

mod scheduling {
    use baton_server::scheduler::Scheduler;
    use jiff::Timestamp;

    use super::*;

    fn daily(catchup: &str) -> String {
        format!(
            "name: nightly\nparams:\n  d: {{ type: string, default: x }}\nschedule:\n  - cron: \"30 2 * * *\"\n    timezone: Europe/Berlin\n    catchup: {catchup}\n    params: {{ d: sched }}\ntasks:\n  a:\n    run: \"true\"\n"
        )
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    async fn logical_dates(s: &Server) -> Vec<String> {
        let (_, page) = s.call("GET", "/api/v1/runs?limit=100", None).await;
        let mut dates: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["logical_date"].as_str().unwrap_or_default().to_owned())
            .collect();
        dates.sort();
        dates
    }

    #[tokio::test]
    async fn catch_up_all_runs_every_missed_tick_once_with_its_logical_date() {
        let s = Server::new(&[("n.yaml", &daily("all"))]).await;
        let sched = Scheduler::new(s.state.clone(), 10);
        // First sight starts the schedule; nothing before it counts as missed.
        assert!(
            sched
                .tick(at("2026-03-27T12:00:00Z"))
                .await
                .expect("tick")
                .is_empty()
        );
        // Berlin skips 02:00-03:00 on 03-29: that day's 02:30 fires at 03:00.
        let runs = sched.tick(at("2026-03-30T12:00:00Z")).await.expect("tick");
        assert_eq!(runs.len(), 3);
        assert_eq!(
            logical_dates(&s).await,
            vec![
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        assert!(
            sched
                .tick(at("2026-03-30T12:00:00Z"))
                .await
                .expect("tick")
                .is_empty(),
            "no doubles"
        );
        let (_, page) = s.call("GET", "/api/v1/runs?limit=1", None).await;
        assert_eq!(page["items"][0]["trigger"], "schedule");
        assert_eq!(page["items"][0]["params"]["d"], "sched");
    }

    #[tokio::test]
    async fn next_fire_times_per_schedule() {
        let s = Server::new(&[("n.yaml", &daily("all"))]).await;
        let (status, doc) = s
            .call(
                "GET",
                "/api/v1/pipelines/default/nightly/schedule?n=3",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        let next = doc["schedules"][0]["next"].as_array().expect("next");
        assert_eq!(next.len(), 3);
        let first = next[0]["local"].as_str().expect("local");
        // 02:30 local, or 03:00 on the day Berlin skips 02:00-03:00.
        assert!(
            first.contains("T02:30:00+0") || first.ends_with("T03:00:00+02:00"),
            "{first}"
        );
        assert_eq!(doc["schedules"][0]["timezone"], "Europe/Berlin");
    }

    #[tokio::test]
    async fn paused_pipelines_skip_ticks_and_do_not_flood_on_unpause() {
        let s = Server::new(&[("n.yaml", &daily("all"))]).await;
        let sched = Scheduler::new(s.state.clone(), 10);
        sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
        let (status, doc) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/nightly/pause",
                Some(json!({"by": "ann"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(
            s.call("GET", "/api/v1/pipelines/default/nightly", None)
                .await
                .1["paused"],
            true
        );
        assert!(
            sched
                .tick(at("2026-01-04T12:00:00Z"))
                .await
                .expect("tick")
                .is_empty()
        );
        s.call("POST", "/api/v1/pipelines/default/nightly/unpause", None)
            .await;
        assert!(
            sched
                .tick(at("2026-01-04T12:00:10Z"))
                .await
                .expect("tick")
                .is_empty(),
            "no flood"
        );
        assert_eq!(
            sched
                .tick(at("2026-01-05T01:30:30Z"))
                .await
                .expect("tick")
                .len(),
            1
        );
        // Manual triggers work while paused.
        s.call("POST", "/api/v1/pipelines/default/nightly/pause", None)
            .await;
        let (status, _) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/nightly/runs",
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = s
            .call("POST", "/api/v1/pipelines/default/nope/pause", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn latest_and_none_policies() {
        let latest = Server::new(&[("n.yaml", &daily("latest"))]).await;
        let sched = Scheduler::new(latest.state.clone(), 10);
        sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
        assert_eq!(
            sched
                .tick(at("2026-01-05T12:00:00Z"))
                .await
                .expect("tick")
                .len(),
            1
        );
        assert_eq!(
            logical_dates(&latest).await,
            vec!["2026-01-05T02:30:00+01:00"]
        );

        let none = Server::new(&[("n.yaml", &daily("none"))]).await;
        let sched = Scheduler::new(none.state.clone(), 10);
        sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
        assert!(
            sched
                .tick(at("2026-01-05T12:00:00Z"))
                .await
                .expect("tick")
                .is_empty()
        );
        // On time, a tick runs whatever the policy.
        assert_eq!(
            sched
                .tick(at("2026-01-06T01:31:00Z"))
                .await
                .expect("tick")
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_crash_before_the_tick_is_recorded_does_not_double_fire() {
        let s = Server::new(&[("n.yaml", &daily("all"))]).await;
        let sched = Scheduler::new(s.state.clone(), 10);
        sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
        assert_eq!(
            sched
                .tick(at("2026-01-03T12:00:00Z"))
                .await
                .expect("tick")
                .len(),
            2
        );
        // Put the schedule back where it was, as if the server died before recording the tick.
        let key = "0:30 2 * * *@Europe/Berlin";
        let store = &s.state.store;
        let now = store
            .last_tick("default", "nightly", key)
            .await
            .expect("tick")
            .expect("recorded");
        let earlier = at("2026-01-01T12:00:00Z").as_millisecond();
        assert!(
            store
                .advance_tick("default", "nightly", key, Some(now), earlier)
                .await
                .expect("rewind")
        );
        assert!(
            sched
                .tick(at("2026-01-03T12:00:00Z"))
                .await
                .expect("tick")
                .is_empty()
        );
        assert_eq!(logical_dates(&s).await.len(), 2);
    }
}

mod webhooks {
    use super::*;

    const HOOKED: &str = "name: deploy\nparams:\n  branch: { type: string }\n  count: { type: integer, default: 1 }\ntriggers:\n  - webhook:\n      secret_env: BATON_TEST_WEBHOOK_SECRET\n      params:\n        branch: \"{{ payload.ref | replace('refs/heads/', '') }}\"\n        count: \"{{ payload.commits | length }}\"\ntasks:\n  a:\n    run: echo {{ params.branch }}\n";
    const OPEN: &str = "name: open\ntriggers:\n  - webhook: {}\ntasks:\n  a:\n    run: \"true\"\n";

    fn sign(body: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    async fn post(
        s: &Server,
        uri: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        use axum::body::Body;
        use axum::http::Request;
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        // The exact bytes matter here (they are signed), so not `support::request`.
        let mut req = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = baton_server::router(s.state.clone())
            .oneshot(req.body(Body::from(body.to_owned())).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn signed_deliveries_start_runs_with_params_from_the_payload() {
        let s = Server::new(&[("d.yaml", HOOKED), ("o.yaml", OPEN)]).await;
        let uri = "/api/v1/pipelines/default/deploy/webhook";
        let body = r#"{"ref": "refs/heads/main", "commits": [1, 2, 3]}"#;
        let (status, err) = post(&s, uri, body, &[("x-baton-signature-256", &sign(body))]).await;
        assert_eq!(status, StatusCode::CREATED, "{err}");
        assert_eq!(err["params"], json!({"branch": "main", "count": 3}));
        assert_eq!(err["trigger"], "webhook");
        let (status, bad) = post(&s, uri, body, &[("x-baton-signature-256", "sha256=00")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(bad["error"]["code"], "invalid_signature");
        let (status, _) = post(&s, uri, body, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // A payload that does not give a param's value is a 422 naming it.
        let thin = r#"{"commits": []}"#;
        let (status, err) = post(&s, uri, thin, &[("x-hub-signature-256", &sign(thin))]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(
            err["error"]["details"]["problems"][0]
                .as_str()
                .unwrap_or_default()
                .starts_with("param `branch`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_signed_webhook_without_its_secret_on_the_server_is_refused() {
        let s = Server::new(&[(
            "d.yaml",
            &HOOKED.replace("BATON_TEST_WEBHOOK_SECRET", "UNSET_SECRET"),
        )])
        .await;
        let (status, err) = post(&s, "/api/v1/pipelines/default/deploy/webhook", "{}", &[]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
        assert_eq!(err["error"]["code"], "webhook_not_configured");
    }

    #[tokio::test]
    async fn redeliveries_do_not_start_a_second_run() {
        let s = Server::new(&[("o.yaml", OPEN), ("h.yaml", HELLO)]).await;
        let uri = "/api/v1/pipelines/default/open/webhook";
        let (status, first) = post(&s, uri, "{}", &[("x-github-delivery", "d-1")]).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let (status, again) = post(&s, uri, "{}", &[("x-github-delivery", "d-1")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["id"], again["id"]);
        let (status, err) = post(&s, uri, "not json", &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        let (status, err) = post(&s, "/api/v1/pipelines/default/hello/webhook", "{}", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            err["error"]["message"],
            "pipeline `default/hello` has no webhook trigger"
        );
    }
}

mod upstream_triggers {
    use super::*;

    const INGEST: &str = "name: ingest\nnamespace: data\ntasks:\n  a:\n    run: \"true\"\n";
    const ETL: &str = "name: etl\nnamespace: data\ntriggers:\n  - pipeline: ingest\ntasks:\n  a:\n    run: \"true\"\n";

    #[tokio::test]
    async fn a_successful_upstream_run_starts_its_dependents_once() {
        let s = Server::new(&[("ingest.yaml", INGEST), ("etl.yaml", ETL)]).await;
        baton_server::upstream::watch(s.state.clone());
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
            baton_server::upstream::fire(&s.state, &baton_core::ids::RunId::from_string(upstream))
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
        use baton_server::upstream::{OVERLAP_MS, Scanner};
        let s = Server::new(&[("ingest.yaml", INGEST), ("etl.yaml", ETL)]).await;
        let t0 = 1_900_000_000_000;
        // A first server records how far it looked, then dies; the upstream succeeds just
        // after, and its announcement dies with the process.
        assert!(
            Scanner::new(s.state.clone())
                .scan(t0)
                .await
                .expect("scan")
                .is_empty()
        );
        let upstream = silent_success(&s, t0 + 1_000).await;
        assert!(downstream(&s).await.is_empty());
        // An hour later a new server (a new scanner, nothing in memory) starts.
        let mut scanner = Scanner::new(s.state.clone());
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
        let mut other = Scanner::new(s.state.clone());
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
        use baton_server::upstream::{OVERLAP_MS, Scanner};
        let s = Server::new(&[("ingest.yaml", INGEST), ("etl.yaml", ETL)]).await;
        let t0 = 1_900_000_000_000;
        let mut scanner = Scanner::new(s.state.clone());
        scanner.scan(t0).await.expect("scan");
        silent_success(&s, t0 - OVERLAP_MS - 1).await;
        assert!(scanner.scan(t0 + 5_000).await.expect("scan").is_empty());
        assert!(downstream(&s).await.is_empty());
    }
}

mod dead_letters {
    use super::*;

    // `a` and `c` fail until their files exist; `b` waits for `a`.
    const FLAKY: &str = "name: f\ntasks:\n  a:\n    retries: { limit: 1, delay: 0s }\n    run: test -f ../fixed-a\n  b:\n    needs: [a]\n    run: \"true\"\n  c:\n    run: test -f ../fixed-c\n";

    async fn failed_run(s: &Server) -> String {
        let (_, run) = s
            .call("POST", "/api/v1/pipelines/default/f/runs", Some(json!({})))
            .await;
        let id = run["id"].as_str().expect("id").to_owned();
        s.wait_for(&id, |d| d["state"] == "failed").await;
        id
    }

    async fn letters(s: &Server) -> Vec<(String, String)> {
        let (status, page) = s.call("GET", "/api/v1/dead-letters", None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut items: Vec<(String, String)> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| {
                (
                    d["run"].as_str().unwrap_or_default().to_owned(),
                    d["key"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        items.sort();
        items
    }

    fn pair(run: &str, key: &str) -> (String, String) {
        (run.to_owned(), key.to_owned())
    }

    #[tokio::test]
    async fn listed_with_their_last_error_and_paged() {
        let s = Server::new(&[("f.yaml", FLAKY), ("a.yaml", HELLO)]).await;
        let r1 = failed_run(&s).await;
        let r2 = failed_run(&s).await;
        let mut expected = vec![
            pair(&r1, "a"),
            pair(&r1, "c"),
            pair(&r2, "a"),
            pair(&r2, "c"),
        ];
        expected.sort();
        assert_eq!(
            letters(&s).await,
            expected,
            "`b` is upstream-failed, not a dead letter"
        );

        let (_, page) = s
            .call("GET", "/api/v1/dead-letters?pipeline=f&limit=3", None)
            .await;
        let first = page["items"].as_array().expect("items").clone();
        assert_eq!(first.len(), 3);
        let a = first
            .iter()
            .find(|d| d["key"] == "a")
            .expect("an `a` on the first page");
        assert_eq!(a["attempts"], 2, "its retry was used up: {a}");
        assert_eq!(a["exit_code"], 1);
        assert_eq!(a["error"], "exited with code 1 (attempt 2)");
        assert_eq!(a["pipeline"], "f");
        assert_eq!(a["run_state"], "failed");
        assert!(
            a.get("log_path").is_none(),
            "no server paths on the wire: {a}"
        );
        let finished: Vec<i64> = first
            .iter()
            .map(|d| d["finished_at"].as_i64().expect("finished_at"))
            .collect();
        assert!(finished.windows(2).all(|w| w[0] >= w[1]), "newest first");
        let cursor = page["next_cursor"].as_str().expect("a second page");
        let (_, rest) = s
            .call(
                "GET",
                &format!("/api/v1/dead-letters?pipeline=f&limit=3&cursor={cursor}"),
                None,
            )
            .await;
        let mut seen: Vec<(String, String)> = first
            .iter()
            .chain(rest["items"].as_array().expect("items"))
            .map(|d| {
                (
                    d["run"].as_str().unwrap_or_default().to_owned(),
                    d["key"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(seen, expected, "the pages hold every dead letter once");
        assert!(rest.get("next_cursor").is_none());

        let (_, other) = s
            .call("GET", "/api/v1/dead-letters?pipeline=default/hello", None)
            .await;
        assert_eq!(other["items"], json!([]));
        let (status, err) = s
            .call("GET", "/api/v1/dead-letters?cursor=nonsense", None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("invalid cursor `nonsense`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn requeued_one_by_one_and_in_bulk() {
        let s = Server::new(&[("f.yaml", FLAKY)]).await;
        let r1 = failed_run(&s).await;
        let r2 = failed_run(&s).await;

        let requeue = |run: &str, key: &str| format!("/api/v1/runs/{run}/tasks/{key}/requeue");
        let (status, err) = s.call("POST", &requeue(&r1, "b"), None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            err["error"]["message"],
            format!("task `b` of run {r1} is not a dead letter: it is upstream_failed")
        );
        let (status, err) = s.call("POST", &requeue(&r1, "nope"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            err["error"]["message"],
            format!("run `{r1}` has no task `nope`")
        );

        // One: `a` runs again with a fresh retry budget, and `b` after it; `c` stays failed.
        std::fs::write(s.dir.path().join("fixed-a"), "").expect("fix a");
        let (status, body) = s.call("POST", &requeue(&r1, "a"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["reopened"], json!(["a", "b"]));
        let done = s
            .wait_for(&r1, |d| {
                d["state"] == "failed" && d["tasks"][1]["state"] == "succeeded"
            })
            .await;
        assert_eq!(done["tasks"][0]["state"], "succeeded");
        assert_eq!(done["tasks"][0]["attempts"], 3);
        assert_eq!(done["tasks"][2]["state"], "failed");
        let mut expected = vec![pair(&r1, "c"), pair(&r2, "a"), pair(&r2, "c")];
        expected.sort();
        assert_eq!(letters(&s).await, expected);

        // Listed items: each gets its own outcome; one that cannot be requeued does not stop
        // the others of its run.
        let (status, body) = s
            .call(
                "POST",
                "/api/v1/dead-letters/requeue",
                Some(json!({"items": [
                    {"run": r2, "task": "a"},
                    {"run": r2, "task": "b"},
                    {"run": "zzzz", "task": "a"},
                ]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["requeued"].clone(), body["failed"].clone()),
            (json!(1), json!(2))
        );
        let results = body["results"].as_array().expect("results");
        let outcome = |run: &str, task: &str| {
            results
                .iter()
                .find(|r| r["run"] == run && r["task"] == task)
                .unwrap_or_else(|| panic!("no result for {run} {task}: {body}"))
                .clone()
        };
        assert_eq!(outcome(&r2, "a")["status"], "requeued");
        assert_eq!(outcome(&r2, "a")["reopened"], json!(["a", "b"]));
        assert_eq!(outcome(&r2, "b")["error"]["code"], "conflict");
        assert_eq!(outcome("zzzz", "a")["error"]["code"], "not_found");
        s.wait_for(&r2, |d| {
            d["state"] == "failed" && d["tasks"][1]["state"] == "succeeded"
        })
        .await;

        // Everything of a pipeline at once.
        std::fs::write(s.dir.path().join("fixed-c"), "").expect("fix c");
        let (status, body) = s
            .call(
                "POST",
                "/api/v1/dead-letters/requeue",
                Some(json!({"pipeline": "default/f"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["requeued"], 2, "{body}");
        for run in [&r1, &r2] {
            s.wait_for(run, |d| d["state"] == "succeeded").await;
        }
        assert_eq!(letters(&s).await, vec![]);
        let (status, err) = s.call("POST", &requeue(&r1, "c"), None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            err["error"]["message"],
            format!("task `c` of run {r1} is not a dead letter: the run is succeeded")
        );
        let (status, _) = s
            .call(
                "POST",
                "/api/v1/dead-letters/requeue",
                Some(json!({"pipeline": "f", "items": []})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

mod time_filters_and_pages {
    use super::*;

    #[tokio::test]
    async fn runs_between_two_instants() {
        let s = Server::new(&[("a.yaml", HELLO)]).await;
        let (_, run) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/hello/runs",
                Some(json!({})),
            )
            .await;
        let id = run["id"].as_str().expect("id").to_owned();
        let created = run["created_at"].as_i64().expect("created_at");
        let at = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .expect("instant")
                .to_string()
        };
        let ids = |page: &Value| -> Vec<String> {
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let query = |since: i64, until: i64| {
            format!(
                "/api/v1/runs?since={}&until={}",
                at(since).replace('+', "%2B"),
                at(until).replace('+', "%2B")
            )
        };
        let (status, page) = s.call("GET", &query(created, created + 1), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(ids(&page), vec![id.clone()], "since is inclusive");
        let (_, page) = s.call("GET", &query(created + 1, created + 10), None).await;
        assert!(ids(&page).is_empty());
        let (_, page) = s.call("GET", &query(created - 10, created), None).await;
        assert!(ids(&page).is_empty(), "until is exclusive");
        let (_, page) = s
            .call(
                "GET",
                "/api/v1/runs?since=2026-01-01T00:00:00%2B02:00",
                None,
            )
            .await;
        assert_eq!(ids(&page), vec![id], "offsets are understood");

        let (status, err) = s.call("GET", "/api/v1/runs?since=yesterday", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("`since` is not an RFC 3339 instant: `yesterday`"),
            "{message}"
        );
        let (status, _) = s.call("GET", "/api/v1/runs?until=2026-13-01", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn versions_page_through() {
        let s = Server::new(&[("a.yaml", HELLO)]).await;
        for n in 1..=3 {
            std::fs::write(
                s.dir.path().join("pipelines/a.yaml"),
                format!("{HELLO}# edit {n}\n"),
            )
            .expect("edit");
            s.call("POST", "/api/v1/reload", None).await;
        }
        let url = "/api/v1/pipelines/default/hello/versions";
        let (_, all) = s.call("GET", url, None).await;
        let hashes: Vec<String> = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|v| v["hash"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(hashes.len(), 4);
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let uri = match &cursor {
                Some(c) => format!("{url}?limit=3&cursor={c}"),
                None => format!("{url}?limit=3"),
            };
            let (status, page) = s.call("GET", &uri, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            paged.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|v| v["hash"].as_str().unwrap_or_default().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(paged, hashes);
        let (status, err) = s.call("GET", &format!("{url}?cursor=nope"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("invalid cursor `nope`"),
            "{err}"
        );
        let unknown = "0".repeat(64);
        let (status, err) = s
            .call("GET", &format!("{url}?cursor={unknown}"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a hash of no version of it: {err}"
        );
    }

    #[tokio::test]
    async fn pipelines_page_one_at_a_time() {
        let s = Server::new(&[("a.yaml", HELLO), ("b.yaml", GATED), ("c.yaml", BROKEN)]).await;
        let mut seen = Vec::new();
        let mut uri = "/api/v1/pipelines?limit=1".to_owned();
        loop {
            let (_, page) = s.call("GET", &uri, None).await;
            let items = page["items"].as_array().expect("items");
            assert_eq!(items.len(), 1, "{page}");
            seen.push(items[0]["path"].as_str().unwrap_or_default().to_owned());
            match page["next_cursor"].as_str() {
                Some(c) => uri = format!("/api/v1/pipelines?limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, vec!["a.yaml", "b.yaml", "c.yaml"]);
    }
}

mod concurrency {
    use baton_server::scheduler::Scheduler;
    use jiff::Timestamp;

    use super::*;

    /// A pipeline whose runs stay active until their gate is approved.
    fn gated(name: &str, concurrency: &str) -> String {
        format!(
            "name: {name}\nconcurrency: {concurrency}\nschedule:\n  - cron: \"0 * * * *\"\ntasks:\n  gate:\n    approval: {{ message: go? }}\n    run: \"true\"\n"
        )
    }

    async fn trigger(s: &Server, pipeline: &str) -> (StatusCode, Value) {
        s.call(
            "POST",
            &format!("/api/v1/pipelines/default/{pipeline}/runs"),
            Some(json!({})),
        )
        .await
    }

    fn id(run: &Value) -> String {
        run["id"].as_str().expect("id").to_owned()
    }

    async fn approve(s: &Server, run: &str) {
        let (status, body) = s
            .call(
                "POST",
                &format!("/api/v1/runs/{run}/tasks/gate/approve"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    fn gate_waits(d: &Value) -> bool {
        d["tasks"][0]["state"] == "waiting_approval"
    }

    #[tokio::test]
    async fn queue_holds_runs_queued_until_a_slot_frees() {
        let s = Server::new(&[(
            "q.yaml",
            &gated("q", "{ max_active_runs: 1, overlap: queue }"),
        )])
        .await;
        let (status, first) = trigger(&s, "q").await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let first = id(&first);
        s.wait_for(&first, gate_waits).await;
        let (status, second) = trigger(&s, "q").await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        assert_eq!(second["state"], "queued");
        assert_eq!(second["waiting_for_admission"], true, "{second}");
        assert!(second.get("admission_group").is_none(), "{second}");
        let second = id(&second);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, waiting) = s.call("GET", &format!("/api/v1/runs/{second}"), None).await;
        assert_eq!(waiting["state"], "queued", "{waiting}");
        assert_eq!(waiting["waiting_for_admission"], true, "{waiting}");
        assert_eq!(waiting["tasks"][0]["state"], "pending");
        approve(&s, &first).await;
        s.wait_for(&first, |d| d["state"] == "succeeded").await;
        // The first run's end frees the slot: the second starts without waiting for a poll.
        let started = Instant::now();
        let running = s.wait_for(&second, gate_waits).await;
        assert!(started.elapsed() < Duration::from_millis(1_500));
        assert_eq!(running["waiting_for_admission"], false, "{running}");
        approve(&s, &second).await;
        s.wait_for(&second, |d| d["state"] == "succeeded").await;
    }

    #[tokio::test]
    async fn skip_refuses_a_run_with_409_and_a_schedule_tick_passes() {
        let s = Server::new(&[("k.yaml", &gated("k", "{ overlap: skip }"))]).await;
        let (_, first) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/k/runs",
                Some(json!({"idempotency_key": "once"})),
            )
            .await;
        let first = id(&first);
        s.wait_for(&first, gate_waits).await;
        let (status, err) = trigger(&s, "k").await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(err["error"]["code"], "concurrency_limit");
        assert_eq!(err["error"]["details"]["active_runs"], json!([first]));
        assert_eq!(
            err["error"]["message"],
            "pipeline `default/k` already has 1 active run(s), its `max_active_runs`, and its `overlap` is `skip`"
        );
        // The same idempotency key still answers with its run.
        let (status, again) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/k/runs",
                Some(json!({"idempotency_key": "once"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(id(&again), first);
        // A tick while the run is active is consumed without a run, and without an error.
        let sched = Scheduler::new(s.state.clone(), 10);
        let at = |t: &str| t.parse::<Timestamp>().expect("timestamp");
        sched
            .tick(at("2026-01-01T00:30:00Z"))
            .await
            .expect("first sight");
        let skipped = sched.tick(at("2026-01-01T01:00:10Z")).await.expect("tick");
        assert!(skipped.is_empty());
        approve(&s, &first).await;
        s.wait_for(&first, |d| d["state"] == "succeeded").await;
        assert!(
            sched
                .tick(at("2026-01-01T01:00:30Z"))
                .await
                .expect("same tick")
                .is_empty(),
            "a skipped tick is not run later"
        );
        let next = sched.tick(at("2026-01-01T02:00:10Z")).await.expect("tick");
        assert_eq!(next.len(), 1, "the next tick runs once the slot is free");
        let (_, page) = s.call("GET", "/api/v1/runs?pipeline=default/k", None).await;
        assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn cancel_previous_replaces_the_active_and_waiting_runs() {
        let s = Server::new(&[(
            "c.yaml",
            &gated("c", "{ max_active_runs: 1, overlap: cancel_previous }"),
        )])
        .await;
        let (_, first) = trigger(&s, "c").await;
        let first = id(&first);
        s.wait_for(&first, gate_waits).await;
        let (status, second) = trigger(&s, "c").await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        let second = id(&second);
        s.wait_for(&first, |d| d["state"] == "cancelled").await;
        s.wait_for(&second, gate_waits).await;
        // Two more at once: the third waits behind the second, then the fourth replaces both;
        // the third never starts a task.
        let (_, third) = trigger(&s, "c").await;
        let (_, fourth) = trigger(&s, "c").await;
        let (third, fourth) = (id(&third), id(&fourth));
        s.wait_for(&second, |d| d["state"] == "cancelled").await;
        let third_doc = s.wait_for(&third, |d| d["state"] == "cancelled").await;
        assert_eq!(third_doc["attempts"], json!([]));
        assert_eq!(third_doc["tasks"][0]["state"], "cancelled");
        s.wait_for(&fourth, gate_waits).await;
        approve(&s, &fourth).await;
        s.wait_for(&fourth, |d| d["state"] == "succeeded").await;
    }

    #[tokio::test]
    async fn cancelling_a_waiting_run_ends_it_without_starting_it() {
        let s = Server::new(&[("w.yaml", &gated("w", "{ max_active_runs: 1 }"))]).await;
        let (_, first) = trigger(&s, "w").await;
        let first = id(&first);
        s.wait_for(&first, gate_waits).await;
        let (_, second) = trigger(&s, "w").await;
        let second = id(&second);
        let (status, _) = s
            .call("POST", &format!("/api/v1/runs/{second}/cancel"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let doc = s.wait_for(&second, |d| d["state"] == "cancelled").await;
        assert_eq!(doc["attempts"], json!([]));
        // Draining does not wait for runs waiting for admission.
        let (_, third) = trigger(&s, "w").await;
        assert_eq!(third["state"], "queued");
        tokio::time::timeout(Duration::from_secs(10), s.state.runner.drain())
            .await
            .expect("drain returns");
        let (_, doc) = s
            .call("GET", &format!("/api/v1/runs/{}", id(&third)), None)
            .await;
        assert_eq!(doc["state"], "queued", "left for the next start");
    }

    const DAILY: &str = "name: daily\nparams:\n  who: { type: string, default: world }\nschedule:\n  - cron: \"0 0 * * *\"\n    timezone: UTC\ntasks:\n  a:\n    run: echo {{ run.logical_date }} {{ params.who }} >> ../dates\n";

    async fn wait_done(s: &Server, backfill: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, doc) = s
                .call("GET", &format!("/api/v1/backfills/{backfill}"), None)
                .await;
            if doc["done"] == true {
                return doc;
            }
            assert!(Instant::now() < deadline, "timed out; last: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    #[tokio::test]
    async fn backfill_runs_every_tick_once_with_its_logical_date() {
        let s = Server::new(&[("d.yaml", DAILY)]).await;
        let body = json!({
            "start": "2026-01-01", "end": "2026-01-03", "parallelism": 2,
            "params": {"who": "bf"}, "idempotency_key": "bf-1",
        });
        let (status, created) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/daily/backfill",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["runs"], 3);
        assert_eq!(created["parallelism"], 2);
        let bf = created["id"].as_str().expect("id").to_owned();
        assert!(bf.starts_with("bf_"));
        let done = wait_done(&s, &bf).await;
        assert_eq!(done["counts"]["succeeded"], 3, "{done}");
        let mut dates: Vec<String> = std::fs::read_to_string(s.dir.path().join("dates"))
            .expect("dates")
            .lines()
            .map(str::to_owned)
            .collect();
        dates.sort();
        assert_eq!(
            dates,
            vec![
                "2026-01-01T00:00:00+00:00 bf",
                "2026-01-02T00:00:00+00:00 bf",
                "2026-01-03T00:00:00+00:00 bf",
            ]
        );
        let (_, runs) = s
            .call("GET", "/api/v1/runs?pipeline=default/daily", None)
            .await;
        let run = &runs["items"][0];
        assert_eq!(run["trigger"], "backfill");
        assert_eq!(run["backfill_id"], bf.as_str());
        // The same key returns the same backfill, and creates no run.
        let (status, again) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/daily/backfill",
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["id"], bf.as_str());
        let (_, runs) = s
            .call("GET", "/api/v1/runs?pipeline=default/daily", None)
            .await;
        assert_eq!(runs["items"].as_array().map(Vec::len), Some(3));
        let (_, list) = s
            .call("GET", "/api/v1/backfills?pipeline=default/daily", None)
            .await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        let (_, none) = s
            .call("GET", "/api/v1/backfills?pipeline=other", None)
            .await;
        assert_eq!(none["items"], json!([]));
        let (status, _) = s.call("GET", "/api/v1/backfills/bf_nope", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn backfill_requests_that_make_no_sense_are_refused() {
        let s = Server::new(&[("d.yaml", DAILY), ("h.yaml", HELLO)]).await;
        let post = |pipeline: &'static str, body: Value| {
            let s = &s;
            async move {
                s.call(
                    "POST",
                    &format!("/api/v1/pipelines/default/{pipeline}/backfill"),
                    Some(body),
                )
                .await
            }
        };
        let (status, err) =
            post("hello", json!({"start": "2026-01-01", "end": "2026-01-02"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "invalid_backfill");
        assert!(
            err["error"]["message"]
                .as_str()
                .expect("message")
                .starts_with("pipeline `default/hello` has no schedule to backfill"),
            "{err}"
        );
        let (status, err) =
            post("daily", json!({"start": "2026-01-05", "end": "2026-01-02"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err["error"]["message"],
            "the range ends (`2026-01-02`) before it starts (`2026-01-05`)"
        );
        let (status, err) =
            post("daily", json!({"start": "2000-01-01", "end": "2040-01-01"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            err["error"]["message"],
            "the range holds more than 10000 ticks of `0 0 * * *`\n(hint: narrow the range, or split it into several backfills)"
        );
        let (status, err) = post(
            "daily",
            json!({"start": "2026-01-01", "end": "2026-01-02", "params": {"nope": 1}}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "invalid_params");
        let (status, err) = post("daily", json!({"start": "soon", "end": "2026-01-02"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        let (_, runs) = s.call("GET", "/api/v1/runs", None).await;
        assert_eq!(
            runs["items"],
            json!([]),
            "a refused backfill creates nothing"
        );
    }

    #[tokio::test]
    async fn a_backfill_keeps_to_its_parallelism_and_can_be_cancelled() {
        let s = Server::new(&[("g.yaml", &gated("g", "{ max_active_runs: 5 }"))]).await;
        let (status, created) = s
            .call(
                "POST",
                "/api/v1/pipelines/default/g/backfill",
                Some(json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:00:00Z", "parallelism": 2})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["runs"], 4);
        let bf = created["id"].as_str().expect("id").to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, doc) = s
                .call("GET", &format!("/api/v1/backfills/{bf}"), None)
                .await;
            if doc["counts"]["running"] == 2 {
                assert_eq!(doc["counts"]["queued"], 2, "{doc}");
                break;
            }
            assert!(Instant::now() < deadline, "timed out: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, doc) = s
            .call("GET", &format!("/api/v1/backfills/{bf}"), None)
            .await;
        assert_eq!(
            doc["counts"]["running"], 2,
            "never more than its parallelism"
        );
        let (status, cancel) = s
            .call("POST", &format!("/api/v1/backfills/{bf}/cancel"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{cancel}");
        assert_eq!(cancel["cancelled"], 2);
        let done = wait_done(&s, &bf).await;
        assert_eq!(done["counts"]["cancelled"], 4, "{done}");
        let (status, _) = s
            .call("POST", &format!("/api/v1/backfills/{bf}/cancel"), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
    }
}

/// A sub-pipeline task's child run starts like a manual run (under its pipeline's
/// `concurrency`), records its parent, and the parent's task ends as the child does.
#[tokio::test]
async fn a_sub_pipeline_task_starts_a_child_run_under_its_concurrency() {
    const CHILD: &str = "name: child\nnamespace: ops\nconcurrency: { max_active_runs: 1 }\nparams:\n  who: { type: string }\ntasks:\n  gate:\n    approval: { message: go? }\n    run: echo {{ params.who }}\n";
    const PARENT: &str = "name: parent\nnamespace: ops\ntasks:\n  call:\n    pipeline: child\n    params:\n      who: \"{{ run.trigger }}\"\n";
    let s = Server::new(&[("child.yaml", CHILD), ("parent.yaml", PARENT)]).await;
    let trigger = |pipeline: &'static str, params: Value| {
        let s = &s;
        async move {
            let (status, run) = s
                .call(
                    "POST",
                    &format!("/api/v1/pipelines/ops/{pipeline}/runs"),
                    Some(json!({ "params": params })),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{run}");
            run["id"].as_str().expect("id").to_owned()
        }
    };
    let approve = |run: String| {
        let s = &s;
        async move {
            let (status, body) = s
                .call(
                    "POST",
                    &format!("/api/v1/runs/{run}/tasks/gate/approve"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    // A manual run of the child holds its one slot.
    let manual = trigger("child", json!({"who": "me"})).await;
    s.wait_for(&manual, |d| d["tasks"][0]["state"] == "waiting_approval")
        .await;
    let parent = trigger("parent", json!({})).await;
    // The run's tasks and its children are read one after the other, so a read between the
    // commit of the attempt and the child's creation can show the task still pending.
    let doc = s
        .wait_for(&parent, |d| {
            d["children"].as_array().is_some_and(|c| !c.is_empty())
                && d["tasks"][0]["state"] != "pending"
        })
        .await;
    assert_eq!(doc["tasks"][0]["state"], "running");
    let child = doc["children"][0]["id"].as_str().expect("child").to_owned();
    let (_, record) = s.call("GET", &format!("/api/v1/runs/{child}"), None).await;
    assert_eq!(
        record["parent"],
        json!({"run": parent, "task": "call", "attempt": 1})
    );
    assert_eq!(record["trigger"], "parent");
    assert_eq!(record["params"], json!({"who": "manual"}));
    assert_eq!(record["state"], "queued", "waits for the slot: {record}");
    // The parent's child is listed with the runs, parent and all.
    let (_, list) = s.call("GET", "/api/v1/runs?pipeline=ops/child", None).await;
    assert_eq!(list["items"][0]["parent"]["run"], json!(parent));

    approve(manual).await;
    s.wait_for(&child, |d| d["tasks"][0]["state"] == "waiting_approval")
        .await;
    approve(child.clone()).await;
    let done = s.wait_for(&parent, |d| d["state"] == "succeeded").await;
    assert_eq!(done["tasks"][0]["state"], "succeeded");
    assert_eq!(done["children"][0]["state"], "succeeded");
}

/// What a page on another site can make a visitor's browser send, and what DNS rebinding
/// reaches: refused, with nothing changed; the same requests from baton's own origin, or
/// from clients that send no `Origin`, work.
mod cross_site {
    use super::*;
    use baton_server::guard::AllowedHosts;

    const HOST: (&str, &str) = ("host", "127.0.0.1:8080");
    const EVIL: (&str, &str) = ("origin", "https://evil.example");
    const OWN: (&str, &str) = ("origin", "http://127.0.0.1:8080");
    const FAILS: &str = "name: f\ntasks:\n  a:\n    run: \"false\"\n";
    const NIGHTLY: &str =
        "name: nightly\nschedule:\n  - cron: \"0 3 * * *\"\ntasks:\n  a:\n    run: \"true\"\n";

    async fn server() -> Server {
        let mut s = Server::new(&[("g.yaml", GATED), ("f.yaml", FAILS), ("n.yaml", NIGHTLY)]).await;
        s.state = s.state.clone().with_allowed_hosts(AllowedHosts::for_listen(
            "127.0.0.1:8080".parse().expect("addr"),
            &[],
        ));
        s
    }

    /// A body-less request, as a form or `fetch(url, {mode: 'no-cors'})` sends it.
    async fn send(
        s: &Server,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let a = support::request(&s.state, method, uri, headers, None).await;
        assert!(
            a.headers.get("access-control-allow-origin").is_none(),
            "{method} {uri} sent CORS headers: {:?}",
            a.headers
        );
        (a.status, a.json())
    }

    async fn started(s: &Server, pipeline: &str, state: &str) -> String {
        let (_, run) = s
            .call(
                "POST",
                &format!("/api/v1/pipelines/{pipeline}/runs"),
                Some(json!({})),
            )
            .await;
        let id = run["id"].as_str().expect("id").to_owned();
        s.wait_for(&id, |d| {
            d["tasks"][0]["state"] == state || d["state"] == state
        })
        .await;
        id
    }

    fn refused_as_cross_site((status, body): (StatusCode, Value)) {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "cross_site_request", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cross-site request refused: ")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn state_changes_from_another_site_are_refused_and_change_nothing() {
        let s = server().await;
        let gated = started(&s, "ops/gated", "waiting_approval").await;
        let failed = started(&s, "default/f", "failed").await;
        let approve = format!("/api/v1/runs/{gated}/tasks/release/approve");
        let attacks: Vec<(String, &[(&str, &str)])> = vec![
            (approve.clone(), &[HOST, EVIL]),
            (approve.clone(), &[HOST, ("origin", "null")]),
            (approve.clone(), &[HOST, ("sec-fetch-site", "cross-site")]),
            (
                approve.clone(),
                &[HOST, ("referer", "https://evil.example/page")],
            ),
            (
                format!("/api/v1/runs/{gated}/tasks/release/reject"),
                &[HOST, EVIL],
            ),
            (format!("/api/v1/runs/{gated}/cancel"), &[HOST, EVIL]),
            (format!("/api/v1/runs/{failed}/retry"), &[HOST, EVIL]),
            ("/api/v1/reload".to_owned(), &[HOST, EVIL]),
            (
                "/api/v1/pipelines/default/nightly/pause".to_owned(),
                &[HOST, EVIL],
            ),
            ("/api/v1/pipelines/ops/gated/runs".to_owned(), &[HOST, EVIL]),
            (
                "/api/v1/pipelines/ops/gated/webhook".to_owned(),
                &[HOST, EVIL],
            ),
        ];
        for (uri, headers) in &attacks {
            refused_as_cross_site(send(&s, "POST", uri, headers).await);
        }
        refused_as_cross_site(send(&s, "DELETE", "/api/v1/pools/gpu", &[HOST, EVIL]).await);
        // The UI's forms too: an HTML page, before any handler.
        let a = support::request(
            &s.state,
            "POST",
            &format!("/runs/{gated}/cancel"),
            &[HOST, EVIL],
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert!(a.content_type.is_some_and(|c| c.starts_with("text/html")));

        let (_, doc) = s.call("GET", &format!("/api/v1/runs/{gated}"), None).await;
        assert_eq!(doc["state"], "running", "{doc}");
        assert_eq!(doc["tasks"][0]["state"], "waiting_approval", "{doc}");
        let (_, doc) = s.call("GET", &format!("/api/v1/runs/{failed}"), None).await;
        assert_eq!(doc["state"], "failed", "{doc}");
        assert_eq!(doc["tasks"][0]["attempts"], 1, "{doc}");
        let (_, doc) = s
            .call("GET", "/api/v1/pipelines/default/nightly", None)
            .await;
        assert_eq!(doc["paused"], false, "{doc}");
        let (_, runs) = s.call("GET", "/api/v1/runs", None).await;
        assert_eq!(runs["items"].as_array().map(Vec::len), Some(2), "{runs}");

        // From baton's own pages, and from clients that send no `Origin`, they work.
        let (status, body) = send(&s, "POST", &approve, &[HOST, OWN]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        s.wait_for(&gated, |d| d["state"] == "succeeded").await;
        let (status, body) = send(
            &s,
            "POST",
            "/api/v1/pipelines/default/nightly/pause",
            &[
                ("host", "localhost:8080"),
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://localhost:8080"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = send(&s, "POST", "/api/v1/reload", &[HOST]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) =
            send(&s, "POST", &format!("/api/v1/runs/{failed}/retry"), &[HOST]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let again = started(&s, "ops/gated", "waiting_approval").await;
        let (status, body) = send(&s, "POST", &format!("/api/v1/runs/{again}/cancel"), &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    #[tokio::test]
    async fn rebinding_reaches_nothing_but_the_probes() {
        let s = server().await;
        let rebound: &[(&str, &str)] = &[("host", "evil.example:8080")];
        for uri in ["/api/v1/runs", "/api/v1/pipelines", "/api/v1/openapi.json"] {
            let (status, body) = send(&s, "GET", uri, rebound).await;
            assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{uri}: {body}");
            assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");
            assert_eq!(
                body["error"]["message"],
                "host `evil.example:8080` is not allowed\n(hint: add it to `[server] allowed_hosts` in baton.toml, or `--allowed-host`)"
            );
        }
        // Another port of an allowed name is another origin.
        let (status, _) = send(&s, "GET", "/api/v1/runs", &[("host", "localhost:3000")]).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        let a = support::request(&s.state, "GET", "/", rebound, None).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST);
        assert!(a.content_type.is_some_and(|c| c.starts_with("text/html")));
        assert!(a.text.contains("is not allowed"), "{}", a.text);
        // Probes and scrapes address the server by IP.
        for uri in ["/healthz", "/readyz", "/metrics"] {
            let (status, body) = send(&s, "GET", uri, &[("host", "10.1.2.3:8080")]).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        }
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "localhost",
        ] {
            let (status, body) = send(&s, "GET", "/api/v1/runs", &[("host", host)]).await;
            assert_eq!(status, StatusCode::OK, "{host}: {body}");
        }
        // A preflight from another site learns nothing that would let it read.
        let a = support::request(
            &s.state,
            "OPTIONS",
            "/api/v1/runs",
            &[HOST, EVIL, ("access-control-request-method", "POST")],
            None,
        )
        .await;
        assert!(
            a.headers
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{:?}",
            a.headers
        );
    }
}
