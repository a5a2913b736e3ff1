//! deploy/ against the real Prometheus (Debian's `prometheus` package): every alert rule has
//! unit tests, and they pass (`promtool test rules`); and a Prometheus server scraping two baton
//! replicas, while runs succeed and fail, evaluates every rule, every dashboard query and every
//! dashboard variable query without an error, with the numbers those runs made.
//!
//! Without the tools the checks that need them are skipped, unless `BATON_REQUIRE_PROMTOOL=1`
//! (as in CI) makes that a failure.

mod grafana;
mod prom;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_control::Runner;
use baton_control::scheduler::Scheduler;
use baton_engine::executor::LocalExecutor;
use baton_observe::secrets::StaticSecrets;
use baton_server::AppState;
use serde_json::{Value, json};

use grafana::{Dashboard, Target, VariableQuery};
use prom::{Prometheus, Sample};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// A YAML file as JSON, read by baton's own YAML reader.
fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    baton_core::yaml::parse(&text, &mut Vec::new())
        .unwrap_or_else(|d| panic!("{} is not YAML: {d:?}", path.display()))
        .to_json()
}

/// Every rule of a rule file: (`alert` or `record`, name), in file order.
fn rules(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            for kind in ["alert", "record"] {
                if let Some(name) = rule[kind].as_str() {
                    out.push((kind.to_owned(), name.to_owned()));
                }
            }
        }
    }
    out
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

#[test]
fn every_alert_has_unit_tests_and_they_pass() {
    let dir = deploy().join("prometheus");
    let rules = rules(&yaml(&dir.join("alerts.yaml")));
    let tests = yaml(&dir.join("alerts_test.yaml"));
    assert_eq!(tests["rule_files"], json!(["alerts.yaml"]));
    // Which alerts some case expects to fire, which some case expects silent, and which
    // expressions have expected samples.
    let (mut fires, mut silent, mut exprs) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    for group in list(&tests["tests"]) {
        for case in list(&group["alert_rule_test"]) {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            if list(&case["exp_alerts"]).is_empty() {
                silent.insert(name);
            } else {
                fires.insert(name);
            }
        }
        for case in list(&group["promql_expr_test"]) {
            if !list(&case["exp_samples"]).is_empty() {
                exprs.push(case["expr"].as_str().expect("expr").to_owned());
            }
        }
    }
    let mut missing = Vec::new();
    for (kind, name) in &rules {
        if kind == "alert" {
            if !fires.contains(name) {
                missing.push(format!("{name}: no case where it fires"));
            }
            if !silent.contains(name) {
                missing.push(format!("{name}: no case where it must stay silent"));
            }
        } else if !exprs.iter().any(|e| e.contains(name.as_str())) {
            missing.push(format!("{name}: no promql_expr_test with samples"));
        }
    }
    for name in fires.union(&silent) {
        if !rules.iter().any(|(k, n)| k == "alert" && n == name) {
            missing.push(format!("{name}: tested, but alerts.yaml has no such alert"));
        }
    }
    assert!(
        missing.is_empty(),
        "deploy/prometheus/alerts_test.yaml:\n{}",
        missing.join("\n")
    );

    if !prom::available("promtool") {
        return;
    }
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", "alerts_test.yaml"])
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const OK: &str = "name: ok\ntasks:\n  extract:\n    run: \"true\"\n  load:\n    needs: [extract]\n    run: \"true\"\n";
const FLAKY: &str = "name: flaky\ntasks:\n  a:\n    retries: { limit: 1, delay: 0s }\n    run: exit 1\n  b:\n    run: \"true\"\n";
const TICK: &str = "name: tick\nschedule:\n  - cron: \"* * * * *\"\n    catchup: all\ntasks:\n  a:\n    run: \"true\"\n";

/// Serves `state` on a free loopback port, as `baton server` does, for the rest of the test.
async fn serve(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, baton_server::router(state)).await });
    addr
}

/// Another replica over the same database and pipelines, which drives no runs itself.
async fn replica(dir: &Path) -> AppState {
    let home = dir.join("home");
    let store: Arc<dyn baton_store::Store> = Arc::new(
        baton_store::SqlStore::open_home(&home)
            .await
            .expect("store"),
    );
    let runner = Runner::new(Arc::clone(&store), Arc::new(LocalExecutor::default()), home);
    let secrets = Arc::new(StaticSecrets(HashMap::new()));
    let state = AppState::new(store, runner, dir.join("pipelines"), secrets);
    state.reload().await;
    state
}

