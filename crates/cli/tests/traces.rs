//! Traces reach a real OTLP receiver, over HTTP/protobuf from `baton run` and over gRPC from
//! `baton server`: one trace per run, the run span parent of every attempt span, retries and
//! approvals as events, and each task's `TRACEPARENT` naming its own attempt span.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use support::{Server, Test, wait_until};

/// Spans as received, with the service name of their resource.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

fn collect(request: ExportTraceServiceRequest, into: &Received) {
    let mut received = into.lock().expect("lock");
    for rs in request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| text(&r.attributes, "service.name"))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                received.push((service.clone(), span));
            }
        }
    }
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attributes, key)? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body.
async fn http_receiver(received: Received) -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            collect(request, &received);
            (
                [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct GrpcReceiver(Received);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        collect(request.into_inner(), &self.0);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver: the collector's `TraceService`.
async fn grpc_receiver(received: Received) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcReceiver(received)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

/// A task that fails once then succeeds, one that succeeds, and a gate after both. Each task
/// appends its `TRACEPARENT` to a file named after it.
const PIPELINE: &str = r#"name: traced
tasks:
  flaky:
    run: |
      echo "$TRACEPARENT" >> flaky.tp
      test -f once || { touch once; exit 3; }
    retries: { limit: 1, delay: 10ms }
  steady:
    run: echo "$TRACEPARENT" >> steady.tp
  release:
    needs: [flaky, steady]
    approval: {}
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn events(span: &Span) -> Vec<String> {
    span.events.iter().map(|e| e.name.clone()).collect()
}

/// Checks what the receiver got for the run `run_id` of `PIPELINE`, run in `t`'s directory
/// (`dir` relative to it holds the `.tp` files).
fn check(t: &Test, dir: &str, run_id: &str, received: &Received) {
    let spans: Vec<(String, Span)> = received
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, s)| text(&s.attributes, "baton.run_id").as_deref() == Some(run_id))
        .cloned()
        .collect();
    let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    assert_eq!(spans.len(), 4, "run span and three attempts, got {names:?}");
    assert!(spans.iter().all(|(service, _)| service == "baton-test"));
    let trace = &spans[0].1.trace_id;
    assert!(spans.iter().all(|(_, s)| &s.trace_id == trace), "one trace");

    let run = &spans
        .iter()
        .find(|(_, s)| s.name == "run default/traced")
        .expect("run span")
        .1;
    assert!(run.parent_span_id.is_empty(), "the run span is the root");
    assert_eq!(
        text(&run.attributes, "baton.state").as_deref(),
        Some("succeeded")
    );
    assert_eq!(
        text(&run.attributes, "baton.pipeline").as_deref(),
        Some("traced")
    );
    assert_eq!(
        text(&run.attributes, "baton.namespace").as_deref(),
        Some("default")
    );
    assert_eq!(
        run.status.as_ref().map(|s| s.code),
        Some(StatusCode::Ok as i32)
    );
    assert_eq!(events(run), ["waiting for approval", "approved"]);
    assert!(
        run.events
            .iter()
            .all(|e| text(&e.attributes, "baton.task_key").as_deref() == Some("release"))
    );
    // Who approved, and why, as `approve_release` said.
    let approved = &run.events[1];
    assert_eq!(
        text(&approved.attributes, "baton.approval.by").as_deref(),
        Some("traces-test")
    );
    assert_eq!(
        text(&approved.attributes, "baton.approval.comment").as_deref(),
        Some("canary is green")
    );

    let attempt = |task: &str, n: i64| {
        &spans
            .iter()
            .find(|(_, s)| {
                text(&s.attributes, "baton.task").as_deref() == Some(task)
                    && int(&s.attributes, "baton.attempt") == Some(n)
            })
            .unwrap_or_else(|| panic!("span of {task} attempt {n} in {names:?}"))
            .1
    };
    let (failed, retried, steady) = (
        attempt("flaky", 1),
        attempt("flaky", 2),
        attempt("steady", 1),
    );
    for s in [failed, retried, steady] {
        assert_eq!(s.parent_span_id, run.span_id, "parent of {}", s.name);
        assert!(run.start_time_unix_nano <= s.start_time_unix_nano);
        assert!(s.start_time_unix_nano <= s.end_time_unix_nano);
        assert!(s.end_time_unix_nano <= run.end_time_unix_nano);
    }
    assert_eq!(failed.name, "task flaky");
    assert_eq!(int(&failed.attributes, "baton.exit_code"), Some(3));
    assert_eq!(
        text(&failed.attributes, "baton.state").as_deref(),
        Some("failed")
    );
    assert_eq!(
        text(&failed.attributes, "baton.task_key").as_deref(),
        Some("flaky")
    );
    let status = failed.status.as_ref().expect("status");
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "exited with code 3");
    assert_eq!(events(failed), ["retry"]);
    assert!(text(&failed.events[0].attributes, "baton.next_attempt_at").is_some());
    assert_eq!(int(&retried.attributes, "baton.exit_code"), Some(0));
    assert_eq!(
        text(&retried.attributes, "baton.state").as_deref(),
        Some("succeeded")
    );
    assert!(events(retried).is_empty());
    assert_eq!(int(&steady.attributes, "baton.exit_code"), Some(0));

    // Each attempt ran inside its own span.
    let traceparent = |s: &Span| format!("00-{}-{}-01", hex(&s.trace_id), hex(&s.span_id));
    assert_eq!(
        t.read(&format!("{dir}flaky.tp")),
        format!("{}\n{}\n", traceparent(failed), traceparent(retried))
    );
    assert_eq!(
        t.read(&format!("{dir}steady.tp")),
        format!("{}\n", traceparent(steady))
    );
}

