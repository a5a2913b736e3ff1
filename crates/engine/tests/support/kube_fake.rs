//! A fake Kubernetes API server on loopback that speaks the real HTTP protocol, so the real
//! `kube` client, its watcher (lists, chunked watch streams with bookmarks, 410 Gone, cut
//! streams) and log follows run against it. Its "kubelet" runs each Job's container command
//! as a local process (in a directory of its pod), so logs, exit codes, outputs (the
//! termination-message file), deadlines and deletes are real. An image name chooses a
//! failure: `…unschedulable…` finds no node, `…pull-fails…` cannot be pulled, `…oom…` is
//! reported OOMKilled.
// Each test binary uses some of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

// The kubelet is a file of its own (one concept per file); its path is this file's sibling
// whichever test binary includes this one.
#[path = "kube_fake_kubelet.rs"]
mod kubelet;
use kubelet::kubelet;

/// How often an idle watch gets a bookmark (the real server's is about a minute).
const BOOKMARK_EVERY: Duration = Duration::from_millis(300);

/// The namespace the fake has, and its kubeconfig's context names.
pub(crate) const NAMESPACE: &str = "baton";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Job,
    Pod,
}

impl Kind {
    fn api_version(self) -> &'static str {
        match self {
            Self::Job => "batch/v1",
            Self::Pod => "v1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Job => "Job",
            Self::Pod => "Pod",
        }
    }
}

/// What a test may make the fake do wrong.
#[derive(Debug, Default, Clone)]
pub(crate) struct Switches {
    /// The next this many watches of pods are answered with an `ERROR` event of status 410
    /// (as the real server answers a resourceVersion etcd compacted away).
    pub(crate) gone_pod_watches: usize,
    /// Every watch stream is cut (the connection dropped, no end chunk) once it has sent this
    /// many events, bookmarks included; 0 never.
    pub(crate) cut_watches_after: usize,
    /// The first log stream of every pod is cut after this many lines; 0 never.
    pub(crate) cut_first_log_after: usize,
    /// Job creates are forbidden (403), as to an identity without the RBAC verb.
    pub(crate) forbid_job_create: bool,
}

#[derive(Debug, Default)]
struct PodLog {
    lines: Vec<(jiff::Timestamp, String)>,
    /// The container has ended: a follow ends once it has sent every line.
    done: bool,
    streams: usize,
}

#[derive(Debug, Default)]
struct Cluster {
    rv: u64,
    objects: BTreeMap<(Kind, String), Value>,
    history: Vec<(u64, Kind, &'static str, Value)>,
    namespaces: BTreeSet<String>,
    /// Every Job body POSTed, as received.
    created: Vec<Value>,
    /// Every DELETE of a Job: its name and options.
    deletes: Vec<(String, Value)>,
    /// `METHOD path?query` of every request.
    requests: Vec<String>,
    /// 410s served.
    gone_served: usize,
    logs: HashMap<String, PodLog>,
    /// The process group of each running Job's container, and its stop.
    running: HashMap<String, (i32, Option<tokio::sync::oneshot::Sender<u64>>)>,
    /// Jobs asked to go: their kubelet removes them once their container has stopped.
    deleting: BTreeSet<String>,
    switches: Switches,
    pod_seq: u64,
}

struct Shared {
    cluster: Mutex<Cluster>,
    changed: tokio::sync::watch::Sender<u64>,
    dir: PathBuf,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().expect("fake cluster lock")
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Stores `object` (ADDED, MODIFIED) or drops it (DELETED), with a new resourceVersion.
    fn emit(&self, kind: Kind, kind_of_event: &'static str, mut object: Value) -> Value {
        {
            let mut c = self.lock();
            c.rv += 1;
            let rv = c.rv.to_string();
            object["apiVersion"] = json!(kind.api_version());
            object["kind"] = json!(kind.name());
            object["metadata"]["resourceVersion"] = json!(rv);
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if kind_of_event == "DELETED" {
                c.objects.remove(&(kind, name));
            } else {
                c.objects.insert((kind, name), object.clone());
            }
            let at = c.rv;
            c.history.push((at, kind, kind_of_event, object.clone()));
        }
        self.bump();
        object
    }

    fn get(&self, kind: Kind, name: &str) -> Option<Value> {
        self.lock().objects.get(&(kind, name.to_owned())).cloned()
    }

