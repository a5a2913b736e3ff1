//! `GET /metrics`: every metric moves when the thing it counts happens, the scrape passes
//! `promtool check metrics`, OpenMetrics is served on request, and the alert rules and
//! dashboards in deploy/ name only metrics baton exports.
//!
//! Each test drives its own app, whose registry is its own: no test sees another's numbers.
//! promtool comes from Debian's `prometheus` package; without it the promtool checks are
//! skipped, unless `BATON_REQUIRE_PROMTOOL=1` (as in CI) makes that a failure.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use baton_control::scheduler::Scheduler;
use baton_server::AppState;
use serde_json::{Value, json};

/// Metrics another part of baton (notifications, deadlines, the log cap) exports, which the
/// alerts and dashboards may name too.
const ELSEWHERE: &[&str] = &[
    "baton_notifications_total",
    "baton_deadline_missed_total",
    baton_engine::executor::LOG_BYTES_DROPPED_TOTAL,
    baton_engine::artifacts::ARTIFACT_ERRORS_TOTAL,
];

const FLAKY: &str = "name: flaky\ntasks:\n  a:\n    retries: { limit: 1, delay: 0s }\n    run: exit 1\n  b:\n    run: \"true\"\n";
const QUICK: &str = "name: quick\nschedule:\n  - cron: \"* * * * *\"\n    catchup: all\ntasks:\n  a:\n    run: \"true\"\n";
const HOOKED: &str = "name: hooked\ntriggers:\n  - webhook:\n      secret_env: HOOK_SECRET\ntasks:\n  a:\n    run: \"true\"\n";
const ONCE: &str = "name: once\nconcurrency: { max_active_runs: 1, overlap: skip }\ntasks:\n  a:\n    run: sleep 30\n";
const STALLED: &str =
    "name: stalled\ntasks:\n  a:\n    run: sleep 0.5\n  b:\n    needs: [a]\n    run: \"true\"\n";
const CACHED: &str = "name: cached\ntasks:\n  a:\n    cache: { key: \"v1\" }\n    run: \"true\"\n";
const BROKEN: &str = "name: broken\ntasks:\n  a:\n    neds: [b]\n    run: x\n";

struct App {
    dir: tempfile::TempDir,
    state: AppState,
}

impl App {
    async fn new(files: &[(&str, &str)]) -> Self {
        let (dir, state) = support::app(files, &[("HOOK_SECRET", "s3cret")]).await;
        Self { dir, state }
    }

    async fn request(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, String) {
        let a = support::request(&self.state, method, uri, headers, body).await;
        (a.status, a.content_type, a.text)
    }

