//! `http:` steps through the real dispatcher, against a real HTTP server on loopback: the
//! request as rendered, JSON outputs passed downstream, retries with one idempotency key, the
//! 202-and-poll pattern, signatures, and the failures (a wrong status, a timeout, nobody
//! listening, an answer that is not the JSON object `outputs_from` needs).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use baton_core::ids::RunId;
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::executor::{Executors, HttpExecutor, LocalExecutor};
use baton_engine::{Engine, Options, Stop};
use baton_store::Store;

/// What the server saw: each request's path, headers and body.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, HeaderMap, Bytes)>,
    /// Per path, how many times it was asked.
    counts: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Seen>>;

fn note(seen: &Shared, path: &str, headers: &HeaderMap, body: &Bytes) -> usize {
    let mut s = seen.lock().expect("lock");
    s.requests
        .push((path.to_owned(), headers.clone(), body.clone()));
    let n = s.counts.entry(path.to_owned()).or_default();
    *n += 1;
    *n
}

async fn jobs(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    note(&seen, "/jobs", &headers, &body);
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    axum::Json(serde_json::json!({
        "id": format!("job-{}", sent["region"].as_str().unwrap_or("?")),
        "rows": 42,
        "undeclared": "ignored",
    }))
    .into_response()
}

/// 503 the first time, then 200.
async fn flaky(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if note(&seen, "/flaky", &headers, &body) == 1 {
        return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
    }
    "fine".into_response()
}

async fn accepted(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    note(&seen, "/accepted", &headers, &body);
    (StatusCode::ACCEPTED, [("location", "status/7")], "queued").into_response()
}

/// Still working twice, then done.
async fn status(
    State(seen): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let n = note(&seen, &format!("/status/{id}"), &headers, &Bytes::new());
    if n < 3 {
        return (StatusCode::ACCEPTED, [("location", "/status/7")], "working").into_response();
    }
    axum::Json(serde_json::json!({ "state": "done", "polls": n })).into_response()
}

async fn slow() -> &'static str {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    "late"
}

async fn broken() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "database on fire").into_response()
}

async fn list() -> Response {
    axum::Json(serde_json::json!([1, 2, 3])).into_response()
}

