//! What the router tests share: an app over a temp dir of pipeline files and a fresh home.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use baton_engine::executor::LocalExecutor;
use baton_server::secrets::StaticSecrets;
use baton_server::{AppState, Runner};
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
