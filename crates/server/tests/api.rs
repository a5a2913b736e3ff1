//! The API driven through the router, without a socket.

mod support;

#[path = "api/bounds.rs"]
mod bounds;
#[path = "api/run_tasks.rs"]
mod run_tasks;

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

/// A `PUT` answers with the pool it set, even when a `DELETE` of it lands right after the
/// write: it used to read the pool back afterwards and answer an undocumented 404 (found by
/// schemathesis, whose workers send both at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_put_beside_a_delete_answers_with_what_it_set() {
    let s = Server::new(&[]).await;
    for i in 0..200 {
        let slots = i % 7 + 1;
        let (put, delete) = tokio::join!(
            s.call("PUT", "/api/v1/pools/race", Some(json!({"slots": slots}))),
            s.call("DELETE", "/api/v1/pools/race", None),
        );
        assert_eq!(put.0, StatusCode::OK, "round {i}: {}", put.1);
        assert_eq!(put.1["slots"], slots, "round {i}: {}", put.1);
        assert!(
            matches!(delete.0, StatusCode::OK | StatusCode::NOT_FOUND),
            "round {i}: {delete:?}"
        );
    }
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

#[path = "api/scheduling.rs"]
mod scheduling;

#[path = "api/webhooks.rs"]
mod webhooks;

#[path = "api/upstream_triggers.rs"]
mod upstream_triggers;

#[path = "api/dead_letters.rs"]
mod dead_letters;

#[path = "api/time_filters_and_pages.rs"]
mod time_filters_and_pages;

#[path = "api/concurrency.rs"]
mod concurrency;

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
    // commit of the attempt and the child's creation can show the task still pending or
    // queued beside its child.
    let doc = s
        .wait_for(&parent, |d| {
            d["children"].as_array().is_some_and(|c| !c.is_empty())
                && d["tasks"][0]["state"] == "running"
        })
        .await;
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
#[path = "api/cross_site.rs"]
mod cross_site;
