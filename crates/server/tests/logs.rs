//! `GET /api/v1/runs/{id}/tasks/{key}/log`: plain text and server-sent events, through the
//! router without a socket.

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use baton_server::{AppState, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Server {
    _dir: tempfile::TempDir,
    state: AppState,
}

impl Server {
    async fn new(name: &str, text: &str) -> Self {
        let (dir, state) = support::app(&[(name, text)], &[]).await;
        Self { _dir: dir, state }
    }

    async fn request(&self, method: &str, uri: &str, headers: &[(&str, &str)]) -> Response<Body> {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        router(self.state.clone())
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    async fn json(&self, method: &str, uri: &str) -> (StatusCode, Value) {
        let resp = self.request(method, uri, &[]).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn text(&self, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String, String) {
        let resp = self.request("GET", uri, headers).await;
        let status = resp.status();
        let ty = content_type(&resp);
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ty, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn trigger(&self, pipeline: &str) -> String {
        let resp = router(self.state.clone())
            .oneshot(
                Request::post(format!("/api/v1/pipelines/default/{pipeline}/runs"))
                    .header("content-type", "application/json")
                    .body(Body::from("{}"))
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let run: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(status, StatusCode::CREATED, "{run}");
        run["id"].as_str().expect("id").to_owned()
    }

    async fn wait_for(&self, run: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, doc) = self.json("GET", &format!("/api/v1/runs/{run}")).await;
            if pred(&doc) {
                return doc;
            }
            assert!(Instant::now() < deadline, "timed out; last state: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

fn content_type(resp: &Response<Body>) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// One server-sent event as a client sees it.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    name: String,
    id: Option<String>,
    data: String,
}

/// Reads a stream of events as they arrive, the way an EventSource parses them.
struct Events {
    body: Body,
    buf: String,
}

impl Events {
    fn new(resp: Response<Body>) -> Self {
        assert_eq!(content_type(&resp), "text/event-stream");
        Self {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next event; `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut event = Event {
                    name: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut data = Vec::new();
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.name = value.into(),
                        "id" => event.id = Some(value.into()),
                        "data" => data.push(value),
                        _ => {}
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                event.data = data.join("\n");
                return Some(event);
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("an event within 20 s")?
                .expect("frame");
            if let Ok(bytes) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}

const ECHO: &str = "name: echo\ntasks:\n  say:\n    run: printf 'one\\ntwo\\nno newline'\n  quiet:\n    run: \"true\"\n  later:\n    needs: [gate]\n    run: echo later\n  gate:\n    approval: {}\n    run: \"true\"\n";

#[tokio::test]
async fn the_whole_log_as_plain_text_once_the_attempt_ended() {
    let s = Server::new("echo.yaml", ECHO).await;
    let run = s.trigger("echo").await;
    s.wait_for(&run, |d| {
        d["tasks"].as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["key"] == "say" && t["state"] == "succeeded")
        })
    })
    .await;
    let uri = format!("/api/v1/runs/{run}/tasks/say/log");
    let whole = (
        StatusCode::OK,
        "text/plain; charset=utf-8".to_owned(),
        "one\ntwo\nno newline".to_owned(),
    );
    assert_eq!(s.text(&uri, &[]).await, whole);
    assert_eq!(s.text(&format!("{uri}?attempt=1"), &[]).await, whole);
    // A finished attempt is plain text even to a client asking for a stream.
    assert_eq!(
        s.text(&uri, &[("accept", "text/event-stream")]).await,
        whole
    );
    assert_eq!(
        s.text(&format!("{uri}?offset=4"), &[]).await.2,
        "two\nno newline"
    );
    // A task that printed nothing has an empty log, not an error.
    let (status, _, body) = s
        .text(&format!("/api/v1/runs/{run}/tasks/quiet/log"), &[])
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn unknown_runs_tasks_and_attempts_are_404() {
    let s = Server::new("echo.yaml", ECHO).await;
    let run = s.trigger("echo").await;
    s.wait_for(&run, |d| {
        d["tasks"].as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["key"] == "say" && t["state"] == "succeeded")
        })
    })
    .await;
    let (status, err) = s
        .json("GET", "/api/v1/runs/01nosuchrun/tasks/say/log")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["message"], "run `01nosuchrun` not found");
    let (status, err) = s
        .json("GET", &format!("/api/v1/runs/{run}/tasks/nope/log"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err["error"]["message"],
        format!(
            "run {run} has no task `nope`\n(hint: its tasks are `say`, `quiet`, `later`, `gate`)"
        )
    );
    let (status, err) = s
        .json(
            "GET",
            &format!("/api/v1/runs/{run}/tasks/say/log?attempt=3"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err["error"],
        json!({
            "code": "not_found",
            "message": format!("no log for `say` in run {run}\n(hint: it has attempts 1 to 1)"),
            "details": null,
        })
    );
    let (status, err) = s
        .json("GET", &format!("/api/v1/runs/{run}/tasks/later/log"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err["error"]["message"],
        format!("no log for `later` in run {run}\n(hint: it has not started an attempt)")
    );
    let (status, err) = s
        .json("GET", &format!("/api/v1/runs/{run}/tasks/say/log?offset=x"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        err["error"]["message"],
        "`offset` must be a non-negative integer, got `x`"
    );
}

const SLOW: &str = "name: slow\ntasks:\n  talk:\n    run: |\n      echo one\n      printf 'part'\n      sleep 1\n      echo ial\n      printf 'last'\n";

/// Waits until the task's attempt is running and its log has `bytes` bytes.
async fn wait_for_output(s: &Server, run: &str, bytes: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, text) = s
            .text(&format!("/api/v1/runs/{run}/tasks/talk/log"), &[])
            .await;
        if status == StatusCode::OK && text.len() >= bytes {
            return;
        }
        assert!(Instant::now() < deadline, "no output; log so far: {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_running_attempt_streams_its_lines_until_it_ends() {
    let s = Server::new("slow.yaml", SLOW).await;
    let run = s.trigger("slow").await;
    wait_for_output(&s, &run, 4).await;
    let uri = format!("/api/v1/runs/{run}/tasks/talk/log");
    let mut events = Events::new(
        s.request("GET", &uri, &[("accept", "text/event-stream")])
            .await,
    );

    let first = events.next().await.expect("first event");
    assert_eq!(first.name, "message");
    assert!(first.data.starts_with("one\n"), "{first:?}");
    // It arrived while the task was still sleeping.
    let (_, doc) = s.json("GET", &format!("/api/v1/runs/{run}")).await;
    assert_eq!(doc["attempts"][0]["state"], "running", "{doc}");

    let mut text = first.data.clone();
    let mut ids = vec![first.id.clone()];
    let end = loop {
        let e = events.next().await.expect("more events");
        if e.name == "end" {
            break e;
        }
        text.push_str(&e.data);
        ids.push(e.id.clone());
        // Each id is the byte offset after the event.
        assert_eq!(e.id, Some(text.len().to_string()), "{e:?}");
    };
    assert_eq!(text, "one\npartial\nlast");
    assert_eq!(ids[0], Some(first.data.len().to_string()));
    assert_eq!(end.id, Some(text.len().to_string()));
    let end: Value = serde_json::from_str(&end.data).expect("json");
    assert_eq!(
        end,
        json!({"attempt": 1, "state": "succeeded", "exit_code": 0, "signal": null, "error": null})
    );
    assert_eq!(events.next().await, None, "the stream closes after `end`");
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_resumes_without_duplicates() {
    let s = Server::new("slow.yaml", SLOW).await;
    let run = s.trigger("slow").await;
    wait_for_output(&s, &run, 4).await;
    let uri = format!("/api/v1/runs/{run}/tasks/talk/log?follow=true");
    let mut events = Events::new(s.request("GET", &uri, &[]).await);
    let first = events.next().await.expect("first event");
    assert_eq!(first.id, Some(first.data.len().to_string()));
    drop(events);

    let last = first.id.clone().expect("id");
    let mut events = Events::new(
        s.request(
            "GET",
            &uri,
            &[("accept", "text/event-stream"), ("last-event-id", &last)],
        )
        .await,
    );
    let mut rest = String::new();
    while let Some(e) = events.next().await {
        if e.name == "end" {
            break;
        }
        rest.push_str(&e.data);
    }
    assert_eq!(format!("{}{rest}", first.data), "one\npartial\nlast");
}

#[tokio::test]
async fn carriage_returns_do_not_break_the_framing() {
    let s = Server::new(
        "slow.yaml",
        "name: slow\ntasks:\n  talk:\n    run: |\n      printf 'go\\n'\n      sleep 0.5\n      printf '10%%\\r50%%\\r\\ndone\\n\\n'\n",
    )
    .await;
    let run = s.trigger("slow").await;
    wait_for_output(&s, &run, 3).await;
    let mut events = Events::new(
        s.request(
            "GET",
            &format!("/api/v1/runs/{run}/tasks/talk/log"),
            &[("accept", "text/event-stream")],
        )
        .await,
    );
    let mut text = String::new();
    while let Some(e) = events.next().await {
        if e.name == "end" {
            break;
        }
        text.push_str(&e.data);
    }
    // SSE reads `\r` and `\r\n` as line ends; nothing is lost or merged into a field.
    assert_eq!(text, "go\n10%\n50%\ndone\n\n");
}

#[tokio::test]
async fn streams_end_when_the_server_stops_so_it_can_drain() {
    let s = Server::new("slow.yaml", SLOW).await;
    let run = s.trigger("slow").await;
    wait_for_output(&s, &run, 4).await;
    let mut events = Events::new(
        s.request(
            "GET",
            &format!("/api/v1/runs/{run}/tasks/talk/log"),
            &[("accept", "text/event-stream")],
        )
        .await,
    );
    assert!(events.next().await.is_some());
    s.state.runner.close_streams();
    // Closed without an `end`: the attempt goes on, and a client reconnects elsewhere.
    assert_eq!(events.next().await, None);
    let (_, doc) = s.json("GET", &format!("/api/v1/runs/{run}")).await;
    assert_eq!(doc["attempts"][0]["state"], "running", "{doc}");
}

/// An app over `pipelines` whose runner keeps logs in the database of `store`, with `home` as
/// its home.
async fn database_app(
    store: &baton_store::SqlStore,
    home: std::path::PathBuf,
    pipelines: &std::path::Path,
) -> AppState {
    let logs = baton_engine::executor::Logs {
        store: std::sync::Arc::new(store.log_store()),
        max_bytes_per_attempt: baton_store::DEFAULT_MAX_BYTES_PER_ATTEMPT,
    };
    let store: std::sync::Arc<dyn baton_store::Store> = std::sync::Arc::new(store.clone());
    let runner = baton_control::Runner::new(
        std::sync::Arc::clone(&store),
        std::sync::Arc::new(baton_engine::executor::LocalExecutor::default()),
        home,
    )
    .with_logs(logs);
    let state = AppState::new(
        store,
        runner,
        pipelines,
        std::sync::Arc::new(baton_observe::secrets::StaticSecrets(Default::default())),
    );
    state.reload().await;
    state
}

#[tokio::test]
async fn a_log_kept_in_the_database_is_read_from_a_replica_without_the_home() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir_all(&pipelines).expect("mkdir");
    std::fs::write(pipelines.join("echo.yaml"), ECHO).expect("write");
    let sql = baton_store::SqlStore::open_home(&dir.path().join("db"))
        .await
        .expect("store");
    let ran = Server {
        _dir: tempfile::tempdir().expect("temp dir"),
        state: database_app(&sql, dir.path().join("a"), &pipelines).await,
    };
    let run = ran.trigger("echo").await;
    ran.wait_for(&run, |d| {
        d["tasks"].as_array().is_some_and(|ts| {
            ts.iter()
                .any(|t| t["key"] == "say" && t["state"] == "succeeded")
        })
    })
    .await;
    assert!(!dir.path().join("a/logs").exists(), "no log file");
    let replica = Server {
        _dir: tempfile::tempdir().expect("temp dir"),
        state: database_app(&sql, dir.path().join("b"), &pipelines).await,
    };
    let uri = format!("/api/v1/runs/{run}/tasks/say/log");
    assert_eq!(replica.text(&uri, &[]).await.2, "one\ntwo\nno newline");
    assert_eq!(
        replica.text(&format!("{uri}?offset=4"), &[]).await.2,
        "two\nno newline"
    );
    let page = replica.text(&format!("/runs/{run}?task=say"), &[]).await.2;
    assert!(page.contains("no newline"), "{page}");
}