    /// Changes the stored `name` with `change`, as a MODIFIED event; false when it is gone.
    fn modify(&self, kind: Kind, name: &str, change: impl FnOnce(&mut Value)) -> bool {
        let Some(mut object) = self.get(kind, name) else {
            return false;
        };
        change(&mut object);
        self.emit(kind, "MODIFIED", object);
        true
    }
}

/// A running fake cluster; stopped when dropped.
pub(crate) struct FakeCluster {
    pub(crate) url: String,
    pub(crate) kubeconfig: PathBuf,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
    /// The runtime it runs on, when it has its own (for tests without one).
    _runtime: Option<tokio::runtime::Runtime>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        for (pgid, _) in self.shared.lock().running.values() {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl FakeCluster {
    /// Starts on the current runtime.
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (shared, url, server) = serve(dir.path()).await;
        Self::made(dir, shared, url, Some(server), None)
    }

    /// Starts on a runtime of its own, for tests that have none (the CLI's).
    pub(crate) fn start_blocking() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (shared, url, server) = runtime.block_on(serve(dir.path()));
        Self::made(dir, shared, url, Some(server), Some(runtime))
    }

    fn made(
        dir: tempfile::TempDir,
        shared: Arc<Shared>,
        url: String,
        server: Option<tokio::task::JoinHandle<()>>,
        runtime: Option<tokio::runtime::Runtime>,
    ) -> Self {
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NAMESPACE}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n"
            ),
        )
        .expect("kubeconfig");
        Self {
            url,
            kubeconfig,
            shared,
            _dir: dir,
            _runtime: runtime,
            server,
        }
    }

    pub(crate) fn switch(&self, change: impl FnOnce(&mut Switches)) {
        change(&mut self.shared.lock().switches);
    }

    /// Every Job body baton POSTed, as the fake received it.
    pub(crate) fn created(&self) -> Vec<Value> {
        self.shared.lock().created.clone()
    }

    /// The names of the Jobs there now.
    pub(crate) fn jobs(&self) -> Vec<String> {
        self.names(Kind::Job)
    }

    pub(crate) fn pods(&self) -> Vec<String> {
        self.names(Kind::Pod)
    }

    fn names(&self, kind: Kind) -> Vec<String> {
        self.shared
            .lock()
            .objects
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub(crate) fn job(&self, name: &str) -> Option<Value> {
        self.shared.get(Kind::Job, name)
    }

    /// The Job DELETEs: name and options (`propagationPolicy`, `gracePeriodSeconds`).
    pub(crate) fn deletes(&self) -> Vec<(String, Value)> {
        self.shared.lock().deletes.clone()
    }

    /// `METHOD path?query` of every request so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    pub(crate) fn gone_served(&self) -> usize {
        self.shared.lock().gone_served
    }

    /// How many log streams were opened for pods of `job`.
    pub(crate) fn log_streams(&self, job: &str) -> usize {
        self.shared
            .lock()
            .logs
            .iter()
            .filter(|(pod, _)| pod.starts_with(job))
            .map(|(_, l)| l.streams)
            .sum()
    }

    /// The lines the containers of `job`'s pods have written.
    pub(crate) fn logged(&self, job: &str) -> Vec<String> {
        self.shared
            .lock()
            .logs
            .iter()
            .filter(|(pod, _)| pod.starts_with(job))
            .flat_map(|(_, l)| l.lines.iter().map(|(_, text)| text.clone()))
            .collect()
    }

    /// Whether the container of `job` runs now.
    pub(crate) fn running(&self, job: &str) -> bool {
        self.shared.lock().running.contains_key(job)
    }

    /// The names of running Jobs.
    pub(crate) fn running_jobs(&self) -> Vec<String> {
        self.shared.lock().running.keys().cloned().collect()
    }

    /// Makes a Job as a dead baton could have left it, through the API.
    pub(crate) async fn create_job(&self, body: Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let got = client
            .post(format!(
                "{}/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
                self.url
            ))
            .header(header::CONTENT_TYPE.as_str(), "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert!(got.status().is_success(), "{:?}", got.text().await);
    }
}

