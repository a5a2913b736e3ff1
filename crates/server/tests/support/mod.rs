//! What the router tests share: an app over a temp dir of pipeline files and a fresh home.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../store/tests/support/skip.rs"]
pub mod skip;

use std::sync::Arc;

use baton_control::Runner;
use baton_engine::executor::LocalExecutor;
use baton_observe::secrets::StaticSecrets;
use baton_server::AppState;
use baton_store::SqlStore;

/// An app whose `pipelines/` holds `files` (name, text), already loaded, with `secrets` as the
/// only secrets; the temp dir lives as long as the returned guard.
pub async fn app(
    files: &[(&str, &str)],
    secrets: &[(&str, &str)],
) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir_all(&pipelines).expect("mkdir");
    for (name, text) in files {
        std::fs::write(pipelines.join(name), text).expect("write");
    }
    let home = dir.path().join("home");
    let store: Arc<dyn baton_store::Store> =
        Arc::new(SqlStore::open_home(&home).await.expect("store"));
    let runner = Runner::new(Arc::clone(&store), Arc::new(LocalExecutor::default()), home);
    let secrets = StaticSecrets(
        secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    let state = AppState::new(store, runner, pipelines, Arc::new(secrets));
    state.reload().await;
    (dir, state)
}

/// An answer of the router: status, content type and body text.
#[derive(Debug)]
pub struct Answer {
    pub status: axum::http::StatusCode,
    pub content_type: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| serde_json::Value::String(self.text.clone()))
    }
}

/// Sends one request through the app's router, without a socket; a JSON `body` goes with its
/// content type.
pub async fn request(
    state: &AppState,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Answer {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let mut req = axum::http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = baton_server::router(state.clone())
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        content_type,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
