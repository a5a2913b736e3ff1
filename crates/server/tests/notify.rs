//! Notifications and deadlines delivered to a webhook receiver on loopback while runs go on.

mod observe;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::state::RunState;
use baton_engine::{Observers, Stop};
use baton_observe::delivery::{Delivery, Settings};
use baton_observe::notify::Notifier;
use baton_observe::secrets::StaticSecrets;
use observe::{Receiver, counter, counter_exists, drive, execute, record_metrics, wait_counter};

fn notifier(secrets: HashMap<String, String>) -> Observers {
    let delivery = Delivery::start(Settings {
        attempts: 4,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        timeout: Duration::from_secs(2),
        ..Settings::default()
    })
    .expect("delivery");
    Observers::default().with(Arc::new(Notifier::new(
        delivery,
        Arc::new(StaticSecrets(secrets)),
    )))
}

fn events(bodies: &[(String, serde_json::Value)]) -> Vec<String> {
    bodies
        .iter()
        .map(|(_, b)| {
            let task = b["task"]["id"]
                .as_str()
                .map(|t| format!(" {t}"))
                .unwrap_or_default();
            format!("{}{task}", b["event"].as_str().unwrap_or("?"))
        })
        .collect()
}

#[tokio::test]
async fn failure_and_retry_are_sent_and_a_flaky_receiver_is_retried() {
    record_metrics();
    // Two 500s first: the delivery retries with backoff and every notification arrives.
    let (rx, addr) = Receiver::start(2).await;
    let source = format!(
        "name: notify-fail\nnotify:\n  - on: [failure, retry, success]\n    webhook: http://{addr}/hook\ntasks:\n  flaky:\n    run: exit 3\n    retries: {{ limit: 1, delay: 10ms }}\n"
    );
    let run = drive(&source, notifier(HashMap::new()), None).await;
    assert_eq!(run.handle.await.expect("join"), RunState::Failed);
    rx.wait_for("retry and failure", |b| b.len() == 2).await;
    let bodies = rx.bodies();
    let mut seen = events(&bodies);
    seen.sort();
    assert_eq!(seen, ["failure", "retry flaky"]);
    let retry = &bodies
        .iter()
        .find(|(_, b)| b["event"] == "retry")
        .expect("retry")
        .1;
    assert_eq!(retry["pipeline"]["namespace"], "default");
    assert_eq!(retry["pipeline"]["name"], "notify-fail");
    assert_eq!(
        retry["pipeline"]["version"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(retry["run"]["id"], run.run.to_string());
    assert_eq!(retry["task"]["key"], "flaky");
    assert_eq!(retry["task"]["attempt"], 1);
    assert_eq!(retry["task"]["state"], "retrying");
    assert!(
        retry["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{retry}"
    );
    let failure = &bodies
        .iter()
        .find(|(_, b)| b["event"] == "failure")
        .expect("failure")
        .1;
    assert_eq!(failure["run"]["state"], "failed");
    assert!(failure.get("task").is_none());
    assert!(rx.requests.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    let labels = [("namespace", "default"), ("pipeline", "notify-fail")];
    assert_eq!(
        wait_counter(
            "baton_notifications_total",
            &[labels[0], labels[1], ("outcome", "sent")],
            2
        )
        .await,
        2
    );
    assert_eq!(
        counter(
            "baton_notifications_total",
            &[labels[0], labels[1], ("outcome", "failed")]
        ),
        0
    );
}

#[tokio::test]
async fn success_in_slack_format_from_a_secret_url() {
    record_metrics();
    let (rx, addr) = Receiver::start(0).await;
    let source = "name: notify-slack\nnotify:\n  - on: success\n    webhook_env: HOOK_URL\n    format: slack\ntasks:\n  a:\n    run: 'true'\n";
    let secrets = HashMap::from([("HOOK_URL".to_owned(), format!("http://{addr}/slack"))]);
    let run = drive(source, notifier(secrets), None).await;
    assert_eq!(run.handle.await.expect("join"), RunState::Succeeded);
    rx.wait_for("success", |b| !b.is_empty()).await;
    let (path, body) = &rx.bodies()[0];
    assert_eq!(path, "/slack");
    let text = body["text"].as_str().expect("text");
    assert!(
        text.contains("`default/notify-slack`") && text.ends_with("succeeded"),
        "{text}"
    );
    assert_eq!(body["blocks"][0]["text"]["text"], text);
    assert_eq!(body["blocks"][1]["type"], "section");
}

#[tokio::test]
async fn approval_is_sent_while_the_task_waits() {
    record_metrics();
    let (rx, addr) = Receiver::start(0).await;
    let source = format!(
        "name: notify-approval\nnotify:\n  - on: approval\n    webhook: http://{addr}/\n  - on: approval\n    webhook: http://{addr}/slack\n    format: slack\ntasks:\n  gate:\n    approval: {{ message: \"ship {{{{ pipeline.name }}}}?\" }}\n"
    );
    let run = drive(&source, notifier(HashMap::new()), None).await;
    rx.wait_for("approval", |b| b.len() == 2).await;
    let mut bodies = rx.bodies();
    bodies.sort_by(|a, b| a.0.cmp(&b.0));
    let [(json_path, json), (slack_path, slack)] = &bodies[..] else {
        panic!("two bodies: {bodies:?}")
    };
    assert_eq!((json_path.as_str(), slack_path.as_str()), ("/", "/slack"));
    assert_eq!(json["event"], "approval");
    assert_eq!(json["task"]["state"], "waiting_approval");
    // The gate's message, rendered, goes with it.
    assert_eq!(json["task"]["message"], "ship notify-approval?");
    assert_eq!(
        slack["blocks"][1]["fields"][2]["text"],
        "*Asks*\nship notify-approval?"
    );
    assert!(!run.handle.is_finished());
    let _ = run.stop.send(Some(Stop::Cancel));
    assert_eq!(run.handle.await.expect("join"), RunState::Cancelled);
}

#[tokio::test]
async fn deadlines_are_noticed_while_the_run_still_runs() {
    record_metrics();
    let (rx, addr) = Receiver::start(0).await;
    let source = format!(
        "name: notify-deadline\ndeadline: 300ms\nnotify:\n  - on: deadline\n    webhook: http://{addr}/\ntasks:\n  slow:\n    run: sleep 30\n    deadline: 100ms\n  quick:\n    run: 'true'\n    deadline: 1h\n"
    );
    let run = drive(&source, notifier(HashMap::new()), None).await;
    rx.wait_for("both deadlines", |b| b.len() == 2).await;
    // Missed, reported, and the run goes on: a deadline is not a timeout.
    assert!(!run.handle.is_finished());
    assert_eq!(events(&rx.bodies()), ["deadline slow", "deadline"]);
    let labels = [("namespace", "default"), ("pipeline", "notify-deadline")];
    assert_eq!(
        counter(
            "baton_deadline_missed_total",
            &[labels[0], labels[1], ("scope", "task")]
        ),
        1
    );
    assert_eq!(
        counter(
            "baton_deadline_missed_total",
            &[labels[0], labels[1], ("scope", "run")]
        ),
        1
    );
    let _ = run.stop.send(Some(Stop::Cancel));
    assert_eq!(run.handle.await.expect("join"), RunState::Cancelled);
    // Once each, and nothing for `quick`, which finished well within its deadline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.bodies().len(), 2);
}

#[tokio::test]
async fn a_missed_deadline_is_reported_once_whichever_process_notices_it() {
    record_metrics();
    let (rx, addr) = Receiver::start(0).await;
    let source = format!(
        "name: notify-once\ndeadline: 200ms\nnotify:\n  - on: deadline\n    webhook: http://{addr}/\ntasks:\n  slow:\n    run: sleep 30\n    deadline: 100ms\n"
    );
    let first = drive(&source, notifier(HashMap::new()), None).await;
    rx.wait_for("both deadlines", |b| b.len() == 2).await;
    // This process hands the run back, as a server stopping does...
    let _ = first.stop.send(Some(Stop::Drain));
    assert_eq!(first.handle.await.expect("join"), RunState::Running);
    // ...and a new one, with a notifier of its own, resumes it. Its timers are re-armed from
    // the stored start times and fire at once: both deadlines are long past.
    let (second, stop) = execute(
        first.dir.path(),
        &first.store,
        &first.run,
        notifier(HashMap::new()),
    );
    for _ in 0..1000 {
        let attempts = first.store.attempts(&first.run).await.expect("attempts");
        if attempts.iter().any(|a| a.attempt == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reported once each, by the process that noticed first.
    assert_eq!(events(&rx.bodies()), ["deadline slow", "deadline"]);
    let labels = [("namespace", "default"), ("pipeline", "notify-once")];
    for scope in ["task", "run"] {
        assert_eq!(
            counter(
                "baton_deadline_missed_total",
                &[labels[0], labels[1], ("scope", scope)]
            ),
            1,
            "{scope}"
        );
    }
    let _ = stop.send(Some(Stop::Cancel));
    assert_eq!(second.await.expect("join"), RunState::Cancelled);
}

#[tokio::test]
async fn a_dead_receiver_does_not_fail_the_run_and_is_counted() {
    record_metrics();
    // A port nobody listens on: bind, note the address, close.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let source = format!(
        "name: notify-dead\nnotify:\n  - on: [success, failure]\n    webhook: http://{addr}/\n  - on: success\n    webhook_env: UNSET_URL\ntasks:\n  a:\n    run: 'true'\n"
    );
    let run = drive(&source, notifier(HashMap::new()), None).await;
    assert_eq!(run.handle.await.expect("join"), RunState::Succeeded);
    let failed = [
        ("namespace", "default"),
        ("pipeline", "notify-dead"),
        ("outcome", "failed"),
    ];
    assert_eq!(
        wait_counter("baton_notifications_total", &failed, 2).await,
        2
    );
}

#[tokio::test]
async fn deadline_and_notification_counters_start_at_zero() {
    record_metrics();
    // Prometheus sees no increase in a counter that appears at 1: the first miss or failed
    // delivery would not alert. So the counters exist at 0 once a run is watched.
    let (rx, addr) = Receiver::start(0).await;
    let source = format!(
        "name: notify-zero\ndeadline: 1h\nnotify:\n  - on: [success]\n    webhook: http://{addr}/\ntasks:\n  a:\n    run: 'true'\n    deadline: 1h\n"
    );
    let run = drive(&source, notifier(HashMap::new()), None).await;
    assert_eq!(run.handle.await.expect("join"), RunState::Succeeded);
    rx.wait_for("the success", |b| b.len() == 1).await;
    let at = |k, v| {
        [
            ("namespace", "default"),
            ("pipeline", "notify-zero"),
            (k, v),
        ]
    };
    for scope in ["run", "task"] {
        let labels = at("scope", scope);
        assert!(
            counter_exists("baton_deadline_missed_total", &labels),
            "{scope}"
        );
        assert_eq!(counter("baton_deadline_missed_total", &labels), 0);
    }
    let failed = at("outcome", "failed");
    assert!(counter_exists("baton_notifications_total", &failed));
    assert_eq!(counter("baton_notifications_total", &failed), 0);
    assert_eq!(
        wait_counter("baton_notifications_total", &at("outcome", "sent"), 1).await,
        1
    );
}