/// Runs started through a replica's API.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn trigger(&self, pipeline: &str) -> String {
        let answer = self
            .client
            .post(format!(
                "{}/api/v1/pipelines/default/{pipeline}/runs",
                self.base
            ))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("trigger");
        assert_eq!(answer.status(), 201, "trigger {pipeline}");
        let run: Value = serde_json::from_slice(&answer.bytes().await.expect("body")).expect("run");
        run["id"].as_str().expect("id").to_owned()
    }

    async fn wait_for(&self, run: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self
                .client
                .get(format!("{}/api/v1/runs/{run}", self.base))
                .send()
                .await
                .expect("get run");
            let doc: Value =
                serde_json::from_slice(&answer.bytes().await.expect("body")).expect("run");
            if doc["state"] == state {
                return;
            }
            assert!(Instant::now() < deadline, "run {run} never {state}: {doc}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A query's samples as `label=value,...` -> value, for comparisons and messages.
fn by(samples: &[Sample], labels: &[&str]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|s| {
            let key: Vec<&str> = labels.iter().map(|l| s.label(l)).collect();
            (key.join("/"), s.value)
        })
        .collect()
}

/// `label_values(series, label)` as Grafana asks Prometheus.
async fn label_values(prom: &Prometheus, query: &str) -> Result<Vec<String>, String> {
    let VariableQuery::LabelValues { series, label } = grafana::variable_query(query)?;
    let data = prom
        .api(&format!("label/{label}/values"), &[("match[]", &series)])
        .await?;
    Ok(list(&data)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

/// Panels with nothing to show after this test's runs, and why. Every other query must return
/// samples.
const EXPECTED_EMPTY: &[(&str, &str, &str, &str)] = &[
    (
        "baton-on-call.json",
        "Deadline misses and notification failures (per 15 min)",
        "A",
        "no pipeline has a deadline",
    ),
    (
        "baton-on-call.json",
        "Deadline misses and notification failures (per 15 min)",
        "B",
        "no pipeline notifies",
    ),
    (
        "baton-on-call.json",
        "HTTP errors (per 5 min)",
        "A",
        "no request failed",
    ),
    (
        "baton-on-call.json",
        "HTTP errors (per 5 min)",
        "B",
        "no request was refused",
    ),
];

/// Which values a dashboard variable must offer, given the pipelines this test loads.
fn offers(variable: &str) -> Option<Vec<&'static str>> {
    match variable {
        "namespace" => Some(vec!["default"]),
        "pipeline" => Some(vec!["flaky", "ok", "tick"]),
        "task" => Some(vec!["a", "b", "extract", "load"]),
        _ => None,
    }
}

/// How a dashboard's variables are set for one evaluation of its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// "All", as a user first sees the dashboard.
    All,
    /// Every value the variable's query offered, selected one by one.
    Offered,
}

/// Evaluates every query of `dashboard` (variables set by `choice`), adding what went wrong
/// to `failures`; returns each target with its samples.
async fn evaluate(
    prom: &Prometheus,
    dashboard: &Dashboard,
    choice: Choice,
    failures: &mut Vec<String>,
) -> Vec<(Target, Vec<Sample>)> {
    let file = &dashboard.file;
    let mut values = BTreeMap::from([
        // What Grafana sends for these with a 1s scrape interval and a narrow panel, roughly;
        // a minute holds every sample this test makes.
        ("__rate_interval".to_owned(), "1m".to_owned()),
        ("__interval".to_owned(), "1m".to_owned()),
        ("__range".to_owned(), dashboard.range()),
    ]);
    for v in dashboard.variables() {
        match v.kind.as_str() {
            // Chooses the data source; no query names it.
            "datasource" => continue,
            "query" => {}
            other => panic!(
                "{file}: variable `{}` is of type `{other}`, which this test cannot set yet",
                v.name
            ),
        }
        let query = v.query.as_deref().expect("a query variable's query");
        let offered = match grafana::substitute(query, &values) {
            Ok(q) => label_values(prom, &q).await,
            Err(e) => Err(e),
        };
        let offered = match offered {
            Ok(mut offered) => {
                offered.sort();
                offered
            }
            Err(e) => {
                failures.push(format!("{file}: variable `{}` ({query}): {e}", v.name));
                // Go on with the panels, to report their own problems too.
                Vec::new()
            }
        };
        match offers(&v.name) {
            Some(want) if offered != want => failures.push(format!(
                "{file}: variable `{}` ({query}) offers {offered:?}, not {want:?}",
                v.name
            )),
            None if offered.is_empty() => failures.push(format!(
                "{file}: variable `{}` ({query}) offers nothing",
                v.name
            )),
            _ => {}
        }
        let value = match choice {
            Choice::All => v
                .all_value
                .clone()
                .unwrap_or_else(|| panic!("{file}: variable `{}` has no All value", v.name)),
            Choice::Offered => grafana::alternatives(&offered),
        };
        values.insert(v.name, value);
    }
    let mut out = Vec::new();
    for target in dashboard.targets() {
        let place = format!(
            "{file}: panel \"{}\" ({}), variables {choice:?}",
            target.panel, target.ref_id
        );
        let expr = match grafana::substitute(&target.expr, &values) {
            Ok(expr) => expr,
            Err(e) => {
                failures.push(format!("{place}: {e}"));
                continue;
            }
        };
        match prom.query(&expr).await {
            Ok(samples) => out.push((target, samples)),
            Err(e) => failures.push(format!("{place}: {e}\n    {expr}")),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_rules_work_in_a_real_prometheus() {
    if !prom::available("prometheus") {
        return;
    }
    let (dir, one) = support::app(
        &[("ok.yaml", OK), ("flaky.yaml", FLAKY), ("tick.yaml", TICK)],
        &[],
    )
    .await;
    let two = replica(dir.path()).await;
    let scheduler = Scheduler::new(one.control.clone(), 100);
    let targets = [serve(one).await, serve(two).await];
    let alerts_file = deploy().join("prometheus/alerts.yaml");
    let prom = Prometheus::start(&targets, &alerts_file).await;
    prom.eventually("both replicas scraped", async |p| {
        let data = p.api("targets", &[]).await?;
        let health: Vec<&str> = list(&data["activeTargets"])
            .iter()
            .map(|t| t["health"].as_str().unwrap_or("?"))
            .collect();
        (health == ["up", "up"])
            .then_some(())
            .ok_or(format!("{data}"))
    })
    .await;

    // Two waves of runs, each seen by Prometheus before the next: one run succeeds, one fails
    // after a retry, and the scheduler acts on one tick. Series Prometheus saw at 0 first and
    // that grew since are what rates, increases and quantiles need.
    let api = Api {
        base: format!("http://{}", targets[0]),
        client: prom::client(),
    };
    let t0 = jiff::Timestamp::from_second(1_800_000_000).expect("time"); // on a minute
    scheduler
        .tick(t0)
        .await
        .expect("first sight of the schedule");
    const WAVES: i64 = 2;
    for wave in 1..=WAVES {
        let ok = api.trigger("ok").await;
        let flaky = api.trigger("flaky").await;
        let ticked = scheduler
            .tick(t0 + jiff::SignedDuration::from_secs(60 * wave + 1))
            .await
            .expect("pass");
        assert_eq!(ticked.len(), 1, "one tick due");
        api.wait_for(&ok, "succeeded").await;
        api.wait_for(&flaky, "failed").await;
        api.wait_for(ticked[0].as_str(), "succeeded").await;
        #[allow(clippy::cast_precision_loss)]
        let n = wave as f64;
        prom.eventually(&format!("wave {wave} in Prometheus"), async |p| {
            let finished = p
                .query("sum by (pipeline, state) (baton_runs_finished_total)")
                .await?;
            let dead = p.query("baton_dead_letters{pipeline=\"flaky\"}").await?;
            let finished = by(&finished, &["pipeline", "state"]);
            // Every outcome of every pipeline exists before the first run: zeros included.
            let want: BTreeMap<String, f64> = [
                ("flaky/cancelled", 0.0),
                ("flaky/failed", n),
                ("flaky/succeeded", 0.0),
                ("ok/cancelled", 0.0),
                ("ok/failed", 0.0),
                ("ok/succeeded", n),
                ("tick/cancelled", 0.0),
                ("tick/failed", 0.0),
                ("tick/succeeded", n),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let dead: Vec<f64> = dead.iter().map(|s| s.value).collect();
            (finished == want && dead == [n, n])
                .then_some(())
                .ok_or(format!("finished {finished:?}, dead letters {dead:?}"))
        })
        .await;
        if wave == 1 {
            // A pipeline's first failed run alerts: its failure counter was at 0 before it.
            // The dead letter is one alert, though both replicas report it; the burn rates
            // wait out their `for`.
            prom.eventually("the alerts of the first failed run", async |p| {
                let data = p.api("alerts", &[]).await?;
                let mut got: Vec<String> = list(&data["alerts"])
                    .iter()
                    .map(|a| {
                        let l = &a["labels"];
                        format!(
                            "{} {}/{} {}",
                            l["alertname"].as_str().unwrap_or("?"),
                            l["namespace"].as_str().unwrap_or("-"),
                            l["pipeline"].as_str().unwrap_or("-"),
                            a["state"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                got.sort();
                let want = [
                    "BatonNewDeadLetters default/flaky firing",
                    "BatonRunErrorBudgetFastBurn default/flaky pending",
                    "BatonRunErrorBudgetSlowBurn default/flaky pending",
                    "BatonRunsFailing default/flaky firing",
                ];
                (got == want).then_some(()).ok_or(format!("{got:#?}"))
            })
            .await;
        }
    }

    let mut failures = Vec::new();
    let mut results = Vec::new();
    for dashboard in grafana::dashboards(&deploy().join("grafana")) {
        evaluate(&prom, &dashboard, Choice::All, &mut failures).await;
        for (target, samples) in evaluate(&prom, &dashboard, Choice::Offered, &mut failures).await {
            results.push((dashboard.file.clone(), target, samples));
        }
    }
    assert!(
        failures.is_empty(),
        "dashboard queries failed:\n{}",
        failures.join("\n")
    );
    for (file, panel, ref_id, _) in EXPECTED_EMPTY {
        assert!(
            results
                .iter()
                .any(|(f, t, _)| f == file && t.panel == *panel && t.ref_id == *ref_id),
            "EXPECTED_EMPTY names a query that does not exist: {file} \"{panel}\" ({ref_id})"
        );
    }
    let empty: Vec<String> = results
        .iter()
        .filter(|(file, t, samples)| {
            samples.is_empty()
                && !EXPECTED_EMPTY
                    .iter()
                    .any(|(f, p, r, _)| f == file && *p == t.panel && *r == t.ref_id)
        })
        .map(|(file, t, _)| format!("{file}: panel \"{}\" ({}): {}", t.panel, t.ref_id, t.expr))
        .collect();
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );

    // The numbers the runs made. Increases over a range are extrapolated to its end, alike for
    // every series of one scrape, so ratios of them are exact and counts only a little high.
    let panel = |file: &str, kind: &str, title: &str, ref_id: &str| -> &[Sample] {
        results
            .iter()
            .find(|(f, t, _)| f == file && t.kind == kind && t.panel == title && t.ref_id == ref_id)
            .map(|(_, _, s)| s.as_slice())
            .unwrap_or_else(|| panic!("no {kind} panel \"{title}\" ({ref_id}) in {file}"))
    };
    let single = |file, kind, title| -> f64 {
        match panel(file, kind, title, "A") {
            [one] => one.value,
            other => panic!("{file} \"{title}\": one sample, not {other:?}"),
        }
    };
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() < 1e-9, "{what}: {got}, not {want}");
    };
    let (exec, on_call, debug) = (
        "baton-executive.json",
        "baton-on-call.json",
        "baton-debug.json",
    );
    // Each wave: ok and tick succeed, flaky fails (leaving a dead letter).
    #[allow(clippy::cast_precision_loss)]
    let (succeeded, failed) = (2.0 * WAVES as f64, WAVES as f64);
    close(
        single(exec, "stat", "Run success rate"),
        succeeded / (succeeded + failed),
        "success rate",
    );
    close(
        single(exec, "stat", "Error budget left"),
        1.0 - (failed / (succeeded + failed)) / 0.01,
        "error budget left",
    );
    let finished = single(exec, "stat", "Runs finished");
    assert!(
        (succeeded + failed..(succeeded + failed) * 1.5).contains(&finished),
        "runs finished: {finished}"
    );
    assert_eq!(
        by(
            panel(exec, "table", "Success rate by pipeline", "A"),
            &["pipeline"]
        ),
        BTreeMap::from([
            ("flaky".to_owned(), 0.0),
            ("ok".to_owned(), 1.0),
            ("tick".to_owned(), 1.0)
        ])
    );
    assert_eq!(
        single(exec, "stat", "Control plane up"),
        2.0,
        "two replicas"
    );
    // Every replica reports the database's whole count: shown once, not once per replica.
    assert_eq!(single(on_call, "stat", "Dead letters"), failed);
    assert_eq!(
        by(
            panel(on_call, "timeseries", "Dead letters", "A"),
            &["pipeline"]
        ),
        BTreeMap::from([
            ("flaky".to_owned(), failed),
            ("ok".to_owned(), 0.0),
            ("tick".to_owned(), 0.0)
        ])
    );
    assert_eq!(single(on_call, "stat", "Tasks running"), 0.0);
    let retries = by(
        panel(on_call, "timeseries", "Retries by task (per 15 min)", "A"),
        &["pipeline", "task"],
    );
    assert_eq!(
        retries.keys().collect::<Vec<_>>(),
        ["flaky/a"],
        "{retries:?}"
    );
    assert!(retries["flaky/a"] >= failed, "{retries:?}");
    let p95 = by(
        panel(debug, "timeseries", "Attempt duration p95 by task", "A"),
        &["pipeline", "task"],
    );
    assert_eq!(
        p95.keys().collect::<Vec<_>>(),
        ["flaky/a", "flaky/b", "ok/extract", "ok/load", "tick/a"]
    );
    assert!(
        p95.values().all(|v| v.is_finite() && *v > 0.0),
        "attempt duration p95: {p95:?}"
    );
    let attempts = by(
        panel(debug, "timeseries", "Attempts by task and outcome", "A"),
        &["pipeline", "task", "state"],
    );
    let count = |key: &str| *attempts.get(key).unwrap_or(&0.0);
    assert!(
        count("flaky/a/failed") > count("flaky/b/succeeded") && count("flaky/b/succeeded") > 0.0,
        "two attempts of a per run, one of b: {attempts:?}"
    );
    let started = by(
        panel(debug, "timeseries", "Runs started by trigger", "A"),
        &["trigger"],
    );
    assert_eq!(
        started.keys().collect::<Vec<_>>(),
        ["manual", "schedule"],
        "{started:?}"
    );

    // Every rule loaded and evaluates without an error.
    let mut want = rules(&yaml(&alerts_file));
    want.sort();
    let mut loaded = prom
        .eventually("every rule group evaluated", async |p| {
            let data = p.api("rules", &[]).await?;
            let mut loaded = Vec::new();
            for group in list(&data["groups"]) {
                let name = group["name"].as_str().unwrap_or("?");
                if group["lastEvaluation"]
                    .as_str()
                    .is_none_or(|t| t.starts_with("0001-"))
                {
                    return Err(format!("group {name} not evaluated yet"));
                }
                for rule in list(&group["rules"]) {
                    let rule_name = rule["name"].as_str().unwrap_or("?");
                    let health = rule["health"].as_str().unwrap_or("?");
                    let error = rule["lastError"].as_str().unwrap_or("");
                    assert!(
                        health == "ok" && error.is_empty(),
                        "rule {rule_name} of {name}: health {health}, error {error:?}"
                    );
                    let kind = match rule["type"].as_str() {
                        Some("alerting") => "alert",
                        Some("recording") => "record",
                        other => panic!("rule {rule_name}: type {other:?}"),
                    };
                    loaded.push((kind.to_owned(), rule_name.to_owned()));
                }
            }
            Ok(loaded)
        })
        .await;
    loaded.sort();
    assert_eq!(loaded, want, "the rules Prometheus loaded");
    drop(prom);
    drop(dir);
}