/// A server on a free loopback port; its base URL.
async fn server(seen: Shared) -> String {
    let app = Router::new()
        .route("/jobs", post(jobs))
        .route("/flaky", get(flaky))
        .route("/accepted", post(accepted))
        .route("/status/{id}", get(status))
        .route("/slow", get(slow))
        .route("/broken", get(broken))
        .route("/list", get(list))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn drive(
    store: &Arc<dyn Store>,
    run: &RunId,
    opts: &Options,
    http: HttpExecutor,
) -> RunState {
    let executors = Executors::new(Arc::new(LocalExecutor::default()), http);
    support::drive_on(store, run, opts, Arc::new(executors)).await
}

#[tokio::test]
async fn requests_are_rendered_and_json_answers_become_outputs() {
    let seen = Shared::default();
    let base = server(Arc::clone(&seen)).await;
    let source = format!(
        r#"name: calls
params:
  region: {{ type: string, default: eu }}
tasks:
  call:
    http:
      url: {base}/jobs
      headers:
        Authorization: "Bearer {{{{ params.region }}}}-token"
      body:
        region: "{{{{ params.region }}}}"
        quote: "it's \"{{{{ params.region }}}}\""
        count: 3
    outputs_from: json
    outputs: [id, rows]
  use:
    needs: [call]
    outputs: [got]
    run: echo "got={{{{ tasks.call.outputs.id }}}}/{{{{ tasks.call.outputs.rows }}}}" > "$BATON_OUTPUTS"
"#
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    assert_eq!(
        drive(&store, &run, &opts, HttpExecutor::default()).await,
        RunState::Succeeded
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let call = support::task(&tasks, "call");
    assert_eq!(call.state, TaskState::Succeeded);
    let outputs = call.outputs.clone().expect("outputs");
    assert_eq!(outputs["id"], "job-eu");
    assert_eq!(outputs["rows"], "42");
    assert!(!outputs.contains_key("undeclared"), "{outputs:?}");
    assert_eq!(
        support::task(&tasks, "use")
            .outputs
            .clone()
            .expect("outputs")["got"],
        "job-eu/42"
    );

    let s = seen.lock().expect("lock");
    let (_, headers, body) = &s.requests[0];
    let body: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    // Every string rendered on its own: the quotes in a value stay inside it.
    assert_eq!(
        body,
        serde_json::json!({ "region": "eu", "quote": "it's \"eu\"", "count": 3 })
    );
    assert_eq!(headers["authorization"], "Bearer eu-token");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["idempotency-key"], format!("{run}:call").as_str());
    assert_eq!(headers["x-baton-attempt"], "1");
    assert!(
        !headers.contains_key("x-baton-signature"),
        "signed without a secret"
    );
}

#[tokio::test]
async fn a_failed_call_is_retried_with_the_same_idempotency_key() {
    let seen = Shared::default();
    let base = server(Arc::clone(&seen)).await;
    let source = format!(
        "name: retried\ntasks:\n  call:\n    http: {{ url: {base}/flaky }}\n    retries: {{ limit: 1, delay: 10ms }}\n"
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    assert_eq!(
        drive(&store, &run, &opts, HttpExecutor::default()).await,
        RunState::Succeeded
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].state, AttemptState::Failed);
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("answered 503 Service Unavailable, expected 2xx"),
        "{error}"
    );
    let s = seen.lock().expect("lock");
    let keys: Vec<_> = s
        .requests
        .iter()
        .map(|(_, h, _)| h["idempotency-key"].clone())
        .collect();
    assert_eq!(keys[0], keys[1]);
    let attempts: Vec<_> = s
        .requests
        .iter()
        .map(|(_, h, _)| h["x-baton-attempt"].clone())
        .collect();
    assert_eq!(attempts, ["1", "2"]);
}

#[tokio::test]
async fn an_accepted_request_is_polled_until_done() {
    let seen = Shared::default();
    let base = server(Arc::clone(&seen)).await;
    let source = format!(
        "name: polled\ntasks:\n  call:\n    http:\n      url: {base}/accepted\n      method: POST\n      poll: {{ interval: 20ms }}\n    outputs_from: json\n    outputs: [state, polls]\n"
    );
    let (dir, store, run, opts) = support::created(&source).await;
    assert_eq!(
        drive(&store, &run, &opts, HttpExecutor::default()).await,
        RunState::Succeeded
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let outputs = support::task(&tasks, "call")
        .outputs
        .clone()
        .expect("outputs");
    assert_eq!(outputs["state"], "done");
    assert_eq!(outputs["polls"], "3");
    // The relative `Location` resolved against the request's URL; each answer in the log.
    let log = support::first_log(&store, dir.path(), &run).await;
    assert!(log.contains(&format!("> GET {base}/status/7")), "{log}");
    assert_eq!(log.matches("< 202 Accepted").count(), 3, "{log}");
    assert!(log.contains("< 200 OK"), "{log}");
}

#[tokio::test]
async fn requests_are_signed_when_a_secret_is_set() {
    let seen = Shared::default();
    let base = server(Arc::clone(&seen)).await;
    let source = format!(
        "name: signed\ntasks:\n  call:\n    http:\n      url: {base}/jobs\n      body: '{{\"region\": \"us\"}}'\n      headers: {{ Content-Type: application/json }}\n"
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    let secret = b"0123456789abcdef0123456789abcdef".to_vec();
    assert_eq!(
        drive(&store, &run, &opts, HttpExecutor::new(Some(secret.clone()))).await,
        RunState::Succeeded
    );
    let s = seen.lock().expect("lock");
    let (_, headers, body) = &s.requests[0];
    assert_eq!(&body[..], br#"{"region": "us"}"#);
    let timestamp = headers["x-baton-timestamp"].to_str().expect("ascii");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(now.abs_diff(timestamp.parse().expect("seconds")) < 60);
    assert_eq!(
        headers["x-baton-signature"].to_str().expect("ascii"),
        format!(
            "v1={}",
            baton_engine::executor::sign(&secret, timestamp, body)
        )
    );
}

#[tokio::test]
async fn failures_say_what_was_asked_and_what_came_back() {
    let seen = Shared::default();
    let base = server(Arc::clone(&seen)).await;
    // A port nobody listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let source = format!(
        r#"name: failing
params:
  target: {{ type: string, default: not-a-url }}
tasks:
  status:
    http: {{ url: {base}/broken, expect: {{ status: [200, 204] }} }}
  timeout:
    http: {{ url: {base}/slow }}
    timeout: 200ms
  refused:
    http: {{ url: "http://{closed}/x" }}
  not_an_object:
    http: {{ url: {base}/list }}
    outputs_from: json
    outputs: [x]
  rendered_badly:
    http: {{ url: "{{{{ params.target }}}}" }}
"#
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    assert_eq!(
        drive(&store, &run, &opts, HttpExecutor::default()).await,
        RunState::Failed
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let error = |id: &str| support::task(&tasks, id).error.clone().unwrap_or_default();
    assert_eq!(
        error("status"),
        format!("`GET {base}/broken` answered 500 Internal Server Error, expected 200 or 204")
    );
    assert!(
        error("timeout").starts_with("timed out after 200ms"),
        "{}",
        error("timeout")
    );
    assert!(
        error("refused").starts_with(&format!("`GET http://{closed}/x` failed: ")),
        "{}",
        error("refused")
    );
    assert_eq!(
        error("not_an_object"),
        format!(
            "`outputs_from: json` needs a JSON object, and `GET {base}/list` answered an array"
        )
    );
    assert!(
        error("rendered_badly").contains("is not a URL"),
        "{}",
        error("rendered_badly")
    );
}

#[tokio::test]
async fn cancelling_a_run_drops_its_request() {
    let seen = Shared::default();
    let base = server(Arc::clone(&seen)).await;
    let source = format!("name: cancelled\ntasks:\n  call:\n    http: {{ url: {base}/slow }}\n");
    let (_dir, store, run, opts) = support::created(&source).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let executors = Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default());
    let engine = Engine::new(Arc::clone(&store), Arc::new(executors), opts.clone());
    let driven = tokio::spawn({
        let run = run.clone();
        async move { engine.execute(&run, stop_rx).await }
    });
    // Cancelled once the request is out, not before.
    while store.attempts(&run).await.expect("attempts").is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let asked = std::time::Instant::now();
    stop.send(Some(Stop::Cancel)).expect("send");
    let state = driven.await.expect("join").expect("driven");
    assert_eq!(state, RunState::Cancelled);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "the 30 s request was waited for"
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::Cancelled);
}
