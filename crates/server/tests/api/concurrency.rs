use baton_control::scheduler::Scheduler;
use jiff::Timestamp;

use super::*;

/// A pipeline whose runs stay active until their gate is approved.
fn gated(name: &str, concurrency: &str) -> String {
    format!(
        "name: {name}\nconcurrency: {concurrency}\nschedule:\n  - cron: \"0 * * * *\"\ntasks:\n  gate:\n    approval: {{ message: go? }}\n    run: \"true\"\n"
    )
}

async fn trigger(s: &Server, pipeline: &str) -> (StatusCode, Value) {
    s.call(
        "POST",
        &format!("/api/v1/pipelines/default/{pipeline}/runs"),
        Some(json!({})),
    )
    .await
}

fn id(run: &Value) -> String {
    run["id"].as_str().expect("id").to_owned()
}

async fn approve(s: &Server, run: &str) {
    let (status, body) = s
        .call(
            "POST",
            &format!("/api/v1/runs/{run}/tasks/gate/approve"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn gate_waits(d: &Value) -> bool {
    d["tasks"][0]["state"] == "waiting_approval"
}

#[tokio::test]
async fn queue_holds_runs_queued_until_a_slot_frees() {
    let s = Server::new(&[(
        "q.yaml",
        &gated("q", "{ max_active_runs: 1, overlap: queue }"),
    )])
    .await;
    let (status, first) = trigger(&s, "q").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first = id(&first);
    s.wait_for(&first, gate_waits).await;
    let (status, second) = trigger(&s, "q").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["state"], "queued");
    assert_eq!(second["waiting_for_admission"], true, "{second}");
    assert!(second.get("admission_group").is_none(), "{second}");
    let second = id(&second);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, waiting) = s.call("GET", &format!("/api/v1/runs/{second}"), None).await;
    assert_eq!(waiting["state"], "queued", "{waiting}");
    assert_eq!(waiting["waiting_for_admission"], true, "{waiting}");
    assert_eq!(waiting["tasks"][0]["state"], "pending");
    approve(&s, &first).await;
    s.wait_for(&first, |d| d["state"] == "succeeded").await;
    // The first run's end frees the slot: the second starts without waiting for a poll.
    let started = Instant::now();
    let running = s.wait_for(&second, gate_waits).await;
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(running["waiting_for_admission"], false, "{running}");
    approve(&s, &second).await;
    s.wait_for(&second, |d| d["state"] == "succeeded").await;
}

#[tokio::test]
async fn skip_refuses_a_run_with_409_and_a_schedule_tick_passes() {
    let s = Server::new(&[("k.yaml", &gated("k", "{ overlap: skip }"))]).await;
    let (_, first) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/k/runs",
            Some(json!({"idempotency_key": "once"})),
        )
        .await;
    let first = id(&first);
    s.wait_for(&first, gate_waits).await;
    let (status, err) = trigger(&s, "k").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"]["code"], "concurrency_limit");
    assert_eq!(err["error"]["details"]["active_runs"], json!([first]));
    assert_eq!(
        err["error"]["message"],
        "pipeline `default/k` already has 1 active run(s), its `max_active_runs`, and its `overlap` is `skip`"
    );
    // The same idempotency key still answers with its run.
    let (status, again) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/k/runs",
            Some(json!({"idempotency_key": "once"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(id(&again), first);
    // A tick while the run is active is consumed without a run, and without an error.
    let sched = Scheduler::new(s.state.control.clone(), 10);
    let at = |t: &str| t.parse::<Timestamp>().expect("timestamp");
    sched
        .tick(at("2026-01-01T00:30:00Z"))
        .await
        .expect("first sight");
    let skipped = sched.tick(at("2026-01-01T01:00:10Z")).await.expect("tick");
    assert!(skipped.is_empty());
    approve(&s, &first).await;
    s.wait_for(&first, |d| d["state"] == "succeeded").await;
    assert!(
        sched
            .tick(at("2026-01-01T01:00:30Z"))
            .await
            .expect("same tick")
            .is_empty(),
        "a skipped tick is not run later"
    );
    let next = sched.tick(at("2026-01-01T02:00:10Z")).await.expect("tick");
    assert_eq!(next.len(), 1, "the next tick runs once the slot is free");
    let (_, page) = s.call("GET", "/api/v1/runs?pipeline=default/k", None).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn cancel_previous_replaces_the_active_and_waiting_runs() {
    let s = Server::new(&[(
        "c.yaml",
        &gated("c", "{ max_active_runs: 1, overlap: cancel_previous }"),
    )])
    .await;
    let (_, first) = trigger(&s, "c").await;
    let first = id(&first);
    s.wait_for(&first, gate_waits).await;
    let (status, second) = trigger(&s, "c").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = id(&second);
    s.wait_for(&first, |d| d["state"] == "cancelled").await;
    s.wait_for(&second, gate_waits).await;
    // Two more at once: the third waits behind the second, then the fourth replaces both;
    // the third never starts a task.
    let (_, third) = trigger(&s, "c").await;
    let (_, fourth) = trigger(&s, "c").await;
    let (third, fourth) = (id(&third), id(&fourth));
    s.wait_for(&second, |d| d["state"] == "cancelled").await;
    let third_doc = s.wait_for(&third, |d| d["state"] == "cancelled").await;
    assert_eq!(third_doc["attempts"], json!([]));
    assert_eq!(third_doc["tasks"][0]["state"], "cancelled");
    s.wait_for(&fourth, gate_waits).await;
    approve(&s, &fourth).await;
    s.wait_for(&fourth, |d| d["state"] == "succeeded").await;
}

#[tokio::test]
async fn cancelling_a_waiting_run_ends_it_without_starting_it() {
    let s = Server::new(&[("w.yaml", &gated("w", "{ max_active_runs: 1 }"))]).await;
    let (_, first) = trigger(&s, "w").await;
    let first = id(&first);
    s.wait_for(&first, gate_waits).await;
    let (_, second) = trigger(&s, "w").await;
    let second = id(&second);
    let (status, _) = s
        .call("POST", &format!("/api/v1/runs/{second}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let doc = s.wait_for(&second, |d| d["state"] == "cancelled").await;
    assert_eq!(doc["attempts"], json!([]));
    // Draining does not wait for runs waiting for admission.
    let (_, third) = trigger(&s, "w").await;
    assert_eq!(third["state"], "queued");
    tokio::time::timeout(Duration::from_secs(10), s.state.runner.drain())
        .await
        .expect("drain returns");
    let (_, doc) = s
        .call("GET", &format!("/api/v1/runs/{}", id(&third)), None)
        .await;
    assert_eq!(doc["state"], "queued", "left for the next start");
}

const DAILY: &str = "name: daily\nparams:\n  who: { type: string, default: world }\nschedule:\n  - cron: \"0 0 * * *\"\n    timezone: UTC\ntasks:\n  a:\n    run: echo {{ run.logical_date }} {{ params.who }} >> ../dates\n";

async fn wait_done(s: &Server, backfill: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, doc) = s
            .call("GET", &format!("/api/v1/backfills/{backfill}"), None)
            .await;
        if doc["done"] == true {
            return doc;
        }
        assert!(Instant::now() < deadline, "timed out; last: {doc}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn backfill_runs_every_tick_once_with_its_logical_date() {
    let s = Server::new(&[("d.yaml", DAILY)]).await;
    let body = json!({
        "start": "2026-01-01", "end": "2026-01-03", "parallelism": 2,
        "params": {"who": "bf"}, "idempotency_key": "bf-1",
    });
    let (status, created) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/daily/backfill",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["runs"], 3);
    assert_eq!(created["parallelism"], 2);
    let bf = created["id"].as_str().expect("id").to_owned();
    assert!(bf.starts_with("bf_"));
    let done = wait_done(&s, &bf).await;
    assert_eq!(done["counts"]["succeeded"], 3, "{done}");
    let mut dates: Vec<String> = std::fs::read_to_string(s.dir.path().join("dates"))
        .expect("dates")
        .lines()
        .map(str::to_owned)
        .collect();
    dates.sort();
    assert_eq!(
        dates,
        vec![
            "2026-01-01T00:00:00+00:00 bf",
            "2026-01-02T00:00:00+00:00 bf",
            "2026-01-03T00:00:00+00:00 bf",
        ]
    );
    let (_, runs) = s
        .call("GET", "/api/v1/runs?pipeline=default/daily", None)
        .await;
    let run = &runs["items"][0];
    assert_eq!(run["trigger"], "backfill");
    assert_eq!(run["backfill_id"], bf.as_str());
    // The same key returns the same backfill, and creates no run.
    let (status, again) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/daily/backfill",
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], bf.as_str());
    let (_, runs) = s
        .call("GET", "/api/v1/runs?pipeline=default/daily", None)
        .await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(3));
    let (_, list) = s
        .call("GET", "/api/v1/backfills?pipeline=default/daily", None)
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let (_, none) = s
        .call("GET", "/api/v1/backfills?pipeline=other", None)
        .await;
    assert_eq!(none["items"], json!([]));
    let (status, _) = s.call("GET", "/api/v1/backfills/bf_nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn backfill_requests_that_make_no_sense_are_refused() {
    let s = Server::new(&[("d.yaml", DAILY), ("h.yaml", HELLO)]).await;
    let post = |pipeline: &'static str, body: Value| {
        let s = &s;
        async move {
            s.call(
                "POST",
                &format!("/api/v1/pipelines/default/{pipeline}/backfill"),
                Some(body),
            )
            .await
        }
    };
    let (status, err) = post("hello", json!({"start": "2026-01-01", "end": "2026-01-02"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "invalid_backfill");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("pipeline `default/hello` has no schedule to backfill"),
        "{err}"
    );
    let (status, err) = post("daily", json!({"start": "2026-01-05", "end": "2026-01-02"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err["error"]["message"],
        "the range ends (`2026-01-02`) before it starts (`2026-01-05`)"
    );
    let (status, err) = post("daily", json!({"start": "2000-01-01", "end": "2040-01-01"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err["error"]["message"],
        "the range holds more than 10000 ticks of `0 0 * * *`\n(hint: narrow the range, or split it into several backfills)"
    );
    let (status, err) = post(
        "daily",
        json!({"start": "2026-01-01", "end": "2026-01-02", "params": {"nope": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["code"], "invalid_params");
    let (status, err) = post("daily", json!({"start": "soon", "end": "2026-01-02"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (_, runs) = s.call("GET", "/api/v1/runs", None).await;
    assert_eq!(
        runs["items"],
        json!([]),
        "a refused backfill creates nothing"
    );
}

#[tokio::test]
async fn a_backfill_keeps_to_its_parallelism_and_can_be_cancelled() {
    let s = Server::new(&[("g.yaml", &gated("g", "{ max_active_runs: 5 }"))]).await;
    let (status, created) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/g/backfill",
            Some(json!({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:00:00Z", "parallelism": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["runs"], 4);
    let bf = created["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, doc) = s
            .call("GET", &format!("/api/v1/backfills/{bf}"), None)
            .await;
        if doc["counts"]["running"] == 2 {
            assert_eq!(doc["counts"]["queued"], 2, "{doc}");
            break;
        }
        assert!(Instant::now() < deadline, "timed out: {doc}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, doc) = s
        .call("GET", &format!("/api/v1/backfills/{bf}"), None)
        .await;
    assert_eq!(
        doc["counts"]["running"], 2,
        "never more than its parallelism"
    );
    let (status, cancel) = s
        .call("POST", &format!("/api/v1/backfills/{bf}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancel}");
    assert_eq!(cancel["cancelled"], 2);
    let done = wait_done(&s, &bf).await;
    assert_eq!(done["counts"]["cancelled"], 4, "{done}");
    let (status, _) = s
        .call("POST", &format!("/api/v1/backfills/{bf}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}