async fn serve(dir: &Path) -> (Arc<Shared>, String, tokio::task::JoinHandle<()>) {
    let shared = Arc::new(Shared {
        cluster: Mutex::new(Cluster {
            namespaces: BTreeSet::from([NAMESPACE.to_owned(), "default".to_owned()]),
            ..Default::default()
        }),
        changed: tokio::sync::watch::channel(0).0,
        dir: dir.to_path_buf(),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (shared, url, server)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn status(code: u16, reason: &str, message: String) -> Response {
    json_response(
        StatusCode::from_u16(code).expect("code"),
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code,
        }),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    shared.lock().requests.push(format!(
        "{method} {}?{}",
        uri.path(),
        uri.query().unwrap_or_default()
    ));
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (kind, ns, rest) = match parts.as_slice() {
        ["apis", "batch", "v1", "namespaces", ns, "jobs", rest @ ..] => (Kind::Job, *ns, rest),
        ["api", "v1", "namespaces", ns, "pods", rest @ ..] => (Kind::Pod, *ns, rest),
        _ => return status(404, "NotFound", format!("the fake has no {}", uri.path())),
    };
    if !shared.lock().namespaces.contains(ns) {
        return status(404, "NotFound", format!("namespaces \"{ns}\" not found"));
    }
    match (&method, kind, rest) {
        (&Method::GET, _, []) if q.get("watch").is_some_and(|w| w == "true") => {
            watch(shared, kind, &q)
        }
        (&Method::GET, _, []) => list(&shared, kind, &q),
        (&Method::POST, Kind::Job, []) if shared.lock().switches.forbid_job_create => status(
            403,
            "Forbidden",
            format!(
                "jobs.batch is forbidden: User \"system:serviceaccount:{ns}:baton\" cannot create \
                 resource \"jobs\" in API group \"batch\" in the namespace \"{ns}\""
            ),
        ),
        (&Method::POST, Kind::Job, []) => create(shared, &body),
        (&Method::GET, _, [name]) => match shared.get(kind, name) {
            Some(object) => json_response(StatusCode::OK, &object),
            None => not_found(kind, name),
        },
        (&Method::DELETE, Kind::Job, [name]) => delete(&shared, name, &body, &q),
        (&Method::GET, Kind::Pod, [name, "log"]) => logs(shared, name, &q),
        _ => status(405, "MethodNotAllowed", format!("{method} {}", uri.path())),
    }
}

fn not_found(kind: Kind, name: &str) -> Response {
    let what = match kind {
        Kind::Job => "jobs.batch",
        Kind::Pod => "pods",
    };
    status(404, "NotFound", format!("{what} \"{name}\" not found"))
}

/// Whether `object` matches `labelSelector` (`k=v,k2=v2`) and `fieldSelector`
/// (`metadata.name=x`).
fn selected(object: &Value, q: &HashMap<String, String>) -> bool {
    let labels = &object["metadata"]["labels"];
    let by_label = q.get("labelSelector").is_none_or(|s| {
        s.split(',')
            .filter(|t| !t.is_empty())
            .all(|term| match term.split_once('=') {
                Some((k, v)) => labels[k].as_str() == Some(v),
                None => labels.get(term).is_some(),
            })
    });
    let by_field = q.get("fieldSelector").is_none_or(|s| {
        s.split(',').all(|term| match term.split_once('=') {
            Some(("metadata.name", v)) => object["metadata"]["name"].as_str() == Some(v),
            _ => false,
        })
    });
    by_label && by_field
}

fn list(shared: &Shared, kind: Kind, q: &HashMap<String, String>) -> Response {
    let c = shared.lock();
    let items: Vec<Value> = c
        .objects
        .iter()
        .filter(|((k, _), o)| *k == kind && selected(o, q))
        .map(|(_, o)| o.clone())
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "apiVersion": kind.api_version(), "kind": format!("{}List", kind.name()),
            "metadata": {"resourceVersion": c.rv.to_string()}, "items": items,
        }),
    )
}

/// A chunked response fed by `produce` through a channel (a cut is an error chunk).
fn streamed<F, Fut>(content_type: &str, produce: F) -> Response
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(body))
        .expect("response")
}

fn cut() -> std::io::Error {
    std::io::Error::other("the fake cut the stream")
}

