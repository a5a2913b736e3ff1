//! Shared by the notification and lineage tests: a webhook receiver on loopback, runs driven
//! with chosen observers, and the counters the global metrics recorder saw.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_core::state::RunState;
use baton_engine::executor::LocalExecutor;
use baton_engine::{Engine, Observers, Options, RunRequest, Stop};
use baton_store::{SqlStore, Store};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::watch;

/// Records every JSON body POSTed to it; answers 500 to the first `fail_first` requests.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    pub bodies: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    pub fail_first: Arc<AtomicU32>,
    pub requests: Arc<AtomicU32>,
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    r.requests.fetch_add(1, Ordering::SeqCst);
    if r.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.bodies
        .lock()
        .expect("lock")
        .push((uri.path().to_owned(), body));
    StatusCode::OK
}

impl Receiver {
    pub async fn start(fail_first: u32) -> (Self, SocketAddr) {
        let r = Self::default();
        r.fail_first.store(fail_first, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, addr)
    }

    pub fn bodies(&self) -> Vec<(String, serde_json::Value)> {
        self.bodies.lock().expect("lock").clone()
    }

    /// Waits until `f` holds for the bodies received, for at most 10 s.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&[(String, serde_json::Value)]) -> bool) {
        for _ in 0..1000 {
            if f(&self.bodies()) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}; got {:#?}", self.bodies());
    }
}

/// A run of `source` in a fresh home, driven in the background with `observers`.
pub struct Driven {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub run: baton_core::ids::RunId,
    pub handle: tokio::task::JoinHandle<RunState>,
    pub stop: watch::Sender<Option<Stop>>,
}

pub async fn drive(source: &str, observers: Observers, logical_date: Option<&str>) -> Driven {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = baton_core::load(source);
    let pipeline = loaded.pipeline.expect("valid pipeline");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
    let run = baton_engine::create_run(
        store.as_ref(),
        RunRequest {
            trigger: if logical_date.is_some() {
                baton_core::state::RunTrigger::Schedule
            } else {
                baton_core::state::RunTrigger::Manual
            },
            logical_date: logical_date.map(str::to_owned),
            ..RunRequest::new(&pipeline, source, dir.path().display().to_string())
        },
    )
    .await
    .expect("run created")
    .id;
    let (handle, stop) = execute(dir.path(), &store, &run, observers);
    Driven {
        dir,
        store,
        run,
        handle,
        stop,
    }
}

/// Drives `run` with `observers`: for a run already driven, as another process would once the
/// first handed it back (`Stop::Drain`).
pub fn execute(
    home: &std::path::Path,
    store: &Arc<dyn Store>,
    run: &baton_core::ids::RunId,
    observers: Observers,
) -> (
    tokio::task::JoinHandle<RunState>,
    watch::Sender<Option<Stop>>,
) {
    let mut opts = Options::new(home.to_path_buf());
    opts.observers = observers;
    opts.control_interval = std::time::Duration::from_millis(20);
    opts.drain_grace = std::time::Duration::from_millis(50);
    let (stop, stop_rx) = watch::channel(None::<Stop>);
    let (s, id) = (Arc::clone(store), run.clone());
    let handle = tokio::spawn(async move {
        Engine::new(s, Arc::new(LocalExecutor::default()), opts)
            .execute(&id, stop_rx)
            .await
            .expect("run driven")
    });
    (handle, stop)
}

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        snapshotter
    })
}

/// Installs the recorder (call first in each test).
pub fn record_metrics() {
    let _ = snapshotter();
}

/// Counter values seen so far: a snapshot resets the recorder's counters, so they add up here.
/// Name, labels, total.
type Totals = Vec<(String, Vec<(String, String)>, u64)>;

fn totals() -> &'static Mutex<Totals> {
    static T: OnceLock<Mutex<Totals>> = OnceLock::new();
    T.get_or_init(Mutex::default)
}

/// The value of counter `name` with every label in `labels`, summed over the rest.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut totals = totals().lock().expect("lock");
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let name = key.key().name().to_owned();
        match totals
            .iter_mut()
            .find(|(n2, l2, _)| *n2 == name && *l2 == labels)
        {
            Some(entry) => entry.2 += n,
            None => totals.push((name, labels, n)),
        }
    }
    totals
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(k2, v2)| k2 == k && v2 == v))
        })
        .map(|(.., v)| v)
        .sum()
}

/// Whether counter `name` with every label in `labels` exists, at 0 or more.
pub fn counter_exists(name: &str, labels: &[(&str, &str)]) -> bool {
    // Folds the recorder's latest snapshot into the totals first.
    counter(name, labels);
    totals().lock().expect("lock").iter().any(|(n, l, _)| {
        n == name
            && labels
                .iter()
                .all(|(k, v)| l.iter().any(|(k2, v2)| k2 == k && v2 == v))
    })
}

/// Waits (at most 10 s) until counter `name` with `labels` reaches `expected`; returns its value.
pub async fn wait_counter(name: &str, labels: &[(&str, &str)], expected: u64) -> u64 {
    for _ in 0..1000 {
        let n = counter(name, labels);
        if n >= expected {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    counter(name, labels)
}
