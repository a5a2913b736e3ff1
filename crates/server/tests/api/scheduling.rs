use baton_control::scheduler::Scheduler;
use jiff::Timestamp;

use super::*;

fn daily(catchup: &str) -> String {
    format!(
        "name: nightly\nparams:\n  d: {{ type: string, default: x }}\nschedule:\n  - cron: \"30 2 * * *\"\n    timezone: Europe/Berlin\n    catchup: {catchup}\n    params: {{ d: sched }}\ntasks:\n  a:\n    run: \"true\"\n"
    )
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

async fn logical_dates(s: &Server) -> Vec<String> {
    let (_, page) = s.call("GET", "/api/v1/runs?limit=100", None).await;
    let mut dates: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap_or_default().to_owned())
        .collect();
    dates.sort();
    dates
}

#[tokio::test]
async fn catch_up_all_runs_every_missed_tick_once_with_its_logical_date() {
    let s = Server::new(&[("n.yaml", &daily("all"))]).await;
    let sched = Scheduler::new(s.state.control.clone(), 10);
    // First sight starts the schedule; nothing before it counts as missed.
    assert!(
        sched
            .tick(at("2026-03-27T12:00:00Z"))
            .await
            .expect("tick")
            .is_empty()
    );
    // Berlin skips 02:00-03:00 on 03-29: that day's 02:30 fires at 03:00.
    let runs = sched.tick(at("2026-03-30T12:00:00Z")).await.expect("tick");
    assert_eq!(runs.len(), 3);
    assert_eq!(
        logical_dates(&s).await,
        vec![
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ]
    );
    assert!(
        sched
            .tick(at("2026-03-30T12:00:00Z"))
            .await
            .expect("tick")
            .is_empty(),
        "no doubles"
    );
    let (_, page) = s.call("GET", "/api/v1/runs?limit=1", None).await;
    assert_eq!(page["items"][0]["trigger"], "schedule");
    assert_eq!(page["items"][0]["params"]["d"], "sched");
}

#[tokio::test]
async fn next_fire_times_per_schedule() {
    let s = Server::new(&[("n.yaml", &daily("all"))]).await;
    let (status, doc) = s
        .call(
            "GET",
            "/api/v1/pipelines/default/nightly/schedule?n=3",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let next = doc["schedules"][0]["next"].as_array().expect("next");
    assert_eq!(next.len(), 3);
    let first = next[0]["local"].as_str().expect("local");
    // 02:30 local, or 03:00 on the day Berlin skips 02:00-03:00.
    assert!(
        first.contains("T02:30:00+0") || first.ends_with("T03:00:00+02:00"),
        "{first}"
    );
    assert_eq!(doc["schedules"][0]["timezone"], "Europe/Berlin");
}

#[tokio::test]
async fn paused_pipelines_skip_ticks_and_do_not_flood_on_unpause() {
    let s = Server::new(&[("n.yaml", &daily("all"))]).await;
    let sched = Scheduler::new(s.state.control.clone(), 10);
    sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
    let (status, doc) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/nightly/pause",
            Some(json!({"by": "ann"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(
        s.call("GET", "/api/v1/pipelines/default/nightly", None)
            .await
            .1["paused"],
        true
    );
    assert!(
        sched
            .tick(at("2026-01-04T12:00:00Z"))
            .await
            .expect("tick")
            .is_empty()
    );
    s.call("POST", "/api/v1/pipelines/default/nightly/unpause", None)
        .await;
    assert!(
        sched
            .tick(at("2026-01-04T12:00:10Z"))
            .await
            .expect("tick")
            .is_empty(),
        "no flood"
    );
    assert_eq!(
        sched
            .tick(at("2026-01-05T01:30:30Z"))
            .await
            .expect("tick")
            .len(),
        1
    );
    // Manual triggers work while paused.
    s.call("POST", "/api/v1/pipelines/default/nightly/pause", None)
        .await;
    let (status, _) = s
        .call(
            "POST",
            "/api/v1/pipelines/default/nightly/runs",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = s
        .call("POST", "/api/v1/pipelines/default/nope/pause", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn latest_and_none_policies() {
    let latest = Server::new(&[("n.yaml", &daily("latest"))]).await;
    let sched = Scheduler::new(latest.state.control.clone(), 10);
    sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
    assert_eq!(
        sched
            .tick(at("2026-01-05T12:00:00Z"))
            .await
            .expect("tick")
            .len(),
        1
    );
    assert_eq!(
        logical_dates(&latest).await,
        vec!["2026-01-05T02:30:00+01:00"]
    );

    let none = Server::new(&[("n.yaml", &daily("none"))]).await;
    let sched = Scheduler::new(none.state.control.clone(), 10);
    sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
    assert!(
        sched
            .tick(at("2026-01-05T12:00:00Z"))
            .await
            .expect("tick")
            .is_empty()
    );
    // On time, a tick runs whatever the policy.
    assert_eq!(
        sched
            .tick(at("2026-01-06T01:31:00Z"))
            .await
            .expect("tick")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_crash_before_the_tick_is_recorded_does_not_double_fire() {
    let s = Server::new(&[("n.yaml", &daily("all"))]).await;
    let sched = Scheduler::new(s.state.control.clone(), 10);
    sched.tick(at("2026-01-01T12:00:00Z")).await.expect("tick");
    assert_eq!(
        sched
            .tick(at("2026-01-03T12:00:00Z"))
            .await
            .expect("tick")
            .len(),
        2
    );
    // Put the schedule back where it was, as if the server died before recording the tick.
    let key = "0:30 2 * * *@Europe/Berlin";
    let store = &s.state.store;
    let now = store
        .last_tick("default", "nightly", key)
        .await
        .expect("tick")
        .expect("recorded");
    let earlier = at("2026-01-01T12:00:00Z").as_millisecond();
    assert!(
        store
            .advance_tick("default", "nightly", key, Some(now), earlier)
            .await
            .expect("rewind")
    );
    assert!(
        sched
            .tick(at("2026-01-03T12:00:00Z"))
            .await
            .expect("tick")
            .is_empty()
    );
    assert_eq!(logical_dates(&s).await.len(), 2);
}