fn watch(shared: Arc<Shared>, kind: Kind, q: &HashMap<String, String>) -> Response {
    let q = q.clone();
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let gone = {
        let mut c = shared.lock();
        let gone = kind == Kind::Pod && c.switches.gone_pod_watches > 0;
        if gone {
            c.switches.gone_pod_watches -= 1;
            c.gone_served += 1;
        }
        gone
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs);
    streamed("application/json", move |tx| async move {
        let line = |v: Value| Ok(Bytes::from(format!("{v}\n")));
        if gone {
            let _ = tx
                .send(line(json!({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("too old resource version: {from}"),
                    "reason": "Expired", "code": 410,
                }})))
                .await;
            return;
        }
        let mut changed = shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
        let mut cursor = from;
        let mut sent = 0;
        loop {
            let (events, now, cut_after) = {
                let c = shared.lock();
                let events: Vec<(u64, &'static str, Value)> = c
                    .history
                    .iter()
                    .filter(|(rv, k, _, o)| *rv > cursor && *k == kind && selected(o, &q))
                    .map(|(rv, _, t, o)| (*rv, *t, o.clone()))
                    .collect();
                (events, c.rv, c.switches.cut_watches_after)
            };
            for (rv, type_, object) in events {
                if tx
                    .send(line(json!({"type": type_, "object": object})))
                    .await
                    .is_err()
                {
                    return;
                }
                cursor = rv;
                sent += 1;
                if cut_after > 0 && sent >= cut_after {
                    // Once what was sent has arrived: a cut that always took the last event
                    // with it would make every reconnect lose it again.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = tx.send(Err(cut())).await;
                    return;
                }
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep_until(next_bookmark) => {
                    next_bookmark += BOOKMARK_EVERY;
                    if bookmarks {
                        cursor = cursor.max(now);
                        let mark = json!({"type": "BOOKMARK", "object": {
                            "kind": kind.name(), "apiVersion": kind.api_version(),
                            "metadata": {"resourceVersion": cursor.to_string()},
                        }});
                        if tx.send(line(mark)).await.is_err() {
                            return;
                        }
                        sent += 1;
                        if cut_after > 0 && sent >= cut_after {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let _ = tx.send(Err(cut())).await;
                            return;
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    })
}

fn create(shared: Arc<Shared>, body: &[u8]) -> Response {
    let Ok(mut job) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "not a job".into());
    };
    let Some(name) = job["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(422, "Invalid", "metadata.name: Required value".into());
    };
    shared.lock().created.push(job.clone());
    if shared.get(Kind::Job, &name).is_some() {
        return status(
            409,
            "AlreadyExists",
            format!("jobs.batch \"{name}\" already exists"),
        );
    }
    job["metadata"]["uid"] = json!(format!("uid-{name}"));
    job["metadata"]["creationTimestamp"] = json!(jiff::Timestamp::now().to_string());
    job["status"] = json!({});
    let job = shared.emit(Kind::Job, "ADDED", job);
    tokio::spawn(kubelet(Arc::clone(&shared), job.clone()));
    json_response(StatusCode::CREATED, &job)
}

fn delete(shared: &Shared, name: &str, body: &[u8], q: &HashMap<String, String>) -> Response {
    let mut options: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    for (k, v) in q {
        options[k] = json!(v);
    }
    shared
        .lock()
        .deletes
        .push((name.to_owned(), options.clone()));
    let Some(mut job) = shared.get(Kind::Job, name) else {
        return not_found(Kind::Job, name);
    };
    let grace = options["gracePeriodSeconds"].as_u64().unwrap_or(30);
    let running = {
        let mut c = shared.lock();
        c.deleting.insert(name.to_owned());
        c.running.get_mut(name).map(|(_, stop)| stop.take())
    };
    match running {
        // The kubelet stops the container (if it is not stopping already), then the pod and
        // the Job go.
        Some(stop) => {
            if let Some(stop) = stop {
                let _ = stop.send(grace);
            }
            job["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string());
            job["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
            let job = shared.emit(Kind::Job, "MODIFIED", job);
            json_response(StatusCode::OK, &job)
        }
        None => {
            remove_job(shared, name);
            json_response(StatusCode::OK, &job)
        }
    }
}

fn remove_job(shared: &Shared, name: &str) {
    let pods: Vec<Value> = shared
        .lock()
        .objects
        .iter()
        .filter(|((k, _), o)| *k == Kind::Pod && o["metadata"]["labels"]["job-name"] == name)
        .map(|(_, o)| o.clone())
        .collect();
    for pod in pods {
        shared.emit(Kind::Pod, "DELETED", pod);
    }
    if let Some(job) = shared.get(Kind::Job, name) {
        shared.emit(Kind::Job, "DELETED", job);
    }
}

fn logs(shared: Arc<Shared>, pod: &str, q: &HashMap<String, String>) -> Response {
    let follow = q.get("follow").is_some_and(|f| f == "true");
    let timestamps = q.get("timestamps").is_some_and(|t| t == "true");
    let since: Option<jiff::Timestamp> = q.get("sinceTime").and_then(|t| t.parse().ok());
    let first = {
        let mut c = shared.lock();
        let Some(log) = c.logs.get_mut(pod) else {
            drop(c);
            return status(
                400,
                "BadRequest",
                format!(
                    "container \"task\" in pod \"{pod}\" is waiting to start: ContainerCreating"
                ),
            );
        };
        log.streams += 1;
        log.streams == 1
    };
    let pod = pod.to_owned();
    streamed("text/plain", move |tx| async move {
        let mut changed = shared.changed.subscribe();
        let mut next = 0;
        let mut sent = 0;
        loop {
            let (lines, done, cut_after) = {
                let c = shared.lock();
                let log = &c.logs[&pod];
                (
                    log.lines[next..].to_vec(),
                    log.done,
                    if first {
                        c.switches.cut_first_log_after
                    } else {
                        0
                    },
                )
            };
            for (at, text) in lines {
                next += 1;
                if since.is_some_and(|s| at < s) {
                    continue;
                }
                if cut_after > 0 && sent >= cut_after {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = tx.send(Err(cut())).await;
                    return;
                }
                let line = if timestamps {
                    format!("{at} {text}\n")
                } else {
                    format!("{text}\n")
                };
                if tx.send(Ok(Bytes::from(line))).await.is_err() {
                    return;
                }
                sent += 1;
            }
            if done || !follow {
                return;
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    })
}
