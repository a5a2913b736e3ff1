//! OpenLineage events of a run, to a JSONL file and to a Marquez-style HTTP receiver.

mod observe;
#[path = "../../store/tests/support/skip.rs"]
mod skip;

use std::sync::Arc;

use baton_core::state::RunState;
use baton_engine::Observers;
use baton_observe::delivery::{Delivery, Settings};
use baton_observe::lineage::{Lineage, LineageConfig, SCHEMA_URL, attempt_uuid, run_uuid};
use observe::{Receiver, drive, record_metrics, wait_counter};
use serde_json::Value;

const SOURCE: &str = "name: lineage-etl
tasks:
  extract:
    run: 'true'
    inputs: [postgres://db:5432/raw.orders]
    outputs: [s3://lake/orders]
  load:
    needs: [extract]
    run: exit 1
    inputs: [s3://lake/orders]
    outputs: [{ namespace: 'postgres://dw', name: mart.orders }]
";

/// The checks of OpenLineage's RunEvent schema that these events exercise: required fields,
/// the event type enum, UUID run ids, RFC 3339 times, facets with `_producer`/`_schemaURL`.
fn assert_run_event(e: &Value) {
    assert!(
        ["START", "COMPLETE", "FAIL", "ABORT"].contains(&e["eventType"].as_str().unwrap_or("")),
        "{e}"
    );
    let time = e["eventTime"].as_str().expect("eventTime");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert!(
        e["producer"]
            .as_str()
            .is_some_and(|p| p.starts_with("https://"))
    );
    assert_eq!(e["schemaURL"], SCHEMA_URL);
    let run_id = e["run"]["runId"].as_str().expect("runId");
    assert!(uuid::Uuid::parse_str(run_id).is_ok(), "{run_id}");
    assert!(e["job"]["namespace"].is_string() && e["job"]["name"].is_string());
    for (_, facet) in e["run"]["facets"].as_object().expect("facets") {
        assert!(
            facet["_producer"].is_string() && facet["_schemaURL"].is_string(),
            "{facet}"
        );
    }
    for d in e["inputs"]
        .as_array()
        .into_iter()
        .chain(e["outputs"].as_array())
        .flatten()
    {
        assert!(d["namespace"].is_string() && d["name"].is_string(), "{d}");
    }
}

fn summary(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["eventType"].as_str().unwrap_or("?"),
                e["job"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[tokio::test]
async fn events_go_to_a_file_and_to_http_with_parents_and_datasets() {
    record_metrics();
    let (rx, addr) = Receiver::start(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lineage.jsonl");
    let config = LineageConfig {
        url: Some(format!("http://{addr}")),
        api_key: None,
        file: Some(file.clone()),
        namespace: Some("acme".into()),
    };
    let delivery = Delivery::start(Settings {
        first_delay: std::time::Duration::from_millis(10),
        ..Settings::default()
    })
    .expect("delivery");
    let observers = Observers::default().with(Arc::new(Lineage::start(&config, Some(delivery))));
    let run = drive(SOURCE, observers, Some("2026-11-01T00:00:00Z")).await;
    assert_eq!(run.handle.await.expect("join"), RunState::Failed);

    // 1 run START + 2 attempts x (START, end) + run FAIL, each to both sinks.
    wait_counter("baton_lineage_events_total", &[("outcome", "sent")], 12).await;
    rx.wait_for("six events", |b| b.len() == 6).await;
    let text = std::fs::read_to_string(&file).expect("lineage file");
    let from_file: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let from_http: Vec<Value> = rx
        .bodies()
        .into_iter()
        .map(|(path, b)| {
            assert_eq!(path, "/api/v1/lineage");
            b
        })
        .collect();
    // HTTP deliveries run concurrently (and the first was retried): same events, any order.
    let key = |e: &Value| e.to_string();
    let (mut a, mut b) = (from_file.clone(), from_http);
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b);
    assert_eq!(
        summary(&from_file),
        [
            "START lineage-etl",
            "START lineage-etl.extract",
            "COMPLETE lineage-etl.extract",
            "START lineage-etl.load",
            "FAIL lineage-etl.load",
            "FAIL lineage-etl",
        ]
    );
    for e in &from_file {
        assert_run_event(e);
        assert_eq!(e["job"]["namespace"], "acme");
    }
    let run_id = run_uuid(&run.run).to_string();
    assert_eq!(from_file[0]["run"]["runId"], run_id);
    assert_eq!(
        from_file[0]["run"]["facets"]["nominalTime"]["nominalStartTime"],
        "2026-11-01T00:00:00Z"
    );
    let load = &from_file[3];
    let key = baton_core::ids::TaskKey::task(
        &baton_core::ids::TaskId::new("load".to_owned()).expect("id"),
    );
    assert_eq!(
        load["run"]["runId"],
        attempt_uuid(&run.run, &key, 1).to_string()
    );
    assert_eq!(load["run"]["facets"]["parent"]["run"]["runId"], run_id);
    assert_eq!(
        load["run"]["facets"]["parent"]["job"]["name"],
        "lineage-etl"
    );
    assert_eq!(
        load["inputs"],
        serde_json::json!([{ "namespace": "s3://lake", "name": "orders" }])
    );
    assert_eq!(
        load["outputs"],
        serde_json::json!([{ "namespace": "postgres://dw", "name": "mart.orders" }])
    );
    assert_eq!(from_file[1]["inputs"][0]["namespace"], "postgres://db:5432");
    assert_eq!(from_file[1]["inputs"][0]["name"], "raw.orders");
    official_client_agrees(&file);
}

/// The official OpenLineage Python client rebuilds every event from its own spec-generated
/// classes and serialises it to exactly what baton wrote (see `openlineage/check_events.py`).
/// Without the client installed this check is skipped, unless `BATON_REQUIRE_OPENLINEAGE=1`
/// (set by `.ci/run`, which installs it).
fn official_client_agrees(file: &std::path::Path) {
    let present = std::process::Command::new("python3")
        .args(["-c", "import openlineage.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        skip::skipped(
            "the events against the official OpenLineage client",
            "openlineage-python",
            "BATON_REQUIRE_OPENLINEAGE",
            "python3 -m pip install openlineage-python==1.54.0",
        );
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/openlineage/check_events.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the OpenLineage client disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
