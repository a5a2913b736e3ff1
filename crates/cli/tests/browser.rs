//! The web UI end to end, in a real headless Chromium driven over WebDriver: each test starts
//! its own `baton server` over its own pipelines directory and clicks through it as a person
//! would. Screenshots of the main pages land in `test-output/screenshots/`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` each test reports a `SKIPPED:` line
//! (`support/skip.rs`) and passes; `.ci/run` installs both and sets `BATON_REQUIRE_BROWSER=1`, which makes a missing
//! browser a failure.

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::Browser;
use support::{Server, Test, http};

/// Starts a server over `t`'s `pipelines/` and a browser on it, or `None` when no browser is
/// installed (the test then passes, having said so).
async fn open(t: &Test, name: &str) -> Option<(Server, Browser)> {
    let server = t.server();
    let browser = Browser::start(name, &server.url).await?;
    Some((server, browser))
}

/// The run id of a run page's path (`/runs/ID` or `/runs/ID?task=...`).
fn run_id(path: &str) -> String {
    let rest = path.strip_prefix("/runs/").expect("a run page");
    rest.split(['?', '#']).next().expect("id").to_owned()
}

/// Triggers the pipeline whose page is open with its form as it stands, and returns the new
/// run's id once its page is shown.
async fn trigger(b: &Browser) -> String {
    b.click("form#trigger button[type=submit]#trigger-submit")
        .await;
    let path = b.wait_path("a run page", |p| p.starts_with("/runs/")).await;
    run_id(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_is_triggered_with_params_and_its_run_goes_green_live() {
    let t = Test::new()
        .file(
            "pipelines/report.yaml",
            r#"name: report
namespace: data
description: Builds the daily report
tags: [daily]
params:
  region: { type: string, enum: [eu, us], default: eu }
  limit: { type: integer, default: 10, min: 1, max: 100 }
  full: { type: boolean, default: false }
  label: { type: string, default: plain, min: 3, description: "at least three letters" }
tasks:
  extract:
    run: |
      echo "region={{ params.region }} limit={{ params.limit }} full={{ params.full | tojson }} label={{ params.label }}"
      while [ ! -f go ]; do sleep 0.05; done
      echo released
  load:
    needs: [extract]
    run: echo loaded
"#,
        )
        .file(
            "pipelines/other.yaml",
            "name: other\ntasks:\n  a:\n    run: \"true\"\n",
        )
        .file(
            "pipelines/typo.yaml",
            "name: typo\ntasks:\n  a:\n    run: \"true\"\n    needz: [b]\n",
        );
    let Some((_server, b)) = open(&t, "trigger").await else {
        return;
    };

    b.goto("/").await;
    b.wait("nav a").await;
    b.wait("h1").await;
    b.wait(r#"tr[data-pipeline="default/other"]"#).await;
    b.wait(r#"tr[data-pipeline="data/report"] a.pipeline-link"#)
        .await;
    // A file that never validated is listed with its problems.
    b.wait_text("tr.broken", "needz").await;
    b.screenshot("pipelines").await;

    b.click(r#"tr[data-pipeline="data/report"] a.pipeline-link"#)
        .await;
    b.wait_path("the pipeline page", |p| p == "/pipelines/data/report")
        .await;
    b.wait(r#"svg#dag g.node[data-task="extract"]"#).await;
    b.wait(r#"svg#dag g.node[data-task="load"]"#).await;
    b.wait("#version").await;
    b.wait_text("pre#source", "description: Builds the daily report")
        .await;
    b.screenshot("pipeline").await;

    // A value only the server can refuse (a string's length): the page comes back with the
    // problem next to its field and what was typed kept.
    b.select("form#trigger select[name=region]", "us").await;
    b.fill("form#trigger input[type=number][name=limit]", "42")
        .await;
    b.click("form#trigger input[type=checkbox][name=full]")
        .await;
    b.fill("form#trigger input[name=label]", "ab").await;
    b.click("#trigger-submit").await;
    b.wait(".field.invalid input[name=label]").await;
    b.wait_text(".field.invalid .field-error", "at least 3")
        .await;
    assert_eq!(b.status().await, 422);
    assert_eq!(
        b.prop("form#trigger input[name=limit]", "value")
            .await
            .as_deref(),
        Some("42")
    );
    assert!(
        b.all(".field.invalid input[name=limit]").await.is_empty(),
        "only the bad field is marked"
    );
    b.screenshot("pipeline-invalid-params").await;

    b.fill("form#trigger input[name=label]", "weekly").await;
    if b.prop("form#trigger input[name=full]", "checked")
        .await
        .as_deref()
        != Some("true")
    {
        b.click("form#trigger input[name=full]").await;
    }
    b.select("form#trigger select[name=region]", "us").await;
    let id = trigger(&b).await;

    // The run page follows the run by itself: the task holds until the test lets it go.
    b.wait(r#"svg#dag g.node[data-task="extract"][data-state="running"]"#)
        .await;
    b.wait(r#"#run-state[data-state="running"]"#).await;
    b.screenshot("run-running").await;

    // Clicking the running task opens its panel with the log so far (the params as typed).
    b.click(r#"svg#dag g.node[data-task="extract"]"#).await;
    b.wait_path("the task selected", |p| p.contains("task=extract"))
        .await;
    b.wait("#task-panel").await;
    b.wait_text(
        "pre#log span.line",
        "region=us limit=42 full=true label=weekly",
    )
    .await;
    b.mark_document().await;

    // From here on nothing reloads: the log grows, the states and the timeline change in place.
    std::fs::write(t.path().join("pipelines/go"), "").expect("let the task finish");
    b.wait_text("pre#log span.line", "released").await;
    b.wait(r#"#run-state[data-state="succeeded"]"#).await;
    b.wait(r#"svg#dag g.node[data-task="extract"][data-state="succeeded"]"#)
        .await;
    b.wait(r#"svg#dag g.node[data-task="load"][data-state="succeeded"]"#)
        .await;
    b.wait(r#"#gantt .bar[data-task="extract"]"#).await;
    b.wait(r#"#gantt .bar[data-task="load"]"#).await;
    // The summary follows too: the end time appears and the cancel button goes.
    b.wait_text("#summary-wrap dl", "Finished").await;
    b.until("the cancel button to go once the run ended", async || {
        (!b.exists(r#"#summary-wrap [data-action="cancel"]"#).await).then_some(())
    })
    .await;
    assert!(b.same_document().await, "the run page reloaded itself");
    b.screenshot("run-succeeded").await;

    b.goto("/runs").await;
    b.wait(&format!(
        r#"table#runs tr[data-run="{id}"][data-state="succeeded"]"#
    ))
    .await;
    b.screenshot("runs").await;

    // The pipelines page shows the run among the pipeline's last runs.
    b.goto("/").await;
    b.wait(&format!(
        r#"tr[data-pipeline="data/report"] a[href="/runs/{id}"][data-state="succeeded"]"#
    ))
    .await;

    // The pipeline's grid has a column for the run, a cell per task.
    b.goto("/pipelines/data/report").await;
    b.wait(&format!(
        r#"table#grid a[data-run="{id}"][data-state="succeeded"]"#
    ))
    .await;
    b.wait(r#"table#grid tr[data-task="load"] td[data-state="succeeded"]"#)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_shows_its_log_as_text_and_a_retry_turns_the_run_green() {
    let t = Test::new().file(
        "pipelines/flaky.yaml",
        r#"name: flaky
tasks:
  prepare:
    run: echo ready
  flaky:
    needs: [prepare]
    run: |
      echo 'about to check <script>window.__injected = 1</script>'
      if [ ! -f fixed ]; then echo "the marker file is missing" >&2; exit 3; fi
      echo "fixed now"
"#,
    );
    let Some((_server, b)) = open(&t, "retry").await else {
        return;
    };
    b.goto("/pipelines/default/flaky").await;
    let id = trigger(&b).await;
    b.wait(r#"#run-state[data-state="failed"]"#).await;
    b.wait(r#"svg#dag g.node[data-task="prepare"][data-state="succeeded"]"#)
        .await;
    b.wait(r#"svg#dag g.node[data-task="flaky"][data-state="failed"]"#)
        .await;

    b.click(r#"svg#dag g.node[data-task="flaky"]"#).await;
    b.wait_path("the failed task selected", |p| p.contains("task=flaky"))
        .await;
    b.wait("#task-panel").await;
    b.wait_text("pre#log span.line", "the marker file is missing")
        .await;
    // Markup in a log is text: shown as written, never run.
    b.wait_text(
        "pre#log span.line",
        "about to check <script>window.__injected = 1</script>",
    )
    .await;
    assert!(b.all("pre#log script").await.is_empty());
    assert_eq!(
        b.eval("return window.__injected === undefined;").await,
        serde_json::Value::Bool(true)
    );
    // The download link serves the whole log.
    let js = "return fetch(document.querySelector('a#log-download').href).then(r => r.text());";
    let downloaded = b.eval(js).await;
    assert!(
        downloaded
            .as_str()
            .is_some_and(|log| log.contains("the marker file is missing")),
        "{downloaded}"
    );
    b.screenshot("task-log-failed").await;
    // Searching the log hides the lines that do not match.
    b.fill("input#log-search", "marker").await;
    b.until("the search to hide the other line", async || {
        let mut shown = Vec::new();
        for line in b.all("pre#log span.line").await {
            if line.is_displayed().await.ok()? {
                shown.push(line.text().await.ok()?);
            }
        }
        (shown == ["the marker file is missing"]).then_some(())
    })
    .await;

    b.goto("/dead-letters").await;
    b.wait(&format!(r#"tr[data-run="{id}"][data-task="flaky"]"#))
        .await;
    b.screenshot("dead-letters").await;

    std::fs::write(t.path().join("pipelines/fixed"), "").expect("fix the cause");
    b.goto(&format!("/runs/{id}")).await;
    b.act("body", "retry").await;
    let run_page = format!("/runs/{id}");
    b.wait_path("back on the run page", |p| p == run_page).await;
    b.wait(r#"#run-state[data-state="succeeded"]"#).await;
    b.wait(r#"svg#dag g.node[data-task="flaky"][data-state="succeeded"]"#)
        .await;

    b.goto("/dead-letters").await;
    b.wait("h1").await;
    assert!(
        b.all(&format!(r#"tr[data-run="{id}"]"#)).await.is_empty(),
        "a retried run is no dead letter"
    );
}

/// A pipeline with a gate between two tasks.
const RELEASE: &str = r#"name: release
tasks:
  build:
    run: echo built
  ship:
    needs: [build]
    approval: { message: "Ship it?" }
    run: echo shipped
  announce:
    needs: [ship]
    run: echo announced
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_waits_in_the_inbox_and_approving_it_lets_the_run_finish() {
    let t = Test::new().file("pipelines/release.yaml", RELEASE);
    let Some((server, b)) = open(&t, "approve").await else {
        return;
    };
    b.goto("/pipelines/default/release").await;
    let id = trigger(&b).await;
    b.wait(r#"svg#dag g.node[data-task="ship"][data-state="waiting_approval"]"#)
        .await;

    b.goto("/approvals").await;
    let row = format!(r#"tr[data-run="{id}"][data-task="ship"]"#);
    b.wait(&row).await;
    b.screenshot("approvals").await;
    // The dialog says what is decided; the decision lands back on the inbox.
    b.ask(&row, "approve").await;
    b.wait_text("dialog[open] .confirm-text code", "ship").await;
    b.fill("dialog[open] label.comment input", "ship it").await;
    b.screenshot("approve-dialog").await;
    b.confirm("approve").await;
    b.wait_path("back on the inbox", |p| p == "/approvals")
        .await;
    b.wait_absent_after_reload(&row).await;

    b.goto(&format!("/runs/{id}")).await;
    b.wait(r#"#run-state[data-state="succeeded"]"#).await;
    b.wait(r#"svg#dag g.node[data-task="announce"][data-state="succeeded"]"#)
        .await;
    // The gate's panel says who decided, with the comment typed in the dialog.
    b.goto(&format!("/runs/{id}?task=ship")).await;
    b.wait_text(r#"p.decision[data-approved="true"]"#, "ship it")
        .await;

    // Rejecting from the gate's panel on the run page fails the run.
    b.goto("/pipelines/default/release").await;
    let rejected = trigger(&b).await;
    b.wait(r#"svg#dag g.node[data-task="ship"][data-state="waiting_approval"]"#)
        .await;
    b.goto(&format!("/runs/{rejected}?task=ship")).await;
    b.act("#task-panel", "reject").await;
    b.wait(r#"#run-state[data-state="failed"]"#).await;
    let (_, run) = http(&server.addr, "GET", &format!("/api/v1/runs/{rejected}"), "");
    let announce = support::task_states(&run)["announce"].clone();
    assert_ne!(announce, "succeeded", "a rejected gate stops what follows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_page_and_runs_are_cancelled_requeued_and_paused_from_the_pages() {
    let t = Test::new()
        .file(
            "pipelines/nightly.yaml",
            "name: nightly\ntags: [nightly]\ntasks:\n  a:\n    run: \"true\"\n",
        )
        .file(
            "pipelines/slow.yaml",
            "name: slow\nnamespace: ops\ntasks:\n  wait:\n    run: sleep 300\n",
        )
        .file(
            "pipelines/broken.yaml",
            "name: broken\nnamespace: ops\ntasks:\n  b:\n    run: test -f fixed-b\n",
        );
    let Some((server, b)) = open(&t, "operations").await else {
        return;
    };

    // The pipelines filter.
    b.goto("/").await;
    b.fill("form#filters input[name=q]", "nigh").await;
    b.click("form#filters button[type=submit]").await;
    b.wait_path("the filtered list", |p| p.contains("q=nigh"))
        .await;
    b.wait(r#"tr[data-pipeline="default/nightly"]"#).await;
    assert!(!b.exists(r#"tr[data-pipeline="ops/slow"]"#).await);

    // Pause and unpause: the page comes back with the other button.
    b.click(r#"tr[data-pipeline="default/nightly"] a.pipeline-link"#)
        .await;
    b.act("body", "pause").await;
    b.wait("[data-action=unpause]").await;
    let (_, doc) = http(&server.addr, "GET", "/api/v1/pipelines/default/nightly", "");
    assert_eq!(doc["paused"], true, "{doc}");
    b.act("body", "unpause").await;
    b.wait("[data-action=pause]").await;

    // Cancel a running run through its dialog.
    b.goto("/pipelines/ops/slow").await;
    let slow = trigger(&b).await;
    b.wait(r#"svg#dag g.node[data-task="wait"][data-state="running"]"#)
        .await;
    // Only a gate's decision asks for a comment.
    b.ask("body", "cancel").await;
    b.wait("dialog[open]").await;
    assert_eq!(
        b.prop("dialog label.comment", "hidden").await.as_deref(),
        Some("true")
    );
    b.confirm("cancel").await;
    b.wait(r#"#run-state[data-state="cancelled"]"#).await;

    // Requeue a dead letter from its page once its cause is fixed.
    b.goto("/pipelines/ops/broken").await;
    let broken = trigger(&b).await;
    b.wait(r#"#run-state[data-state="failed"]"#).await;
    b.goto("/dead-letters").await;
    let row = format!(r#"tr[data-run="{broken}"][data-task="b"]"#);
    b.wait(&row).await;
    std::fs::write(t.path().join("pipelines/fixed-b"), "").expect("fix the cause");
    b.act(&row, "requeue").await;
    b.wait_absent_after_reload(&row).await;
    b.goto(&format!("/runs/{broken}")).await;
    b.wait(r#"#run-state[data-state="succeeded"]"#).await;
    b.goto("/dead-letters").await;
    b.wait("h1").await;
    assert!(
        !b.exists(&row).await,
        "a requeued task that succeeded is no dead letter"
    );

    // The runs list: filtered by state, and a page at a time.
    b.goto("/runs").await;
    b.select("form#run-filters select[name=state]", "cancelled")
        .await;
    b.click("form#run-filters button[type=submit]").await;
    b.wait_path("the runs of a state", |p| p.contains("state=cancelled"))
        .await;
    b.wait(&format!(r#"table#runs tr[data-run="{slow}"]"#))
        .await;
    assert_eq!(
        b.all("table#runs tr[data-run]").await.len(),
        b.all(r#"table#runs tr[data-run][data-state="cancelled"]"#)
            .await
            .len()
    );
    for _ in 0..51 {
        let (status, run) = http(
            &server.addr,
            "POST",
            "/api/v1/pipelines/default/nightly/runs",
            "{}",
        );
        assert_eq!(status, 201, "{run}");
    }
    b.goto("/runs?pipeline=default/nightly").await;
    b.wait("a#next-page").await;
    assert_eq!(b.all("table#runs tr[data-run]").await.len(), 50);
    b.click("a#next-page").await;
    b.wait_path("the next page", |p| p.contains("cursor="))
        .await;
    b.wait("table#runs tr[data-run]").await;
    assert_eq!(b.all("table#runs tr[data-run]").await.len(), 1);
    assert!(!b.exists("a#next-page").await, "the last page has no next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_script_forms_still_work_through_confirm_pages() {
    let t = Test::new().file("pipelines/release.yaml", RELEASE);
    let server = t.server();
    let Some(b) = Browser::start_without_script("no-script", &server.url).await else {
        return;
    };
    b.goto("/pipelines/default/release").await;
    let id = trigger(&b).await;
    b.goto(&format!("/runs/{id}?task=ship")).await;
    b.wait_present_after_reload(r#"#task-panel [data-action="approve"]"#)
        .await;
    // With the script, the button would open a dialog and stay here; without it, it leads to
    // a page asking the same question, whose button posts the decision.
    b.click(r#"#task-panel [data-action="approve"]"#).await;
    b.wait_path("the confirm page", |p| p.contains("/tasks/ship/approve"))
        .await;
    b.wait_text("body", "ship").await;
    b.screenshot("approve-confirm-page").await;
    b.click(r#"button[data-confirm="approve"]"#).await;
    b.wait_path("back on the task", |p| {
        p.starts_with(&format!("/runs/{id}")) && !p.contains("/approve")
    })
    .await;
    b.wait_present_after_reload(r#"#run-state[data-state="succeeded"]"#)
        .await;
}

/// A run over the size the page draws is shown by its counts and a page of its task table at
/// a time, which the links move through; a task's panel opens from its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_is_shown_a_page_of_tasks_at_a_time() {
    let mut big = String::from(
        "name: big\ntasks:\n  gate:\n    approval: { message: go? }\n    run: \"true\"\n",
    );
    for i in 0..2_100 {
        big.push_str(&format!(
            "  t{i:04}:\n    needs: [gate]\n    run: \"true\"\n"
        ));
    }
    let t = Test::new().file("pipelines/big.yaml", &big);
    let Some((server, b)) = open(&t, "large-run").await else {
        return;
    };
    let (status, run) = http(
        &server.addr,
        "POST",
        "/api/v1/pipelines/default/big/runs",
        "{}",
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    b.goto(&format!("/runs/{id}")).await;
    b.wait_text("p.task-counts", "2101 task instances").await;
    b.wait(r#"tr[data-task="gate"][data-state="waiting_approval"]"#)
        .await;
    assert!(!b.exists("svg#dag g.node").await, "the graph is not drawn");
    b.wait("p.too-large").await;
    let rows = b.all("table#tasks tbody tr").await;
    assert_eq!(rows.len(), 500);
    // The page links sit on the page, not in the dark bar of the site's navigation.
    let background = b
        .eval("return getComputedStyle(document.querySelector('nav.task-pages')).backgroundColor")
        .await;
    assert_eq!(
        background, "rgba(0, 0, 0, 0)",
        "the page links are hard to read"
    );
    b.screenshot("large-run").await;

    // The next page starts where the first one ended, in pipeline order.
    b.click("nav.task-pages a.next-page").await;
    b.wait_path("the second page", |p| p.contains("?tasks="))
        .await;
    b.wait(r#"table#tasks tbody tr:first-child[data-task="t0499"]"#)
        .await;
    assert_eq!(b.all("table#tasks tbody tr").await.len(), 500);
    assert!(b.exists("nav.task-pages a.first-page").await);
    // A task of this page opens its panel, on this page.
    b.click(r#"tr[data-task="t0700"] a.task-link"#).await;
    b.wait_path("the task's panel", |p| {
        p.contains("task=t0700") && p.contains("tasks=")
    })
    .await;
    b.wait(r#"#task-panel"#).await;
    b.wait(r#"table#tasks tbody tr[data-task="t0700"]"#).await;
    b.click("nav.task-pages a.first-page").await;
    b.wait(r#"table#tasks tbody tr:first-child[data-task="gate"]"#)
        .await;
}