    async fn json(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, text) = self.request(method, uri, &[], body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn scrape(&self) -> Scrape {
        let (status, content_type, text) = self.request("GET", "/metrics", &[], None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(
            content_type.as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        Scrape::parse(&text)
    }

    /// Scrapes until `done` holds (changes reach the registry right after their commit, and
    /// the store's gauges once a second), failing after a while with the last scrape.
    async fn scrape_until(&self, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.scrape().await;
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                s.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn trigger(&self, pipeline: &str) -> String {
        let (status, run) = self
            .json(
                "POST",
                &format!("/api/v1/pipelines/default/{pipeline}/runs"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{run}");
        run["id"].as_str().expect("id").to_owned()
    }

    async fn wait_for_state(&self, run: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, doc) = self.json("GET", &format!("/api/v1/runs/{run}"), None).await;
            if doc["state"] == state {
                return;
            }
            assert!(Instant::now() < deadline, "timed out; last: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

/// A parsed Prometheus text exposition.
struct Scrape {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("sample has a value");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, labels(rest.strip_suffix('}').expect("}"))),
                    None => (series, BTreeMap::new()),
                };
                (name.to_owned(), labels, value)
            })
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The sum of `name`'s samples that carry every label of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|(n, _, _)| n.clone()).collect()
    }
}

/// `k="v",k2="v2"` with `\"`, `\\` and `\n` escapes.
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "label `{key}` in `{text}`");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

/// Runs `program` with `args` and `stdin`; `None` (reported as a skip) when it cannot run
/// and `require` (an environment variable) is not set.
fn run_tool(
    program: &str,
    args: &[&str],
    stdin: &str,
    require: &str,
    hint: &str,
) -> Option<std::process::Output> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            support::skip::skipped(
                &format!("the check that runs `{program}` (it did not start: {e})"),
                program,
                require,
                hint,
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to the tool");
    Some(child.wait_with_output().expect("the tool ran"))
}

fn promtool(args: &[&str], stdin: &str) -> Option<std::process::Output> {
    run_tool(
        "promtool",
        args,
        stdin,
        "BATON_REQUIRE_PROMTOOL",
        "apt-get install prometheus",
    )
}

/// Parses OpenMetrics text with the Python client's strict parser, which rejects what the
/// format forbids (a `_total` family name, a missing `# EOF`, clashing names).
fn openmetrics_parser(text: &str) {
    const PARSE: &str = "import sys\ntry:\n    from prometheus_client.openmetrics.parser import text_string_to_metric_families\nexcept ImportError:\n    sys.exit(3)\nfor f in text_string_to_metric_families(sys.stdin.read()):\n    pass\n";
    let require = "BATON_REQUIRE_OPENMETRICS_PARSER";
    let hint = "python3 -m pip install prometheus-client";
    let Some(out) = run_tool("python3", &["-c", PARSE], text, require, hint) else {
        return;
    };
    if out.status.code() == Some(3) {
        support::skip::skipped(
            "the strict OpenMetrics parse of the scrape",
            "prometheus-client",
            require,
            hint,
        );
        return;
    }
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn promtool_check_metrics(text: &str) {
    if let Some(out) = promtool(&["check", "metrics"], text) {
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_run_moves_the_run_task_and_http_metrics() {
    let app = App::new(&[("flaky.yaml", FLAKY)]).await;
    let flaky = [("pipeline", "flaky"), ("namespace", "default")];
    let before = app.scrape().await;
    assert_eq!(before.sum("baton_up", &[]), 1.0);
    assert_eq!(
        before.sum(
            "baton_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(before.sum("baton_runs_started_total", &flaky), 0.0);
    assert_eq!(before.sum("baton_dead_letters", &flaky), 0.0);

    let run = app.trigger("flaky").await;
    app.wait_for_state(&run, "failed").await;
    let after = app
        .scrape_until("the run's end and its dead letter", |s| {
            s.sum("baton_runs_finished_total", &flaky) > 0.0
                && s.sum("baton_dead_letters", &flaky) > 0.0
        })
        .await;
    let at = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        flaky.iter().chain(extra).copied().collect()
    };
    assert_eq!(
        after.sum("baton_runs_started_total", &at(&[("trigger", "manual")])),
        1.0
    );
    assert_eq!(
        after.sum("baton_runs_finished_total", &at(&[("state", "failed")])),
        1.0
    );
    assert_eq!(
        after.sum("baton_runs_finished_total", &at(&[("state", "succeeded")])),
        0.0
    );
    assert_eq!(
        after.sum(
            "baton_run_duration_seconds_count",
            &at(&[("state", "failed")])
        ),
        1.0
    );
    assert!(after.sum("baton_run_duration_seconds_sum", &flaky) > 0.0);
    assert_eq!(
        after.sum(
            "baton_task_attempt_duration_seconds_count",
            &at(&[("task", "a"), ("state", "failed")])
        ),
        2.0
    );
    assert_eq!(
        after.sum(
            "baton_task_attempt_duration_seconds_count",
            &at(&[("task", "b"), ("state", "succeeded")])
        ),
        1.0
    );
    assert_eq!(
        after.sum("baton_task_retries_total", &at(&[("task", "a")])),
        1.0
    );
    assert_eq!(
        after.sum("baton_task_retries_total", &at(&[("task", "b")])),
        0.0
    );
    // Three attempts, each queued first.
    assert_eq!(
        after.sum("baton_task_queue_wait_seconds_count", &flaky),
        3.0
    );
    // Queue waits are bucketed up to an hour (a busy pool), HTTP latency up to 5 minutes.
    let bounds = |name: &str| -> BTreeSet<String> {
        after
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, labels, _)| labels.get("le").cloned())
            .collect()
    };
    assert!(bounds("baton_task_queue_wait_seconds_bucket").contains("3600"));
    let http = bounds("baton_http_request_duration_seconds_bucket");
    assert!(http.contains("300") && !http.contains("3600"), "{http:?}");
    assert_eq!(
        after.sum(
            "baton_trigger_latency_seconds_count",
            &at(&[("trigger", "manual")])
        ),
        1.0
    );
    assert_eq!(after.sum("baton_dead_letters", &flaky), 1.0);
    // Requests by route template, never by run id.
    assert_eq!(
        after.sum(
            "baton_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/v1/pipelines/{namespace}/{name}/runs"),
                ("status", "201")
            ]
        ),
        1.0
    );
    assert!(
        after.sum(
            "baton_http_requests_total",
            &[("route", "/api/v1/runs/{id}"), ("status", "200")]
        ) >= 1.0
    );
    assert!(!after.text.contains(&run), "a run id became a label");
    promtool_check_metrics(&after.text);

    // A retry starts the run again: counted as a second start, timed from its new start.
    let (status, body) = app
        .json("POST", &format!("/api/v1/runs/{run}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = app
        .scrape_until("the retried run's end", |s| {
            s.sum("baton_runs_finished_total", &flaky) == 2.0
        })
        .await;
    assert_eq!(
        again.sum("baton_runs_started_total", &at(&[("trigger", "manual")])),
        2.0
    );
    // Not a new trigger: its latency was measured once.
    assert_eq!(
        again.sum("baton_trigger_latency_seconds_count", &flaky),
        1.0
    );
}

#[tokio::test]
async fn live_gauges_follow_the_database() {
    // One more sleeping task than the dispatcher runs at once, so one waits queued, and a
    // gate waiting for approval.
    let slots = std::thread::available_parallelism().map_or(2, usize::from);
    let mut busy = String::from("name: busy\ntasks:\n  gate:\n    approval: {}\n");
    for i in 0..=slots {
        busy.push_str(&format!("  t{i}:\n    run: sleep 30\n"));
    }
    let app = App::new(&[("busy.yaml", &busy)]).await;
    let labels = [("pipeline", "busy")];
    let idle = app.scrape().await;
    for gauge in [
        "baton_tasks_running",
        "baton_tasks_queued",
        "baton_approvals_pending",
    ] {
        assert!(
            idle.text.contains(&format!("{gauge}{{")),
            "{gauge} is listed at 0"
        );
        assert_eq!(idle.sum(gauge, &labels), 0.0);
    }
    let run = app.trigger("busy").await;
    let busy = app
        .scrape_until("running, queued and gated tasks", |s| {
            s.sum("baton_tasks_running", &labels) == slots as f64
                && s.sum("baton_tasks_queued", &labels) == 1.0
                && s.sum("baton_approvals_pending", &labels) == 1.0
        })
        .await;
    assert_eq!(busy.sum("baton_tasks_running", &[]), slots as f64);
    let (status, body) = app
        .json("POST", &format!("/api/v1/runs/{run}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.wait_for_state(&run, "cancelled").await;
    let after = app
        .scrape_until("the gauges back at 0", |s| {
            s.sum("baton_tasks_running", &labels) == 0.0
                && s.sum("baton_tasks_queued", &labels) == 0.0
                && s.sum("baton_approvals_pending", &labels) == 0.0
        })
        .await;
    assert_eq!(
        after.sum(
            "baton_runs_finished_total",
            &[("pipeline", "busy"), ("state", "cancelled")]
        ),
        1.0
    );
}

#[tokio::test]
async fn scheduler_lag_and_definition_load_errors() {
    let app = App::new(&[("quick.yaml", QUICK), ("broken.yaml", BROKEN)]).await;
    let first = app.scrape().await;
    assert_eq!(first.sum("baton_definition_load_errors", &[]), 1.0);
    assert_eq!(first.sum("baton_definition_reloads_total", &[]), 1.0);
    assert_eq!(first.sum("baton_scheduler_lag_seconds_count", &[]), 0.0);

    // First sight records the schedule; the next pass, 90.5 s later, finds its due ticks and
    // acts on each late by the time since its minute began.
    let scheduler = Scheduler::new(app.state.control.clone(), 100);
    let t0 = jiff::Timestamp::from_second(1_800_000_000).expect("time"); // on a minute
    scheduler.tick(t0).await.expect("first pass");
    let now = t0 + jiff::SignedDuration::from_millis(90_500);
    let created = scheduler.tick(now).await.expect("second pass");
    assert_eq!(created.len(), 1, "one minute came due");
    let s = app.scrape().await;
    assert_eq!(s.sum("baton_scheduler_lag_seconds_count", &[]), 1.0);
    assert_eq!(s.sum("baton_scheduler_lag_seconds_sum", &[]), 30.5);

    std::fs::write(
        app.dir.path().join("pipelines/broken.yaml"),
        "name: broken\ntasks:\n  a:\n    run: x\n",
    )
    .expect("fix the file");
    app.state.reload().await;
    let fixed = app.scrape().await;
    assert_eq!(fixed.sum("baton_definition_load_errors", &[]), 0.0);
    assert_eq!(fixed.sum("baton_definition_reloads_total", &[]), 2.0);
}

fn sign(body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn refusals_count_as_policy_denials() {
    let app = App::new(&[("hooked.yaml", HOOKED), ("once.yaml", ONCE)]).await;
    let denials =
        |s: &Scrape, policy: &str| s.sum("baton_policy_denials_total", &[("policy", policy)]);
    let hook = "/api/v1/pipelines/default/hooked/webhook";
    let (status, _, _) = app
        .request(
            "POST",
            hook,
            &[("x-baton-signature-256", "sha256=00")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let s = app.scrape().await;
    assert_eq!(denials(&s, "webhook_signature"), 1.0);
    assert_eq!(denials(&s, "paused"), 0.0);
    // A signed delivery is no denial.
    let (status, _, _) = app
        .request("POST", hook, &[("x-baton-signature-256", &sign(""))], None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(denials(&app.scrape().await, "webhook_signature"), 1.0);

    let (status, _) = app
        .json(
            "POST",
            "/api/v1/pipelines/default/hooked/pause",
            Some(json!({"by": "ops"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .request("POST", hook, &[("x-baton-signature-256", &sign(""))], None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(denials(&app.scrape().await, "paused"), 1.0);

    let first = app.trigger("once").await;
    let (status, refused) = app
        .json(
            "POST",
            "/api/v1/pipelines/default/once/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let s = app.scrape().await;
    assert_eq!(denials(&s, "concurrency_skip"), 1.0);
    assert_eq!(denials(&s, "webhook_signature"), 1.0);
    app.json("POST", &format!("/api/v1/runs/{first}/cancel"), None)
        .await;
    app.wait_for_state(&first, "cancelled").await;
}

#[tokio::test]
async fn openmetrics_is_served_on_request() {
    let app = App::new(&[("quick.yaml", QUICK)]).await;
    let run = app.trigger("quick").await;
    app.wait_for_state(&run, "succeeded").await;
    app.scrape_until("the run's end", |s| {
        s.sum("baton_runs_finished_total", &[]) == 1.0
    })
    .await;
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, content_type, text) = app
        .request("GET", "/metrics", &[("accept", accept)], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(!text.contains("\n\n"), "blank lines are not OpenMetrics");
    assert!(
        text.contains("# TYPE baton_runs_started counter\n"),
        "{text}"
    );
    assert!(text.contains("\nbaton_runs_started_total{"), "{text}");
    assert!(!text.contains("# TYPE baton_runs_started_total"), "{text}");
    assert!(text.contains("# TYPE baton_run_duration_seconds histogram\n"));
    openmetrics_parser(&text);
    // Every counter family is named without `_total`; every sample of it carries it.
    let parsed = Scrape::parse(text.trim_end_matches("# EOF\n"));
    for family in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
    {
        assert!(!family.ends_with("_total"), "{family}");
        assert!(
            parsed.names().contains(&format!("{family}_total")),
            "{family}"
        );
    }
    // The same numbers as the text format.
    let plain = app.scrape().await;
    assert_eq!(
        parsed.sum("baton_runs_finished_total", &[("state", "succeeded")]),
        plain.sum("baton_runs_finished_total", &[("state", "succeeded")])
    );
}

/// The names a PromQL text mentions: `baton_` followed by name characters.
fn mentioned(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("baton_") {
        let start = i + at;
        let starts_word =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if starts_word {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

/// Every `expr` in a dashboard, wherever it sits (panels, rows, template variables' queries).
fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("query", Value::String(q)) if q.contains("baton_") => out.push(q.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(e)) = q.get("query") {
                            out.push(e.clone());
                        }
                    }
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn pool_gauges_follow_the_database() {
    let app = App::new(&[(
        "gpu.yaml",
        "name: gpu\ndefaults:\n  pool: gpu\ntasks:\n  a:\n    run: sleep 30\n  b:\n    run: sleep 30\n",
    )])
    .await;
    let (status, body) = app
        .json("PUT", "/api/v1/pools/gpu", Some(json!({ "slots": 1 })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let gpu = [("pool", "gpu")];
    let idle = app.scrape().await;
    assert_eq!(idle.sum("baton_pool_slots", &gpu), 1.0);
    assert_eq!(idle.sum("baton_pool_slots_used", &gpu), 0.0);
    assert_eq!(idle.sum("baton_pool_tasks_waiting", &gpu), 0.0);
    let run = app.trigger("gpu").await;
    app.scrape_until("one task running in the pool, one waiting", |s| {
        s.sum("baton_pool_slots_used", &gpu) == 1.0
            && s.sum("baton_pool_tasks_waiting", &gpu) == 1.0
    })
    .await;
    let (status, body) = app
        .json("POST", &format!("/api/v1/runs/{run}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.wait_for_state(&run, "cancelled").await;
    app.scrape_until("the pool free again", |s| {
        s.sum("baton_pool_slots_used", &gpu) == 0.0
            && s.sum("baton_pool_tasks_waiting", &gpu) == 0.0
    })
    .await;
    let (status, _) = app.json("DELETE", "/api/v1/pools/gpu", None).await;
    assert_eq!(status, StatusCode::OK);
    app.scrape_until("a deleted pool at 0", |s| {
        s.sum("baton_pool_slots", &gpu) == 0.0
    })
    .await;
}

/// A run whose owner went away: created, leased by a process elsewhere, lease run out.
async fn orphaned_run(app: &App) -> String {
    let source = "name: orphan\ntasks:\n  a:\n    run: \"true\"\n";
    let pipeline = baton_core::load(source).pipeline.expect("valid");
    let store = app.state.store.as_ref();
    let created = baton_engine::create_run(
        store,
        baton_engine::RunRequest::new(&pipeline, source, app.dir.path().display().to_string()),
    )
    .await
    .expect("run");
    assert!(
        store
            .acquire_lease(
                &created.id,
                &baton_core::ids::LeaseOwner::from_string("elsewhere:1:1"),
                0,
                1,
                None
            )
            .await
            .expect("lease")
            .is_some()
    );
    created.id.to_string()
}

#[tokio::test]
async fn every_listed_metric_is_exported_and_deploy_files_name_only_those() {
    // Exercise every metric once: a run, a broken file, a scheduler pass, a refused webhook.
    let app = App::new(&[
        ("quick.yaml", QUICK),
        ("hooked.yaml", HOOKED),
        ("flaky.yaml", FLAKY),
        ("broken.yaml", BROKEN),
        ("cached.yaml", CACHED),
        ("stalled.yaml", STALLED),
    ])
    .await;
    let run = app.trigger("flaky").await;
    app.wait_for_state(&run, "failed").await;
    for _ in 0..2 {
        let cached = app.trigger("cached").await;
        app.wait_for_state(&cached, "succeeded").await;
    }
    let (status, _) = app
        .json("PUT", "/api/v1/pools/gpu", Some(json!({ "slots": 2 })))
        .await;
    assert_eq!(status, StatusCode::OK);
    let scheduler = Scheduler::new(app.state.control.clone(), 100);
    let t0 = jiff::Timestamp::from_second(1_800_000_000).expect("time");
    scheduler.tick(t0).await.expect("first pass");
    scheduler
        .tick(t0 + jiff::SignedDuration::from_secs(61))
        .await
        .expect("second pass");
    app.request(
        "POST",
        "/api/v1/pipelines/default/hooked/webhook",
        &[],
        None,
    )
    .await;
    let orphan = orphaned_run(&app).await;
    let taken = baton_control::takeover::Takeover::new(app.state.control.clone())
        .pass()
        .await
        .expect("takeover");
    assert_eq!(taken, 1);
    app.wait_for_state(&orphan, "succeeded").await;
    let s = app
        .scrape_until("the run's end", |s| {
            s.sum("baton_runs_finished_total", &[("pipeline", "flaky")]) == 1.0
        })
        .await;
    promtool_check_metrics(&s.text);
    assert_eq!(
        s.sum("baton_runs_taken_over_total", &[("pipeline", "orphan")]),
        1.0
    );
    // A run this server loses to another process, as if it had stalled past its lease: its
    // next commit is refused, and the loss counted.
    let stalled = app.trigger("stalled").await;
    app.wait_for_state(&stalled, "running").await;
    let id = baton_core::ids::RunId::from_string(stalled.clone());
    let store = app.state.store.as_ref();
    let holder = store
        .run(&id)
        .await
        .expect("run")
        .expect("exists")
        .lease_owner;
    let now = baton_engine::now_ms();
    assert!(
        store
            .acquire_lease(
                &id,
                &baton_core::ids::LeaseOwner::from_string("elsewhere:2:2"),
                now,
                now + 3_600_000,
                holder.as_deref(),
            )
            .await
            .expect("lease")
            .is_some()
    );
    let s = app
        .scrape_until("the lost lease", |s| {
            s.sum("baton_lease_lost_total", &[("pipeline", "stalled")]) == 1.0
        })
        .await;

    let exported: BTreeSet<String> = s
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' ').map(|(n, _)| n.to_owned()))
        .collect();
    let listed: BTreeSet<String> = baton_observe::metrics::METRICS
        .iter()
        .map(|(n, ..)| (*n).to_owned())
        .collect();
    assert_eq!(exported, listed, "the scrape and the METRICS table differ");
    let mut known = s.names();
    known.extend(exported);
    known.extend(ELSEWHERE.iter().map(|n| (*n).to_owned()));

    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let rules = deploy.join("prometheus/alerts.yaml");
    let rules_text = std::fs::read_to_string(&rules).expect("alerts.yaml");
    if let Some(out) = promtool(&["check", "rules", &rules.display().to_string()], "") {
        assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let unknown: Vec<String> = mentioned(&rules_text).difference(&known).cloned().collect();
    assert!(
        unknown.is_empty(),
        "alerts.yaml names unknown metrics: {unknown:?}"
    );
    for name in ELSEWHERE {
        assert!(
            rules_text.contains(name),
            "alerts.yaml does not alert on {name}"
        );
    }
    // A bucket a rule names (`x_bucket{le="300"}`) must be one baton writes, digit for digit.
    for (at, _) in rules_text.match_indices("le=\"") {
        let bound = rules_text[at + 4..].split('"').next().unwrap_or_default();
        let open = rules_text[..at].rfind('{').expect("a selector");
        let name = mentioned(&rules_text[..open])
            .into_iter()
            .find(|n| rules_text[..open].ends_with(n.as_str()))
            .expect("a metric name before the selector");
        assert!(
            s.samples
                .iter()
                .any(|(n, l, _)| *n == name && l.get("le").map(String::as_str) == Some(bound)),
            "alerts.yaml names {name}{{le=\"{bound}\"}}, which baton does not export"
        );
    }

    let mut dashboards = 0;
    for entry in std::fs::read_dir(deploy.join("grafana")).expect("deploy/grafana") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        dashboards += 1;
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        assert!(
            doc["title"].is_string() && doc["uid"].is_string(),
            "{}",
            path.display()
        );
        let variables: Vec<&str> = doc["templating"]["list"]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        for v in ["datasource", "namespace", "pipeline"] {
            assert!(
                variables.contains(&v),
                "{} lacks the `{v}` variable",
                path.display()
            );
        }
        let mut found = Vec::new();
        exprs(&doc, &mut found);
        assert!(!found.is_empty(), "{} has no queries", path.display());
        let mut names = BTreeSet::new();
        for e in &found {
            names.extend(mentioned(e));
        }
        let unknown: Vec<&String> = names.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{} names unknown metrics: {unknown:?}",
            path.display()
        );
    }
    assert_eq!(dashboards, 3, "executive, on-call and debug dashboards");
}

#[tokio::test]
async fn cache_lookups_count_hits_and_misses() {
    let app = App::new(&[("cached.yaml", CACHED)]).await;
    let a = [
        ("pipeline", "cached"),
        ("namespace", "default"),
        ("task", "a"),
    ];
    let with = |result: &'static str| -> Vec<(&str, &str)> {
        a.iter().copied().chain([("result", result)]).collect()
    };
    // Known from the definition: both series start at 0.
    let before = app.scrape().await;
    assert!(
        before.text.contains("baton_task_cache_total{"),
        "{}",
        before.text
    );
    assert_eq!(before.sum("baton_task_cache_total", &a), 0.0);

    let first = app.trigger("cached").await;
    app.wait_for_state(&first, "succeeded").await;
    let s = app
        .scrape_until("the first run's end", |s| {
            s.sum("baton_runs_finished_total", &[("pipeline", "cached")]) == 1.0
        })
        .await;
    assert_eq!(s.sum("baton_task_cache_total", &with("miss")), 1.0);
    assert_eq!(s.sum("baton_task_cache_total", &with("hit")), 0.0);

    let second = app.trigger("cached").await;
    app.wait_for_state(&second, "succeeded").await;
    let s = app
        .scrape_until("the second run's end", |s| {
            s.sum("baton_runs_finished_total", &[("pipeline", "cached")]) == 2.0
        })
        .await;
    assert_eq!(s.sum("baton_task_cache_total", &with("miss")), 1.0);
    assert_eq!(s.sum("baton_task_cache_total", &with("hit")), 1.0);
    // Only the attempt that ran waited in the queue.
    assert_eq!(
        s.sum(
            "baton_task_queue_wait_seconds_count",
            &[("pipeline", "cached")]
        ),
        1.0
    );
    promtool_check_metrics(&s.text);
}

#[tokio::test]
async fn a_loaded_pipeline_counts_from_zero() {
    // Prometheus sees no increase in a series that first appears at 1, so a pipeline's first
    // failed run would not alert: every outcome, and each retrying task's retries, start at 0.
    let app = App::new(&[("flaky.yaml", FLAKY)]).await;
    let s = app.scrape().await;
    let has = |name: &str, with: &[(&str, &str)]| {
        s.samples.iter().any(|(n, labels, v)| {
            n == name
                && *v == 0.0
                && with
                    .iter()
                    .all(|(k, want)| labels.get(*k).map(String::as_str) == Some(*want))
        })
    };
    for state in ["succeeded", "failed", "cancelled"] {
        assert!(
            has(
                "baton_runs_finished_total",
                &[
                    ("namespace", "default"),
                    ("pipeline", "flaky"),
                    ("state", state)
                ]
            ),
            "{state}:\n{}",
            s.text
        );
    }
    assert!(has(
        "baton_task_retries_total",
        &[("pipeline", "flaky"), ("task", "a")]
    ));
    // b never retries (no `retries`), so it has no series to keep at 0.
    assert!(!has(
        "baton_task_retries_total",
        &[("pipeline", "flaky"), ("task", "b")]
    ));
    // A reload keeps counted values.
    let run = app.trigger("flaky").await;
    app.wait_for_state(&run, "failed").await;
    app.state.reload().await;
    let after = app
        .scrape_until("the run's end", |s| {
            s.sum("baton_runs_finished_total", &[("state", "failed")]) == 1.0
        })
        .await;
    assert_eq!(after.sum("baton_task_retries_total", &[("task", "a")]), 1.0);
}

#[test]
fn names_are_found_in_promql() {
    assert_eq!(
        mentioned("sum(rate(baton_runs_finished_total{state=\"failed\"}[5m])) / x_baton_no"),
        BTreeSet::from(["baton_runs_finished_total".to_owned()])
    );
}

#[tokio::test]
async fn a_resumed_run_is_reported_from_where_it_resumed() {
    use baton_core::ids::TaskKey;
    use baton_core::state::{AttemptState, RunState, TaskState};
    use baton_engine::{Observer, RunScope};
    use baton_observe::metrics::{Metrics, RunObserver};
    use baton_store::{Change, Store};

    let dir = tempfile::tempdir().expect("temp dir");
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        baton_store::SqlStore::open_home(dir.path())
            .await
            .expect("store"),
    );
    let source = "name: resumed\ntasks:\n  a:\n    run: \"true\"\n";
    let pipeline = baton_core::load(source).pipeline.expect("valid");
    let created = baton_engine::create_run(
        store.as_ref(),
        baton_engine::RunRequest {
            trigger: baton_core::state::RunTrigger::Schedule,
            ..baton_engine::RunRequest::new(&pipeline, source, "/tmp")
        },
    )
    .await
    .expect("run");
    // As a dispatcher finds it after a crash: running since t, its attempt (started at t + 5 s,
    // a start this observer never heard of) cut short.
    let mut run = store.run(&created.id).await.expect("read").expect("run");
    let t = run.created_at + 10_000;
    run.state = RunState::Running;
    run.started_at = Some(t);
    let metrics = Metrics::new();
    let observer = RunObserver::new(metrics.clone());
    let scope = RunScope {
        run: &run,
        pipeline: &pipeline,
        store: &store,
    };
    let key = TaskKey::from_string("a");
    let finished = |attempt, state, started_at, at| Change::AttemptFinished {
        key: key.clone(),
        attempt,
        state,
        started_at,
        at,
        exit_code: None,
        signal: None,
        rusage: None,
        error: None,
    };
    for commit in [
        vec![
            finished(1, AttemptState::Interrupted, t + 5_000, t + 20_000),
            Change::Task {
                key: key.clone(),
                state: TaskState::Queued,
                at: t + 20_000,
                next_attempt_at: None,
                outputs: None,
                error: None,
            },
        ],
        vec![Change::AttemptStarted {
            key: key.clone(),
            attempt: 2,
            at: t + 20_250,
            log_path: String::new(),
            owner: String::new(),
            after_interruption: true,
        }],
        vec![finished(2, AttemptState::Succeeded, t + 20_250, t + 21_250)],
        vec![Change::Run {
            state: RunState::Succeeded,
            at: t + 30_000,
            error: None,
        }],
    ] {
        observer.committed(scope, &commit);
    }
    let s = Scrape::parse(&metrics.render());
    let at = [("pipeline", "resumed")];
    // It started before the crash: no second start, no trigger latency.
    assert_eq!(s.sum("baton_runs_started_total", &at), 0.0);
    assert_eq!(s.sum("baton_trigger_latency_seconds_count", &at), 0.0);
    assert_eq!(s.sum("baton_runs_finished_total", &at), 1.0);
    assert_eq!(s.sum("baton_run_duration_seconds_sum", &at), 30.0);
    // Both attempts are timed: the cut-short one from the start its finish carries.
    let attempts = |what, state| {
        s.sum(
            &format!("baton_task_attempt_duration_seconds_{what}"),
            &[("pipeline", "resumed"), ("state", state)],
        )
    };
    assert_eq!(attempts("count", "interrupted"), 1.0);
    assert_eq!(attempts("sum", "interrupted"), 15.0);
    assert_eq!(attempts("count", "succeeded"), 1.0);
    assert_eq!(attempts("sum", "succeeded"), 1.0);
    assert_eq!(s.sum("baton_task_queue_wait_seconds_sum", &at), 0.25);
}
