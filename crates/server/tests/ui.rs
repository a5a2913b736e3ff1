//! The web UI driven through the router, without a socket: every page's status, key content
//! and escaping; the form actions; the run events stream.

mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use baton_server::{AppState, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

struct Ui {
    _dir: tempfile::TempDir,
    state: AppState,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    content_type: String,
    cache: Option<String>,
    body: String,
}

const HELLO: &str = "name: hello\ndescription: says <script>alert('d')</script>\nowner: team-a\ntags: [demo]\nparams:\n  who: { type: string, default: world, description: \"<script>p</script>\" }\n  n: { type: integer, default: 1, min: 1 }\n  loud: { type: boolean, default: false }\n  mode: { type: string, enum: [fast, slow], default: fast }\nschedule:\n  - cron: \"30 2 * * *\"\n    timezone: Europe/Berlin\ntasks:\n  greet:\n    outputs: [said]\n    run: \"echo '<script>log</script>'; echo 'said=<script>out</script>' >> $BATON_OUTPUTS\"\n  after:\n    needs: [greet]\n    run: \"true\"\n";
const GATED: &str = "name: gated\nnamespace: ops\ntasks:\n  release:\n    approval: { message: \"ship {{ pipeline.name }} & <friends>?\" }\n    run: \"true\"\n";
const FAILING: &str = "name: failing\ntasks:\n  boom:\n    run: exit 3\n";
const SLOW: &str = "name: slow\ntasks:\n  wait:\n    run: sleep 30\n";
const FANOUT: &str = "name: fan\ntasks:\n  many:\n    for_each: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]\n    run: \"true\"\n  few:\n    for_each: [a, b]\n    run: \"true\"\n";
const BROKEN: &str = "name: broken\ntasks:\n  a:\n    neds: [b]\n    run: x\n";

impl Ui {
    async fn new() -> Self {
        let (dir, state) = support::app(
            &[
                ("hello.yaml", HELLO),
                ("gated.yaml", GATED),
                ("failing.yaml", FAILING),
                ("slow.yaml", SLOW),
                ("fan.yaml", FANOUT),
                ("broken.yaml", BROKEN),
            ],
            &[],
        )
        .await;
        Self { _dir: dir, state }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = router(self.state.clone())
            .oneshot(req)
            .await
            .expect("response");
        let status = resp.status();
        let h = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = h(header::LOCATION);
        let content_type = h(header::CONTENT_TYPE).unwrap_or_default();
        let cache = h(header::CACHE_CONTROL);
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            location,
            content_type,
            cache,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    /// A form post from this site's own page.
    async fn post(&self, uri: &str, form: &str) -> Answer {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "localhost")
                .header(header::ORIGIN, "http://localhost")
                .header("sec-fetch-site", "same-origin")
                .body(Body::from(form.to_owned()))
                .expect("request"),
        )
        .await
    }

    async fn api(&self, method: &str, uri: &str, body: Option<&str>) -> Value {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let a = self
            .send(
                req.body(Body::from(body.unwrap_or("").to_owned()))
                    .expect("request"),
            )
            .await;
        serde_json::from_str(&a.body).unwrap_or(Value::String(a.body))
    }

    async fn start(&self, pipeline: &str) -> String {
        let run = self
            .api(
                "POST",
                &format!("/api/v1/pipelines/{pipeline}/runs"),
                Some("{}"),
            )
            .await;
        run["id"].as_str().expect("run id").to_owned()
    }

    async fn wait_for(&self, run: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let doc = self.api("GET", &format!("/api/v1/runs/{run}"), None).await;
            if pred(&doc) {
                return doc;
            }
            assert!(Instant::now() < deadline, "timed out; last: {doc}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

fn assert_page(a: &Answer, h1: &str) {
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.content_type.starts_with("text/html"),
        "{}",
        a.content_type
    );
    assert!(a.body.contains("<h1>"), "no h1");
    assert!(a.body.contains(h1), "no `{h1}` in page");
    for link in [
        "href=\"/\"",
        "href=\"/runs\"",
        "href=\"/approvals\"",
        "href=\"/dead-letters\"",
    ] {
        assert!(a.body.contains(link), "nav lacks {link}");
    }
    assert!(
        !a.body.contains("http://") || !a.body.contains("src=\"http"),
        "external asset"
    );
    assert!(!a.body.contains("https://"), "external URL in page");
}

fn final_state(d: &Value) -> bool {
    matches!(
        d["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

#[tokio::test]
async fn pipelines_page_lists_filters_and_escapes() {
    let ui = Ui::new().await;
    let run = ui.start("default/hello").await;
    ui.wait_for(&run, final_state).await;
    let a = ui.get("/").await;
    assert_page(&a, "Pipelines");
    for want in [
        "tr data-pipeline=\"default/hello\"",
        "class=\"pipeline-link\" href=\"/pipelines/default/hello\"",
        "tr data-pipeline=\"ops/gated\"",
        "form id=\"filters\"",
        "name=\"q\"",
        "select name=\"namespace\"",
        "select name=\"tag\"",
        "at 02:30 every day (Europe/Berlin)",
        "team-a",
        "100%",
        "p50",
        "square state-succeeded",
        "data-file=\"broken.yaml\"",
        "neds",
        "<time datetime=",
    ] {
        assert!(a.body.contains(want), "pipelines page lacks `{want}`");
    }
    assert!(!a.body.contains("<script>alert"), "description not escaped");
    assert!(a.body.contains("&lt;script&gt;alert"));
    let f = ui.get("/?namespace=ops").await;
    assert!(f.body.contains("data-pipeline=\"ops/gated\""));
    assert!(!f.body.contains("data-pipeline=\"default/hello\""));
    let f = ui.get("/?tag=demo&q=hel").await;
    assert!(f.body.contains("data-pipeline=\"default/hello\""));
    assert!(!f.body.contains("data-pipeline=\"ops/gated\""));
}

#[tokio::test]
async fn pipeline_page_has_graph_grid_form_and_source() {
    let ui = Ui::new().await;
    let run = ui.start("default/hello").await;
    ui.wait_for(&run, final_state).await;
    let a = ui.get("/pipelines/default/hello").await;
    assert_page(&a, "default/hello");
    for want in [
        "<svg id=\"dag\"",
        "data-task=\"greet\"",
        "data-task=\"after\"",
        "<table id=\"grid\"",
        &format!("href=\"/runs/{run}?task=greet\""),
        "<form id=\"trigger\" method=\"post\"",
        "type=\"number\" id=\"param-n\" name=\"n\" step=\"1\"",
        "type=\"checkbox\" id=\"param-loud\" name=\"loud\"",
        "<select id=\"param-mode\" name=\"mode\"",
        "id=\"trigger-submit\"",
        "data-action=\"pause\"",
        "<pre id=\"source\">",
        "id=\"version\"",
        "id=\"upcoming\"",
        "class=\"viewer-time\"",
    ] {
        assert!(a.body.contains(want), "pipeline page lacks `{want}`");
    }
    assert!(
        !a.body.contains("<script>p</script>"),
        "param description not escaped"
    );
    assert!(!a.body.contains("<script>alert"), "source not escaped");
}

#[tokio::test]
async fn trigger_form_starts_a_run_or_shows_the_problem() {
    let ui = Ui::new().await;
    let a = ui
        .post(
            "/pipelines/default/hello/trigger",
            "who=ada&n=2&mode=slow&loud=true",
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let to = a.location.expect("location");
    let id = to.strip_prefix("/runs/").expect("a run page");
    let run = ui.wait_for(id, final_state).await;
    assert_eq!(run["params"]["who"], "ada");
    assert_eq!(run["params"]["n"], 2);
    assert_eq!(run["params"]["loud"], true);
    assert_eq!(run["params"]["mode"], "slow");

    let bad = ui
        .post("/pipelines/default/hello/trigger", "who=%3Cscript%3Ex&n=0")
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("class=\"field-error\""), "{}", bad.body);
    assert!(bad.body.contains("must be at least 1"));
    // The value given is shown again, escaped.
    assert!(bad.body.contains("value=\"&lt;script&gt;x\""));
    let unknown = ui.post("/pipelines/default/nope/trigger", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.content_type.starts_with("text/html"));
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let ui = Ui::new().await;
    let a = ui
        .send(
            Request::post("/pipelines/default/hello/trigger")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "localhost")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("cross-site request refused"));
    let a = ui
        .send(
            Request::post("/pipelines/default/hello/pause")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn run_page_shows_graph_timeline_task_and_escaped_log() {
    let ui = Ui::new().await;
    let run = ui.start("default/hello").await;
    ui.wait_for(&run, |d| d["state"] == "succeeded").await;
    let a = ui.get(&format!("/runs/{run}")).await;
    assert_page(&a, &run);
    for want in [
        "id=\"run-state\"",
        "data-state=\"succeeded\"",
        "<svg id=\"dag\"",
        "data-task=\"greet\" data-state=\"succeeded\"",
        "id=\"gantt\"",
        "class=\"bar state-succeeded\"",
        &format!("href=\"/runs/{run}?task=greet\""),
    ] {
        assert!(a.body.contains(want), "run page lacks `{want}`");
    }
    assert!(
        !a.body.contains("id=\"live\""),
        "a finished run is not followed"
    );
    let t = ui.get(&format!("/runs/{run}?task=greet")).await;
    assert_eq!(t.status, StatusCode::OK);
    for want in [
        "id=\"task-panel\"",
        "<pre id=\"log\"",
        "<span class=\"line\">&lt;script&gt;log&lt;/script&gt;</span>",
        "id=\"log-search\"",
        "id=\"log-download\"",
        "id=\"attempts\"",
        "class=\"exit-code\">0<",
        "&lt;script&gt;out&lt;/script&gt;",
    ] {
        assert!(
            t.body.contains(want),
            "task panel lacks `{want}`:\n{}",
            t.body
        );
    }
    assert!(!t.body.contains("<script>log"), "log line not escaped");
    assert!(!t.body.contains("<script>out"), "output not escaped");
    let frag = ui.get(&format!("/runs/{run}?fragment=dag")).await;
    assert!(frag.body.starts_with("<svg id=\"dag\""));
    assert_eq!(
        ui.get(&format!("/runs/{run}?task=nope")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn big_fan_outs_collapse_into_a_group_node() {
    let ui = Ui::new().await;
    let run = ui.start("default/fan").await;
    ui.wait_for(&run, final_state).await;
    let a = ui.get(&format!("/runs/{run}")).await;
    assert!(
        a.body
            .contains("class=\"node group state-succeeded\" data-task=\"many\""),
        "{}",
        a.body
    );
    assert!(a.body.contains("many ×25"));
    assert!(
        !a.body
            .contains("g class=\"node state-succeeded\" data-task=\"many[1]\"")
    );
    let group = ui.get(&format!("/runs/{run}?task=many")).await;
    assert_eq!(group.status, StatusCode::OK);
    assert!(group.body.contains("Instances (25)"));
    assert!(
        group
            .body
            .contains(&format!("href=\"/runs/{run}?task=many%5B25%5D\""))
    );
    // Two instances are drawn each.
    assert!(
        a.body
            .contains("g class=\"node state-succeeded\" data-task=\"few[a]\"")
    );
}

#[tokio::test]
async fn runs_list_filters_and_pages() {
    let ui = Ui::new().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(ui.start("default/failing").await);
    }
    for id in &ids {
        ui.wait_for(id, final_state).await;
    }
    let a = ui.get("/runs").await;
    assert_page(&a, "Runs");
    assert!(a.body.contains("<table id=\"runs\""));
    for id in &ids {
        assert!(
            a.body
                .contains(&format!("tr data-run=\"{id}\" data-state=\"failed\""))
        );
    }
    assert!(!a.body.contains("id=\"next-page\""));
    let f = ui.get("/runs?state=succeeded").await;
    assert!(!f.body.contains("data-state=\"failed\""));
    let f = ui.get("/runs?pipeline=default/failing&state=failed").await;
    assert_eq!(f.body.matches("<tr data-run=").count(), 3);
    assert_eq!(
        ui.get("/runs?state=bogus").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn cancel_and_retry_through_forms() {
    let ui = Ui::new().await;
    let run = ui.start("default/slow").await;
    ui.wait_for(&run, |d| d["state"] == "running").await;
    let page = ui.get(&format!("/runs/{run}")).await;
    assert!(page.body.contains("data-action=\"cancel\""));
    assert!(
        page.body
            .contains(&format!("data-events=\"/api/v1/runs/{run}/events\""))
    );
    assert!(page.body.contains("<dialog id=\"confirm\""));
    // Without the script the button leads to a confirm page.
    let confirm = ui.get(&format!("/runs/{run}/cancel?back=/runs")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("data-confirm=\"cancel\""));
    let a = ui
        .post(&format!("/runs/{run}/cancel"), "back=%2Fruns")
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/runs"));
    ui.wait_for(&run, |d| d["state"] == "cancelled").await;
    let again = ui.post(&format!("/runs/{run}/cancel"), "").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.content_type.starts_with("text/html"));
    let retry = ui.post(&format!("/runs/{run}/retry"), "").await;
    assert_eq!(retry.status, StatusCode::SEE_OTHER);
    assert_eq!(retry.location, Some(format!("/runs/{run}")));
    ui.wait_for(&run, |d| d["state"] == "running" || d["state"] == "queued")
        .await;
    ui.post(&format!("/runs/{run}/cancel"), "").await;
    ui.wait_for(&run, final_state).await;
}

#[tokio::test]
async fn approvals_inbox_and_approve_through_the_form() {
    let ui = Ui::new().await;
    let run = ui.start("ops/gated").await;
    ui.wait_for(&run, |d| d["tasks"][0]["state"] == "waiting_approval")
        .await;
    let a = ui.get("/approvals").await;
    assert_page(&a, "Approvals");
    assert!(
        a.body
            .contains(&format!("tr data-run=\"{run}\" data-task=\"release\""))
    );
    assert!(a.body.contains("data-action=\"approve\""));
    assert!(a.body.contains("data-action=\"reject\""));
    // What the gate asks, rendered when it started waiting (and escaped).
    assert!(
        a.body
            .contains("<td class=\"message\">ship gated &amp; &lt;friends&gt;?</td>"),
        "{}",
        a.body
    );
    let confirm = ui
        .get(&format!(
            "/runs/{run}/tasks/release/approve?back=/approvals"
        ))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("data-confirm=\"approve\""));
    assert!(confirm.body.contains("name=\"comment\""));
    assert!(
        confirm.body.contains("Approve <code>release</code> of run"),
        "{}",
        confirm.body
    );
    let bogus = ui.get(&format!("/runs/{run}/tasks/release/explode")).await;
    assert_eq!(bogus.status, StatusCode::NOT_FOUND);
    let panel = ui.get(&format!("/runs/{run}?task=release")).await;
    assert!(panel.body.contains("data-action=\"approve\""));
    assert!(
        panel
            .body
            .contains("<p class=\"approval-message\">ship gated &amp; &lt;friends&gt;?</p>")
    );
    let ok = ui
        .post(
            &format!("/runs/{run}/tasks/release/approve"),
            "back=%2Fapprovals&comment=looks+%3Cgood%3E",
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location.as_deref(), Some("/approvals"));
    ui.wait_for(&run, |d| d["state"] == "succeeded").await;
    assert!(!ui.get("/approvals").await.body.contains("data-run="));
    // The gate's panel says who decided and what they said.
    let decided = ui.get(&format!("/runs/{run}?task=release")).await;
    let said = decided
        .body
        .split("<p class=\"decision\" data-approved=\"true\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no decision in the panel: {}", decided.body));
    assert!(
        said.starts_with("Approved by <strong>ui</strong>"),
        "{said}"
    );
    assert!(said.ends_with(": <q>looks &lt;good&gt;</q>"), "{said}");
}

#[tokio::test]
async fn dead_letters_and_requeue_through_the_form() {
    let ui = Ui::new().await;
    let run = ui.start("default/failing").await;
    ui.wait_for(&run, |d| d["state"] == "failed").await;
    let a = ui.get("/dead-letters").await;
    assert_page(&a, "Dead letters");
    assert!(
        a.body
            .contains(&format!("tr data-run=\"{run}\" data-task=\"boom\""))
    );
    assert!(a.body.contains("data-action=\"requeue\""));
    let r = ui
        .post(
            &format!("/runs/{run}/tasks/boom/requeue"),
            "back=%2Fdead-letters",
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/dead-letters"));
    let doc = ui
        .wait_for(&run, |d| {
            d["state"] == "failed" && d["tasks"][0]["attempts"] == 2
        })
        .await;
    assert_eq!(doc["tasks"][0]["state"], "failed");
}

#[tokio::test]
async fn pause_and_unpause_through_forms() {
    let ui = Ui::new().await;
    let a = ui.post("/pipelines/default/hello/pause", "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location.as_deref(), Some("/pipelines/default/hello"));
    let page = ui.get("/pipelines/default/hello").await;
    assert!(page.body.contains("data-action=\"unpause\""));
    assert!(page.body.contains("⏸ paused"));
    // The list shows it too, and only for that pipeline.
    let list = ui.get("/").await;
    assert_eq!(list.body.matches("⏸ paused").count(), 1, "{}", list.body);
    let row = list
        .body
        .split("data-pipeline=\"default/hello\"")
        .nth(1)
        .expect("row");
    assert!(row.split("</tr>").next().expect("row").contains("⏸ paused"));
    ui.post("/pipelines/default/hello/unpause", "").await;
    assert!(
        ui.get("/pipelines/default/hello")
            .await
            .body
            .contains("data-action=\"pause\"")
    );
}

#[tokio::test]
async fn run_events_stream_until_the_run_ends() {
    let ui = Ui::new().await;
    let run = ui.start("default/hello").await;
    let a = ui
        .send(
            Request::get(format!("/api/v1/runs/{run}/events"))
                .header(header::ACCEPT, "text/event-stream")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type, "text/event-stream");
    assert!(a.body.contains("event: task_state\n"), "{}", a.body);
    assert!(a.body.contains("event: attempt_finished\n"));
    assert!(a.body.contains("event: end\n"));
    assert!(a.body.contains("\"state\":\"succeeded\""));
    // Resuming after the last event gives only the end.
    let last: i64 = a
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .filter_map(|n| n.parse().ok())
        .max()
        .expect("ids");
    let resumed = ui
        .send(
            Request::get(format!("/api/v1/runs/{run}/events"))
                .header("last-event-id", last.to_string())
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert!(!resumed.body.contains("event: task_state"));
    assert!(resumed.body.contains("event: end"));
    let missing = ui.get("/api/v1/runs/nope/events").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.content_type.starts_with("application/json"));
}

/// A stream reads the store when a commit of its run is announced: with the fallback read an
/// hour away, an approval's consequences still arrive, and the stream ends with the run.
#[tokio::test]
async fn run_events_arrive_when_committed_not_at_the_next_poll() {
    let ui = Ui::new().await;
    let run = ui.start("ops/gated").await;
    ui.wait_for(&run, |d| d["tasks"][0]["state"] == "waiting_approval")
        .await;
    let mut state = ui.state.clone();
    state.events_fallback = baton_server::EventsFallback::Every(Duration::from_secs(3600));
    let resp = router(state)
        .oneshot(
            Request::get(format!("/api/v1/runs/{run}/events"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let mut body = resp.into_body();
    let mut seen = String::new();
    // Generous, for a loaded machine; only a stream that waits for its fallback takes longer.
    let mut read_until = async |what: &str| {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !seen.contains(what) {
                let frame = body.frame().await.expect("stream open").expect("frame");
                if let Ok(data) = frame.into_data() {
                    seen.push_str(&String::from_utf8_lossy(&data));
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{what}` in time; got:\n{seen}"));
    };
    read_until("event: approval_asked\n").await;
    let ok = ui
        .post(&format!("/runs/{run}/tasks/release/approve"), "back=%2F")
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    read_until("event: approval_decided\n").await;
    read_until("event: end\n").await;
}

#[tokio::test]
async fn unknown_pages_are_html_404s_and_assets_are_cached() {
    let ui = Ui::new().await;
    for uri in [
        "/pipelines/default/nope",
        "/runs/01NOPE",
        "/no/such/page",
        "/assets/nope.js",
    ] {
        let a = ui.get(uri).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            a.content_type.starts_with("text/html"),
            "{uri}: {}",
            a.content_type
        );
        assert!(a.body.contains("<nav>"), "{uri}");
    }
    // What the visitor typed comes back escaped in the message.
    let odd = ui.get("/runs/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(odd.status, StatusCode::NOT_FOUND);
    assert!(!odd.body.contains("<script>alert"), "{}", odd.body);
    assert!(odd.body.contains("&lt;script&gt;"));
    let api = ui.get("/api/v1/nope").await;
    assert!(api.content_type.starts_with("application/json"));
    for (file, kind) in [("baton.css", "text/css"), ("baton.js", "text/javascript")] {
        let a = ui.get(&format!("/assets/{file}")).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.content_type.starts_with(kind));
        assert!(a.cache.as_deref().is_some_and(|c| c.contains("immutable")));
        assert!(
            !a.body.contains("https://"),
            "{file} fetches from elsewhere"
        );
    }
    let page = ui.get("/").await;
    assert!(page.body.contains("/assets/baton.css?v="));
}

#[tokio::test]
async fn lineage_of_a_pipeline_in_the_api_and_on_its_page() {
    let (_dir, state) = support::app(
        &[
            (
                "ingest.yaml",
                "name: ingest\ntasks:\n  pull:\n    run: \"true\"\n    outputs: [\"s3://raw/<events>\"]\n",
            ),
            (
                "clean.yaml",
                "name: clean\nnamespace: data\ntasks:\n  scrub:\n    run: \"true\"\n    inputs: [\"s3://raw/<events>\"]\n    outputs: [postgres://db/public.events]\n",
            ),
            (
                "report.yaml",
                "name: report\ntasks:\n  build:\n    run: \"true\"\n    inputs: [postgres://db/public.events]\n",
            ),
        ],
        &[],
    )
    .await;
    let ui = Ui { _dir, state };

    let l = ui
        .api("GET", "/api/v1/pipelines/data/clean/lineage", None)
        .await;
    assert_eq!(
        l["upstream"],
        serde_json::json!([{"pipeline": "default/ingest", "datasets": [{"namespace": "s3://raw", "name": "<events>"}]}])
    );
    assert_eq!(
        l["downstream"],
        serde_json::json!([{"pipeline": "default/report", "datasets": [{"namespace": "postgres://db", "name": "public.events"}]}])
    );
    assert_eq!(l["tasks"][0]["task"], "scrub");
    let missing = ui
        .api("GET", "/api/v1/pipelines/data/nope/lineage", None)
        .await;
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");

    let page = ui.get("/pipelines/data/clean").await;
    assert_page(&page, "data/clean");
    assert!(page.body.contains("id=\"lineage\""), "lineage section");
    assert!(page.body.contains("href=\"/pipelines/default/ingest\""));
    assert!(page.body.contains("href=\"/pipelines/default/report\""));
    assert!(
        page.body.contains("s3://raw/&lt;events&gt;"),
        "escaped dataset"
    );
    assert!(!page.body.contains("<events>"));
}

#[tokio::test]
async fn the_run_summary_fragment_follows_the_run_to_its_end() {
    let ui = Ui::new().await;
    let run = ui.start("default/slow").await;
    ui.wait_for(&run, |d| d["state"] == "running").await;
    let live = ui.get(&format!("/runs/{run}?fragment=summary")).await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(
        live.body.contains("data-action=\"cancel\""),
        "{}",
        live.body
    );
    assert!(!live.body.contains("Finished"));

    ui.post(&format!("/runs/{run}/cancel"), "").await;
    ui.wait_for(&run, final_state).await;
    let ended = ui.get(&format!("/runs/{run}?fragment=summary")).await;
    assert!(ended.body.contains("Finished"), "{}", ended.body);
    assert!(!ended.body.contains("data-action=\"cancel\""));
    assert!(
        ended.body.contains("data-action=\"retry\""),
        "a cancelled run can be retried"
    );
    assert!(!ended.body.contains("<html"), "a fragment, not a page");
}

#[tokio::test]
async fn a_cached_task_says_where_its_result_came_from() {
    const CACHED: &str = "name: cached\ntasks:\n  build:\n    outputs: [by]\n    cache: { key: \"v1\" }\n    run: echo \"by=$BATON_RUN_ID\" >> $BATON_OUTPUTS\n  after:\n    needs: [build]\n    run: \"true\"\n";
    let (dir, state) = support::app(&[("cached.yaml", CACHED)], &[]).await;
    let ui = Ui { _dir: dir, state };
    let first = ui.start("default/cached").await;
    ui.wait_for(&first, |d| d["state"] == "succeeded").await;
    let second = ui.start("default/cached").await;
    let doc = ui.wait_for(&second, |d| d["state"] == "succeeded").await;
    let build = &doc["tasks"][0];
    assert_eq!(build["key"], "build");
    assert_eq!(
        build["cached_from"],
        serde_json::json!({ "run": first, "task": "build" })
    );
    assert_eq!(build["attempts"], 0);
    assert_eq!(build["outputs"]["by"], first.as_str());
    assert_eq!(doc["tasks"][1]["cached_from"], Value::Null);
    assert_eq!(doc["no_cache"], false);

    let page = ui.get(&format!("/runs/{second}")).await;
    assert!(
        page.body.contains("<span class=\"cached\">cached</span>"),
        "{}",
        page.body
    );
    let panel = ui.get(&format!("/runs/{second}?task=build")).await;
    assert!(
        panel.body.contains(&format!(
            "Reused the cached result of <a href=\"/runs/{first}?task=build\"><code>build</code></a> in run <a href=\"/runs/{first}\">"
        )),
        "{}",
        panel.body
    );
    assert!(panel.body.contains("None: the result came from the cache."));

    // `no_cache` in the trigger's body: it runs again, and the run keeps the choice.
    let third = ui
        .api(
            "POST",
            "/api/v1/pipelines/default/cached/runs",
            Some("{\"no_cache\": true}"),
        )
        .await;
    assert_eq!(third["no_cache"], true, "{third}");
    let third = third["id"].as_str().expect("run id").to_owned();
    let doc = ui.wait_for(&third, |d| d["state"] == "succeeded").await;
    assert_eq!(doc["tasks"][0]["cached_from"], Value::Null);
    assert_eq!(doc["tasks"][0]["attempts"], 1);
    assert_eq!(doc["tasks"][0]["outputs"]["by"], third.as_str());
    let panel = ui.get(&format!("/runs/{third}?task=build")).await;
    assert!(!panel.body.contains("cached-from"));
}

#[tokio::test]
async fn a_sub_pipeline_task_links_to_its_child_run_and_back() {
    let (dir, state) = support::app(
        &[
            ("hello.yaml", HELLO),
            (
                "parent.yaml",
                "name: parent\ntasks:\n  call:\n    pipeline: hello\n    params:\n      who: \"<b>{{ run.trigger }}</b>\"\n",
            ),
        ],
        &[],
    )
    .await;
    let ui = Ui { _dir: dir, state };
    let run = ui.start("default/parent").await;
    let doc = ui.wait_for(&run, |d| d["state"] == "succeeded").await;
    let child = doc["children"][0]["id"]
        .as_str()
        .expect("a child")
        .to_owned();
    let panel = ui.get(&format!("/runs/{run}?task=call")).await;
    assert_eq!(panel.status, StatusCode::OK);
    for want in [
        "<h3>Sub-pipeline runs</h3>",
        &format!(
            "<li data-run=\"{child}\">Attempt 1: run <a href=\"/runs/{child}\"><code>{child}</code></a> of default/hello"
        ),
    ] {
        assert!(
            panel.body.contains(want),
            "panel lacks `{want}`:\n{}",
            panel.body
        );
    }
    let page = ui.get(&format!("/runs/{child}")).await;
    assert_page(&page, &child);
    for want in [
        "<dt>Started by</dt>",
        &format!(
            "run <a href=\"/runs/{run}\"><code>{run}</code></a> task <a href=\"/runs/{run}?task=call\"><code>call</code></a>"
        ),
        // Params rendered from templates are escaped like any other.
        "&lt;b&gt;manual&lt;/b&gt;",
    ] {
        assert!(
            page.body.contains(want),
            "child page lacks `{want}`:\n{}",
            page.body
        );
    }
}
