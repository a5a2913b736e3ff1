//! The OpenAPI document at `/api/v1/openapi.json`: served, complete (every route of the router
//! and nothing else), valid, and true (real answers match the schemas it gives for them).

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use baton_server::AppState;
use serde_json::{Value, json};

/// Every operation the API serves. Adding a route means adding it here too: the tests below
/// fail until the document and this list agree.
const EXPECTED: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/{namespace}/{name}"),
    ("GET", "/api/v1/pipelines/{namespace}/{name}/versions"),
    ("GET", "/api/v1/pipelines/{namespace}/{name}/schedule"),
    ("GET", "/api/v1/pipelines/{namespace}/{name}/lineage"),
    ("POST", "/api/v1/pipelines/{namespace}/{name}/runs"),
    ("POST", "/api/v1/pipelines/{namespace}/{name}/pause"),
    ("POST", "/api/v1/pipelines/{namespace}/{name}/unpause"),
    ("POST", "/api/v1/pipelines/{namespace}/{name}/webhook"),
    ("POST", "/api/v1/pipelines/{namespace}/{name}/backfill"),
    ("GET", "/api/v1/backfills"),
    ("GET", "/api/v1/backfills/{id}"),
    ("POST", "/api/v1/backfills/{id}/cancel"),
    ("POST", "/api/v1/reload"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/{id}"),
    ("GET", "/api/v1/runs/{id}/tasks"),
    ("POST", "/api/v1/runs/{id}/cancel"),
    ("POST", "/api/v1/runs/{id}/retry"),
    ("POST", "/api/v1/runs/{id}/tasks/{key}/approve"),
    ("POST", "/api/v1/runs/{id}/tasks/{key}/reject"),
    ("POST", "/api/v1/runs/{id}/tasks/{key}/requeue"),
    ("GET", "/api/v1/runs/{id}/tasks/{key}/log"),
    ("GET", "/api/v1/runs/{id}/events"),
    ("GET", "/api/v1/dead-letters"),
    ("POST", "/api/v1/dead-letters/requeue"),
    ("GET", "/api/v1/pools"),
    ("GET", "/api/v1/pools/{name}"),
    ("PUT", "/api/v1/pools/{name}"),
    ("DELETE", "/api/v1/pools/{name}"),
    ("GET", "/api/v1/workers"),
    ("POST", "/api/v1/workers"),
    ("DELETE", "/api/v1/workers/{id}"),
    ("POST", "/api/v1/workers/{id}/claim"),
    ("POST", "/api/v1/workers/{id}/heartbeat"),
    ("POST", "/api/v1/workers/{id}/leases/{epoch}/log"),
    ("POST", "/api/v1/workers/{id}/leases/{epoch}/finish"),
    (
        "GET",
        "/api/v1/workers/{id}/leases/{epoch}/artifacts/{digest}",
    ),
    (
        "PUT",
        "/api/v1/workers/{id}/leases/{epoch}/artifacts/{digest}",
    ),
    ("POST", "/api/v1/callbacks/{token}"),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

struct Server {
    _dir: tempfile::TempDir,
    state: AppState,
    doc: Value,
}

impl Server {
    async fn new(files: &[(&str, &str)]) -> Self {
        let (dir, state) = support::app(files, &[]).await;
        let mut s = Self {
            _dir: dir,
            state,
            doc: Value::Null,
        };
        let (status, _, doc) = s.raw("GET", "/api/v1/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        s.doc = doc;
        s
    }

    async fn raw(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        let a = support::request(&self.state, method, uri, &[], body).await;
        let value = a.json();
        (a.status, a.content_type, value)
    }

    /// Calls `uri` (an instance of `template`) and checks that the document lists the status
    /// it answered with for that operation, and that the body fits the schema given for it.
    async fn call(
        &self,
        method: &str,
        template: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self.raw(method, uri, body).await;
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        let response = &op["responses"][status.as_str()];
        assert!(
            response.is_object(),
            "{method} {uri} answered {status}, which the document does not list for it: {value}"
        );
        let schema = &response["content"]["application/json"]["schema"];
        let errors = check(&self.doc, schema, &value);
        assert!(
            errors.is_empty(),
            "{method} {uri} answered {status} with a body that does not fit the documented schema: {errors:#?}\n{value:#}"
        );
        (status, value)
    }

    async fn wait_for(&self, run: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, doc) = self
                .call(
                    "GET",
                    "/api/v1/runs/{id}",
                    &format!("/api/v1/runs/{run}"),
                    None,
                )
                .await;
            if pred(&doc) {
                return doc;
            }
            assert!(Instant::now() < deadline, "timed out; last state: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

/// Validates `value` against `schema`, resolving `#/components/...` in `doc`.
fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let root = json!({ "allOf": [schema], "components": doc["components"] });
    let validator = jsonschema::validator_for(&root).expect("the schema compiles");
    validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A concrete URI for a path template.
fn instance(path: &str) -> String {
    path.replace("{namespace}", "default")
        .replace("{name}", "nope")
        .replace("{id}", "01NOSUCHRUN")
        .replace("{key}", "nope")
        .replace("{epoch}", "1")
        .replace("{token}", "nope.nope")
        .replace(
            "{digest}",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
}

const HELLO: &str = "name: hello\nparams:\n  who: { type: string, default: world }\ntasks:\n  greet:\n    run: echo hi {{ params.who }}\n";
const FAILING: &str = "name: failing\ndescription: fails\nschedule:\n  - cron: \"0 3 * * *\"\n    timezone: Europe/Paris\ntasks:\n  boom:\n    run: exit 3\n  after:\n    needs: [boom]\n    run: \"true\"\n";
const GATED: &str = "name: gated\nnamespace: ops\ntasks:\n  release:\n    approval: { message: ship? }\n    run: \"true\"\n";
const BROKEN: &str = "name: broken\ntasks:\n  a:\n    neds: [b]\n    run: x\n";

#[tokio::test]
async fn the_document_is_served_as_openapi_3_1() {
    let s = Server::new(&[]).await;
    let (status, content_type, doc) = s.raw("GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "baton");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let description = doc["info"]["description"].as_str().expect("description");
    assert!(description.contains("no authentication"), "{description}");
    assert!(description.contains("loopback"), "{description}");
    assert_eq!(
        doc,
        serde_json::to_value(baton_server::openapi()).expect("json"),
        "the served document is the one `openapi()` builds"
    );
}

#[tokio::test]
async fn every_route_is_documented_and_nothing_else_is_served() {
    let s = Server::new(&[]).await;
    let documented = operations(&s.doc);
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, expected,
        "the document and the expected route list differ"
    );
    // Each documented operation is served (it does not fall through to the 404 fallback, and
    // the method is allowed), and each other method on a documented path is refused.
    for (path, item) in s.doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let (status, _, body) = s.raw(method, &instance(path), None).await;
            let is_fallback = body["error"]["message"] == "no such route";
            if item.get(method.to_lowercase()).is_some() {
                assert!(
                    !is_fallback && status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
    }
    // Routes are only ever registered through `routes!`, which documents them: a plain axum
    // `.route(` in the router would serve something the document does not know.
    let lib = include_str!("../src/lib.rs");
    assert!(
        !lib.contains(".route(") && !lib.contains("routing::"),
        "register routes with `routes!(handler)` so they are documented"
    );
}

#[tokio::test]
async fn operations_are_named_tagged_and_fully_described() {
    let s = Server::new(&[]).await;
    let tags: BTreeSet<&str> = s.doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut ids = BTreeSet::new();
    let mut listing = Vec::new();
    for (path, item) in s.doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(
                ids.insert(id.to_owned()),
                "operationId `{id}` is used twice"
            );
            let op_tags = op["tags"].as_array().expect("tags");
            assert!(
                !op_tags.is_empty()
                    && op_tags
                        .iter()
                        .all(|t| tags.contains(t.as_str().unwrap_or_default())),
                "{method} {path}: tags {op_tags:?} are not all declared"
            );
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            // Every `{param}` of the path is a declared path parameter, and the reverse.
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(in_path, declared, "{method} {path}: path parameters");
            for (status, response) in op["responses"].as_object().expect("responses") {
                let content = response["content"].as_object().expect("content");
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        content["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status} is not an error body"
                    );
                } else {
                    assert!(
                        !content.is_empty() && content.values().all(|c| c["schema"].is_object()),
                        "{method} {path} {status} has no schema"
                    );
                }
            }
            listing.push(format!("{:<6} {path}  {id}", method.to_uppercase()));
        }
    }
    insta::assert_snapshot!("operations", listing.join("\n"));
}

#[tokio::test]
async fn state_enums_list_their_wire_names() {
    let s = Server::new(&[]).await;
    let schemas = &s.doc["components"]["schemas"];
    assert_eq!(
        schemas["RunState"]["enum"],
        json!(["queued", "running", "succeeded", "failed", "cancelled"])
    );
    assert_eq!(
        schemas["TaskState"]["enum"],
        json!([
            "pending",
            "queued",
            "running",
            "retrying",
            "waiting_approval",
            "succeeded",
            "failed",
            "upstream_failed",
            "skipped",
            "cancelled"
        ])
    );
    assert_eq!(
        schemas["AttemptState"]["enum"],
        json!([
            "running",
            "succeeded",
            "failed",
            "timed_out",
            "interrupted",
            "cancelled"
        ])
    );
    assert_eq!(schemas["RunId"]["type"], "string");
    assert!(
        schemas.get("i64").is_none(),
        "`Millis` fields are plain integers, not a component"
    );
    assert_eq!(schemas["TaskKey"]["type"], "string");
    // The records point at them rather than at free-form strings.
    assert_eq!(
        schemas["Run"]["properties"]["state"]["$ref"],
        "#/components/schemas/RunState"
    );
    assert_eq!(
        schemas["Task"]["properties"]["state"]["$ref"],
        "#/components/schemas/TaskState"
    );
    // The runs list's `state` filter offers the same names.
    let list_runs = &s.doc["paths"]["/api/v1/runs"]["get"]["parameters"];
    let state = list_runs
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "state")
        .expect("a state parameter");
    assert!(state["schema"].to_string().contains("RunState"), "{state}");
}

/// Real answers, successes and errors, fit the schemas the document gives for their status.
#[tokio::test]
async fn answers_match_their_documented_schemas() {
    let s = Server::new(&[
        ("hello.yaml", HELLO),
        ("failing.yaml", FAILING),
        ("gated.yaml", GATED),
        ("broken.yaml", BROKEN),
    ])
    .await;
    // The check can fail: a run record without its fields, or with an id that is no string.
    let run_schema = json!({"$ref": "#/components/schemas/Run"});
    assert!(!check(&s.doc, &run_schema, &json!({"id": 1})).is_empty());
    s.call("GET", "/healthz", "/healthz", None).await;
    s.call("GET", "/readyz", "/readyz", None).await;
    let (_, pipelines) = s
        .call("GET", "/api/v1/pipelines", "/api/v1/pipelines", None)
        .await;
    assert_eq!(pipelines["items"].as_array().map(Vec::len), Some(4));
    s.call(
        "GET",
        "/api/v1/pipelines",
        "/api/v1/pipelines?limit=1",
        None,
    )
    .await;
    let p = "/api/v1/pipelines/{namespace}/{name}";
    s.call("GET", p, "/api/v1/pipelines/default/failing", None)
        .await;
    s.call("GET", p, "/api/v1/pipelines/default/nope", None)
        .await;
    s.call(
        "GET",
        "/api/v1/pipelines/{namespace}/{name}/versions",
        "/api/v1/pipelines/default/failing/versions",
        None,
    )
    .await;
    s.call(
        "GET",
        "/api/v1/pipelines/{namespace}/{name}/schedule",
        "/api/v1/pipelines/default/failing/schedule?n=2",
        None,
    )
    .await;
    for action in ["pause", "unpause"] {
        s.call(
            "POST",
            &format!("/api/v1/pipelines/{{namespace}}/{{name}}/{action}"),
            &format!("/api/v1/pipelines/default/failing/{action}"),
            Some(json!({"by": "ops"})),
        )
        .await;
    }
    s.call("POST", "/api/v1/reload", "/api/v1/reload", None)
        .await;

    let (status, backfill) = s
        .call(
            "POST",
            "/api/v1/pipelines/{namespace}/{name}/backfill",
            "/api/v1/pipelines/default/failing/backfill",
            Some(json!({"start": "2026-01-01", "end": "2026-01-02"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{backfill}");
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/pipelines/{namespace}/{name}/backfill",
            "/api/v1/pipelines/default/failing/backfill",
            Some(json!({"start": "2026-01-02", "end": "2026-01-01"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let bf = backfill["id"].as_str().expect("id").to_owned();
    s.call("GET", "/api/v1/backfills", "/api/v1/backfills", None)
        .await;
    s.call(
        "GET",
        "/api/v1/backfills/{id}",
        &format!("/api/v1/backfills/{bf}"),
        None,
    )
    .await;
    s.call(
        "POST",
        "/api/v1/backfills/{id}/cancel",
        &format!("/api/v1/backfills/{bf}/cancel"),
        None,
    )
    .await;
    s.call(
        "GET",
        "/api/v1/backfills/{id}",
        "/api/v1/backfills/bf_nope",
        None,
    )
    .await;

    let trigger = "/api/v1/pipelines/{namespace}/{name}/runs";
    let (status, _) = s
        .call(
            "POST",
            trigger,
            "/api/v1/pipelines/default/hello/runs",
            Some(json!({"params": {"who": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, run) = s
        .call(
            "POST",
            trigger,
            "/api/v1/pipelines/default/failing/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = run["id"].as_str().expect("id").to_owned();
    s.wait_for(&id, |r| r["state"] == "failed").await;
    s.call("GET", "/api/v1/runs", "/api/v1/runs?state=failed", None)
        .await;
    s.call("GET", "/api/v1/runs", "/api/v1/runs?state=nope", None)
        .await;
    s.call("GET", "/api/v1/runs", "/api/v1/runs?limit=x", None)
        .await;
    s.call(
        "POST",
        "/api/v1/runs/{id}/cancel",
        &format!("/api/v1/runs/{id}/cancel"),
        None,
    )
    .await;
    s.call(
        "GET",
        "/api/v1/dead-letters",
        "/api/v1/dead-letters?pipeline=failing",
        None,
    )
    .await;
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/runs/{id}/tasks/{key}/requeue",
            &format!("/api/v1/runs/{id}/tasks/after/requeue"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "`after` never ran: not a dead letter"
    );
    let (_, outcome) = s
        .call(
            "POST",
            "/api/v1/dead-letters/requeue",
            "/api/v1/dead-letters/requeue",
            Some(json!({"items": [{"run": id, "task": "boom"}, {"run": id, "task": "nope"}]})),
        )
        .await;
    assert_eq!(
        (outcome["requeued"].clone(), outcome["failed"].clone()),
        (json!(1), json!(1))
    );
    s.wait_for(&id, |r| r["state"] == "failed").await;
    s.call(
        "POST",
        "/api/v1/runs/{id}/retry",
        &format!("/api/v1/runs/{id}/retry"),
        None,
    )
    .await;
    s.wait_for(&id, |r| r["state"] == "failed").await;

    let (_, gated) = s
        .call(
            "POST",
            trigger,
            "/api/v1/pipelines/ops/gated/runs",
            Some(json!({})),
        )
        .await;
    let gated = gated["id"].as_str().expect("id").to_owned();
    s.wait_for(&gated, |r| r["tasks"][0]["state"] == "waiting_approval")
        .await;
    s.call(
        "POST",
        "/api/v1/runs/{id}/tasks/{key}/approve",
        &format!("/api/v1/runs/{gated}/tasks/release/approve"),
        Some(json!({"by": "me", "comment": "ok"})),
    )
    .await;
    s.call(
        "POST",
        "/api/v1/runs/{id}/tasks/{key}/reject",
        &format!("/api/v1/runs/{gated}/tasks/release/reject"),
        None,
    )
    .await;
    s.wait_for(&gated, |r| r["state"] == "succeeded").await;
    s.call(
        "POST",
        "/api/v1/pipelines/{namespace}/{name}/webhook",
        "/api/v1/pipelines/default/hello/webhook",
        Some(json!({"ref": "main"})),
    )
    .await;
    let pool = "/api/v1/pools/{name}";
    s.call(
        "PUT",
        pool,
        "/api/v1/pools/gpu",
        Some(json!({"slots": 2, "description": "GPUs"})),
    )
    .await;
    s.call("PUT", pool, "/api/v1/pools/gpu", Some(json!({"slots": -1})))
        .await;
    s.call("PUT", pool, "/api/v1/pools/gpu", Some(json!({"slot": 1})))
        .await;
    s.call("GET", "/api/v1/pools", "/api/v1/pools", None).await;
    s.call("GET", pool, "/api/v1/pools/gpu", None).await;
    s.call("GET", pool, "/api/v1/pools/nope", None).await;
    s.call("DELETE", pool, "/api/v1/pools/gpu", None).await;
    s.call("DELETE", pool, "/api/v1/pools/gpu", None).await;
}

/// When `openapi-spec-validator` (Python) is installed, the document passes it; CI installs it.
/// A task that reused a cached result, and the trigger option that bypasses the cache, are
/// documented as they are sent.
#[tokio::test]
async fn cache_fields_are_documented() {
    let s = Server::new(&[]).await;
    let task = baton_store::TaskRecord {
        key: baton_core::ids::TaskKey::from_string("load[eu]"),
        task_id: "load".into(),
        position: 3,
        item: Some(json!("eu")),
        state: baton_core::state::TaskState::Succeeded,
        attempts: 0,
        interruptions: 0,
        retry_base: 0,
        next_attempt_at: None,
        outputs: Some(serde_json::Map::new()),
        error: None,
        approval_message: None,
        cached_from: Some(baton_store::CacheSource {
            run: baton_core::ids::RunId::from_string("01kcached"),
            task: baton_core::ids::TaskKey::from_string("load[eu]"),
        }),
        started_at: None,
        finished_at: Some(1_000),
    };
    let schema = json!({"$ref": "#/components/schemas/Task"});
    let value = serde_json::to_value(baton_api::Task::from(task)).expect("json");
    assert_eq!(check(&s.doc, &schema, &value), Vec::<String>::new());
    let mut wrong = value;
    wrong["cached_from"] = json!({"run": 1});
    assert!(!check(&s.doc, &schema, &wrong).is_empty());
    let body = &s.doc["components"]["schemas"]["TriggerBody"]["properties"]["no_cache"];
    assert_eq!(body["type"], "boolean", "{body}");
    let run = &s.doc["components"]["schemas"]["Run"]["properties"]["no_cache"];
    assert_eq!(run["type"], "boolean", "{run}");
}

#[tokio::test]
async fn the_document_passes_openapi_spec_validator() {
    let available = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        support::skip::skipped(
            "the OpenAPI document against openapi-spec-validator",
            "openapi-spec-validator",
            "BATON_REQUIRE_OPENAPI_VALIDATOR",
            "python3 -m pip install openapi-spec-validator==0.9.0",
        );
        return;
    }
    let s = Server::new(&[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, s.doc.to_string()).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run the validator");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It is not a validator that accepts anything: a path parameter left undeclared fails.
    let mut broken = s.doc.clone();
    broken["paths"]["/api/v1/runs/{id}"]["get"]["parameters"] = json!([]);
    std::fs::write(&file, broken.to_string()).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run the validator");
    assert!(!out.status.success(), "a broken document passed");
}

#[tokio::test]
async fn the_guards_refusals_are_documented_on_every_operation() {
    let s = Server::new(&[]).await;
    for (path, item) in s.doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            let responses = &op["responses"];
            assert!(responses["421"].is_object(), "{method} {path}: no 421");
            // The worker API also answers 403 `workers_disabled` to reads, when it is off.
            let agent = path.starts_with("/api/v1/workers/");
            assert_eq!(
                responses["403"].is_object(),
                method != "get" || agent,
                "{method} {path}: 403 is for state changes"
            );
        }
    }
}
