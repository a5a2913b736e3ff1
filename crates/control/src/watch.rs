//! Reloading the pipelines directory when its files change, and on SIGHUP.
//!
//! A `git pull` or a branch switch touches many files in a burst: events are gathered until the
//! directory has been quiet for [`QUIET`], then the whole catalog reloads once. Reloading is
//! cheap for files whose text did not change, and a file that stops validating keeps its last
//! good version, so a reload in the middle of a half-written checkout does no harm.

use std::path::Path;
use std::time::Duration;

use notify::event::{MetadataKind, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::Control;

/// How long the directory must be quiet before a reload.
pub const QUIET: Duration = Duration::from_millis(250);

/// Where polling takes over when the OS cannot watch (inotify limits, some network mounts).
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why the directory cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch `{dir}` for changes: {source}")]
pub struct WatchError {
    dir: String,
    #[source]
    source: notify::Error,
}

/// Keeps the watch alive; dropping it stops reloading on changes.
#[derive(Debug)]
pub struct Watch {
    _watcher: Box<dyn std::fmt::Debug + Send + Sync>,
}

/// Starts reloading `state`'s catalog whenever a pipeline file under its directory changes.
pub async fn watch(state: Control) -> Result<Watch, WatchError> {
    let dir = state.catalog.read().await.dir().to_path_buf();
    let (tx, rx) = mpsc::unbounded_channel();
    let root = dir.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && changes_content(event.kind)
            && event
                .paths
                .iter()
                .any(|p| is_pipeline_file(p.strip_prefix(&root).unwrap_or(p)))
        {
            let _ = tx.send(());
        }
    };
    let watcher: Box<dyn std::fmt::Debug + Send + Sync> = match notify::recommended_watcher(
        handler.clone(),
    ) {
        Ok(mut w) => match w.watch(&dir, RecursiveMode::Recursive) {
            Ok(()) => Box::new(w),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "falling back to polling the pipelines directory");
                Box::new(poll(&dir, handler)?)
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "falling back to polling the pipelines directory");
            Box::new(poll(&dir, handler)?)
        }
    };
    tokio::spawn(reload_when_quiet(state, rx));
    Ok(Watch { _watcher: watcher })
}

fn poll<F: notify::EventHandler>(
    dir: &Path,
    handler: F,
) -> Result<notify::PollWatcher, WatchError> {
    let fail = |source| WatchError {
        dir: dir.display().to_string(),
        source,
    };
    let mut w = notify::PollWatcher::new(
        handler,
        notify::Config::default().with_poll_interval(POLL_INTERVAL),
    )
    .map_err(fail)?;
    w.watch(dir, RecursiveMode::Recursive).map_err(fail)?;
    Ok(w)
}

/// Whether an event can mean a file's text changed. Reading the files (every reload does)
/// raises access events: counting them made each reload schedule the next, forever.
fn changes_content(kind: EventKind) -> bool {
    match kind {
        EventKind::Access(_) => false,
        // The poll watcher reports a write as a new modification time.
        EventKind::Modify(ModifyKind::Metadata(m)) => m == MetadataKind::WriteTime,
        EventKind::Create(_)
        | EventKind::Remove(_)
        | EventKind::Modify(_)
        | EventKind::Any
        | EventKind::Other => true,
    }
}

/// Pipeline files, by their path under the pipelines directory (and directories, which may hold some: a renamed folder reports only its own
/// path), not editor swap files nor anything under a hidden directory such as `.git`.
fn is_pipeline_file(path: &Path) -> bool {
    let hidden = path.components().any(|c| {
        matches!(c, std::path::Component::Normal(name) if name.to_string_lossy().starts_with('.'))
    });
    !hidden
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml") | None
        )
}

async fn reload_when_quiet(state: Control, mut changes: mpsc::UnboundedReceiver<()>) {
    while changes.recv().await.is_some() {
        // Gather the burst.
        while let Ok(Some(())) = tokio::time::timeout(QUIET, changes.recv()).await {}
        state.reload().await.log("after a change");
    }
}

/// Reloads the catalog on every SIGHUP, the way daemons re-read their configuration.
pub fn reload_on_sighup(state: Control) -> std::io::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            state.reload().await.log("on SIGHUP");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn only_changes_of_content_count() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, RemoveKind, RenameMode,
        };
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime)),
            EventKind::Any,
        ] {
            assert!(changes_content(kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
        ] {
            assert!(!changes_content(kind), "{kind:?}");
        }
    }

    #[test]
    fn only_visible_yaml_files_count() {
        assert!(is_pipeline_file(&PathBuf::from("etl.yaml")));
        assert!(is_pipeline_file(&PathBuf::from("sub/ml.yml")));
        assert!(!is_pipeline_file(&PathBuf::from("etl.yaml.swp")));
        assert!(!is_pipeline_file(&PathBuf::from(".git/x.yaml")));
        assert!(!is_pipeline_file(&PathBuf::from(".etl.yaml")));
        assert!(!is_pipeline_file(&PathBuf::from("readme.md")));
        assert!(is_pipeline_file(&PathBuf::from("renamed-folder")));
    }
}