/// Waits until the run's `release` gate waits for approval, then approves it as user
/// `traces-test`, with a comment.
fn approve_release(t: &Test, run_id: &str, server: Option<&str>) {
    let mut show = vec!["show", run_id, "--json"];
    let mut approve = vec!["approve", run_id, "release", "--comment", "canary is green"];
    if let Some(url) = server {
        show.extend(["--server", url]);
        approve.extend(["--server", url]);
    }
    wait_until("release waits for approval", || {
        let out = t.run(&show);
        out.code == 0 && out.stdout.contains("waiting_approval")
    });
    let out = t
        .command(&approve)
        .env("USER", "traces-test")
        .output()
        .expect("run baton approve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn baton_run_exports_spans_over_http_protobuf() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let addr = rt.block_on(http_receiver(received.clone()));
    let t = Test::new().file("traced.yaml", PIPELINE);
    let child = t
        .command(&["run", "traced.yaml"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_SERVICE_NAME", "baton-test")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn baton run");
    wait_until("the run exists", || {
        t.run(&["runs", "--json"]).stdout.contains("\"id\"")
    });
    let run_id = t.last_run();
    approve_release(&t, &run_id, None);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `baton run` flushes its spans before it exits.
    check(&t, "", &run_id, &received);
}

#[test]
fn baton_server_exports_spans_over_grpc() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let addr = rt.block_on(grpc_receiver(received.clone()));
    let t = Test::new().file("pipelines/traced.yaml", PIPELINE);
    let server = Server::ready(
        t.command(&[
            "server",
            "--pipelines",
            "pipelines",
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "1s",
        ])
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{addr}"),
        )
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", "baton-test")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn baton server"),
    );
    let out = t.run(&["trigger", "traced", "--server", &server.url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_id = out.stdout.lines().next().expect("run id").to_owned();
    approve_release(&t, &run_id, Some(&server.url));
    // The run span is sent when the run ends, in a batch that leaves within a second.
    wait_until("the run span arrives", || {
        received
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, s)| s.name == "run default/traced")
    });
    // Tasks run in the pipeline file's directory.
    check(&t, "pipelines/", &run_id, &received);
}

#[test]
fn a_resumed_run_spans_the_attempt_a_crash_cut_short_from_its_stored_start() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let addr = rt.block_on(http_receiver(received.clone()));
    let t = Test::new().file(
        "crashy.yaml",
        "name: crashy\ntasks:\n  a:\n    run: 'true'\n",
    );
    // The second commit starts `a`'s attempt; the process dies right after it, as `kill -9`
    // would end it, before the attempt's process is spawned.
    let out = t
        .command(&["run", "crashy.yaml"])
        .env("BATON_FAULT_CRASH_AFTER_COMMITS", "2")
        .output()
        .expect("run baton");
    assert_eq!(out.status.code(), None, "crashed");
    let run_id = t.last_run();
    let first = t.show(&run_id)["tasks"][0]["attempt_records"][0].clone();
    assert_eq!(first["state"], "running");
    let started_ms = first["started_at"].as_i64().expect("started_at");

    let out = t
        .command(&["resume", &run_id])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_SERVICE_NAME", "baton-test")
        .output()
        .expect("resume");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans: Vec<Span> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    let cut_short = spans
        .iter()
        .find(|s| int(&s.attributes, "baton.attempt") == Some(1))
        .expect("a span for the attempt the resumed process never saw start");
    assert_eq!(
        text(&cut_short.attributes, "baton.state").as_deref(),
        Some("interrupted")
    );
    let ns = u64::try_from(started_ms).expect("positive") * 1_000_000;
    assert_eq!(cut_short.start_time_unix_nano, ns);
    assert!(cut_short.end_time_unix_nano > ns);
    let run = spans
        .iter()
        .find(|s| s.name == "run default/crashy")
        .expect("run span");
    assert_eq!(cut_short.parent_span_id, run.span_id);
    assert!(
        spans
            .iter()
            .any(|s| int(&s.attributes, "baton.attempt") == Some(2)
                && text(&s.attributes, "baton.state").as_deref() == Some("succeeded"))
    );
}
